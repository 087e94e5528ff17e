//! PostgreSQL: core (see the SQLite backend's `core` for what each method means).

use sqlx::Row;
use time::OffsetDateTime;

use super::{
    Store, bind_rows, bind_scalar, delete, fetch, insert, links_column, record_from_row, replace,
    table, token_from_row,
};
use crate::scim::schema::{Kind, Registry};
use crate::store::filter_sql::{self, Bind, Dialect};
use crate::store::{Error, NewRecord, Query, Record, Result, Scope, Stamp, Token, format_time};

impl Store {
    /// Makes the stored schools match the configuration's names. Not a school's write: instances
    /// starting together take turns under one advisory lock of their own.
    pub async fn upsert_schools(&self, schools: &[crate::config::School]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('rollcall schools', 0))")
            .execute(&mut *tx)
            .await?;
        for school in schools {
            sqlx::query(
                "INSERT INTO schools (id, name) VALUES ($1, $2) \
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
        // The admin's name is folded in Rust, as `user_name_key` was (SQLite's `lower()` folds
        // ASCII only, PostgreSQL's by the database's locale: neither is `to_lowercase`).
        sqlx::query(
            "INSERT INTO tokens (id, school_id, source, hash, created_at, admin_id) \
             VALUES ($1, $2, $3, $4, $5, \
             (SELECT id FROM admins WHERE school_id = $2 AND user_name_key = $6))",
        )
        .bind(&token.id)
        .bind(&token.school_id)
        .bind(&token.source)
        .bind(hash)
        .bind(format_time(token.created))
        .bind(token.admin.as_ref().map(|admin| admin.to_lowercase()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The live (not revoked) token with this hash.
    pub async fn token_by_hash(&self, hash: &[u8]) -> Result<Option<Token>> {
        let row = sqlx::query(
            "SELECT t.id, t.school_id, t.source, t.created_at, t.revoked_at, a.user_name AS admin \
             FROM tokens t LEFT JOIN admins a ON a.id = t.admin_id \
             WHERE t.hash = $1 AND t.revoked_at IS NULL",
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
             WHERE $1::text IS NULL OR t.school_id = $1 \
             ORDER BY t.school_id COLLATE \"C\", t.created_at COLLATE \"C\", t.id COLLATE \"C\"",
        )
        .bind(school_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes a token; revoking twice is harmless. Unknown ids are `NotFound`.
    pub async fn revoke_token(&self, id: &str, at: OffsetDateTime) -> Result<()> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1")
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
        let mut where_clause = "r.school_id = $1".to_owned();
        if let Some(filter) = &query.filter {
            let condition = filter_sql::lower(registry, kind, filter, Dialect::Postgres)
                .map_err(Error::InvalidFilter)?;
            // The filter numbers its markers from $1; shift them past the school's.
            where_clause.push_str(&format!(
                " AND ({})",
                filter_sql::renumber(&condition.text, 1, Dialect::Postgres)
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
            let key = filter_sql::sort_key(registry, kind, sort_by, Dialect::Postgres)
                .map_err(Error::InvalidFilter)?;
            // With SQLite's place for NULLs: first ascending, last descending.
            let text = filter_sql::renumber(&key.text, binds.len(), Dialect::Postgres);
            order = format!(
                "{}, ",
                filter_sql::order_term(&text, query.descending, Dialect::Postgres)
            );
            binds.extend(key.binds);
        }
        let sql = format!(
            "SELECT r.id, r.source, r.data, r.created_at, r.modified_at, r.version, {} FROM {} r \
             WHERE {where_clause} ORDER BY {order}r.id COLLATE \"C\" LIMIT {} OFFSET {}",
            if with_links {
                links_column(kind)
            } else {
                "NULL::text AS links"
            },
            table(kind),
            query.limit,
            query.offset
        );
        let rows = bind_rows(sqlx::query(&sql), &binds)
            .fetch_all(&self.pool)
            .await?;
        // A first page that is not full holds every match: no need to count them.
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
        let mut tx = self.write(&scope.school_id).await?;
        insert(&mut tx, &self.outbox, scope, kind, id, new, stamp).await?;
        super::entitlements::settle(&mut tx, &self.outbox, scope, stamp.at).await?;
        // Read back in the transaction, so the reply shows exactly the version written.
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
        let mut tx = self.write(&scope.school_id).await?;
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
        super::entitlements::settle(&mut tx, &self.outbox, scope, stamp.at).await?;
        // Read back in the transaction, so the reply shows exactly the version written.
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
        let mut tx = self.write(&scope.school_id).await?;
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
        super::entitlements::settle(&mut tx, &self.outbox, scope, stamp.at).await?;
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
        let mut tx = self.write(&scope.school_id).await?;
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
        super::entitlements::settle(&mut tx, &self.outbox, scope, stamp.at).await?;
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
             WHERE school_id = $1 AND resource_id = $2 ORDER BY id",
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
