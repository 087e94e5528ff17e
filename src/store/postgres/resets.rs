//! PostgreSQL: forgotten-password links (see the SQLite backend's `resets` for what each method
//! means).

use sqlx::{Postgres, Row, Transaction};
use time::OffsetDateTime;

use super::{Store, audit};
use crate::store::{
    Actor, Error, ResetAccount, ResetLink, Result, Scope, Stamp, format_time, parse_time,
};
use crate::webhooks::event::Change;

/// At most this many accounts answer one name or address (several may share an address).
const ACCOUNTS_LIMIT: i64 = 10;

impl Store {
    /// The school's active accounts with a password whose username, or one of whose email
    /// addresses, is `name_or_email` (any case).
    pub async fn reset_accounts(
        &self,
        school_id: &str,
        name_or_email: &str,
    ) -> Result<Vec<ResetAccount>> {
        let key = name_or_email.to_lowercase();
        let rows = sqlx::query(
            "SELECT id, user_name, data FROM users \
             WHERE school_id = $1 AND active AND password_hash IS NOT NULL \
             AND (user_name_key = $2 OR id IN \
                  (SELECT user_id FROM user_emails WHERE school_id = $1 AND value_key = $2)) \
             ORDER BY user_name_key LIMIT $3",
        )
        .bind(school_id)
        .bind(&key)
        .bind(ACCOUNTS_LIMIT)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get(0)?;
                let data: String = row.try_get(2)?;
                Ok(ResetAccount {
                    data: serde_json::from_str(&data).map_err(|source| Error::Corrupt {
                        id: id.clone(),
                        source,
                    })?,
                    user_id: id,
                    user_name: row.try_get(1)?,
                })
            })
            .collect()
    }

    /// Records a new link for an account (replacing its unused ones, which stop working) with
    /// its `password_reset.requested` event, in one transaction.
    pub async fn insert_reset(
        &self,
        school_id: &str,
        user_id: &str,
        hash: &[u8],
        expires: OffsetDateTime,
        stamp: Stamp<'_>,
    ) -> Result<()> {
        let mut tx = self.write(school_id).await?;
        let now = format_time(stamp.at);
        sqlx::query(
            "UPDATE password_resets SET used_at = $3 \
             WHERE school_id = $1 AND user_id = $2 AND used_at IS NULL",
        )
        .bind(school_id)
        .bind(user_id)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO password_resets (hash, school_id, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash)
        .bind(school_id)
        .bind(user_id)
        .bind(&now)
        .bind(format_time(expires))
        .execute(&mut *tx)
        .await?;
        event(
            &mut tx,
            school_id,
            stamp.actor,
            "password_reset.requested",
            user_id,
            &now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The link of this school with this token hash, used or not, expired or not.
    pub async fn reset_link(&self, school_id: &str, hash: &[u8]) -> Result<Option<ResetLink>> {
        let row = sqlx::query(
            "SELECT r.user_id, u.user_name, r.expires_at, r.used_at IS NOT NULL, \
             u.active AND u.password_hash IS NOT NULL \
             FROM password_resets r JOIN users u ON u.id = r.user_id AND u.school_id = r.school_id \
             WHERE r.hash = $1 AND r.school_id = $2",
        )
        .bind(hash)
        .bind(school_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let user_id: String = row.try_get(0)?;
        let expires: String = row.try_get(2)?;
        Ok(Some(ResetLink {
            expires: parse_time(&expires).ok_or_else(|| Error::Corrupt {
                id: user_id.clone(),
                source: serde::de::Error::custom(format!("reset expiry `{expires}`")),
            })?,
            user_id,
            user_name: row.try_get(1)?,
            used: row.try_get(3)?,
            usable_account: row.try_get(4)?,
        }))
    }

    /// Uses a link: if it is this school's, unused and unexpired at `stamp.at`, and its account
    /// active with a password, in one transaction marks it (and the account's other links)
    /// used, sets the new password with `must_change` off, erases any pending slip, ends every
    /// session signed in with the old password (on the log-in page, and in the console for a
    /// member of staff who signs in with this account) and writes the audit events. Returns the
    /// account's id, or `None` (and changes nothing) when the link could not be used.
    pub async fn complete_reset(
        &self,
        school_id: &str,
        hash: &[u8],
        password_hash: &str,
        stamp: Stamp<'_>,
    ) -> Result<Option<String>> {
        let mut tx = self.write(school_id).await?;
        let now = format_time(stamp.at);
        let user_id: Option<String> = sqlx::query_scalar(
            "UPDATE password_resets SET used_at = $3 \
             WHERE hash = $1 AND school_id = $2 AND used_at IS NULL AND expires_at > $3 \
             RETURNING user_id",
        )
        .bind(hash)
        .bind(school_id)
        .bind(&now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user_id) = user_id else {
            return Ok(None);
        };
        let done = sqlx::query(
            "UPDATE users SET password_hash = $3, must_change = FALSE, password_set_at = $4 \
             WHERE school_id = $1 AND id = $2 AND active AND password_hash IS NOT NULL",
        )
        .bind(school_id)
        .bind(&user_id)
        .bind(password_hash)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            // Disabled since the link was sent: the transaction is dropped, nothing changes.
            return Ok(None);
        }
        sqlx::query(
            "UPDATE password_resets SET used_at = $3 \
             WHERE school_id = $1 AND user_id = $2 AND used_at IS NULL",
        )
        .bind(school_id)
        .bind(&user_id)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM pending_slips WHERE user_id = $1")
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM sessions WHERE school_id = $1 AND \
             ((kind = 'person' AND subject = $2) OR (kind = 'admin' AND subject IN \
              (SELECT id FROM admins WHERE school_id = $1 AND user_id = $2)))",
        )
        .bind(school_id)
        .bind(&user_id)
        .execute(&mut *tx)
        .await?;
        let scope = Scope {
            school_id: school_id.to_owned(),
            source: crate::roster::ADMIN_SOURCE.to_owned(),
        };
        audit(
            &mut tx,
            &self.outbox,
            &scope,
            stamp.actor,
            &Change::password(&user_id),
            &now,
        )
        .await?;
        event(
            &mut tx,
            school_id,
            stamp.actor,
            "password_reset.completed",
            &user_id,
            &now,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(user_id))
    }

    /// Erases every expired link (used or not); returns how many.
    pub async fn purge_expired_resets(&self, now: OffsetDateTime) -> Result<u64> {
        let done = sqlx::query("DELETE FROM password_resets WHERE expires_at <= $1")
            .bind(format_time(now))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// An audit event of a reset step on a user, in the transaction that makes it.
async fn event(
    tx: &mut Transaction<'static, Postgres>,
    school_id: &str,
    actor: &Actor,
    action: &str,
    user_id: &str,
    at: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_events (school_id, at, actor, source, request_id, action, \
         resource_type, resource_id) VALUES ($1, $2, $3, '', $4, $5, 'User', $6)",
    )
    .bind(school_id)
    .bind(at)
    .bind(&actor.name)
    .bind(&actor.request_id)
    .bind(action)
    .bind(user_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
