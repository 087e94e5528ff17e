//! The admin console's needs: admins' passwords, browser sessions, an account's history.

use sqlx::Row;
use time::OffsetDateTime;

use super::Store;
use crate::store::{
    AdminCredential, Error, HistoryEntry, Result, Session, SessionKind, format_time, parse_time,
};

impl Store {
    /// Sets an admin's console password (an argon2id PHC string). `NotFound` if no such admin.
    pub async fn set_admin_password(
        &self,
        school_id: &str,
        user_name: &str,
        hash: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        let (_turn, mut tx) = self.write().await?;
        let done = sqlx::query(
            "UPDATE admins SET password_hash = ?3, password_set_at = ?4 \
             WHERE school_id = ?1 AND user_name_key = ?2",
        )
        .bind(school_id)
        .bind(user_name.to_lowercase())
        .bind(hash)
        .bind(format_time(at))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        // A new password ends every session signed in with the old one.
        sqlx::query(
            "DELETE FROM sessions WHERE kind = 'admin' AND subject = \
             (SELECT id FROM admins WHERE school_id = ?1 AND user_name_key = ?2)",
        )
        .bind(school_id)
        .bind(user_name.to_lowercase())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A member of staff's id, username and password hash: their account's when they sign in
    /// with one, else their console password's; `None` when there is none, the role is `none`
    /// or their account is disabled.
    pub async fn admin_credential(
        &self,
        school_id: &str,
        user_name: &str,
    ) -> Result<Option<AdminCredential>> {
        let row = sqlx::query(
            "SELECT a.id, a.user_name, CASE WHEN a.role = 'none' THEN NULL \
             WHEN a.user_id IS NULL THEN a.password_hash \
             ELSE (SELECT u.password_hash FROM users u WHERE u.id = a.user_id \
             AND u.school_id = a.school_id AND u.active = 1) END, \
             COALESCE((SELECT u.must_change FROM users u WHERE u.id = a.user_id \
             AND u.school_id = a.school_id), 0) \
             FROM admins a WHERE a.school_id = ?1 AND a.user_name_key = ?2",
        )
        .bind(school_id)
        .bind(user_name.to_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(AdminCredential {
                id: row.try_get(0)?,
                user_name: row.try_get(1)?,
                hash: row.try_get(2)?,
                must_change: row.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Records a session under the SHA-256 of its token.
    pub async fn insert_session(&self, hash: &[u8], session: &Session) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (hash, kind, school_id, subject, name, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(hash)
        .bind(session.kind.as_str())
        .bind(&session.school_id)
        .bind(&session.subject)
        .bind(&session.name)
        .bind(format_time(session.created))
        .bind(format_time(session.expires))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The live session with this token hash, if any.
    pub async fn session(&self, hash: &[u8], now: OffsetDateTime) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT kind, school_id, subject, name, created_at, expires_at FROM sessions \
             WHERE hash = ?1 AND expires_at > ?2",
        )
        .bind(hash)
        .bind(format_time(now))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let kind: String = row.try_get(0)?;
        let (created, expires): (String, String) = (row.try_get(4)?, row.try_get(5)?);
        // A row this code did not write is no session.
        let (Some(kind), Some(created), Some(expires)) = (
            SessionKind::parse(&kind),
            parse_time(&created),
            parse_time(&expires),
        ) else {
            return Ok(None);
        };
        Ok(Some(Session {
            kind,
            school_id: row.try_get(1)?,
            subject: row.try_get(2)?,
            name: row.try_get(3)?,
            created,
            expires,
        }))
    }

    /// Ends a session (and any expired ones on the way).
    pub async fn delete_session(&self, hash: &[u8], now: OffsetDateTime) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE hash = ?1 OR expires_at <= ?2")
            .bind(hash)
            .bind(format_time(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The newest `limit` audit events of one resource, newest first, without documents.
    pub async fn history(
        &self,
        school_id: &str,
        resource_id: &str,
        limit: i64,
    ) -> Result<Vec<HistoryEntry>> {
        let rows = sqlx::query(
            "SELECT at, action, actor, source FROM audit_events \
             WHERE school_id = ?1 AND resource_id = ?2 ORDER BY id DESC LIMIT ?3",
        )
        .bind(school_id)
        .bind(resource_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let at: String = row.try_get(0)?;
            out.push(HistoryEntry {
                at: parse_time(&at).ok_or_else(|| Error::Corrupt {
                    id: resource_id.to_owned(),
                    source: serde::de::Error::custom(format!("audit time `{at}`")),
                })?,
                action: row.try_get(1)?,
                actor: row.try_get(2)?,
                source: row.try_get(3)?,
            });
        }
        Ok(out)
    }

    /// How many failures `key` has had after `since`, and when the oldest of them was.
    pub async fn recent_failures(
        &self,
        key: &[u8],
        since: OffsetDateTime,
    ) -> Result<(i64, Option<OffsetDateTime>)> {
        let row =
            sqlx::query("SELECT count(*), min(at) FROM login_failures WHERE key = ?1 AND at > ?2")
                .bind(key)
                .bind(format_time(since))
                .fetch_one(&self.pool)
                .await?;
        let oldest: Option<String> = row.try_get(1)?;
        Ok((row.try_get(0)?, oldest.as_deref().and_then(parse_time)))
    }

    /// Records a failure against each key, and forgets every failure from before `forget`.
    pub async fn record_failure(
        &self,
        keys: &[&[u8]],
        at: OffsetDateTime,
        forget: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for key in keys {
            sqlx::query("INSERT INTO login_failures (key, at) VALUES (?1, ?2)")
                .bind(*key)
                .bind(format_time(at))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM login_failures WHERE at <= ?1")
            .bind(format_time(forget))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets a key's failures (a successful log-in).
    pub async fn clear_failures(&self, key: &[u8]) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE key = ?1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
