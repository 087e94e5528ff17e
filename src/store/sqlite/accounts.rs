//! Accounts beyond SCIM: admins, log-in credentials, class imports and pending slips.

use sqlx::Row;
use time::OffsetDateTime;

use super::{Store, audit, fetch, insert, insert_users, links_column, record_from_row, write_slip};
use crate::scim::schema::Kind;
use crate::store::{
    Error, ImportGroup, NewRecord, PendingSlip, Result, Scope, Stamp, StoredCredential, TakenSlip,
    format_time,
};
use crate::webhooks::event::Change;

/// The pending slips of school `?1`, of group `?2`'s members unless it is NULL (`s`).
const SLIPS_OF: &str = "s.school_id = ?1 AND (?2 IS NULL OR s.user_id IN \
     (SELECT member_id FROM group_members WHERE group_id = ?2))";

impl Store {
    /// Records an admin of a school. A second admin with the same name is a `Conflict`.
    pub async fn insert_admin(
        &self,
        school_id: &str,
        id: &str,
        user_name: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO admins (id, school_id, user_name, user_name_key, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(id)
        .bind(school_id)
        .bind(user_name)
        .bind(user_name.to_lowercase())
        .bind(format_time(at))
        .execute(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict {
                field: "admin",
                value: user_name.to_owned(),
            },
            _ => Error::Db(e),
        })?;
        Ok(())
    }

    pub async fn admin_exists(&self, school_id: &str, user_name: &str) -> Result<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM admins WHERE school_id = ?1 AND user_name_key = ?2")
                .bind(school_id)
                .bind(user_name.to_lowercase())
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    /// The credential of the account with this username, if there is one.
    pub async fn credential(
        &self,
        school_id: &str,
        user_name: &str,
    ) -> Result<Option<StoredCredential>> {
        let row = sqlx::query(
            "SELECT id, user_name, password_hash, must_change, active FROM users \
             WHERE school_id = ?1 AND user_name_key = ?2",
        )
        .bind(school_id)
        .bind(user_name.to_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(StoredCredential {
                user_id: row.try_get("id")?,
                user_name: row.try_get("user_name")?,
                password_hash: row.try_get("password_hash")?,
                must_change: row.try_get("must_change")?,
                active: row.try_get("active")?,
            })
        })
        .transpose()
    }

    /// Sets an account's password, if its hash is still `expected_hash` (so two changes racing
    /// from the same old password cannot both win). Erases any pending slip, whose password no
    /// longer works, and holds `slip` instead when given (a reset by an admin). Audited without
    /// the secret.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_password(
        &self,
        scope: &Scope,
        user_id: &str,
        expected_hash: Option<&str>,
        hash: &str,
        must_change: bool,
        slip: Option<&PendingSlip>,
        stamp: Stamp<'_>,
    ) -> Result<()> {
        let (_turn, mut tx) = self.write().await?;
        let now = format_time(stamp.at);
        let done = sqlx::query(
            "UPDATE users SET password_hash = ?3, must_change = ?4, password_set_at = ?5 \
             WHERE school_id = ?1 AND id = ?2 AND password_hash IS ?6",
        )
        .bind(&scope.school_id)
        .bind(user_id)
        .bind(hash)
        .bind(must_change)
        .bind(&now)
        .bind(expected_hash)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::VersionMismatch { expected: 0 });
        }
        sqlx::query("DELETE FROM pending_slips WHERE user_id = ?1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if let Some(slip) = slip {
            write_slip(&mut tx, scope, user_id, slip, &now).await?;
        }
        audit(
            &mut tx,
            &self.outbox,
            scope,
            stamp.actor,
            &Change::password(user_id),
            &now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes a class import in one transaction: the group (when new), every new account with
    /// its credential, and the group's new members (new accounts, and existing ones named in
    /// `existing_members`). Returns the `userName` each new account got, in order.
    pub async fn import(
        &self,
        scope: &Scope,
        group: &ImportGroup,
        accounts: &[(String, NewRecord)],
        existing_members: &[String],
        stamp: Stamp<'_>,
    ) -> Result<Vec<String>> {
        let (_turn, mut tx) = self.write().await?;
        let group_id = match group {
            ImportGroup::New { id, record } => {
                insert(&mut tx, &self.outbox, scope, Kind::Group, id, record, stamp).await?;
                Some(id)
            }
            ImportGroup::Existing(id) => Some(id),
            ImportGroup::None => None,
        };
        let accounts: Vec<(&str, &NewRecord)> = accounts
            .iter()
            .map(|(id, record)| (id.as_str(), record))
            .collect();
        let names = insert_users(&mut tx, &self.outbox, scope, &accounts, stamp).await?;
        let Some(group_id) = group_id else {
            tx.commit().await?;
            return Ok(names);
        };
        let joining: Vec<&str> = accounts
            .iter()
            .map(|(id, _)| *id)
            .chain(existing_members.iter().map(String::as_str))
            .collect();
        if !joining.is_empty() {
            let before = super::current(&mut tx, scope, Kind::Group, group_id, None).await?;
            let before = super::audited(&mut tx, Kind::Group, group_id, &before).await?;
            // One statement for every member (a JSON array of ids), not one per student.
            sqlx::query(
                "INSERT INTO group_members (group_id, member_id, member_type) \
                 SELECT ?1, j.value, 'User' FROM json_each(?3) j WHERE EXISTS \
                 (SELECT 1 FROM users u WHERE u.id = j.value AND u.school_id = ?2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(group_id)
            .bind(&scope.school_id)
            .bind(serde_json::Value::from_iter(joining.iter().copied()).to_string())
            .execute(&mut *tx)
            .await?;
            let now = format_time(stamp.at);
            sqlx::query(
                "UPDATE groups SET modified_at = ?3, version = version + 1 \
                 WHERE school_id = ?1 AND id = ?2",
            )
            .bind(&scope.school_id)
            .bind(group_id)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            let data: String = sqlx::query_scalar("SELECT data FROM groups WHERE id = ?1")
                .bind(group_id)
                .fetch_one(&mut *tx)
                .await?;
            let after = super::audited(&mut tx, Kind::Group, group_id, &data).await?;
            audit(
                &mut tx,
                &self.outbox,
                scope,
                stamp.actor,
                &Change::replace(Kind::Group, group_id, &before, &after, false),
                &now,
            )
            .await?;
            super::entitlements::settle(&mut tx, &self.outbox, scope, stamp.at).await?;
        }
        tx.commit().await?;
        Ok(names)
    }

    /// Takes a school's pending slips (of one group's members, when given) out of the store:
    /// they are erased in the same transaction, so each is handed out once. Expired slips are
    /// erased, not returned.
    pub async fn take_slips(
        &self,
        school_id: &str,
        group_id: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Vec<TakenSlip>> {
        let (_turn, mut tx) = self.write().await?;
        let now = format_time(now);
        sqlx::query("DELETE FROM pending_slips WHERE school_id = ?1 AND expires_at <= ?2")
            .bind(school_id)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        let sql = format!(
            "SELECT s.sealed, r.id, r.source, r.data, r.created_at, r.modified_at, r.version, {} \
             FROM pending_slips s JOIN users r ON r.id = s.user_id WHERE {SLIPS_OF} \
             ORDER BY r.user_name_key",
            links_column(Kind::User)
        );
        let rows = sqlx::query(&sql)
            .bind(school_id)
            .bind(group_id)
            .fetch_all(&mut *tx)
            .await?;
        let taken = rows
            .iter()
            .map(|row| {
                Ok(TakenSlip {
                    sealed: row.try_get("sealed")?,
                    user: record_from_row(row)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        sqlx::query(&format!("DELETE FROM pending_slips AS s WHERE {SLIPS_OF}"))
            .bind(school_id)
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(taken)
    }

    /// How many slips a school holds (of one group's members, when given), not yet expired.
    pub async fn count_slips(
        &self,
        school_id: &str,
        group_id: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT count(*) FROM pending_slips s WHERE {SLIPS_OF} AND expires_at > ?3"
        ))
        .bind(school_id)
        .bind(group_id)
        .bind(format_time(now))
        .fetch_one(&self.pool)
        .await?)
    }

    /// Usernames freed by deletions after `after`: not to be given out yet.
    pub async fn retired_names(
        &self,
        school_id: &str,
        after: OffsetDateTime,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT user_name_key FROM retired_user_names WHERE school_id = ?1 AND retired_at > ?2",
        )
        .bind(school_id)
        .bind(format_time(after))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Erases every expired slip; returns how many.
    pub async fn purge_expired_slips(&self, now: OffsetDateTime) -> Result<u64> {
        let (_turn, mut tx) = self.write().await?;
        let done = sqlx::query("DELETE FROM pending_slips WHERE expires_at <= ?1")
            .bind(format_time(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// A group of the school by id or, failing that, by display name (any case).
    pub async fn find_group(&self, scope: &Scope, id_or_name: &str) -> Result<super::Record> {
        let mut conn = self.pool.acquire().await?;
        match fetch(&mut conn, scope, Kind::Group, id_or_name).await {
            Err(Error::NotFound) => {}
            other => return other,
        }
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM groups WHERE school_id = ?1 AND display_name_key = ?2",
        )
        .bind(&scope.school_id)
        .bind(id_or_name.to_lowercase())
        .fetch_optional(&mut *conn)
        .await?;
        match id {
            Some(id) => fetch(&mut conn, scope, Kind::Group, &id).await,
            None => Err(Error::NotFound),
        }
    }
}
