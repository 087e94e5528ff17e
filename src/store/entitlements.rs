//! `user.entitlements_changed`, as both backends write it: what a write transaction does to
//! students' courses, compared before and after the whole transaction.
//!
//! Only when some webhook covering the school wants the event (otherwise a write reads nothing
//! more). Each audited change that can alter a student's courses *watches* the students it
//! touches: a group's members who joined or left (every member, before and after, when the
//! group's courses changed), or a user whose role moved between student and tutor. The first
//! time a student is watched in a transaction, the codes they had before it are recorded in a
//! temporary table of the transaction's connection, computed from their other groups as
//! stored now and the changed group as it was. Just before the transaction commits, *settling*
//! derives each watched student's courses from what is stored then and writes one event for
//! each whose codes differ: a move between two groups with the same courses is no event, and a
//! move between groups with different ones is one.
//!
//! This file holds what both backends share (no SQL): which students a change touches, and the
//! comparison. The SQL is in each backend's `entitlements.rs`.

use std::collections::{BTreeSet, HashSet};

use serde_json::{Map, Value};

use super::{Error, Result};
use crate::courses::entitlements::{self, Entitlement, GroupCourses};
use crate::courses::{self, Catalogue};
use crate::scim::schema::Kind;
use crate::webhooks::event::{Action, Change};

/// A user as settling reads them: their role and the groups they are directly in.
#[derive(Debug, Clone)]
pub(super) struct Student {
    pub id: String,
    pub role: Option<String>,
    pub groups: Vec<GroupCourses>,
}

impl Student {
    /// From a row of `id, role, groups`, `groups` being a JSON array of
    /// `[group id, display name, courses or null]`.
    pub fn from_row(id: String, role: Option<String>, groups: &str) -> Result<Student> {
        let corrupt = |source| Error::Corrupt {
            id: id.clone(),
            source,
        };
        let rows: Vec<(String, Option<String>, Option<Value>)> =
            serde_json::from_str(groups).map_err(corrupt)?;
        let groups = rows
            .into_iter()
            .map(|(group, name, courses)| GroupCourses {
                id: group,
                name: name.unwrap_or_default(),
                courses: entitlements::stored(courses.as_ref()),
            })
            .collect();
        Ok(Student { id, role, groups })
    }

    fn takes_courses(&self) -> bool {
        entitlements::takes_courses(self.role.as_deref())
    }

    /// What the student has with the groups as stored now.
    pub fn entitlements(&self, catalogue: &Catalogue) -> Vec<Entitlement> {
        if !self.takes_courses() {
            return Vec::new();
        }
        entitlements::derive(catalogue, &self.groups)
    }
}

/// What one audited change may have done to students' courses.
#[derive(Debug, Clone)]
pub(super) enum Touched {
    /// A group written: the users among `members` may have gained or lost its courses.
    Group {
        id: String,
        name: String,
        /// Its courses and members before the change (`None`: it is new).
        before: Option<(Vec<courses::Assigned>, HashSet<String>)>,
        members: Vec<String>,
    },
    /// A user whose role moved between one that takes courses and one that does not.
    Role { id: String, took_courses: bool },
}

impl Touched {
    /// The ids whose current state the backend should read.
    pub fn ids(&self) -> Vec<String> {
        match self {
            Touched::Group { members, .. } => members.clone(),
            Touched::Role { id, .. } => vec![id.clone()],
        }
    }
}

/// Which students a change touches, or `None` when it cannot change anyone's courses (a
/// rename, a new phone number, a password).
pub(super) fn touched(change: &Change<'_>) -> Result<Option<Touched>> {
    let parse = |text: Option<&str>| -> Result<Option<Map<String, Value>>> {
        text.map(|text| {
            serde_json::from_str(text).map_err(|source| Error::Corrupt {
                id: change.id.to_owned(),
                source,
            })
        })
        .transpose()
    };
    let before = parse(change.before)?;
    let after = parse(change.after)?;
    match change.kind {
        Kind::Group => {
            let (old, new) = (
                before.as_ref().map(members).unwrap_or_default(),
                after.as_ref().map(members).unwrap_or_default(),
            );
            let codes = |document: &Option<Map<String, Value>>| -> BTreeSet<String> {
                document
                    .as_ref()
                    .map(|d| courses::of_group(d).into_iter().map(|c| c.code).collect())
                    .unwrap_or_default()
            };
            let mut touched: Vec<String> = if codes(&before) != codes(&after) {
                old.union(&new).cloned().collect()
            } else {
                old.symmetric_difference(&new).cloned().collect()
            };
            if touched.is_empty() {
                return Ok(None);
            }
            touched.sort();
            let name = after
                .as_ref()
                .or(before.as_ref())
                .and_then(|d| d.get("displayName"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            Ok(Some(Touched::Group {
                id: change.id.to_owned(),
                name,
                before: before.as_ref().map(|d| (courses::of_group(d), old.clone())),
                members: touched,
            }))
        }
        Kind::User => {
            let (Action::Replace, Some(before), Some(after)) = (change.action, &before, &after)
            else {
                return Ok(None);
            };
            let took = entitlements::takes_courses(entitlements::role_of(before));
            let takes = entitlements::takes_courses(entitlements::role_of(after));
            Ok((took != takes).then(|| Touched::Role {
                id: change.id.to_owned(),
                took_courses: took,
            }))
        }
    }
}

/// The codes a student had before the change: their groups as stored now (after it) with the
/// changed group as it was, or their courses under the role they had.
pub(super) fn codes_before(
    touched: &Touched,
    student: &Student,
    catalogue: &Catalogue,
) -> BTreeSet<String> {
    match touched {
        Touched::Group {
            id, name, before, ..
        } => {
            if !student.takes_courses() {
                return BTreeSet::new();
            }
            let mut groups: Vec<GroupCourses> = student
                .groups
                .iter()
                .filter(|g| g.id != *id)
                .cloned()
                .collect();
            if let Some((courses, members)) = before
                && members.contains(&student.id)
            {
                groups.push(GroupCourses {
                    id: id.clone(),
                    name: name.clone(),
                    courses: courses.clone(),
                });
            }
            entitlements::codes(&entitlements::derive(catalogue, &groups))
        }
        Touched::Role { took_courses, .. } => {
            if !took_courses {
                return BTreeSet::new();
            }
            entitlements::codes(&entitlements::derive(catalogue, &student.groups))
        }
    }
}

/// A watched student whose codes changed: the courses they have now, and the codes added
/// and removed.
pub(super) struct Changed {
    pub user: String,
    pub after: Vec<Entitlement>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// Compares a watched student's codes before the transaction (a JSON array, as recorded) with
/// their courses now; `None` when the codes are the same.
pub(super) fn compare(
    student: &Student,
    before: &str,
    catalogue: &Catalogue,
) -> Result<Option<Changed>> {
    let before: BTreeSet<String> =
        serde_json::from_str(before).map_err(|source| Error::Corrupt {
            id: student.id.clone(),
            source,
        })?;
    let after = student.entitlements(catalogue);
    let (added, removed) = entitlements::difference(&before, &after);
    if added.is_empty() && removed.is_empty() {
        return Ok(None);
    }
    Ok(Some(Changed {
        user: student.id.clone(),
        after,
        added,
        removed,
    }))
}

/// A group document's member ids (the audit log's `members`).
fn members(document: &Map<String, Value>) -> HashSet<String> {
    crate::webhooks::event::members(document)
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(members: &[&str], courses: &[&str]) -> String {
        let courses: Vec<Value> = courses
            .iter()
            .map(|c| serde_json::json!({ "value": c, "display": c, "implied": false }))
            .collect();
        let members: Vec<Value> = members
            .iter()
            .map(|m| serde_json::json!({ "value": m }))
            .collect();
        serde_json::json!({
            "displayName": "12A/Ma1",
            crate::scim::schema::SCHOOL_GROUP: { "courses": courses },
            "members": members,
        })
        .to_string()
    }

    fn ids(touched: Option<Touched>) -> Vec<String> {
        touched.map(|t| t.ids()).unwrap_or_default()
    }

    #[test]
    fn members_who_join_or_leave_are_touched_and_all_when_courses_change() {
        let (a, b) = (
            group(&["u1", "u2"], &["MA1"]),
            group(&["u2", "u3"], &["MA1"]),
        );
        let change = Change::replace(Kind::Group, "g", &a, &b, false);
        assert_eq!(ids(touched(&change).unwrap()), ["u1", "u3"]);
        let c = group(&["u2", "u3"], &["PH1"]);
        let change = Change::replace(Kind::Group, "g", &b, &c, false);
        assert_eq!(ids(touched(&change).unwrap()), ["u2", "u3"]);
        let change = Change::replace(Kind::Group, "g", &b, &b, false);
        assert!(touched(&change).unwrap().is_none());
        let change = Change::create(Kind::Group, "g", &a);
        assert_eq!(ids(touched(&change).unwrap()), ["u1", "u2"]);
        let change = Change::delete(Kind::Group, "g", &a);
        assert_eq!(ids(touched(&change).unwrap()), ["u1", "u2"]);
    }

    #[test]
    fn a_role_between_student_and_tutor_touches_the_user() {
        let user = |role: &str| {
            serde_json::json!({ crate::scim::schema::SCHOOL_USER: { "role": role } }).to_string()
        };
        let (student, tutor) = (user("student"), user("tutor"));
        let change = Change::replace(Kind::User, "u", &student, &tutor, false);
        assert_eq!(ids(touched(&change).unwrap()), ["u"]);
        let change = Change::replace(Kind::User, "u", &student, &student, false);
        assert!(touched(&change).unwrap().is_none());
    }

    #[test]
    fn before_is_the_other_groups_and_the_changed_group_as_it_was() {
        let catalogue = Catalogue::default();
        let held = |id: &str, codes: &[&str]| GroupCourses {
            id: id.into(),
            name: id.into(),
            courses: codes
                .iter()
                .map(|c| courses::Assigned {
                    code: (*c).into(),
                    title: (*c).into(),
                    implied: false,
                })
                .collect(),
        };
        // u1 left g (which had MA1), and is still in h with PH1.
        let student = Student {
            id: "u1".into(),
            role: None,
            groups: vec![held("h", &["PH1"])],
        };
        let (a, b) = (group(&["u1"], &["MA1"]), group(&[], &["MA1"]));
        let change = Change::replace(Kind::Group, "g", &a, &b, false);
        let touched = touched(&change).unwrap().unwrap();
        let before = codes_before(&touched, &student, &catalogue);
        assert_eq!(before, BTreeSet::from(["MA1".into(), "PH1".into()]));
        let changed = compare(
            &student,
            &serde_json::to_string(&before).unwrap(),
            &catalogue,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (changed.added, changed.removed),
            (vec![], vec!["MA1".into()])
        );
        // A tutor takes no courses, before or after.
        let tutor = Student {
            role: Some("tutor".into()),
            ..student
        };
        assert!(codes_before(&touched, &tutor, &catalogue).is_empty());
    }
}
