//! The webhook outbox's side for its deliverer and `rollcall webhooks`: due events in order,
//! what became of each attempt, the per-webhook lease, status, failed events and replay.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use super::{Result, Store, time_column};
use crate::store::outbox::{Attempt, OutboxEvent, OutboxStatus};
use crate::store::{format_time, parse_time};

const EVENT_COLUMNS: &str = "seq, webhook, event_id, school_id, subject, type, body, created_at, \
     attempts, last_error, last_attempt_at";

impl Store {
    /// Up to `limit` pending events of a webhook that are due at `now`, oldest first, each the
    /// earliest undelivered event of its subject: at most one per subject, so delivering them
    /// side by side keeps every subject's order.
    pub async fn due_events(
        &self,
        webhook: &str,
        now: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM webhook_outbox o \
             WHERE o.webhook = ?1 AND o.state = 'pending' AND o.next_attempt_at <= ?2 \
             AND NOT EXISTS (SELECT 1 FROM webhook_outbox e WHERE e.webhook = ?1 \
             AND e.subject = o.subject AND e.state <> 'delivered' AND e.seq < o.seq) \
             ORDER BY o.seq LIMIT ?3"
        ))
        .bind(webhook)
        .bind(format_time(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Records an attempt to deliver event `seq`: delivered, to be retried, or failed for good.
    pub async fn record_attempt(
        &self,
        seq: i64,
        attempt: &Attempt,
        now: OffsetDateTime,
    ) -> Result<()> {
        let now = format_time(now);
        let (_turn, mut tx) = self.write().await?;
        match attempt {
            Attempt::Delivered => {
                sqlx::query(
                    "UPDATE webhook_outbox SET state = 'delivered', attempts = attempts + 1, \
                     last_attempt_at = ?2, delivered_at = ?2 WHERE seq = ?1 AND state = 'pending'",
                )
                .bind(seq)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
            }
            Attempt::Failed { error, retry_at } => {
                sqlx::query(
                    "UPDATE webhook_outbox SET attempts = attempts + 1, last_attempt_at = ?2, \
                     last_error = ?3, state = ?4, next_attempt_at = coalesce(?5, next_attempt_at) \
                     WHERE seq = ?1 AND state = 'pending'",
                )
                .bind(seq)
                .bind(&now)
                .bind(error)
                .bind(if retry_at.is_some() {
                    "pending"
                } else {
                    "failed"
                })
                .bind(retry_at.map(format_time))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Takes a webhook's delivery lease for `holder` until `until`, if nobody holds an
    /// unexpired one (renews it when `holder` has it).
    pub async fn take_webhook_lease(
        &self,
        webhook: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool> {
        let (_turn, mut tx) = self.write().await?;
        let taken = sqlx::query(
            "INSERT INTO webhook_leases (webhook, holder, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (webhook) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE webhook_leases.expires_at <= ?4 OR webhook_leases.holder = excluded.holder",
        )
        .bind(webhook)
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

    /// Gives a webhook's lease back (only if `holder` still has it).
    pub async fn release_webhook_lease(&self, webhook: &str, holder: &str) -> Result<()> {
        let (_turn, mut tx) = self.write().await?;
        sqlx::query("DELETE FROM webhook_leases WHERE webhook = ?1 AND holder = ?2")
            .bind(webhook)
            .bind(holder)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Erases events delivered before `before`; returns how many.
    pub async fn prune_delivered(&self, before: OffsetDateTime) -> Result<u64> {
        let (_turn, mut tx) = self.write().await?;
        let done = sqlx::query(
            "DELETE FROM webhook_outbox WHERE state = 'delivered' AND delivered_at < ?1",
        )
        .bind(format_time(before))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Each webhook with events in the outbox: pending, failed, delivered since `since`, the
    /// oldest pending event's time and the last error.
    pub async fn outbox_status(&self, since: OffsetDateTime) -> Result<Vec<OutboxStatus>> {
        let rows = sqlx::query(
            "SELECT webhook, count(*) FILTER (WHERE state = 'pending') AS pending, \
             count(*) FILTER (WHERE state = 'failed') AS failed, \
             count(*) FILTER (WHERE state = 'delivered' AND delivered_at >= ?1) AS delivered, \
             min(created_at) FILTER (WHERE state = 'pending') AS oldest_pending \
             FROM webhook_outbox GROUP BY webhook ORDER BY webhook",
        )
        .bind(format_time(since))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let webhook: String = row.try_get("webhook")?;
            let last: Option<(String, String)> = sqlx::query_as(
                "SELECT last_error, last_attempt_at FROM webhook_outbox \
                 WHERE webhook = ?1 AND last_error IS NOT NULL \
                 ORDER BY last_attempt_at DESC LIMIT 1",
            )
            .bind(&webhook)
            .fetch_optional(&self.pool)
            .await?;
            let oldest: Option<String> = row.try_get("oldest_pending")?;
            out.push(OutboxStatus {
                pending: row.try_get("pending")?,
                failed: row.try_get("failed")?,
                delivered: row.try_get("delivered")?,
                oldest_pending: oldest.as_deref().and_then(parse_time),
                last_error: last.and_then(|(error, at)| Some((error, parse_time(&at)?))),
                webhook,
            });
        }
        Ok(out)
    }

    /// The events left `failed` (of one webhook, when given), oldest first.
    pub async fn failed_events(&self, webhook: Option<&str>) -> Result<Vec<OutboxEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM webhook_outbox \
             WHERE state = 'failed' AND (?1 IS NULL OR webhook = ?1) ORDER BY seq"
        ))
        .bind(webhook)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Queues failed events again (of one webhook, and one event id, when given): pending, no
    /// attempts, due at `now`. Returns how many.
    pub async fn replay_events(
        &self,
        webhook: Option<&str>,
        event_id: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<u64> {
        let (_turn, mut tx) = self.write().await?;
        let done = sqlx::query(
            "UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_attempt_at = ?3 \
             WHERE state = 'failed' AND (?1 IS NULL OR webhook = ?1) \
             AND (?2 IS NULL OR event_id = ?2)",
        )
        .bind(webhook)
        .bind(event_id)
        .bind(format_time(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.outbox.ring();
        Ok(done.rows_affected())
    }
}

fn event_from_row(row: &SqliteRow) -> Result<OutboxEvent> {
    let last_attempt: Option<String> = row.try_get("last_attempt_at")?;
    Ok(OutboxEvent {
        seq: row.try_get("seq")?,
        webhook: row.try_get("webhook")?,
        event_id: row.try_get("event_id")?,
        school_id: row.try_get("school_id")?,
        subject: row.try_get("subject")?,
        event_type: row.try_get("type")?,
        body: row.try_get("body")?,
        created: time_column(row, "created_at")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        last_attempt: last_attempt.as_deref().and_then(parse_time),
    })
}
