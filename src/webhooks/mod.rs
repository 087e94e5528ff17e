//! Webhooks: telling the platform what changed.
//!
//! The store writes each change's events into the outbox in the change's own transaction
//! ([`event`] derives them; `store::outbox` addresses them to the configured webhooks). Here
//! the daemon delivers them: one task per webhook, holding that webhook's lease (so one process
//! of several sharing a PostgreSQL store delivers it at a time), takes the due events in order,
//! at most one per account at a time and several accounts side by side, and posts each with a
//! [`signature`] over its id, the attempt's timestamp and the body. A 2xx answer delivers it;
//! anything else is retried with exponential backoff and full jitter, and after `max_attempts`
//! the event is left `failed` (the account's later events wait behind it) until
//! `rollcall webhooks --replay`. Delivery is at least once: an attempt whose answer is lost is
//! made again, with the same id and body. A slow or dead receiver delays only its own webhook;
//! it never holds up a write.
//!
//! Invariant: no secret (signing key, URL password) reaches a log line, the store or an error.

pub mod event;
pub mod signature;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::config::Webhook;
use crate::store::{Attempt, OutboxEvent, Store};

/// Deliveries in flight per webhook (each to a different account).
const CONCURRENCY: usize = 8;
/// Due events fetched at once.
const BATCH: i64 = 256;
/// How often an idle deliverer looks for events written by another process.
const POLL: Duration = Duration::from_secs(1);
/// After the bell, a moment for the writing transaction to commit (and for a burst to gather).
const SETTLE: Duration = Duration::from_millis(50);
/// How often a process without the lease tries to take it.
const LEASE_RETRY: Duration = Duration::from_secs(2);
/// How often delivered events older than [`KEEP_DELIVERED`] are erased.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const KEEP_DELIVERED: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a stopping deliverer waits for its tasks to give their leases back.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("webhook `{webhook}`: the signing secret: {message}")]
    Secret { webhook: String, message: String },
    #[error("webhook `{webhook}`: {message}")]
    Client { webhook: String, message: String },
}

/// A webhook ready to deliver: its configuration, signing key and HTTP client.
#[derive(Debug)]
struct Hook {
    config: Webhook,
    key: signature::Key,
    client: reqwest::Client,
}

impl Hook {
    fn new(config: &Webhook) -> Result<Hook, Error> {
        let key = signing_key(config)?;
        let client = crate::outbound::client(config.timeout).map_err(|message| Error::Client {
            webhook: config.id.clone(),
            message,
        })?;
        Ok(Hook {
            config: config.clone(),
            key,
            client,
        })
    }

    /// How long a lease lasts without renewal: longer than any one round of deliveries.
    fn lease(&self) -> Duration {
        self.config.timeout * 2 + Duration::from_secs(30)
    }
}

/// Reads a webhook's secret and makes its signing key.
pub fn signing_key(config: &Webhook) -> Result<signature::Key, Error> {
    let fail = |message| Error::Secret {
        webhook: config.id.clone(),
        message,
    };
    let secret = config.secret.read().map_err(fail)?;
    signature::Key::from_secret(&secret).map_err(fail)
}

/// The running deliverers, one task per webhook.
#[derive(Debug)]
pub struct Deliverers {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Starts delivering every configured webhook's events. Fails, naming the webhook, when a
/// secret cannot be read.
pub fn start(store: &Store, clock: &Clock, webhooks: &[Webhook]) -> Result<Deliverers, Error> {
    let hooks = webhooks
        .iter()
        .map(Hook::new)
        .collect::<Result<Vec<_>, _>>()?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for hook in hooks {
        tasks.spawn(deliver(
            Arc::new(hook),
            store.clone(),
            clock.clone(),
            stopped.clone(),
        ));
    }
    Ok(Deliverers { stop, tasks })
}

impl Deliverers {
    /// Stops delivering and gives the leases back, so that another process takes over at once.
    /// Attempts in flight are dropped: they are made again later (at least once).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let joined = tokio::time::timeout(STOP_GRACE, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if joined.is_err() {
            tracing::warn!("webhook deliverers did not stop in time");
            self.tasks.abort_all();
        }
    }
}

/// One webhook's deliverer: take the lease when free, deliver while holding it, give it back
/// when stopping.
async fn deliver(hook: Arc<Hook>, store: Store, clock: Clock, mut stop: watch::Receiver<bool>) {
    let id = hook.config.id.clone();
    let mut lease = Lease {
        holder: format!("{}:{}", std::process::id(), uuid::Uuid::now_v7()),
        length: hook.lease(),
        renewed: Instant::now(),
    };
    let mut written = store.outbox().written();
    loop {
        if *stop.borrow() {
            return;
        }
        let now = clock.now();
        match store
            .take_webhook_lease(&id, &lease.holder, now, now + lease.length)
            .await
        {
            Ok(true) => {
                lease.renewed = Instant::now();
                tracing::info!(webhook = %id, "delivering webhook events");
                let stopped =
                    hold(&hook, &store, &clock, &mut lease, &mut written, &mut stop).await;
                if let Err(error) = store.release_webhook_lease(&id, &lease.holder).await {
                    tracing::warn!(webhook = %id, %error, "giving the webhook lease back failed");
                }
                if stopped {
                    return;
                }
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(webhook = %id, %error, "taking the webhook lease failed"),
        }
        if pause(&mut stop, LEASE_RETRY).await {
            return;
        }
    }
}

/// The lease a deliverer holds.
struct Lease {
    holder: String,
    length: Duration,
    renewed: Instant,
}

impl Lease {
    /// Renews the lease when a third of it has passed; false when it is lost.
    async fn keep(&mut self, store: &Store, clock: &Clock, webhook: &str) -> bool {
        if self.renewed.elapsed() < self.length / 3 {
            return true;
        }
        let now = clock.now();
        match store
            .take_webhook_lease(webhook, &self.holder, now, now + self.length)
            .await
        {
            Ok(true) => {
                self.renewed = Instant::now();
                true
            }
            Ok(false) => {
                tracing::warn!(
                    webhook,
                    "the webhook lease was taken over; delivery stops here"
                );
                false
            }
            Err(error) => {
                tracing::warn!(webhook, %error, "renewing the webhook lease failed");
                self.renewed.elapsed() < self.length * 2 / 3
            }
        }
    }
}

/// Delivers while the lease holds. Returns true when asked to stop, false when the lease is
/// lost.
async fn hold(
    hook: &Arc<Hook>,
    store: &Store,
    clock: &Clock,
    lease: &mut Lease,
    written: &mut watch::Receiver<u64>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let id = hook.config.id.as_str();
    let mut pruned: Option<Instant> = None;
    loop {
        if *stop.borrow() {
            return true;
        }
        if !lease.keep(store, clock, id).await {
            return false;
        }
        if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned = Some(Instant::now());
            let before = clock.now() - KEEP_DELIVERED;
            match store.prune_delivered(before).await {
                Ok(0) => {}
                Ok(erased) => tracing::info!(erased, "delivered webhook events erased"),
                Err(error) => tracing::warn!(%error, "erasing delivered webhook events failed"),
            }
        }
        let due = match store.due_events(id, clock.now(), BATCH).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(webhook = id, %error, "reading the webhook outbox failed");
                if pause(stop, POLL).await {
                    return true;
                }
                continue;
            }
        };
        if due.is_empty() {
            tokio::select! {
                changed = written.changed() => {
                    if changed.is_ok() && pause(stop, SETTLE).await {
                        return true;
                    }
                }
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => return true,
            }
            continue;
        }
        match send_all(hook, store, clock, lease, due, stop).await {
            Round::Done => {}
            Round::Stopped => return true,
            Round::LeaseLost => return false,
        }
    }
}

enum Round {
    Done,
    Stopped,
    LeaseLost,
}

/// Delivers a batch (one event per account), [`CONCURRENCY`] at a time, recording each outcome.
async fn send_all(
    hook: &Arc<Hook>,
    store: &Store,
    clock: &Clock,
    lease: &mut Lease,
    due: Vec<OutboxEvent>,
    stop: &mut watch::Receiver<bool>,
) -> Round {
    let mut queue = due.into_iter();
    // Dropping the set (when stopping or losing the lease) aborts the attempts in flight.
    let mut running = JoinSet::new();
    loop {
        while running.len() < CONCURRENCY {
            let Some(event) = queue.next() else {
                break;
            };
            let (hook, clock) = (hook.clone(), clock.clone());
            running.spawn(async move {
                let result = send(&hook, &event, clock.now().unix_timestamp()).await;
                (event, result)
            });
        }
        let joined = tokio::select! {
            joined = running.join_next() => joined,
            _ = stop.changed() => return Round::Stopped,
        };
        let Some(joined) = joined else {
            return Round::Done;
        };
        match joined {
            Ok((event, result)) => record(hook, store, clock, &event, result).await,
            Err(error) => {
                tracing::warn!(webhook = %hook.config.id, %error, "a webhook delivery task failed")
            }
        }
        if !lease.keep(store, clock, &hook.config.id).await {
            return Round::LeaseLost;
        }
    }
}

/// Records an attempt's outcome: delivered, retried after a backoff, or failed for good.
async fn record(
    hook: &Hook,
    store: &Store,
    clock: &Clock,
    event: &OutboxEvent,
    result: Result<(), String>,
) {
    let now = clock.now();
    let webhook = hook.config.id.as_str();
    let attempts = event.attempts + 1;
    let attempt = match result {
        Ok(()) => Attempt::Delivered,
        Err(error) if attempts >= i64::from(hook.config.max_attempts) => {
            tracing::error!(
                webhook,
                event = %event.event_id,
                r#type = %event.event_type,
                attempts,
                %error,
                "webhook event failed for good; `rollcall webhooks --replay` sends it again"
            );
            Attempt::Failed {
                error,
                retry_at: None,
            }
        }
        Err(error) => {
            let delay = backoff(&hook.config, attempts);
            tracing::warn!(
                webhook,
                event = %event.event_id,
                r#type = %event.event_type,
                attempts,
                retry_in_ms = delay.as_millis() as u64,
                %error,
                "webhook delivery failed; retrying"
            );
            Attempt::Failed {
                error,
                retry_at: Some(now + delay),
            }
        }
    };
    if let Err(error) = store.record_attempt(event.seq, &attempt, now).await {
        // The event stays pending: it is delivered (again) later.
        tracing::warn!(webhook, event = %event.event_id, %error, "recording a webhook attempt failed");
    }
}

/// The delay before attempt `attempts + 1`: `retry_initial` doubled for each failure so far,
/// capped at `retry_max`, then a uniformly random part of it ("full jitter"), so that receivers
/// coming back are not met by every sender at once.
pub fn backoff(config: &Webhook, attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let cap = config
        .retry_initial
        .saturating_mul(1 << doublings)
        .min(config.retry_max);
    let mut bytes = [0u8; 8];
    match crate::clock::random_bytes(&mut bytes) {
        // 53 random bits: a fraction in [0, 1).
        Ok(()) => cap.mul_f64((u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64),
        Err(_) => cap,
    }
}

/// One attempt: the signed POST. Ok on a 2xx answer; otherwise what went wrong, in words fit
/// for the outbox (no URL, no secret).
async fn send(hook: &Hook, event: &OutboxEvent, timestamp: i64) -> Result<(), String> {
    let signature = hook
        .key
        .sign(&event.event_id, timestamp, event.body.as_bytes());
    let response = hook
        .client
        .post(&hook.config.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &event.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(event.body.clone())
        .send()
        .await
        .map_err(|error| describe(&error, hook.config.timeout))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {status}"))
    }
}

/// A request's failure in words, from its causes (never its URL).
fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs());
    }
    let mut text = String::from(if error.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    });
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        let message = error.to_string();
        if !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = error.source();
    }
    text.chars().take(500).collect()
}

/// Waits `length`, or less when asked to stop; true when asked to stop.
async fn pause(stop: &mut watch::Receiver<bool>, length: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(length) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::webhooks::event::EventType;

    fn webhook(initial_ms: u64, max_secs: u64) -> Webhook {
        Webhook {
            id: "lms".into(),
            url: "http://127.0.0.1:9/".into(),
            events: EventType::ALL.to_vec(),
            secret: Secret::Env("ROLLCALL_TEST_NEVER_SET_WEBHOOK_SECRET".into()),
            timeout: Duration::from_secs(10),
            max_attempts: 12,
            retry_initial: Duration::from_millis(initial_ms),
            retry_max: Duration::from_secs(max_secs),
            schools: None,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_full_jitter() {
        let config = webhook(1000, 600);
        for (attempts, cap_ms) in [
            (1, 1000),
            (2, 2000),
            (3, 4000),
            (10, 512_000),
            (11, 600_000),
        ] {
            let delays: Vec<Duration> = (0..50).map(|_| backoff(&config, attempts)).collect();
            assert!(
                delays.iter().all(|d| *d <= Duration::from_millis(cap_ms)),
                "{attempts}: {delays:?}"
            );
            // Jittered: not all equal, and not all at the cap.
            assert!(delays.iter().any(|d| *d != delays[0]), "{delays:?}");
        }
        // Far past the cap, and with absurd counts, it stays capped.
        assert!(backoff(&config, 1_000_000) <= Duration::from_secs(600));
        assert!(backoff(&config, 0) <= Duration::from_secs(1));
    }

    #[test]
    fn a_missing_secret_names_the_webhook_and_not_its_value() {
        let config = webhook(1000, 600);
        let message = signing_key(&config).unwrap_err().to_string();
        assert!(message.contains("webhook `lms`"), "{message}");
        assert!(
            message.contains("ROLLCALL_TEST_NEVER_SET_WEBHOOK_SECRET"),
            "{message}"
        );
    }
}
