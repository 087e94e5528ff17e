//! The SQLite backend: one file (WAL mode) or an in-memory database for tests.
//!
//! Writes run in `BEGIN IMMEDIATE` transactions, so a read-check-write sequence holds SQLite's
//! single write lock from its first statement and never fails half-way with `SQLITE_BUSY`.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool, Transaction};
use time::OffsetDateTime;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::filter_sql::{self, Bind, Dialect};
use super::outbox::{NewEvent, Outbox};
use super::{
    Actor, Error, Link, MAX_CHAR, NewRecord, PendingSlip, Query, Record, Result, Scope, Stamp,
    Token, UserName, format_time, parse_time,
};
use crate::credentials::username;
use crate::scim::schema::{Kind, Registry};
use crate::webhooks::event::Change;

mod accounts;
mod console;
mod entitlements;
mod resets;
mod staff;
mod sync;
mod webhooks;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations/sqlite");

#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// Writers queue here rather than in SQLite's busy handler, which polls with sleeps of up
    /// to 100 ms: the lock is handed over the moment the previous writer commits.
    writer: Arc<Mutex<()>>,
    /// The webhooks whose events each write adds to the outbox.
    outbox: Outbox,
}

fn table(kind: Kind) -> &'static str {
    match kind {
        Kind::User => "users",
        Kind::Group => "groups",
    }
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Store> {
        let open_error = |source| Error::Open {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            let path = options.get_filename();
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| open_error(sqlx::Error::Io(e)))?;
            }
        }
        // An in-memory database lives and dies with its one connection.
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 8 })
            // A local file needs no liveness check before each use; it cost a round trip to
            // the connection's worker thread on every query.
            .test_before_acquire(false)
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(if in_memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if in_memory {
                None
            } else {
                Some(Duration::from_secs(3600))
            })
            .connect_with(options)
            .await
            .map_err(open_error)?;
        MIGRATIONS.run(&pool).await?;
        Ok(Store {
            pool,
            writer: Arc::new(Mutex::new(())),
            outbox: Outbox::default(),
        })
    }

    /// The webhooks whose events every later write adds to the outbox.
    pub fn set_outbox(&mut self, outbox: Outbox) {
        self.outbox = outbox;
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The pool, for copying between stores.
    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction, holding the write lock from its first statement. Keep the guard
    /// alive until the transaction has committed.
    async fn write(&self) -> Result<(OwnedMutexGuard<()>, Transaction<'static, Sqlite>)> {
        let turn = self.writer.clone().lock_owned().await;
        Ok((turn, self.pool.begin_with("BEGIN IMMEDIATE").await?))
    }

    /// Makes the stored schools match the configuration's names.
    pub async fn upsert_schools(&self, schools: &[crate::config::School]) -> Result<()> {
        let (_turn, mut tx) = self.write().await?;
        for school in schools {
            sqlx::query(
                "INSERT INTO schools (id, name) VALUES (?1, ?2) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name",
            )
            .bind(&school.id)
            .bind(&school.name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // --- tokens ---

    pub async fn insert_token(&self, token: &Token, hash: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO tokens (id, school_id, source, hash, created_at, admin_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, \
             (SELECT id FROM admins WHERE school_id = ?2 AND user_name_key = lower(?6)))",
        )
        .bind(&token.id)
        .bind(&token.school_id)
        .bind(&token.source)
        .bind(hash)
        .bind(format_time(token.created))
        .bind(&token.admin)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The live (not revoked) token with this hash.
    pub async fn token_by_hash(&self, hash: &[u8]) -> Result<Option<Token>> {
        let row = sqlx::query(
            "SELECT t.id, t.school_id, t.source, t.created_at, t.revoked_at, a.user_name AS admin \
             FROM tokens t LEFT JOIN admins a ON a.id = t.admin_id \
             WHERE t.hash = ?1 AND t.revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| token_from_row(&row)).transpose()
    }

    pub async fn list_tokens(&self, school_id: Option<&str>) -> Result<Vec<Token>> {
        let rows = sqlx::query(
            "SELECT t.id, t.school_id, t.source, t.created_at, t.revoked_at, a.user_name AS admin \
             FROM tokens t LEFT JOIN admins a ON a.id = t.admin_id \
             WHERE ?1 IS NULL OR t.school_id = ?1 ORDER BY t.school_id, t.created_at, t.id",
        )
        .bind(school_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes a token; revoking twice is harmless. Unknown ids are `NotFound`.
    pub async fn revoke_token(&self, id: &str, at: OffsetDateTime) -> Result<()> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1")
                .bind(id)
                .bind(format_time(at))
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    // --- resources ---

    pub async fn get(&self, scope: &Scope, kind: Kind, id: &str) -> Result<Record> {
        let mut conn = self.pool.acquire().await?;
        fetch(&mut conn, scope, kind, id).await
    }

    /// One page of a filtered, sorted list, and the total number of matches.
    pub async fn list(
        &self,
        scope: &Scope,
        kind: Kind,
        registry: &Registry,
        query: &Query,
        with_links: bool,
    ) -> Result<(i64, Vec<Record>)> {
        let mut binds = vec![Bind::Text(scope.school_id.clone())];
        let mut where_clause = "r.school_id = ?1".to_owned();
        if let Some(filter) = &query.filter {
            let condition = filter_sql::lower(registry, kind, filter, Dialect::Sqlite)
                .map_err(Error::InvalidFilter)?;
            // The filter numbers its markers from ?1; shift them past the school's.
            where_clause.push_str(&format!(
                " AND ({})",
                filter_sql::renumber(&condition.text, 1, Dialect::Sqlite)
            ));
            binds.extend(condition.binds);
        }
        let filter_binds = binds.len();
        let count = |binds: &[Bind]| {
            let sql = format!(
                "SELECT count(*) FROM {} r WHERE {where_clause}",
                table(kind)
            );
            let binds = binds.to_vec();
            async move {
                bind_scalar(sqlx::query_scalar(&sql), &binds)
                    .fetch_one(&self.pool)
                    .await
            }
        };
        if query.limit <= 0 {
            return Ok((count(&binds).await?, Vec::new()));
        }
        let mut order = String::new();
        if let Some(sort_by) = &query.sort_by {
            let key = filter_sql::sort_key(registry, kind, sort_by, Dialect::Sqlite)
                .map_err(Error::InvalidFilter)?;
            order = format!(
                "{} {}, ",
                filter_sql::renumber(&key.text, binds.len(), Dialect::Sqlite),
                if query.descending { "DESC" } else { "ASC" }
            );
            binds.extend(key.binds);
        }
        let sql = format!(
            "SELECT r.id, r.source, r.data, r.created_at, r.modified_at, r.version, {} FROM {} r \
             WHERE {where_clause} ORDER BY {order}r.id LIMIT {} OFFSET {}",
            if with_links {
                links_column(kind)
            } else {
                "NULL AS links"
            },
            table(kind),
            query.limit,
            query.offset
        );
        let rows = bind_rows(sqlx::query(&sql), &binds)
            .fetch_all(&self.pool)
            .await?;
        // A first page that is not full holds every match: no need to count them. This saves a
        // query on the lookups identity systems make before every change.
        let total = if query.offset == 0 && (rows.len() as i64) < query.limit {
            rows.len() as i64
        } else {
            count(&binds[..filter_binds]).await?
        };
        let records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok((total, records))
    }

    pub async fn insert(
        &self,
        scope: &Scope,
        kind: Kind,
        id: &str,
        new: &NewRecord,
        stamp: Stamp<'_>,
    ) -> Result<Record> {
        let (_turn, mut tx) = self.write().await?;
        insert(&mut tx, &self.outbox, scope, kind, id, new, stamp).await?;
        entitlements::settle(&mut tx, &self.outbox, scope, stamp.at).await?;
        // Read back under the write lock, so the reply shows exactly the version written.
        let record = fetch(&mut tx, scope, kind, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Replaces a resource's document. `expected_version`, when given, guards against lost
    /// updates: the write happens only if the stored version still equals it.
    pub async fn replace(
        &self,
        scope: &Scope,
        kind: Kind,
        id: &str,
        expected_version: Option<i64>,
        new: &NewRecord,
        stamp: Stamp<'_>,
    ) -> Result<Record> {
        let (_turn, mut tx) = self.write().await?;
        replace(
            &mut tx,
            &self.outbox,
            scope,
            kind,
            id,
            expected_version,
            new,
            stamp,
        )
        .await?;
        entitlements::settle(&mut tx, &self.outbox, scope, stamp.at).await?;
        // Read back under the write lock, so the reply shows exactly the version written.
        let record = fetch(&mut tx, scope, kind, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Replaces several resources of one kind in one transaction, each only if its stored
    /// version still equals the one given: all of them, or none.
    pub async fn replace_all(
        &self,
        scope: &Scope,
        kind: Kind,
        changes: &[(String, i64, NewRecord)],
        stamp: Stamp<'_>,
    ) -> Result<()> {
        let (_turn, mut tx) = self.write().await?;
        for (id, version, new) in changes {
            replace(
                &mut tx,
                &self.outbox,
                scope,
                kind,
                id,
                Some(*version),
                new,
                stamp,
            )
            .await?;
        }
        entitlements::settle(&mut tx, &self.outbox, scope, stamp.at).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete(
        &self,
        scope: &Scope,
        kind: Kind,
        id: &str,
        expected_version: Option<i64>,
        stamp: Stamp<'_>,
    ) -> Result<()> {
        let (_turn, mut tx) = self.write().await?;
        delete(
            &mut tx,
            &self.outbox,
            scope,
            kind,
            id,
            expected_version,
            stamp,
        )
        .await?;
        entitlements::settle(&mut tx, &self.outbox, scope, stamp.at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Audit events for one resource, oldest first: `(action, actor, source, before, after)`.
    pub async fn audit_trail(
        &self,
        school_id: &str,
        resource_id: &str,
    ) -> Result<Vec<(String, String, String, Option<String>, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT action, actor, source, before, after FROM audit_events \
             WHERE school_id = ?1 AND resource_id = ?2 ORDER BY id",
        )
        .bind(school_id)
        .bind(resource_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                ))
            })
            .collect()
    }
}

/// Replaces a resource's document. `expected_version`, when given, guards against lost
/// updates: the write happens only if the stored version still equals it.
#[allow(clippy::too_many_arguments)]
async fn replace(
    tx: &mut Transaction<'static, Sqlite>,
    outbox: &Outbox,
    scope: &Scope,
    kind: Kind,
    id: &str,
    expected_version: Option<i64>,
    new: &NewRecord,
    stamp: Stamp<'_>,
) -> Result<()> {
    let before = current(tx, scope, kind, id, expected_version).await?;
    let before = audited(tx, kind, id, &before).await?;
    let data = Value::Object(new.data.clone()).to_string();
    let now = format_time(stamp.at);
    let updated = match kind {
        Kind::User => {
            sqlx::query(
                "UPDATE users SET user_name = ?3, user_name_key = ?4, external_id = ?5, \
                 active = ?6, data = ?7, password_hash = coalesce(?8, password_hash), \
                 must_change = CASE WHEN ?8 IS NULL THEN must_change ELSE ?10 END, \
                 password_set_at = CASE WHEN ?8 IS NULL THEN password_set_at ELSE ?9 END, \
                 modified_at = ?9, version = version + 1 WHERE school_id = ?1 AND id = ?2",
            )
            .bind(&scope.school_id)
            .bind(id)
            .bind(&new.index.name)
            .bind(new.index.name.to_lowercase())
            .bind(&new.index.external_id)
            .bind(new.index.active)
            .bind(&data)
            .bind(&new.password_hash)
            .bind(&now)
            .bind(new.must_change)
            .execute(&mut **tx)
            .await
        }
        Kind::Group => {
            sqlx::query(
                "UPDATE groups SET display_name = ?3, display_name_key = ?4, external_id = ?5, \
                 data = ?6, modified_at = ?7, version = version + 1 \
                 WHERE school_id = ?1 AND id = ?2",
            )
            .bind(&scope.school_id)
            .bind(id)
            .bind(&new.index.name)
            .bind(new.index.name.to_lowercase())
            .bind(&new.index.external_id)
            .bind(&data)
            .bind(&now)
            .execute(&mut **tx)
            .await
        }
    };
    updated.map_err(|e| conflict(e, kind, &new.index.name))?;
    write_dependents(tx, scope, kind, id, new, false).await?;
    if new.password_hash.is_some() {
        // The slip's password no longer works.
        sqlx::query("DELETE FROM pending_slips WHERE user_id = ?1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    let after = audited(tx, kind, id, &data).await?;
    let change = Change::replace(kind, id, &before, &after, new.password_hash.is_some());
    audit(tx, outbox, scope, stamp.actor, &change, &now).await
}

async fn delete(
    tx: &mut Transaction<'static, Sqlite>,
    outbox: &Outbox,
    scope: &Scope,
    kind: Kind,
    id: &str,
    expected_version: Option<i64>,
    stamp: Stamp<'_>,
) -> Result<()> {
    let before = current(tx, scope, kind, id, expected_version).await?;
    let before = audited(tx, kind, id, &before).await?;
    sqlx::query("DELETE FROM group_members WHERE member_id = ?1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    if kind == Kind::User {
        sqlx::query(
            "INSERT INTO retired_user_names (school_id, user_name_key, retired_at) \
             SELECT school_id, user_name_key, ?3 FROM users WHERE school_id = ?1 AND id = ?2 \
             ON CONFLICT (school_id, user_name_key) DO UPDATE SET retired_at = excluded.retired_at",
        )
        .bind(&scope.school_id)
        .bind(id)
        .bind(format_time(stamp.at))
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(&format!(
        "DELETE FROM {} WHERE school_id = ?1 AND id = ?2",
        table(kind)
    ))
    .bind(&scope.school_id)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    let change = Change::delete(kind, id, &before);
    audit(
        tx,
        outbox,
        scope,
        stamp.actor,
        &change,
        &format_time(stamp.at),
    )
    .await
}

fn bind_scalar<'q, O>(
    mut query: sqlx::query::QueryScalar<'q, Sqlite, O, SqliteArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::QueryScalar<'q, Sqlite, O, SqliteArguments<'q>>
where
    O: Send + Unpin,
    (O,): for<'r> sqlx::FromRow<'r, SqliteRow>,
{
    for bind in binds {
        query = match bind {
            Bind::Text(text) => query.bind(text.as_str()),
            Bind::Int(i) => query.bind(*i),
            Bind::Float(f) => query.bind(*f),
        };
    }
    query
}

fn bind_rows<'q>(
    mut query: sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
    for bind in binds {
        query = match bind {
            Bind::Text(text) => query.bind(text.as_str()),
            Bind::Int(i) => query.bind(*i),
            Bind::Float(f) => query.bind(*f),
        };
    }
    query
}

/// A column holding a resource's links as a JSON array of `[id, type, display, courses]`: a
/// group's members, or the groups a user belongs to with each group's courses (from which the
/// user's entitlements are derived). One correlated subquery, so a page of resources and their
/// memberships come back in one round trip.
fn links_column(kind: Kind) -> &'static str {
    match kind {
        Kind::Group => {
            "(SELECT json_group_array(json_array(x.member_id, x.member_type, NULL, NULL)) FROM \
             (SELECT member_id, member_type FROM group_members WHERE group_id = r.id \
              ORDER BY member_id) x) AS links"
        }
        Kind::User => {
            "(SELECT json_group_array(json_array(x.id, 'Group', x.display_name, json(x.courses))) \
             FROM (SELECT g.id, g.display_name, \
              json_extract(g.data, '$.\"urn:rollcall:params:scim:schemas:extension:school:2.0:Group\".courses') \
              AS courses FROM group_members m JOIN groups g ON g.id = m.group_id \
              WHERE m.member_id = r.id ORDER BY g.display_name_key) x) AS links"
        }
    }
}

/// Inserts a resource with its dependents, its credential and its audit event.
async fn insert(
    tx: &mut Transaction<'static, Sqlite>,
    outbox: &Outbox,
    scope: &Scope,
    kind: Kind,
    id: &str,
    new: &NewRecord,
    stamp: Stamp<'_>,
) -> Result<String> {
    if kind == Kind::User {
        let mut names = insert_users(tx, outbox, scope, &[(id, new)], stamp).await?;
        return names.pop().ok_or(Error::NotFound);
    }
    let now = format_time(stamp.at);
    let name = &new.index.name;
    let data = Value::Object(new.data.clone()).to_string();
    sqlx::query(
        "INSERT INTO groups (id, school_id, source, display_name, display_name_key, \
         external_id, data, created_at, modified_at, version) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, 1)",
    )
    .bind(id)
    .bind(&scope.school_id)
    .bind(&scope.source)
    .bind(name)
    .bind(name.to_lowercase())
    .bind(&new.index.external_id)
    .bind(&data)
    .bind(&now)
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict(e, kind, name))?;
    write_dependents(tx, scope, kind, id, new, true).await?;
    let after = audited(tx, kind, id, &data).await?;
    audit(
        tx,
        outbox,
        scope,
        stamp.actor,
        &Change::create(kind, id, &after),
        &now,
    )
    .await?;
    Ok(name.clone())
}

/// Rows per multi-row INSERT: well inside SQLite's 32,766 bound parameters.
const CHUNK: usize = 500;

/// Inserts new users with their e-mail keys, credentials, slips and audit events; returns the
/// `userName` each got. Names are settled one by one (explicit ones first, then in order), then
/// the rows are written with multi-row INSERTs: a class import of thousands of students costs a
/// few dozen statements, not several per student.
async fn insert_users(
    tx: &mut Transaction<'static, Sqlite>,
    outbox: &Outbox,
    scope: &Scope,
    accounts: &[(&str, &NewRecord)],
    stamp: Stamp<'_>,
) -> Result<Vec<String>> {
    let now = format_time(stamp.at);
    // Reading every name of the school pays off from the second account on.
    let mut names = match accounts.len() {
        0 | 1 => None,
        _ => Some(Names::load(tx, &scope.school_id, "").await?),
    };
    // Explicit names first, so a generated one never takes a name another row asks for.
    let mut settled: Vec<Option<String>> = vec![None; accounts.len()];
    for generated in [false, true] {
        for (slot, &(_, new)) in settled.iter_mut().zip(accounts) {
            if matches!(new.user_name, UserName::Generate { .. }) == generated {
                *slot = Some(settle_user_name(tx, scope, new, names.as_mut()).await?);
            }
        }
    }
    let mut rows = Vec::with_capacity(accounts.len());
    for (&(id, new), name) in accounts.iter().zip(settled.into_iter().flatten()) {
        let mut data = new.data.clone();
        data.insert("userName".into(), Value::String(name.clone()));
        rows.push((id, new, name, Value::Object(data).to_string()));
    }
    for chunk in rows.chunks(CHUNK) {
        let mut users = QueryBuilder::<Sqlite>::new(
            "INSERT INTO users (id, school_id, source, user_name, user_name_key, external_id, \
             active, data, password_hash, must_change, password_set_at, created_at, \
             modified_at, version) ",
        );
        users.push_values(chunk, |mut row, (id, new, name, data)| {
            row.push_bind(*id)
                .push_bind(&scope.school_id)
                .push_bind(&scope.source)
                .push_bind(name)
                .push_bind(name.to_lowercase())
                .push_bind(&new.index.external_id)
                .push_bind(new.index.active)
                .push_bind(data)
                .push_bind(&new.password_hash)
                .push_bind(new.password_hash.is_some() && new.must_change)
                .push_bind(new.password_hash.as_ref().map(|_| &now))
                .push_bind(&now)
                .push_bind(&now)
                .push_bind(1_i64);
        });
        users.build().execute(&mut **tx).await.map_err(|e| {
            let name = chunk.first().map(|row| row.2.as_str()).unwrap_or_default();
            conflict(e, Kind::User, if chunk.len() == 1 { name } else { "" })
        })?;
        let emails: Vec<(&str, &Option<String>, &String)> = chunk
            .iter()
            .flat_map(|(id, new, ..)| {
                new.index
                    .emails
                    .iter()
                    .map(move |(kind, value)| (*id, kind, value))
            })
            .collect();
        for emails in emails.chunks(CHUNK) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO user_emails (user_id, school_id, type_key, value_key) ",
            );
            insert.push_values(emails, |mut row, (id, kind, value)| {
                row.push_bind(*id)
                    .push_bind(&scope.school_id)
                    .push_bind(kind.as_ref().map(|k| k.to_lowercase()))
                    .push_bind(value.to_lowercase());
            });
            insert.build().execute(&mut **tx).await?;
        }
        let mut events = QueryBuilder::<Sqlite>::new(
            "INSERT INTO audit_events (school_id, at, actor, source, request_id, action, \
             resource_type, resource_id, before, after) ",
        );
        events.push_values(chunk, |mut row, (id, _, _, data)| {
            row.push_bind(&scope.school_id)
                .push_bind(&now)
                .push_bind(&stamp.actor.name)
                .push_bind(&scope.source)
                .push_bind(&stamp.actor.request_id)
                .push_bind("create")
                .push_bind(Kind::User.name())
                .push_bind(*id)
                .push_bind(None::<&str>)
                .push_bind(data);
        });
        events.build().execute(&mut **tx).await?;
        if outbox.covers(&scope.school_id) {
            let mut created = Vec::new();
            for (id, _, _, data) in chunk {
                let change = Change::create(Kind::User, id, data);
                created.extend(outbox.rows(&scope.school_id, &change, None, &now)?);
            }
            write_outbox(tx, &scope.school_id, &created, &now).await?;
        }
        for (id, new, ..) in chunk {
            if let Some(slip) = &new.slip {
                write_slip(tx, scope, id, slip, &now).await?;
            }
        }
    }
    Ok(rows.into_iter().map(|(_, _, name, _)| name).collect())
}

/// The usernames of a school, in use and retired, that a transaction settles names against:
/// those sharing one name's prefix, or every one for a transaction that creates many accounts
/// (a class import), kept up to date as it inserts instead of one query per account. Valid
/// because the transaction holds the write lock.
struct Names {
    in_use: HashSet<String>,
    /// Retired name → when.
    retired: std::collections::HashMap<String, String>,
}

impl Names {
    /// The school's names starting with `prefix` (all of them for ""): one indexed range
    /// query on each table.
    async fn load(
        tx: &mut Transaction<'static, Sqlite>,
        school_id: &str,
        prefix: &str,
    ) -> Result<Names> {
        let end = format!("{prefix}{MAX_CHAR}");
        let in_use: Vec<String> = sqlx::query_scalar(
            "SELECT user_name_key FROM users \
             WHERE school_id = ?1 AND user_name_key >= ?2 AND user_name_key < ?3",
        )
        .bind(school_id)
        .bind(prefix)
        .bind(&end)
        .fetch_all(&mut **tx)
        .await?;
        let retired: Vec<(String, String)> = sqlx::query_as(
            "SELECT user_name_key, retired_at FROM retired_user_names \
             WHERE school_id = ?1 AND user_name_key >= ?2 AND user_name_key < ?3",
        )
        .bind(school_id)
        .bind(prefix)
        .bind(&end)
        .fetch_all(&mut **tx)
        .await?;
        Ok(Names {
            in_use: in_use.into_iter().collect(),
            retired: retired.into_iter().collect(),
        })
    }

    fn taken(&self, key: &str, retired_after: &str) -> bool {
        self.in_use.contains(key)
            || self
                .retired
                .get(key)
                .is_some_and(|at| at.as_str() > retired_after)
    }
}

/// The `userName` a new user gets, decided under the write lock.
async fn settle_user_name(
    tx: &mut Transaction<'static, Sqlite>,
    scope: &Scope,
    new: &NewRecord,
    names: Option<&mut Names>,
) -> Result<String> {
    let name = settle(tx, scope, new, names.as_deref()).await?;
    if let Some(names) = names {
        names.in_use.insert(name.to_lowercase());
    }
    Ok(name)
}

async fn settle(
    tx: &mut Transaction<'static, Sqlite>,
    scope: &Scope,
    new: &NewRecord,
    names: Option<&Names>,
) -> Result<String> {
    match &new.user_name {
        UserName::AsGiven | UserName::Checked { .. }
            if names.is_some_and(|names| names.in_use.contains(&new.index.name.to_lowercase())) =>
        {
            Err(Error::Conflict {
                field: "userName",
                value: new.index.name.clone(),
            })
        }
        UserName::AsGiven => Ok(new.index.name.clone()),
        UserName::Checked { retired_after } => {
            let key = new.index.name.to_lowercase();
            let retired: Option<String> = sqlx::query_scalar(
                "SELECT retired_at FROM retired_user_names \
                 WHERE school_id = ?1 AND user_name_key = ?2 AND retired_at > ?3",
            )
            .bind(&scope.school_id)
            .bind(&key)
            .bind(format_time(*retired_after))
            .fetch_optional(&mut **tx)
            .await?;
            match retired {
                Some(retired) => Err(Error::Retired {
                    value: new.index.name.clone(),
                    retired: retired.get(..10).unwrap_or(&retired).to_owned(),
                }),
                None => Ok(new.index.name.clone()),
            }
        }
        UserName::Generate {
            base,
            max_len,
            reserved,
            retired_after,
        } => {
            // Without the transaction's names, only those that could clash with `base`.
            let like;
            let names = match names {
                Some(names) => names,
                None => {
                    let prefix = username::candidate_prefix(base, *max_len);
                    like = Names::load(tx, &scope.school_id, prefix).await?;
                    &like
                }
            };
            let after = format_time(*retired_after);
            let free = username::first_free(base, *max_len, |candidate| {
                names.taken(candidate, &after) || username::is_reserved(candidate, reserved)
            });
            free.ok_or_else(|| Error::NamesExhausted(base.clone()))
        }
    }
}

async fn write_slip(
    tx: &mut Transaction<'static, Sqlite>,
    scope: &Scope,
    user_id: &str,
    slip: &PendingSlip,
    now: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO pending_slips (user_id, school_id, sealed, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (user_id) DO UPDATE SET \
         sealed = excluded.sealed, created_at = excluded.created_at, \
         expires_at = excluded.expires_at",
    )
    .bind(user_id)
    .bind(&scope.school_id)
    .bind(&slip.sealed)
    .bind(now)
    .bind(format_time(slip.expires))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn fetch(conn: &mut SqliteConnection, scope: &Scope, kind: Kind, id: &str) -> Result<Record> {
    let sql = format!(
        "SELECT r.id, r.source, r.data, r.created_at, r.modified_at, r.version, {} FROM {} r \
         WHERE r.school_id = ?1 AND r.id = ?2",
        links_column(kind),
        table(kind)
    );
    let row = sqlx::query(&sql)
        .bind(&scope.school_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound)?;
    record_from_row(&row)
}

/// Reads the stored document under the write lock and checks the expected version.
async fn current(
    tx: &mut Transaction<'static, Sqlite>,
    scope: &Scope,
    kind: Kind,
    id: &str,
    expected_version: Option<i64>,
) -> Result<String> {
    let row = sqlx::query(&format!(
        "SELECT data, version, source FROM {} WHERE school_id = ?1 AND id = ?2",
        table(kind)
    ))
    .bind(&scope.school_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(Error::NotFound)?;
    let version: i64 = row.try_get(1)?;
    if let Some(expected) = expected_version.filter(|&expected| expected != version) {
        return Err(Error::VersionMismatch { expected });
    }
    let source: String = row.try_get(2)?;
    if source != scope.source {
        return Err(Error::OwnedBy(source));
    }
    Ok(row.try_get(0)?)
}

/// E-mail keys and memberships, rewritten from the new document (`fresh`: a new resource,
/// which has none yet).
async fn write_dependents(
    tx: &mut Transaction<'static, Sqlite>,
    scope: &Scope,
    kind: Kind,
    id: &str,
    new: &NewRecord,
    fresh: bool,
) -> Result<()> {
    match kind {
        Kind::User => {
            if !fresh {
                sqlx::query("DELETE FROM user_emails WHERE user_id = ?1")
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
            }
            for (kind, value) in &new.index.emails {
                sqlx::query(
                    "INSERT INTO user_emails (user_id, school_id, type_key, value_key) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .bind(id)
                .bind(&scope.school_id)
                .bind(kind.as_ref().map(|k| k.to_lowercase()))
                .bind(value.to_lowercase())
                .execute(&mut **tx)
                .await?;
            }
        }
        Kind::Group => {
            let Some(members) = &new.members else {
                return Ok(());
            };
            // Write only the difference: identity systems add members one PATCH at a time, and
            // rewriting a 2,000-member group for each would be quadratic.
            let existing: HashSet<String> =
                sqlx::query_scalar("SELECT member_id FROM group_members WHERE group_id = ?1")
                    .bind(id)
                    .fetch_all(&mut **tx)
                    .await?
                    .into_iter()
                    .collect();
            let wanted: HashSet<&str> = members.iter().map(String::as_str).collect();
            for gone in existing.iter().filter(|m| !wanted.contains(m.as_str())) {
                sqlx::query("DELETE FROM group_members WHERE group_id = ?1 AND member_id = ?2")
                    .bind(id)
                    .bind(gone)
                    .execute(&mut **tx)
                    .await?;
            }
            for member in members.iter().filter(|m| !existing.contains(*m)) {
                if member == id {
                    return Err(Error::UnknownMember(format!(
                        "{member} (a group cannot contain itself)"
                    )));
                }
                let member_type: Option<String> = sqlx::query_scalar(
                    "SELECT 'User' FROM users WHERE school_id = ?1 AND id = ?2 \
                     UNION ALL SELECT 'Group' FROM groups WHERE school_id = ?1 AND id = ?2",
                )
                .bind(&scope.school_id)
                .bind(member)
                .fetch_optional(&mut **tx)
                .await?;
                let member_type =
                    member_type.ok_or_else(|| Error::UnknownMember(member.clone()))?;
                sqlx::query(
                    "INSERT INTO group_members (group_id, member_id, member_type) VALUES (?1, ?2, ?3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(member)
                .bind(member_type)
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    Ok(())
}

/// The document an audit event records. A group's members live in `group_members`, not in its
/// `data`, so they are added here: otherwise adding or removing a member would be recorded
/// with identical before and after documents.
async fn audited(
    tx: &mut Transaction<'static, Sqlite>,
    kind: Kind,
    id: &str,
    data: &str,
) -> Result<String> {
    if kind != Kind::Group {
        return Ok(data.to_owned());
    }
    let members: Vec<String> = sqlx::query_scalar(
        "SELECT member_id FROM group_members WHERE group_id = ?1 ORDER BY member_id",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    if members.is_empty() {
        return Ok(data.to_owned());
    }
    let mut document: Map<String, Value> =
        serde_json::from_str(data).map_err(|source| Error::Corrupt {
            id: id.to_owned(),
            source,
        })?;
    let members = members
        .into_iter()
        .map(|member| Value::Object(Map::from_iter([("value".to_owned(), member.into())])))
        .collect();
    document.insert("members".to_owned(), Value::Array(members));
    Ok(Value::Object(document).to_string())
}

/// Records a change in the audit log and, in the same transaction, its webhook events.
async fn audit(
    tx: &mut Transaction<'static, Sqlite>,
    outbox: &Outbox,
    scope: &Scope,
    actor: &Actor,
    change: &Change<'_>,
    at: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_events (school_id, at, actor, source, request_id, action, \
         resource_type, resource_id, before, after) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .bind(&scope.school_id)
    .bind(at)
    .bind(&actor.name)
    .bind(&scope.source)
    .bind(&actor.request_id)
    .bind(change.action.as_str())
    .bind(change.kind.name())
    .bind(change.id)
    .bind(change.before)
    .bind(change.after)
    .execute(&mut **tx)
    .await?;
    // A new password's event shows the account, which the change does not carry.
    let document: Option<String> = if outbox.wants_password_document(&scope.school_id, change) {
        sqlx::query_scalar("SELECT data FROM users WHERE school_id = ?1 AND id = ?2")
            .bind(&scope.school_id)
            .bind(change.id)
            .fetch_optional(&mut **tx)
            .await?
    } else {
        None
    };
    let rows = outbox.rows(&scope.school_id, change, document.as_deref(), at)?;
    write_outbox(tx, &scope.school_id, &rows, at).await?;
    // Students whose courses this change may alter; their events are written when the
    // transaction settles, just before it commits.
    entitlements::watch(tx, outbox, scope, change).await
}

/// Adds events to the outbox, due at once.
async fn write_outbox(
    tx: &mut Transaction<'static, Sqlite>,
    school_id: &str,
    rows: &[NewEvent],
    at: &str,
) -> Result<()> {
    for chunk in rows.chunks(CHUNK) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO webhook_outbox (webhook, event_id, school_id, subject, type, body, \
             created_at, state, attempts, next_attempt_at) ",
        );
        insert.push_values(chunk, |mut row, event| {
            row.push_bind(&event.webhook)
                .push_bind(&event.event_id)
                .push_bind(school_id)
                .push_bind(&event.subject)
                .push_bind(event.event_type)
                .push_bind(&event.body)
                .push_bind(at)
                .push_bind("pending")
                .push_bind(0_i64)
                .push_bind(at);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

fn conflict(error: sqlx::Error, kind: Kind, name: &str) -> Error {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict {
            field: match kind {
                Kind::User => "userName",
                Kind::Group => "displayName",
            },
            value: name.to_owned(),
        },
        _ => Error::Db(error),
    }
}

fn time_column(row: &SqliteRow, column: &str) -> Result<OffsetDateTime> {
    let text: String = row.try_get(column)?;
    parse_time(&text).ok_or_else(|| {
        Error::Db(sqlx::Error::Decode(
            format!("{column} holds `{text}`, not an RFC 3339 time").into(),
        ))
    })
}

fn record_from_row(row: &SqliteRow) -> Result<Record> {
    let id: String = row.try_get("id")?;
    let data: String = row.try_get("data")?;
    let data: Map<String, Value> =
        serde_json::from_str(&data).map_err(|source| Error::Corrupt {
            id: id.clone(),
            source,
        })?;
    let links = links_from_row(row, &id)?;
    Ok(Record {
        source: row.try_get("source")?,
        data,
        links,
        created: time_column(row, "created_at")?,
        last_modified: time_column(row, "modified_at")?,
        version: row.try_get("version")?,
        id,
    })
}

/// Decodes the `links` column (NULL when not asked for).
fn links_from_row(row: &SqliteRow, id: &str) -> Result<Vec<Link>> {
    let Some(text) = row.try_get::<Option<String>, _>("links")? else {
        return Ok(Vec::new());
    };
    let corrupt = |source| Error::Corrupt {
        id: id.to_owned(),
        source,
    };
    let links: Vec<(String, String, Option<String>, Option<Value>)> =
        serde_json::from_str(&text).map_err(corrupt)?;
    Ok(links
        .into_iter()
        .map(|(id, kind, display, courses)| Link {
            id,
            kind: if kind == "Group" {
                Kind::Group
            } else {
                Kind::User
            },
            display,
            courses: crate::courses::entitlements::stored(courses.as_ref()),
        })
        .collect())
}

fn token_from_row(row: &SqliteRow) -> Result<Token> {
    let revoked: Option<String> = row.try_get("revoked_at")?;
    Ok(Token {
        id: row.try_get("id")?,
        school_id: row.try_get("school_id")?,
        source: row.try_get("source")?,
        admin: row.try_get("admin")?,
        created: time_column(row, "created_at")?,
        revoked: revoked.as_deref().and_then(parse_time),
    })
}
