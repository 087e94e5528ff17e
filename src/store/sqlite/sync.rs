//! What directory sync keeps: the records a source owns, its leavers, held plans, runs and the
//! lease that lets one run at a time.

use sqlx::Row;
use time::OffsetDateTime;

use super::{
    Error, Result, Scope, Stamp, Store, delete, format_time, insert, insert_users, links_column,
    parse_time, record_from_row, replace, table,
};
use crate::scim::schema::Kind;
use crate::store::{Cursor, NewRecord, OwnedUser, Record, SyncChanges, SyncRun};

impl Store {
    /// Every user or group the scope's source owns, active or not: groups with their members,
    /// users without their groups (a sync compares memberships from the groups' side).
    pub async fn owned(&self, scope: &Scope, kind: Kind) -> Result<Vec<Record>> {
        let links = match kind {
            Kind::Group => links_column(kind),
            Kind::User => "NULL AS links",
        };
        let sql = format!(
            "SELECT r.id, r.source, r.data, r.created_at, r.modified_at, r.version, {links} \
             FROM {} r WHERE r.school_id = ?1 AND r.source = ?2 ORDER BY r.id",
            table(kind)
        );
        let rows = sqlx::query(&sql)
            .bind(&scope.school_id)
            .bind(&scope.source)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Every user the scope's source owns, active or not, without its document but with its
    /// entry's digest. One row of JSON: a school's accounts cost one round trip, not one each.
    pub async fn owned_users(&self, scope: &Scope) -> Result<Vec<OwnedUser>> {
        type Row = (String, Option<String>, String, bool, i64, Option<String>);
        let json: String = sqlx::query_scalar(
            "SELECT json_group_array(json_array(u.id, u.external_id, u.user_name, \
             json(CASE WHEN u.active THEN 'true' ELSE 'false' END), u.version, e.digest)) \
             FROM users u LEFT JOIN sync_entries e ON e.school_id = u.school_id \
             AND e.source = u.source AND e.anchor = u.external_id \
             WHERE u.school_id = ?1 AND u.source = ?2",
        )
        .bind(&scope.school_id)
        .bind(&scope.source)
        .fetch_one(&self.pool)
        .await?;
        let rows: Vec<Row> = serde_json::from_str(&json).map_err(|source| Error::Corrupt {
            id: format!("users of source {}", scope.source),
            source,
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(id, anchor, user_name, active, version, digest)| OwnedUser {
                    id,
                    anchor,
                    user_name,
                    active,
                    version,
                    digest,
                },
            )
            .collect())
    }

    /// How many active accounts with this role (`student`, `tutor`) the source owns.
    pub async fn count_active(&self, scope: &Scope, role: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM users WHERE school_id = ?1 AND source = ?2 AND active \
             AND json_extract(data, '$.\"urn:rollcall:params:scim:schemas:extension:school:2.0:User\".role') = ?3",
        )
        .bind(&scope.school_id)
        .bind(&scope.source)
        .bind(role)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The source's users with these ids, with their documents (not their groups).
    pub async fn owned_users_by_id(&self, scope: &Scope, ids: &[&str]) -> Result<Vec<Record>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(super::CHUNK) {
            let list = serde_json::Value::from_iter(chunk.iter().copied()).to_string();
            let rows = sqlx::query(
                "SELECT r.id, r.source, r.data, r.created_at, r.modified_at, r.version, \
                 NULL AS links FROM users r WHERE r.school_id = ?1 AND r.source = ?2 \
                 AND r.id IN (SELECT value FROM json_each(?3))",
            )
            .bind(&scope.school_id)
            .bind(&scope.source)
            .bind(list)
            .fetch_all(&self.pool)
            .await?;
            for row in &rows {
                out.push(record_from_row(row)?);
            }
        }
        Ok(out)
    }

    /// The names (lower-cased) of the school's groups that another source owns.
    pub async fn group_names_of_others(&self, scope: &Scope) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT display_name_key FROM groups WHERE school_id = ?1 AND source <> ?2",
        )
        .bind(&scope.school_id)
        .bind(&scope.source)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The source's leavers: user id → when they left.
    pub async fn leavers(&self, scope: &Scope) -> Result<Vec<(String, OffsetDateTime)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT user_id, since FROM sync_leavers WHERE school_id = ?1 AND source = ?2",
        )
        .bind(&scope.school_id)
        .bind(&scope.source)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, since)| Some((id, parse_time(&since)?)))
            .collect())
    }

    /// Writes a sync's changes in one transaction, each with its audit event; returns the
    /// usernames the new accounts got, in order. A record changed since it was planned fails
    /// the whole write (`VersionMismatch`).
    pub async fn apply_sync(
        &self,
        scope: &Scope,
        changes: &SyncChanges,
        stamp: Stamp<'_>,
    ) -> Result<Vec<String>> {
        let (_turn, mut tx) = self.write().await?;
        let accounts: Vec<(&str, &NewRecord)> = changes
            .create_users
            .iter()
            .map(|(id, record)| (id.as_str(), record))
            .collect();
        let outbox = &self.outbox;
        let names = insert_users(&mut tx, outbox, scope, &accounts, stamp).await?;
        for (id, version, record) in &changes.replace_users {
            replace(
                &mut tx,
                outbox,
                scope,
                Kind::User,
                id,
                Some(*version),
                record,
                stamp,
            )
            .await?;
        }
        for (id, version) in &changes.delete_groups {
            delete(
                &mut tx,
                outbox,
                scope,
                Kind::Group,
                id,
                Some(*version),
                stamp,
            )
            .await?;
        }
        for (id, record) in &changes.create_groups {
            insert(&mut tx, outbox, scope, Kind::Group, id, record, stamp).await?;
        }
        for (id, version, record) in &changes.replace_groups {
            replace(
                &mut tx,
                outbox,
                scope,
                Kind::Group,
                id,
                Some(*version),
                record,
                stamp,
            )
            .await?;
        }
        for (id, version) in &changes.delete_users {
            delete(
                &mut tx,
                outbox,
                scope,
                Kind::User,
                id,
                Some(*version),
                stamp,
            )
            .await?;
        }
        let now = format_time(stamp.at);
        for id in &changes.left {
            sqlx::query(
                "INSERT INTO sync_leavers (user_id, school_id, source, since) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (user_id) DO NOTHING",
            )
            .bind(id)
            .bind(&scope.school_id)
            .bind(&scope.source)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        for id in &changes.returned {
            sqlx::query("DELETE FROM sync_leavers WHERE user_id = ?1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for anchor in &changes.forget_entries {
            sqlx::query(
                "DELETE FROM sync_entries WHERE school_id = ?1 AND source = ?2 AND anchor = ?3",
            )
            .bind(&scope.school_id)
            .bind(&scope.source)
            .bind(anchor)
            .execute(&mut *tx)
            .await?;
        }
        for chunk in changes.entries.chunks(super::CHUNK) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO sync_entries (school_id, source, anchor, dn_key, uid_key, digest) ",
            );
            insert.push_values(chunk, |mut row, entry| {
                row.push_bind(&scope.school_id)
                    .push_bind(&scope.source)
                    .push_bind(&entry.anchor)
                    .push_bind(&entry.dn)
                    .push_bind(&entry.uid)
                    .push_bind(&entry.digest);
            });
            insert.push(
                " ON CONFLICT (school_id, source, anchor) DO UPDATE SET dn_key = excluded.dn_key, \
                 uid_key = excluded.uid_key, digest = excluded.digest",
            );
            insert.build().execute(&mut *tx).await?;
        }
        if let Some((marker, full)) = &changes.cursor {
            sqlx::query(
                "INSERT INTO sync_cursors (school_id, source, marker, full_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (school_id, source) DO UPDATE SET \
                 marker = excluded.marker, \
                 full_at = CASE WHEN ?5 THEN excluded.full_at ELSE sync_cursors.full_at END",
            )
            .bind(&scope.school_id)
            .bind(&scope.source)
            .bind(marker)
            .bind(&now)
            .bind(*full)
            .execute(&mut *tx)
            .await?;
        }
        super::entitlements::settle(&mut tx, outbox, scope, stamp.at).await?;
        tx.commit().await?;
        Ok(names)
    }

    /// Where the source's people were last seen: normalised DN → anchor, and `uid:<uid>` →
    /// anchor. One row of JSON, like [`Store::owned_users`].
    pub async fn entry_locations(&self, scope: &Scope) -> Result<Vec<(String, String)>> {
        let json: String = sqlx::query_scalar(
            "SELECT json_group_array(json_array(dn_key, uid_key, anchor)) FROM sync_entries \
             WHERE school_id = ?1 AND source = ?2",
        )
        .bind(&scope.school_id)
        .bind(&scope.source)
        .fetch_one(&self.pool)
        .await?;
        let rows: Vec<(String, Option<String>, String)> =
            serde_json::from_str(&json).map_err(|source| Error::Corrupt {
                id: format!("entries of source {}", scope.source),
                source,
            })?;
        let mut out = Vec::with_capacity(rows.len() * 2);
        for (dn, uid, anchor) in rows {
            if let Some(uid) = uid {
                out.push((format!("uid:{uid}"), anchor.clone()));
            }
            out.push((dn, anchor));
        }
        Ok(out)
    }

    /// Where the source's last run stopped reading.
    pub async fn cursor(&self, scope: &Scope) -> Result<Option<Cursor>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT marker, full_at FROM sync_cursors WHERE school_id = ?1 AND source = ?2",
        )
        .bind(&scope.school_id)
        .bind(&scope.source)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(marker, at)| {
            Some(Cursor {
                marker,
                full_at: parse_time(&at)?,
            })
        }))
    }

    /// Keeps a plan the threshold stopped (replacing an older one).
    pub async fn hold_plan(&self, scope: &Scope, plan: &str, at: OffsetDateTime) -> Result<()> {
        let (_turn, mut tx) = self.write().await?;
        sqlx::query(
            "INSERT INTO sync_held_plans (school_id, source, plan, created_at) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (school_id, source) DO UPDATE SET \
             plan = excluded.plan, created_at = excluded.created_at",
        )
        .bind(&scope.school_id)
        .bind(&scope.source)
        .bind(plan)
        .bind(format_time(at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The held plan of a source and when it was held.
    pub async fn held_plan(&self, scope: &Scope) -> Result<Option<(String, OffsetDateTime)>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT plan, created_at FROM sync_held_plans WHERE school_id = ?1 AND source = ?2",
        )
        .bind(&scope.school_id)
        .bind(&scope.source)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(plan, at)| Some((plan, parse_time(&at)?))))
    }

    pub async fn clear_held_plan(&self, scope: &Scope) -> Result<()> {
        let (_turn, mut tx) = self.write().await?;
        sqlx::query("DELETE FROM sync_held_plans WHERE school_id = ?1 AND source = ?2")
            .bind(&scope.school_id)
            .bind(&scope.source)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a finished run; the last 100 of each source are kept.
    pub async fn record_run(&self, school_id: &str, run: &SyncRun) -> Result<()> {
        let (_turn, mut tx) = self.write().await?;
        sqlx::query(
            "INSERT INTO sync_runs (school_id, source, started_at, finished_at, outcome, report) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(school_id)
        .bind(&run.source)
        .bind(format_time(run.started))
        .bind(format_time(run.finished))
        .bind(&run.outcome)
        .bind(&run.report)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM sync_runs WHERE school_id = ?1 AND source = ?2 AND id NOT IN \
             (SELECT id FROM sync_runs WHERE school_id = ?1 AND source = ?2 \
              ORDER BY id DESC LIMIT 100)",
        )
        .bind(school_id)
        .bind(&run.source)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A source's most recent runs, newest first.
    pub async fn runs(&self, school_id: &str, source: &str, limit: i64) -> Result<Vec<SyncRun>> {
        let rows = sqlx::query(
            "SELECT source, started_at, finished_at, outcome, report FROM sync_runs \
             WHERE school_id = ?1 AND source = ?2 ORDER BY id DESC LIMIT ?3",
        )
        .bind(school_id)
        .bind(source)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let time =
                    |column: &str| -> Result<OffsetDateTime> { super::time_column(row, column) };
                Ok(SyncRun {
                    source: row.try_get("source")?,
                    started: time("started_at")?,
                    finished: time("finished_at")?,
                    outcome: row.try_get("outcome")?,
                    report: row.try_get("report")?,
                })
            })
            .collect()
    }

    /// Takes the source's lease for `holder` until `until`, if nobody holds an unexpired one.
    pub async fn take_lease(
        &self,
        scope: &Scope,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool> {
        let (_turn, mut tx) = self.write().await?;
        let taken = sqlx::query(
            "INSERT INTO sync_leases (school_id, source, holder, expires_at) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (school_id, source) DO UPDATE SET \
             holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE sync_leases.expires_at <= ?5 OR sync_leases.holder = excluded.holder",
        )
        .bind(&scope.school_id)
        .bind(&scope.source)
        .bind(holder)
        .bind(format_time(until))
        .bind(format_time(now))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(taken)
    }

    /// Gives the lease back (only if `holder` still has it).
    pub async fn release_lease(&self, scope: &Scope, holder: &str) -> Result<()> {
        let (_turn, mut tx) = self.write().await?;
        sqlx::query("DELETE FROM sync_leases WHERE school_id = ?1 AND source = ?2 AND holder = ?3")
            .bind(&scope.school_id)
            .bind(&scope.source)
            .bind(holder)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
