//! Reconcile: what a source wants (from the directory) against what it owns (in the store) →
//! a plan people can read, and the changes that carry it out.
//!
//! A source only ever touches what it owns. Leavers are disabled, not deleted; they are
//! deleted once the retention period has passed, and re-enabled (same username) if they come
//! back. Usernames never change: a rename changes names, not the account's username.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::map::{Desired, Skipped};
use crate::config::{School, Source};
use crate::provider::Provider;
use crate::roster::{self, Error};
use crate::store::{NewRecord, OwnedUser, Record, SyncChanges};

/// What the store holds for a source.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// Every account the source owns, without documents.
    pub users: Vec<OwnedUser>,
    /// The documents of the accounts this run may change (see [`Stored::to_load`]), by id.
    pub records: HashMap<String, Record>,
    pub groups: Vec<Record>,
    /// Account id → when it left the directory.
    pub leavers: HashMap<String, OffsetDateTime>,
    /// Lower-cased names of the school's groups other sources own.
    pub others_group_names: HashSet<String>,
}

impl Stored {
    /// Active accounts the source owns.
    pub fn active_users(&self) -> usize {
        self.users.iter().filter(|u| u.active).count()
    }

    /// The accounts whose documents a plan needs: those whose entries changed, and those no
    /// longer in the directory (`partial`: only the former). Unchanged ones need none.
    pub fn to_load<'a>(&'a self, desired: &Desired, partial: bool) -> Vec<&'a str> {
        self.users
            .iter()
            .filter(|user| {
                let Some(anchor) = user.anchor.as_deref() else {
                    return false;
                };
                desired.people.contains_key(anchor)
                    || (!partial
                        && user.active
                        && !desired.unchanged.contains(anchor)
                        && !desired.unmapped.contains(anchor))
            })
            .map(|user| user.id.as_str())
            .collect()
    }
}

/// A plan, as `rollcall sync --dry-run` prints it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub create: Vec<NewAccount>,
    pub update: Vec<Change>,
    pub enable: Vec<Change>,
    pub disable: Vec<Change>,
    /// Leavers past the retention period.
    pub delete: Vec<Change>,
    pub create_groups: Vec<Change>,
    pub update_groups: Vec<Change>,
    pub delete_groups: Vec<Change>,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewAccount {
    pub dn: String,
    pub name: String,
    pub role: roster::Role,
    /// The username it would get, before clashes are settled (`smithj` may become `smithj2`).
    pub user_name_base: String,
}

/// A change to an account or group: its id (`None` for a group yet to be created), its name,
/// and what changes.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub id: Option<String>,
    pub name: String,
    pub details: Vec<String>,
}

/// How many of each change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counts {
    pub create: usize,
    pub update: usize,
    pub enable: usize,
    pub disable: usize,
    pub delete: usize,
    pub create_groups: usize,
    pub update_groups: usize,
    pub delete_groups: usize,
    pub skipped: usize,
}

impl Plan {
    pub fn counts(&self) -> Counts {
        Counts {
            create: self.create.len(),
            update: self.update.len(),
            enable: self.enable.len(),
            disable: self.disable.len(),
            delete: self.delete.len(),
            create_groups: self.create_groups.len(),
            update_groups: self.update_groups.len(),
            delete_groups: self.delete_groups.len(),
            skipped: self.skipped.len(),
        }
    }

    /// True when applying it would change nothing.
    pub fn is_empty(&self) -> bool {
        let counts = Counts {
            skipped: 0,
            ..self.counts()
        };
        counts == Counts::default()
    }

    /// The ids of the accounts it disables.
    pub fn disabled_ids(&self) -> Vec<String> {
        self.disable.iter().filter_map(|c| c.id.clone()).collect()
    }
}

/// A plan and the store changes that carry it out. New accounts have no credential yet.
#[derive(Debug, Clone, Default)]
pub struct Reconciled {
    pub plan: Plan,
    pub changes: SyncChanges,
}

/// Compares what a source wants with what it owns. `partial`: `desired` holds only what
/// changed (an incremental run), so what it lacks has not left.
pub fn reconcile(
    provider: &Provider,
    school: &School,
    source: &Source,
    desired: &Desired,
    stored: &Stored,
    partial: bool,
    now: OffsetDateTime,
) -> Result<Reconciled, Error> {
    let mut out = Reconciled::default();
    out.plan.skipped = desired.skipped.clone();
    let retention_cutoff = now - time::Duration::days(source.retention_days.into());

    // Accounts: anchor → id, for the groups below.
    let mut ids: HashMap<&str, String> = HashMap::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for user in &stored.users {
        let Some(anchor) = user.anchor.as_deref() else {
            continue;
        };
        seen.insert(anchor);
        let change = |details| Change {
            id: Some(user.id.clone()),
            name: user.user_name.clone(),
            details,
        };
        // The document, loaded for the accounts a plan may change (`Stored::to_load`).
        let document = || {
            stored.records.get(&user.id).ok_or_else(|| {
                Error::Internal(format!("account {} was not loaded for the plan", user.id))
            })
        };
        match desired.people.get(anchor) {
            Some(wanted) => {
                ids.insert(anchor, user.id.clone());
                if stored.leavers.contains_key(&user.id) {
                    out.changes.returned.push(user.id.clone());
                }
                let stored_record = document()?;
                let record = provider.person_record(
                    school,
                    &wanted.person,
                    &user.user_name,
                    Some(anchor),
                    wanted.active,
                )?;
                if record.data == stored_record.data {
                    continue;
                }
                let details = differences(&stored_record.data, &record.data);
                match (user.active, wanted.active) {
                    (false, true) => out.plan.enable.push(change(details)),
                    (true, false) => out
                        .plan
                        .disable
                        .push(change(vec!["disabled in the directory".into()])),
                    _ => out.plan.update.push(change(details)),
                }
                out.changes
                    .replace_users
                    .push((user.id.clone(), user.version, record));
            }
            None if partial
                || desired.unchanged.contains(anchor)
                || desired.unmapped.contains(anchor) =>
            {
                // Unchanged (its entry is as last applied, or an incremental run did not read
                // it), or in the directory but not mappable this time (reported): left alone.
                ids.insert(anchor, user.id.clone());
            }
            None if user.active => {
                let mut data = document()?.data.clone();
                data.insert("active".into(), false.into());
                out.plan
                    .disable
                    .push(change(vec!["no longer in the directory".into()]));
                out.changes.left.push(user.id.clone());
                // Should it come back, its entry is compared in full.
                out.changes.forget_entries.push(anchor.to_owned());
                out.changes
                    .replace_users
                    .push((user.id.clone(), user.version, same_record(data)));
            }
            None => {
                let left = stored.leavers.get(&user.id);
                if left.is_some_and(|&since| since <= retention_cutoff) {
                    out.plan.delete.push(change(vec![format!(
                        "left more than {} days ago",
                        source.retention_days
                    )]));
                    out.changes.forget_entries.push(anchor.to_owned());
                    out.changes
                        .delete_users
                        .push((user.id.clone(), user.version));
                }
            }
        }
    }
    for (anchor, wanted) in &desired.people {
        if seen.contains(anchor.as_str()) || !wanted.active {
            continue;
        }
        let base = wanted.person.check(school).map_err(|errors| {
            Error::Internal(format!("a mapped person failed its check: {errors:?}"))
        })?;
        let record = provider.person_record(school, &wanted.person, &base, Some(anchor), true)?;
        let id = uuid::Uuid::now_v7().to_string();
        ids.insert(anchor, id.clone());
        out.plan.create.push(NewAccount {
            dn: wanted.dn.clone(),
            name: format!("{} {}", wanted.person.first_name, wanted.person.surname),
            role: wanted.person.role,
            user_name_base: base,
        });
        out.changes.create_users.push((id, record));
    }

    let Some(wanted_groups) = &desired.groups else {
        return Ok(out);
    };
    let names_by_id: HashMap<&str, &str> = stored
        .users
        .iter()
        .map(|u| (u.id.as_str(), u.user_name.as_str()))
        .collect();
    let mut kept: HashSet<&str> = HashSet::new();
    let stored_groups: HashMap<&str, &Record> = stored
        .groups
        .iter()
        .filter_map(|g| Some((g.data.get("externalId")?.as_str()?, g)))
        .collect();
    for (anchor, group) in wanted_groups {
        if stored
            .others_group_names
            .contains(&group.name.to_lowercase())
        {
            out.plan.skipped.push(Skipped {
                dn: group.dn.clone(),
                reason: format!(
                    "a teaching group called `{}` already exists and belongs to another source",
                    group.name
                ),
            });
            kept.insert(anchor);
            continue;
        }
        let mut members: Vec<String> = group
            .members
            .iter()
            .filter_map(|a| ids.get(a.as_str()).cloned())
            .collect();
        members.sort();
        let record = match provider.group_record(
            school,
            &group.name,
            &group.courses,
            members.clone(),
            Some(anchor),
        ) {
            Ok(record) => record,
            Err(Error::Invalid(reason)) => {
                out.plan.skipped.push(Skipped {
                    dn: group.dn.clone(),
                    reason,
                });
                kept.insert(anchor);
                continue;
            }
            Err(other) => return Err(other),
        };
        let Some(existing) = stored_groups.get(anchor.as_str()) else {
            out.plan.create_groups.push(Change {
                id: None,
                name: group.name.clone(),
                details: vec![format!("{} members", members.len())],
            });
            out.changes
                .create_groups
                .push((uuid::Uuid::now_v7().to_string(), record));
            continue;
        };
        kept.insert(anchor);
        let current: HashSet<&str> = existing.links.iter().map(|l| l.id.as_str()).collect();
        let wanted: HashSet<&str> = members.iter().map(String::as_str).collect();
        if record.data == existing.data && current == wanted {
            continue;
        }
        let mut details = if record.data == existing.data {
            Vec::new()
        } else {
            differences(&existing.data, &record.data)
        };
        let named = |id: &&str| {
            names_by_id
                .get(id)
                .map_or_else(|| (*id).to_owned(), |name| (*name).to_owned())
        };
        let mut added: Vec<String> = wanted.difference(&current).map(named).collect();
        let mut removed: Vec<String> = current.difference(&wanted).map(named).collect();
        added.sort();
        removed.sort();
        if !added.is_empty() {
            details.push(format!("adds {}", list(&added)));
        }
        if !removed.is_empty() {
            details.push(format!("removes {}", list(&removed)));
        }
        out.plan.update_groups.push(Change {
            id: Some(existing.id.clone()),
            name: group.name.clone(),
            details,
        });
        out.changes
            .replace_groups
            .push((existing.id.clone(), existing.version, record));
    }
    for group in &stored.groups {
        let anchor = group.data.get("externalId").and_then(Value::as_str);
        // Deleted in the directory: whatever the run read. Otherwise only a full read tells
        // that a group is gone.
        let deleted = anchor.is_some_and(|a| desired.deleted_groups.contains(a));
        let wanted =
            anchor.is_some_and(|a| kept.contains(a) || desired.unmapped_groups.contains(a));
        if !deleted && (partial || wanted) {
            continue;
        }
        out.plan.delete_groups.push(Change {
            id: Some(group.id.clone()),
            name: text(&group.data, "displayName").to_owned(),
            details: vec![
                if deleted {
                    "deleted in the directory"
                } else {
                    "no longer in the directory"
                }
                .into(),
            ],
        });
        out.changes
            .delete_groups
            .push((group.id.clone(), group.version));
    }
    Ok(out)
}

/// A stored document written back as it is (apart from what the caller changed).
fn same_record(data: Map<String, Value>) -> NewRecord {
    NewRecord {
        index: crate::scim::resource::index(crate::scim::schema::Kind::User, &data),
        data,
        members: None,
        password_hash: None,
        must_change: false,
        slip: None,
        user_name: Default::default(),
    }
}

fn text<'a>(data: &'a Map<String, Value>, name: &str) -> &'a str {
    data.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// At most ten names, then how many more.
fn list(names: &[String]) -> String {
    if names.len() <= 10 {
        return names.join(", ");
    }
    format!("{} and {} more", names[..10].join(", "), names.len() - 10)
}

/// What differs between two documents, as people say it: `surname: Smith → Smith-Jones`.
fn differences(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<String> {
    const FIELDS: [(&str, &str); 9] = [
        ("first name", "/name/givenName"),
        ("surname", "/name/familyName"),
        ("email", "/emails/0/value"),
        (
            "year group",
            "/urn:rollcall:params:scim:schemas:extension:school:2.0:User/yearGroup",
        ),
        (
            "student number",
            "/urn:rollcall:params:scim:schemas:extension:school:2.0:User/studentNumber",
        ),
        (
            "role",
            "/urn:rollcall:params:scim:schemas:extension:school:2.0:User/role",
        ),
        ("active", "/active"),
        ("name", "/displayName"),
        (
            "courses",
            "/urn:rollcall:params:scim:schemas:extension:school:2.0:Group/courses",
        ),
    ];
    let (old, new) = (Value::Object(old.clone()), Value::Object(new.clone()));
    let show = |value: Option<&Value>| match value {
        None | Some(Value::Null) => "(none)".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.get("value").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    };
    let mut out: Vec<String> = FIELDS
        .iter()
        .filter_map(|(label, pointer)| {
            let (a, b) = (old.pointer(pointer), new.pointer(pointer));
            (a != b).then(|| format!("{label}: {} → {}", show(a), show(b)))
        })
        .collect();
    if out.is_empty() {
        out.push("its document".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_the_fields_that_changed() {
        let old = serde_json::json!({
            "userName": "smithj",
            "name": { "givenName": "Jo", "familyName": "Smith" },
            "active": true,
        });
        let new = serde_json::json!({
            "userName": "smithj",
            "name": { "givenName": "Jo", "familyName": "Smith-Jones" },
            "active": true,
            "emails": [{ "value": "jo@school.example" }],
        });
        let (Value::Object(old), Value::Object(new)) = (old, new) else {
            unreachable!()
        };
        assert_eq!(
            differences(&old, &new),
            [
                "surname: Smith → Smith-Jones",
                "email: (none) → jo@school.example"
            ]
        );
        assert_eq!(differences(&old, &old), ["its document"]);
    }

    #[test]
    fn long_lists_are_cut_with_a_count() {
        let names: Vec<String> = (1..=12).map(|n| format!("s{n}")).collect();
        assert_eq!(
            list(&names),
            "s1, s2, s3, s4, s5, s6, s7, s8, s9, s10 and 2 more"
        );
        assert_eq!(list(&names[..2]), "s1, s2");
    }
}
