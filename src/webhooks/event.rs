//! What a webhook tells: the event types, which of them a webhook wants, and the events a
//! stored change makes. **Pure**: audited documents in, events out; the store calls
//! [`derive`] in the transaction that writes the change, for both backends.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::courses::entitlements::Entitlement;
use crate::scim::schema::{Kind, SCHOOL_USER};

/// The kinds of event a webhook can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    UserCreated,
    UserUpdated,
    UserDisabled,
    UserEnabled,
    UserDeleted,
    UserPasswordChanged,
    GroupMembershipChanged,
    /// A student's courses changed because a teaching group, or their place in one, did.
    UserEntitlementsChanged,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::UserCreated,
        EventType::UserUpdated,
        EventType::UserDisabled,
        EventType::UserEnabled,
        EventType::UserDeleted,
        EventType::UserPasswordChanged,
        EventType::GroupMembershipChanged,
        EventType::UserEntitlementsChanged,
    ];

    /// The name in the configuration, the outbox and the body's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserCreated => "user.created",
            EventType::UserUpdated => "user.updated",
            EventType::UserDisabled => "user.disabled",
            EventType::UserEnabled => "user.enabled",
            EventType::UserDeleted => "user.deleted",
            EventType::UserPasswordChanged => "user.password_changed",
            EventType::GroupMembershipChanged => "group.membership_changed",
            EventType::UserEntitlementsChanged => "user.entitlements_changed",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configured webhook as the store sees it: which events of which schools go into its
/// outbox. The URL and the secret stay with the deliverer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub webhook: String,
    pub events: Vec<EventType>,
    /// `None`: every school.
    pub schools: Option<Vec<String>>,
}

impl Subscription {
    pub fn covers(&self, school: &str) -> bool {
        self.schools
            .as_ref()
            .is_none_or(|schools| schools.iter().any(|s| s == school))
    }

    pub fn wants(&self, school: &str, event: EventType) -> bool {
        self.events.contains(&event) && self.covers(school)
    }
}

/// What a write did to one resource, as its audit event records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Replace,
    Delete,
    /// A new password, and nothing else.
    Password,
}

impl Action {
    /// The audit log's `action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Password => "password",
        }
    }
}

/// One audited change: the documents before and after as the audit log records them (a
/// group's with its `members`), and whether the write also set a password.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub action: Action,
    pub kind: Kind,
    pub id: &'a str,
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
    /// A replace that carried a new password (a SCIM PUT or PATCH of `password`).
    pub password: bool,
}

impl<'a> Change<'a> {
    pub fn create(kind: Kind, id: &'a str, after: &'a str) -> Change<'a> {
        Change {
            action: Action::Create,
            kind,
            id,
            before: None,
            after: Some(after),
            password: false,
        }
    }

    pub fn replace(
        kind: Kind,
        id: &'a str,
        before: &'a str,
        after: &'a str,
        password: bool,
    ) -> Change<'a> {
        Change {
            action: Action::Replace,
            kind,
            id,
            before: Some(before),
            after: Some(after),
            password,
        }
    }

    pub fn delete(kind: Kind, id: &'a str, before: &'a str) -> Change<'a> {
        Change {
            action: Action::Delete,
            kind,
            id,
            before: Some(before),
            after: None,
            password: false,
        }
    }

    /// A new password for a user; the audit log records no document.
    pub fn password(id: &'a str) -> Change<'a> {
        Change {
            action: Action::Password,
            kind: Kind::User,
            id,
            before: None,
            after: None,
            password: true,
        }
    }
}

/// One event, before it is addressed to webhooks.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventType,
    /// The account whose events are delivered in order: the user, or a group's member.
    pub subject: String,
    pub data: Value,
}

/// The members of a user's document that an event carries. Never a password: the store's
/// documents hold none, and only these are copied.
const USER_MEMBERS: [&str; 7] = [
    "externalId",
    "userName",
    "name",
    "displayName",
    "emails",
    "active",
    SCHOOL_USER,
];

/// The events a change makes, in the order they happened. `password_document` is the user's
/// document for a [`Action::Password`] change (whose audit event has none).
pub fn derive(
    change: &Change<'_>,
    password_document: Option<&str>,
) -> Result<Vec<Event>, serde_json::Error> {
    let before = change.before.map(parse).transpose()?;
    let after = change.after.map(parse).transpose()?;
    let id = change.id;
    let mut events = Vec::new();
    match change.kind {
        Kind::User => {
            let event = |kind, document: &Map<String, Value>| Event {
                kind,
                subject: id.to_owned(),
                data: account(id, document),
            };
            match (change.action, &before, &after) {
                (Action::Create, _, Some(after)) => {
                    events.push(event(EventType::UserCreated, after));
                }
                (Action::Replace, Some(before), Some(after)) => {
                    match (active(before), active(after)) {
                        (true, false) => events.push(event(EventType::UserDisabled, after)),
                        (false, true) => events.push(event(EventType::UserEnabled, after)),
                        // Only what an event carries counts: a change to nothing it shows
                        // (a phone number) tells the platform nothing.
                        _ if account(id, before) != account(id, after) => {
                            events.push(event(EventType::UserUpdated, after));
                        }
                        _ => {}
                    }
                    if change.password {
                        events.push(event(EventType::UserPasswordChanged, after));
                    }
                }
                (Action::Delete, Some(before), _) => {
                    events.push(event(EventType::UserDeleted, before));
                }
                (Action::Password, ..) => {
                    if let Some(document) = password_document.map(parse).transpose()? {
                        events.push(event(EventType::UserPasswordChanged, &document));
                    }
                }
                _ => {}
            }
        }
        Kind::Group => {
            let old = before.as_ref().map(members).unwrap_or_default();
            let new = after.as_ref().map(members).unwrap_or_default();
            let Some(document) = after.as_ref().or(before.as_ref()) else {
                return Ok(events);
            };
            let group = serde_json::json!({
                "id": id,
                "displayName": document.get("displayName").cloned().unwrap_or(Value::Null),
            });
            let membership = |member: &str, change: &str| Event {
                kind: EventType::GroupMembershipChanged,
                subject: member.to_owned(),
                data: serde_json::json!({ "group": group, "user": member, "change": change }),
            };
            let (was, is): (HashSet<&str>, HashSet<&str>) = (
                old.iter().map(String::as_str).collect(),
                new.iter().map(String::as_str).collect(),
            );
            for gone in old.iter().filter(|member| !is.contains(member.as_str())) {
                events.push(membership(gone, "removed"));
            }
            for joined in new.iter().filter(|member| !was.contains(member.as_str())) {
                events.push(membership(joined, "added"));
            }
        }
    }
    Ok(events)
}

/// The event of a student whose courses changed: subject the user, so it is delivered in order
/// with their other events; data the courses they have now and the codes added and removed.
pub fn entitlements_changed(
    user: &str,
    after: &[Entitlement],
    added: Vec<String>,
    removed: Vec<String>,
) -> Event {
    Event {
        kind: EventType::UserEntitlementsChanged,
        subject: user.to_owned(),
        data: serde_json::json!({
            "user": user,
            "entitlements": after,
            "added": added,
            "removed": removed,
        }),
    }
}

/// The body a receiver gets: the event's id, type, the time of the change (RFC 3339), the
/// school and the data. The outbox keeps these exact bytes, so a redelivery is identical.
pub fn body(event_id: &str, event: &Event, school: &str, at: &str) -> String {
    serde_json::json!({
        "id": event_id,
        "type": event.kind.as_str(),
        "timestamp": at,
        "school": school,
        "data": event.data,
    })
    .to_string()
}

fn parse(text: &str) -> Result<Map<String, Value>, serde_json::Error> {
    serde_json::from_str(text)
}

/// `active` as the store indexes it: true unless the document says false.
fn active(document: &Map<String, Value>) -> bool {
    document
        .get("active")
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

/// The account as an event carries it: its id and the members in [`USER_MEMBERS`].
fn account(id: &str, document: &Map<String, Value>) -> Value {
    let mut data = Map::new();
    data.insert("id".into(), id.into());
    for name in USER_MEMBERS {
        if let Some(value) = document.get(name) {
            data.insert(name.to_owned(), value.clone());
        }
    }
    data.insert("active".into(), active(document).into());
    Value::Object(data)
}

/// A group document's member ids, in the order the audit log keeps them.
pub(crate) fn members(document: &Map<String, Value>) -> Vec<String> {
    document
        .get("members")
        .and_then(Value::as_array)
        .map(|members| {
            members
                .iter()
                .filter_map(|member| member.get("value").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
