//! The webhook outbox, as both backends write it: in the transaction of each change, one row
//! per event and webhook that wants it, derived by [`crate::webhooks::event::derive`] from the
//! same documents the audit event records. With no webhook configured nothing is derived.

use std::collections::BTreeMap;
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::{Error, Result};
use crate::courses::Catalogue;
use crate::courses::entitlements::Entitlement;
use crate::webhooks::event::{self, Action, Change, EventType, Subscription};

/// The webhooks the store writes events for, and the bell it rings when it has written some.
#[derive(Clone, Debug)]
pub struct Outbox {
    subscriptions: Arc<[Subscription]>,
    /// Each school's course catalogue, for the implied modules `user.entitlements_changed`
    /// shows.
    catalogues: Arc<BTreeMap<String, Catalogue>>,
    /// Counts the writes that added events, so each deliverer wakes for them.
    written: Arc<watch::Sender<u64>>,
}

impl Default for Outbox {
    fn default() -> Outbox {
        Outbox::new(Vec::new())
    }
}

/// One outbox row about to be written.
#[derive(Debug, Clone)]
pub(super) struct NewEvent {
    pub webhook: String,
    pub event_id: String,
    pub subject: String,
    pub event_type: &'static str,
    pub body: String,
}

impl Outbox {
    pub fn new(subscriptions: Vec<Subscription>) -> Outbox {
        Outbox {
            subscriptions: subscriptions.into(),
            catalogues: Arc::default(),
            written: Arc::new(watch::channel(0).0),
        }
    }

    /// The schools' course catalogues (by school id), which entitlements are derived with.
    pub fn with_catalogues(mut self, catalogues: BTreeMap<String, Catalogue>) -> Outbox {
        self.catalogues = Arc::new(catalogues);
        self
    }

    /// A school's course catalogue (empty when it has none).
    pub(super) fn catalogue(&self, school: &str) -> Catalogue {
        self.catalogues.get(school).cloned().unwrap_or_default()
    }

    /// Whether some webhook covering the school wants students' course changes: only then
    /// does a group write read the members' other groups to compare their courses.
    pub(super) fn wants_entitlements(&self, school: &str) -> bool {
        self.subscriptions
            .iter()
            .any(|s| s.wants(school, EventType::UserEntitlementsChanged))
    }

    /// The rows of one student's `user.entitlements_changed` event: `after` is what they have
    /// now, `added` and `removed` the codes that differ from before the write.
    pub(super) fn entitlement_rows(
        &self,
        school: &str,
        user: &str,
        after: &[Entitlement],
        added: Vec<String>,
        removed: Vec<String>,
        at: &str,
    ) -> Vec<NewEvent> {
        let event = event::entitlements_changed(user, after, added, removed);
        let event_id = uuid::Uuid::now_v7().to_string();
        let body = event::body(&event_id, &event, school, at);
        let rows: Vec<NewEvent> = self
            .subscriptions
            .iter()
            .filter(|s| s.wants(school, event.kind))
            .map(|s| NewEvent {
                webhook: s.webhook.clone(),
                event_id: event_id.clone(),
                subject: event.subject.clone(),
                event_type: event.kind.as_str(),
                body: body.clone(),
            })
            .collect();
        if !rows.is_empty() {
            self.ring();
        }
        rows
    }

    /// Changes (just before the writing transaction commits) each time events are written or
    /// queued again.
    pub fn written(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }

    pub(super) fn ring(&self) {
        self.written
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Whether any webhook takes events of this school: if not, there is nothing to derive.
    pub(super) fn covers(&self, school: &str) -> bool {
        self.subscriptions.iter().any(|s| s.covers(school))
    }

    /// Whether a change needs the user's document read for it (a new password's event).
    pub(super) fn wants_password_document(&self, school: &str, change: &Change<'_>) -> bool {
        change.action == Action::Password
            && self.subscriptions.iter().any(|s| {
                s.wants(
                    school,
                    crate::webhooks::event::EventType::UserPasswordChanged,
                )
            })
    }

    /// The rows a change makes: each event once per webhook that wants it, under one event id
    /// and one body. `at` is the change's stored time.
    pub(super) fn rows(
        &self,
        school: &str,
        change: &Change<'_>,
        password_document: Option<&str>,
        at: &str,
    ) -> Result<Vec<NewEvent>> {
        if !self.covers(school) {
            return Ok(Vec::new());
        }
        let events = event::derive(change, password_document).map_err(|source| Error::Corrupt {
            id: change.id.to_owned(),
            source,
        })?;
        let mut rows = Vec::new();
        for event in events {
            let mut body = None;
            for subscription in self.subscriptions.iter() {
                if !subscription.wants(school, event.kind) {
                    continue;
                }
                let (event_id, body) = body.get_or_insert_with(|| {
                    let id = uuid::Uuid::now_v7().to_string();
                    let body = event::body(&id, &event, school, at);
                    (id, body)
                });
                rows.push(NewEvent {
                    webhook: subscription.webhook.clone(),
                    event_id: event_id.clone(),
                    subject: event.subject.clone(),
                    event_type: event.kind.as_str(),
                    body: body.clone(),
                });
            }
        }
        if !rows.is_empty() {
            self.ring();
        }
        Ok(rows)
    }
}

/// An event in the outbox, as the deliverer and `rollcall webhooks` see it.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub seq: i64,
    pub webhook: String,
    pub event_id: String,
    pub school_id: String,
    /// The account its order is kept by.
    pub subject: String,
    pub event_type: String,
    /// The exact bytes every attempt sends.
    pub body: String,
    pub created: OffsetDateTime,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub last_attempt: Option<OffsetDateTime>,
}

/// One webhook's outbox at a glance (`rollcall webhooks --status`).
#[derive(Debug, Clone, Default)]
pub struct OutboxStatus {
    pub webhook: String,
    pub pending: i64,
    pub failed: i64,
    /// Delivered since the time asked about.
    pub delivered: i64,
    pub oldest_pending: Option<OffsetDateTime>,
    /// The most recent failed attempt's error, and when.
    pub last_error: Option<(String, OffsetDateTime)>,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone)]
pub enum Attempt {
    Delivered,
    /// Failed; try again at `retry_at`, or (`None`) give up: the event is left `failed`.
    Failed {
        error: String,
        retry_at: Option<OffsetDateTime>,
    },
}
