//! A person's entitlements: the courses their teaching groups give them. Derived, never stored:
//! the union, over the groups a student is directly in, of each group's courses with the
//! modules they imply, so it is right the moment a group or a membership changes.
//!
//! Pure: group documents' courses and the catalogue in, a sorted list out. The SCIM User
//! extension's read-only `courses`, the admin API and the `user.entitlements_changed` webhook
//! event all show this one derivation.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Assigned, Catalogue};

/// The courses one teaching group carries, as stored on its document (implied modules marked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCourses {
    pub id: String,
    pub name: String,
    pub courses: Vec<Assigned>,
}

/// The courses of a group's school extension as stored (`None` or not an array: none).
pub fn stored(courses: Option<&Value>) -> Vec<Assigned> {
    courses
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Assigned::from_scim).collect())
        .unwrap_or_default()
}

/// A group an entitlement comes through.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Via {
    pub name: String,
    pub id: String,
}

/// One course a student has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entitlement {
    pub code: String,
    pub title: String,
    /// True when no group chose the course: it is only a module another course brings.
    pub implied: bool,
    /// For an implied module, the chosen courses that bring it (by code, sorted); empty
    /// otherwise.
    pub implied_by: Vec<String>,
    /// The groups it comes through, chosen or implied, by name then id.
    pub groups: Vec<Via>,
}

/// Whether a person with this role (the school extension's `role`) takes courses: students
/// do; tutors teach their groups' courses and are given none. A person without a role is a
/// student, as for admins' accounts.
pub fn takes_courses(role: Option<&str>) -> bool {
    !role.is_some_and(|role| role.trim().eq_ignore_ascii_case("tutor"))
}

/// The role stored on a user's document, if any.
pub fn role_of(user: &Map<String, Value>) -> Option<&str> {
    user.get(crate::scim::schema::SCHOOL_USER)?
        .get("role")?
        .as_str()
}

/// A student's entitlements from the groups they are directly in, sorted by code. A course
/// chosen in one group and implied in another counts as chosen. `implied_by` names the chosen
/// courses of the same group whose implications (followed transitively in `catalogue`) reach
/// the module; a school without a catalogue has no implied modules.
pub fn derive(catalogue: &Catalogue, groups: &[GroupCourses]) -> Vec<Entitlement> {
    struct Building {
        title: String,
        chosen: bool,
        implied_by: BTreeSet<String>,
        groups: BTreeSet<Via>,
    }
    // By name then id, so the title a course shows does not depend on the order groups came in.
    let mut groups: Vec<&GroupCourses> = groups.iter().collect();
    groups.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    let mut by_code: BTreeMap<&str, Building> = BTreeMap::new();
    for group in groups {
        let chosen_here: Vec<&str> = group
            .courses
            .iter()
            .filter(|course| !course.implied)
            .map(|course| course.code.as_str())
            .collect();
        for course in &group.courses {
            let entry = by_code
                .entry(course.code.as_str())
                .or_insert_with(|| Building {
                    title: course.title.clone(),
                    chosen: false,
                    implied_by: BTreeSet::new(),
                    groups: BTreeSet::new(),
                });
            if entry.title.is_empty() {
                entry.title.clone_from(&course.title);
            }
            entry.groups.insert(Via {
                name: group.name.clone(),
                id: group.id.clone(),
            });
            if course.implied {
                entry.implied_by.extend(
                    chosen_here
                        .iter()
                        .filter(|chosen| catalogue.brings(chosen, &course.code))
                        .map(|chosen| (*chosen).to_owned()),
                );
            } else {
                entry.chosen = true;
            }
        }
    }
    by_code
        .into_iter()
        .map(|(code, built)| Entitlement {
            code: code.to_owned(),
            title: built.title,
            implied: !built.chosen,
            implied_by: if built.chosen {
                Vec::new()
            } else {
                built.implied_by.into_iter().collect()
            },
            groups: built.groups.into_iter().collect(),
        })
        .collect()
}

/// The codes in `after` but not `before`, and those in `before` but not `after`, each sorted.
/// Only codes count: a course that now comes through another group, or is chosen where it was
/// implied, is no change to what the student has.
pub fn difference(before: &BTreeSet<String>, after: &[Entitlement]) -> (Vec<String>, Vec<String>) {
    let after: BTreeSet<&str> = after.iter().map(|e| e.code.as_str()).collect();
    let added = after
        .iter()
        .filter(|code| !before.contains(**code))
        .map(|code| (*code).to_owned())
        .collect();
    let removed = before
        .iter()
        .filter(|code| !after.contains(code.as_str()))
        .cloned()
        .collect();
    (added, removed)
}

/// The codes of a list of entitlements.
pub fn codes(entitlements: &[Entitlement]) -> BTreeSet<String> {
    entitlements.iter().map(|e| e.code.clone()).collect()
}

impl Entitlement {
    /// The SCIM form, an element of the User school extension's `courses`: `value` (the code),
    /// `display` (the title), `implied`, `impliedBy` (codes; only when implied) and `groups`
    /// (the groups' ids, as in the user's `groups[].value`).
    pub fn to_scim(&self) -> Value {
        let mut item = json!({
            "value": self.code,
            "display": self.title,
            "implied": self.implied,
            "groups": self.groups.iter().map(|via| via.id.as_str()).collect::<Vec<_>>(),
        });
        if !self.implied_by.is_empty() {
            item["impliedBy"] = json!(self.implied_by);
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::courses::tests::maths as catalogue;

    /// A group as `expand_in` would store it.
    fn group(id: &str, name: &str, chosen: &[&str]) -> GroupCourses {
        GroupCourses {
            id: id.into(),
            name: name.into(),
            courses: catalogue().expand(chosen).unwrap(),
        }
    }

    fn summary(entitlements: &[Entitlement]) -> Vec<(&str, bool, Vec<&str>, Vec<&str>)> {
        entitlements
            .iter()
            .map(|e| {
                (
                    e.code.as_str(),
                    e.implied,
                    e.implied_by.iter().map(String::as_str).collect(),
                    e.groups.iter().map(|g| g.name.as_str()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn no_groups_no_entitlements() {
        assert!(derive(&catalogue(), &[]).is_empty());
        assert!(derive(&catalogue(), &[group("g1", "12A/Tu", &[])]).is_empty());
    }

    #[test]
    fn a_course_brings_its_modules_marked_with_what_implies_them() {
        let got = derive(&catalogue(), &[group("g1", "12A/Ma1", &["MA1"])]);
        assert_eq!(
            summary(&got),
            [
                ("MA1", false, vec![], vec!["12A/Ma1"]),
                ("MA1-M", true, vec!["MA1"], vec!["12A/Ma1"]),
                ("MA1-S", true, vec!["MA1"], vec!["12A/Ma1"]),
                // Reached through Mechanics, but brought by the chosen course.
                ("MA1-V", true, vec!["MA1"], vec!["12A/Ma1"]),
            ]
        );
        assert_eq!(got[2].title, "Statistics Year 1");
    }

    #[test]
    fn two_groups_granting_the_same_course_give_it_once_through_both() {
        let got = derive(
            &catalogue(),
            &[
                group("g2", "12B/Ma1", &["MA1"]),
                group("g1", "12A/Ma1", &["MA1"]),
            ],
        );
        assert_eq!(got.len(), 4);
        assert_eq!(
            got[0].groups,
            [
                Via {
                    name: "12A/Ma1".into(),
                    id: "g1".into()
                },
                Via {
                    name: "12B/Ma1".into(),
                    id: "g2".into()
                }
            ]
        );
        // The order of the groups does not matter.
        let reversed = derive(
            &catalogue(),
            &[
                group("g1", "12A/Ma1", &["MA1"]),
                group("g2", "12B/Ma1", &["MA1"]),
            ],
        );
        assert_eq!(got, reversed);
    }

    #[test]
    fn a_module_chosen_in_one_group_and_implied_in_another_counts_as_chosen() {
        let got = derive(
            &catalogue(),
            &[
                group("g1", "12A/Ma1", &["MA1"]),
                group("g2", "12A/St", &["MA1-S"]),
            ],
        );
        let statistics = got.iter().find(|e| e.code == "MA1-S").unwrap();
        assert!(!statistics.implied);
        assert!(statistics.implied_by.is_empty());
        assert_eq!(statistics.groups.len(), 2);
        // Implied by two chosen courses in two groups: both named.
        let got = derive(
            &catalogue(),
            &[
                group("g1", "12A/Ma1", &["MA1"]),
                group("g3", "12A/Ph1", &["PH1"]),
            ],
        );
        let mechanics = got.iter().find(|e| e.code == "MA1-M").unwrap();
        assert!(mechanics.implied);
        assert_eq!(mechanics.implied_by, ["MA1", "PH1"]);
    }

    #[test]
    fn only_codes_make_a_difference() {
        let one = derive(&catalogue(), &[group("g1", "12A/Ma1", &["MA1"])]);
        let two = derive(
            &catalogue(),
            &[
                group("g1", "12A/Ma1", &["MA1"]),
                group("g2", "12B/Ma1", &["MA1"]),
            ],
        );
        assert_eq!(difference(&codes(&two), &one), (vec![], vec![]));
        let physics = derive(&catalogue(), &[group("g3", "12A/Ph1", &["PH1"])]);
        assert_eq!(
            difference(&codes(&one), &physics),
            (
                vec!["PH1".to_owned()],
                vec!["MA1".to_owned(), "MA1-S".to_owned()]
            )
        );
    }

    #[test]
    fn the_scim_form_names_groups_by_id_and_implications_only_when_implied() {
        let got = derive(&catalogue(), &[group("g1", "12A/Ma1", &["MA1"])]);
        assert_eq!(
            got[0].to_scim(),
            json!({ "value": "MA1", "display": "Mathematics Year 1 (AS)", "implied": false,
                    "groups": ["g1"] })
        );
        assert_eq!(got[1].to_scim()["impliedBy"], json!(["MA1"]));
    }

    #[test]
    fn tutors_take_no_courses() {
        assert!(takes_courses(Some("student")));
        assert!(takes_courses(None));
        assert!(!takes_courses(Some("Tutor")));
    }
}
