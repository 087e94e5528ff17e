//! Directory entries → the people and teaching groups a source wants, by the school's rules.
//!
//! Pure: no IO. An entry that cannot be mapped (no surname, no anchor, a course the catalogue
//! does not know) is reported by DN with the reason and left out; it never stops the run, and
//! its anchor is remembered so that reconcile does not take it for a leaver.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::dn;
use super::ldap::{ACCOUNT_DISABLED, Entry, guid_text};
use crate::config::{Connection, Dialect, School, Source};
use crate::roster::{Person, Role};
use crate::store::SyncEntry;

/// A person the directory holds, as the school's account should be.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub anchor: String,
    pub dn: String,
    pub person: Person,
    /// False when the directory disables the account (Active Directory's ACCOUNTDISABLE).
    pub active: bool,
}

/// A teaching group the directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedGroup {
    pub anchor: String,
    pub dn: String,
    pub name: String,
    /// Catalogue codes, as chosen (implied modules are added when the group is written).
    pub courses: Vec<String>,
    /// Anchors of its people, sorted.
    pub members: Vec<String>,
}

/// An entry left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Skipped {
    pub dn: String,
    pub reason: String,
}

/// Everything a source wants, from one read of the directory.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// By anchor.
    pub people: BTreeMap<String, Wanted>,
    /// By anchor; `None` when the source reads no groups.
    pub groups: Option<BTreeMap<String, WantedGroup>>,
    pub skipped: Vec<Skipped>,
    /// Anchors of people the directory holds but that could not be mapped: they are neither
    /// created nor disabled.
    pub unmapped: HashSet<String>,
    /// Likewise for teaching groups: kept as they are.
    pub unmapped_groups: HashSet<String>,
    /// Anchors of teaching groups the directory says are deleted ([`Read::deleted_groups`]).
    pub deleted_groups: HashSet<String>,
    /// Anchors of people whose entries are exactly as last applied: nothing to build or
    /// compare (they are not in `people`).
    pub unchanged: HashSet<String>,
    /// The entries of the people in `people`, to keep once applied.
    pub entries: Vec<SyncEntry>,
}

/// What one read of the directory returned.
#[derive(Debug, Clone, Default)]
pub struct Read {
    pub students: Vec<Entry>,
    pub tutors: Vec<Entry>,
    pub groups: Option<Vec<Entry>>,
    /// Anchors of teaching groups the directory says are deleted (a OneRoster delta's classes
    /// marked `tobedeleted`): deleted even by a run that reads only what changed.
    pub deleted_groups: Vec<String>,
}

/// The attributes to ask for when reading a source's people and groups.
pub fn person_attributes(source: &Source) -> Vec<String> {
    let a = &source.attributes;
    let mut names = vec![
        a.anchor.clone(),
        a.first_name.clone(),
        a.surname.clone(),
        a.email.clone(),
        a.uid.clone(),
        "memberOf".into(),
    ];
    names.extend(a.student_number.clone());
    names.extend(source.students.year_group.clone());
    names.extend(source.tutors.as_ref().and_then(|t| t.year_group.clone()));
    if source
        .ldap()
        .is_some_and(|l| l.dialect == Dialect::ActiveDirectory)
    {
        names.push("userAccountControl".into());
    }
    names.extend(source.incremental.as_ref().map(|i| i.attribute.clone()));
    dedup(names)
}

pub fn group_attributes(source: &Source) -> Vec<String> {
    let Some(groups) = &source.groups else {
        return Vec::new();
    };
    let mut names = vec![
        source.attributes.anchor.clone(),
        groups.name.clone(),
        "member".into(),
        "uniqueMember".into(),
        "memberUid".into(),
    ];
    names.extend(groups.courses_attribute.clone());
    names.extend(source.incremental.as_ref().map(|i| i.attribute.clone()));
    dedup(names)
}

fn dedup(names: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    names
        .into_iter()
        .filter(|name| seen.insert(name.to_ascii_lowercase()))
        .collect()
}

/// An entry's anchor: the configured attribute (Active Directory's binary `objectGUID` as its
/// usual text), trimmed; `None` when it has none.
fn anchor(source: &Source, entry: &Entry) -> Option<String> {
    let name = &source.attributes.anchor;
    if let Some(bytes) = entry
        .bin_attrs
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .and_then(|(_, values)| values.first())
    {
        return guid_text(bytes);
    }
    let value = entry.first(name)?.trim();
    if value.is_empty() {
        return None;
    }
    if name.eq_ignore_ascii_case("objectGUID") {
        // Some servers hand a GUID over as text already.
        return Some(value.to_ascii_lowercase());
    }
    Some(value.to_owned())
}

fn text(entry: &Entry, attribute: &str) -> String {
    entry
        .first(attribute)
        .map(|value| value.trim().to_owned())
        .unwrap_or_default()
}

/// The rules that turn an entry into a person: part of every digest, so that changing them
/// changes every digest.
pub fn rules(source: &Source) -> String {
    format!(
        "{}\0{:?}\0{:?}\0{:?}\0{:?}",
        source.kind(),
        source.ldap().map(|l| l.dialect),
        source.attributes,
        source.students,
        source.tutors
    )
}

/// A digest of an entry (`dn` normalised) as a person of `role` under `rules`: equal digests
/// map to equal accounts. Attribute names are compared in lower case and values in any order.
pub fn digest(rules: &str, role: Role, dn: &str, entry: &Entry) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(rules.as_bytes());
    hash.update(match role {
        Role::Student => b"\0student\0".as_slice(),
        Role::Tutor => b"\0tutor\0".as_slice(),
    });
    hash.update(dn.as_bytes());
    let mut attributes: Vec<(&str, Vec<&[u8]>)> = entry
        .attrs
        .iter()
        .map(|(name, values)| (name.as_str(), values.iter().map(|v| v.as_bytes()).collect()))
        .chain(
            entry
                .bin_attrs
                .iter()
                .map(|(name, values)| (name.as_str(), values.iter().map(Vec::as_slice).collect())),
        )
        .collect();
    fn lower(name: &str) -> impl Iterator<Item = u8> + '_ {
        name.bytes().map(|b| b.to_ascii_lowercase())
    }
    attributes.sort_by(|(a, _), (b, _)| lower(a).cmp(lower(b)));
    for (name, mut values) in attributes {
        values.sort_unstable();
        hash.update(b"\0\0");
        for byte in lower(name) {
            hash.update([byte]);
        }
        for value in values {
            hash.update(b"\0");
            hash.update((value.len() as u64).to_le_bytes());
            hash.update(value);
        }
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(32);
    for byte in &hash.finalize()[..16] {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

/// Each entry's normalised DN and digest, computed on every core.
fn keys(rules: &str, role: Role, entries: &[Entry]) -> Vec<(String, String)> {
    let key = |entry: &Entry| {
        let dn = dn::normalise(&entry.dn);
        let digest = digest(rules, role, &dn, entry);
        (dn, digest)
    };
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads < 2 || entries.len() < 1000 {
        return entries.iter().map(key).collect();
    }
    let chunk = entries.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                (
                    part,
                    scope.spawn(move || part.iter().map(key).collect::<Vec<_>>()),
                )
            })
            .collect();
        parts
            .into_iter()
            // A thread that failed (it cannot, short of running out of memory) leaves its part
            // to this one: every entry gets its key, in order.
            .flat_map(|(part, keys)| {
                keys.join()
                    .unwrap_or_else(|_| part.iter().map(key).collect())
            })
            .collect()
    })
}

/// Maps what was read to what the source wants. `known` locates people not read this time
/// (an incremental run): normalised DN or `uid:<uid>` → anchor. `digests` are those of the
/// entries last applied, by anchor: an entry whose digest is unchanged is only located.
pub fn desired(
    school: &School,
    source: &Source,
    read: &Read,
    known: &HashMap<String, String>,
    digests: &HashMap<&str, &str>,
) -> Desired {
    let mut out = Desired {
        deleted_groups: read.deleted_groups.iter().cloned().collect(),
        ..Desired::default()
    };
    let rules = rules(source);
    // Normalised DN → anchor, and uid → anchor, for resolving group members.
    let mut by_dn: HashMap<String, String> = HashMap::new();
    let mut by_uid: HashMap<String, String> = HashMap::new();
    let mut member_of: Vec<(String, String)> = Vec::new();
    let searches = [
        (Role::Student, &read.students, Some(&source.students)),
        (Role::Tutor, &read.tutors, source.tutors.as_ref()),
    ];
    for (role, entries, people) in searches {
        let Some(people) = people else { continue };
        // Normalising and hashing every entry is most of the work: on every core at once.
        let keyed = keys(&rules, role, entries);
        for (entry, (dn, digest)) in entries.iter().zip(keyed) {
            let Some(anchor) = anchor(source, entry) else {
                out.skipped.push(Skipped {
                    dn: entry.dn.clone(),
                    reason: format!(
                        "it has no {}, which identifies a person for good",
                        source.attributes.anchor
                    ),
                });
                continue;
            };
            if out.people.contains_key(&anchor)
                || out.unmapped.contains(&anchor)
                || out.unchanged.contains(&anchor)
            {
                out.skipped.push(Skipped {
                    dn: entry.dn.clone(),
                    reason: format!(
                        "another entry has the same {} `{anchor}`",
                        source.attributes.anchor
                    ),
                });
                continue;
            }
            let a = &source.attributes;
            let uid = Some(text(entry, &a.uid).to_lowercase()).filter(|uid| !uid.is_empty());
            let mut locate = |anchor: &str| {
                by_dn.insert(dn.clone(), anchor.to_owned());
                if let Some(uid) = &uid {
                    by_uid.insert(format!("uid:{uid}"), anchor.to_owned());
                }
                for group in entry.all("memberOf") {
                    member_of.push((dn::normalise(group), anchor.to_owned()));
                }
            };
            if digests.get(anchor.as_str()) == Some(&digest.as_str()) {
                locate(&anchor);
                out.unchanged.insert(anchor);
                continue;
            }
            let person = Person {
                first_name: text(entry, &a.first_name),
                surname: text(entry, &a.surname),
                email: text(entry, &a.email),
                user_name: String::new(),
                year_group: people
                    .year_group
                    .as_deref()
                    .map(|attribute| people.year_group_of(&text(entry, attribute)))
                    .unwrap_or_default(),
                student_number: a
                    .student_number
                    .as_deref()
                    .map(|attribute| text(entry, attribute))
                    .unwrap_or_default(),
                role,
            };
            if let Err(errors) = person.check(school) {
                let reason = errors
                    .iter()
                    .map(|e| format!("{} {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                out.skipped.push(Skipped {
                    dn: entry.dn.clone(),
                    reason,
                });
                out.unmapped.insert(anchor);
                continue;
            }
            let active = active(source, entry);
            locate(&anchor);
            out.entries.push(SyncEntry {
                anchor: anchor.clone(),
                dn,
                uid,
                digest,
            });
            out.people.insert(
                anchor.clone(),
                Wanted {
                    anchor,
                    dn: entry.dn.clone(),
                    person,
                    active,
                },
            );
        }
    }
    if let (Some(rules), Some(entries)) = (&source.groups, &read.groups) {
        let people = People {
            by_dn: &by_dn,
            by_uid: &by_uid,
            known,
        };
        out.groups = Some(groups(
            school,
            source,
            rules,
            entries,
            &people,
            &member_of,
            &mut out.skipped,
            &mut out.unmapped_groups,
        ));
    }
    out
}

/// Whether the directory lets the person in: Active Directory's ACCOUNTDISABLE flag, a Google
/// user neither suspended nor archived, a OneRoster user neither disabled (`enabledUser`) nor
/// marked `tobedeleted`.
fn active(source: &Source, entry: &Entry) -> bool {
    let flag = |name: &str| {
        entry
            .first(name)
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
    };
    match &source.connection {
        Connection::Ldap(ldap) => match ldap.dialect {
            Dialect::ActiveDirectory => entry
                .first("userAccountControl")
                .and_then(|flags| flags.trim().parse::<u32>().ok())
                .is_none_or(|flags| flags & ACCOUNT_DISABLED == 0),
            Dialect::Openldap => true,
        },
        Connection::Google(_) => !flag("suspended") && !flag("archived"),
        Connection::OneRoster(_) => {
            !entry
                .first("enabledUser")
                .is_some_and(|value| value.trim().eq_ignore_ascii_case("false"))
                && !entry
                    .first("status")
                    .is_some_and(|value| value.trim().eq_ignore_ascii_case("tobedeleted"))
        }
    }
}

/// Finding a person's anchor by DN or uid: among those read, then those known from before.
struct People<'a> {
    by_dn: &'a HashMap<String, String>,
    /// `uid:<uid>` → anchor.
    by_uid: &'a HashMap<String, String>,
    known: &'a HashMap<String, String>,
}

impl People<'_> {
    fn by_dn(&self, dn: &str) -> Option<&String> {
        self.by_dn.get(dn).or_else(|| self.known.get(dn))
    }

    fn by_uid(&self, uid: &str) -> Option<&String> {
        let key = format!("uid:{uid}");
        self.by_uid.get(&key).or_else(|| self.known.get(&key))
    }
}

/// A group entry's direct members: DNs (`member`, `uniqueMember`) and uids (`memberUid`).
struct Direct {
    dns: Vec<String>,
    uids: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
fn groups(
    school: &School,
    source: &Source,
    rules: &crate::config::Groups,
    entries: &[Entry],
    people: &People,
    member_of: &[(String, String)],
    skipped: &mut Vec<Skipped>,
    unmapped: &mut HashSet<String>,
) -> BTreeMap<String, WantedGroup> {
    // Every group read, by normalised DN, for nested groups.
    let mut direct: HashMap<String, Direct> = HashMap::new();
    for entry in entries {
        let dns = entry
            .all("member")
            .iter()
            .chain(entry.all("uniqueMember"))
            // A uniqueMember may carry a `#'…'B` unique identifier after the DN.
            .map(|value| dn::normalise(value.rsplit_once('#').map_or(value, |(dn, _)| dn)))
            .filter(|dn| !dn.is_empty())
            .collect();
        let uids = entry
            .all("memberUid")
            .iter()
            .map(|uid| uid.trim().to_lowercase())
            .collect();
        direct.insert(dn::normalise(&entry.dn), Direct { dns, uids });
    }
    let mut out = BTreeMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for entry in entries {
        let name = text(entry, &rules.name);
        if name.is_empty() {
            skipped.push(Skipped {
                dn: entry.dn.clone(),
                reason: format!("the group has no {}, which names it", rules.name),
            });
            continue;
        }
        // What the teaching pattern and the course rules look at: the name, or another
        // attribute (a Google group's address).
        let matched = match &rules.match_on {
            Some(attribute) => text(entry, attribute),
            None => name.clone(),
        };
        if rules
            .teaching
            .as_ref()
            .is_some_and(|p| !p.is_match(&matched))
        {
            continue;
        }
        let anchor =
            anchor(source, entry).unwrap_or_else(|| format!("dn:{}", dn::normalise(&entry.dn)));
        if let Some(other) = names.insert(name.to_lowercase(), entry.dn.clone()) {
            skipped.push(Skipped {
                dn: entry.dn.clone(),
                reason: format!("`{other}` has the same name, `{name}`"),
            });
            unmapped.insert(anchor);
            continue;
        }
        let mut chosen: Vec<String> = rules
            .courses_attribute
            .as_deref()
            .map(|attribute| {
                entry
                    .all(attribute)
                    .iter()
                    .map(|v| v.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        for rule in &rules.courses {
            chosen.extend(rule.courses_for(&matched).unwrap_or_default());
        }
        let courses = match school.courses.expand(&chosen) {
            Ok(courses) => {
                let mut codes: Vec<String> = courses
                    .into_iter()
                    .filter(|c| !c.implied)
                    .map(|c| c.code)
                    .collect();
                codes.sort();
                codes.dedup();
                codes
            }
            Err(message) => {
                skipped.push(Skipped {
                    dn: entry.dn.clone(),
                    reason: message,
                });
                unmapped.insert(anchor);
                continue;
            }
        };
        let own = dn::normalise(&entry.dn);
        let mut members = HashSet::new();
        let mut visited = HashSet::new();
        collect(
            &own,
            &direct,
            people,
            rules.flatten_nested,
            &mut visited,
            &mut members,
        );
        for (group, anchor) in member_of {
            if *group == own {
                members.insert(anchor.clone());
            }
        }
        let mut members: Vec<String> = members.into_iter().collect();
        members.sort();
        out.insert(
            anchor.clone(),
            WantedGroup {
                anchor,
                dn: entry.dn.clone(),
                name,
                courses,
                members,
            },
        );
    }
    out
}

/// The people of a group, and with `nested` those of the groups it contains, at any depth
/// (a cycle is followed once).
fn collect(
    group: &str,
    direct: &HashMap<String, Direct>,
    people: &People,
    nested: bool,
    visited: &mut HashSet<String>,
    members: &mut HashSet<String>,
) {
    if !visited.insert(group.to_owned()) {
        return;
    }
    let Some(entry) = direct.get(group) else {
        return;
    };
    for member in &entry.dns {
        if nested && direct.contains_key(member) {
            collect(member, direct, people, nested, visited, members);
        } else if let Some(anchor) = people.by_dn(member) {
            members.insert(anchor.clone());
        }
    }
    for uid in &entry.uids {
        if let Some(anchor) = people.by_uid(uid) {
            members.insert(anchor.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn school(source: &str) -> School {
        let text = format!(
            r#"[[schools]]
id = "north"
name = "North"

[[schools.courses]]
code = "MA-Y1-AS"
title = "Mathematics Year 1 (AS)"
implies = ["MA-Y1-STAT"]

[[schools.courses]]
code = "MA-Y1-STAT"
title = "Statistics Year 1"

[[schools.sources]]
id = "d"
kind = "ldap"
url = "ldap://127.0.0.1"
bind_dn = "cn=r"
password_env = "P"
{source}
[schools.sources.students]
base = "ou=S,dc=x"
year_group = "departmentNumber"

[schools.sources.tutors]
base = "ou=T,dc=x"

[schools.sources.groups]
base = "ou=G,dc=x"
teaching = '^\d+[A-Z]/'
courses_attribute = "businessCategory"
flatten_nested = true
"#
        );
        Config::parse(&text, Path::new("/"))
            .unwrap()
            .schools
            .remove(0)
    }

    fn entry(dn: &str, attrs: &[(&str, &str)]) -> Entry {
        let mut out = Entry {
            dn: dn.into(),
            attrs: HashMap::new(),
            bin_attrs: HashMap::new(),
        };
        for (name, value) in attrs {
            out.attrs
                .entry((*name).to_owned())
                .or_default()
                .push((*value).to_owned());
        }
        out
    }

    fn person(uid: &str, number: &str, given: &str, sn: &str) -> Entry {
        entry(
            &format!("uid={uid},ou=S,dc=x"),
            &[
                ("uid", uid),
                ("employeeNumber", number),
                ("givenName", given),
                ("sn", sn),
                ("departmentNumber", "12"),
            ],
        )
    }

    #[test]
    fn members_resolve_by_dn_in_any_case_by_uid_and_through_nested_groups() {
        let school = school("");
        let source = &school.sources[0];
        let read = Read {
            students: vec![
                person("ann", "1", "Ann", "Lee"),
                person("bob", "2", "Bob", "Ray"),
                person("cy", "3", "Cy", "Orr"),
            ],
            tutors: Vec::new(),
            groups: Some(vec![
                entry(
                    "cn=12A/Ma1,ou=G,dc=x",
                    &[
                        ("cn", "12A/Ma1"),
                        ("member", "UID=ANN,OU=S,DC=X"),
                        ("member", "cn=Extra,ou=G,dc=x"),
                        ("businessCategory", "Mathematics Year 1 (AS)"),
                    ],
                ),
                // Not a teaching group, but nested in one: its members count there.
                entry(
                    "cn=Extra,ou=G,dc=x",
                    &[
                        ("cn", "Extra"),
                        ("uniqueMember", "uid=bob,ou=S,dc=x#'0101'B"),
                        // A cycle is followed once.
                        ("member", "cn=12A/Ma1,ou=G,dc=x"),
                    ],
                ),
                entry(
                    "cn=12B/Ps1,ou=G,dc=x",
                    &[
                        ("cn", "12B/Ps1"),
                        ("memberUid", "CY"),
                        ("memberUid", "nobody"),
                    ],
                ),
            ]),
            deleted_groups: Vec::new(),
        };
        let desired = desired(&school, source, &read, &HashMap::new(), &HashMap::new());
        assert!(desired.skipped.is_empty(), "{:?}", desired.skipped);
        let groups = desired.groups.unwrap();
        let names: Vec<&str> = groups.values().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["12A/Ma1", "12B/Ps1"]);
        let maths = groups.values().find(|g| g.name == "12A/Ma1").unwrap();
        assert_eq!(maths.members, ["1", "2"]);
        assert_eq!(
            maths.courses,
            ["MA-Y1-AS"],
            "implied modules are added later"
        );
        let psychology = groups.values().find(|g| g.name == "12B/Ps1").unwrap();
        assert_eq!(psychology.members, ["3"]);
        assert!(
            psychology.anchor.starts_with("dn:"),
            "no anchor attribute: the DN"
        );
        assert_eq!(desired.people["1"].person.year_group, "12");
    }

    #[test]
    fn entries_that_cannot_be_mapped_are_reported_and_remembered() {
        let school = school("");
        let source = &school.sources[0];
        let read = Read {
            students: vec![
                person("ann", "1", "Ann", "Lee"),
                person("nos", "2", "Nos", ""),
                entry(
                    "uid=none,ou=S,dc=x",
                    &[("givenName", "No"), ("sn", "Anchor")],
                ),
                person("dup", "1", "Dup", "Licate"),
            ],
            tutors: Vec::new(),
            groups: Some(vec![entry(
                "cn=12C/La1,ou=G,dc=x",
                &[("cn", "12C/La1"), ("businessCategory", "Latin")],
            )]),
            deleted_groups: Vec::new(),
        };
        let desired = desired(&school, source, &read, &HashMap::new(), &HashMap::new());
        let reasons: Vec<(&str, &str)> = desired
            .skipped
            .iter()
            .map(|s| (s.dn.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert_eq!(reasons[0], ("uid=nos,ou=S,dc=x", "surname is empty"));
        assert!(
            reasons[1].1.contains("has no employeeNumber"),
            "{reasons:?}"
        );
        assert!(
            reasons[2].1.contains("same employeeNumber `1`"),
            "{reasons:?}"
        );
        assert!(reasons[3].1.contains("Latin"), "{reasons:?}");
        assert_eq!(desired.people.len(), 1);
        assert!(
            desired.unmapped.contains("2"),
            "known, so never taken for a leaver"
        );
        assert_eq!(desired.unmapped_groups.len(), 1);
        assert!(desired.groups.unwrap().is_empty());
    }

    #[test]
    fn active_directory_accounts_have_guid_anchors_and_a_disabled_flag() {
        let school = school("dialect = \"active-directory\"");
        let source = &school.sources[0];
        let guid: Vec<u8> = (1..=16).collect();
        let mut enabled = entry(
            "CN=Ann Lee,OU=S,DC=x",
            &[
                ("givenName", "Ann"),
                ("sn", "Lee"),
                ("userAccountControl", "512"),
                ("memberOf", "CN=12A/Ma1,OU=G,DC=x"),
            ],
        );
        enabled
            .bin_attrs
            .insert("objectGUID".into(), vec![guid.clone()]);
        let mut disabled = entry(
            "CN=Bob Ray,OU=S,DC=x",
            &[
                ("givenName", "Bob"),
                ("sn", "Ray"),
                ("userAccountControl", "514"),
            ],
        );
        disabled
            .bin_attrs
            .insert("objectGUID".into(), vec![vec![0xab; 16]]);
        let group = entry("CN=12A/Ma1,OU=G,DC=x", &[("cn", "12A/Ma1")]);
        let read = Read {
            students: vec![enabled, disabled],
            tutors: Vec::new(),
            groups: Some(vec![group]),
            deleted_groups: Vec::new(),
        };
        let desired = desired(&school, source, &read, &HashMap::new(), &HashMap::new());
        let ann = "04030201-0605-0807-090a-0b0c0d0e0f10";
        assert!(desired.people[ann].active);
        assert!(!desired.people["abababab-abab-abab-abab-abababababab"].active);
        // Membership from the person's memberOf when the group lists nobody.
        let groups = desired.groups.unwrap();
        assert_eq!(groups.values().next().unwrap().members, [ann]);
    }

    #[test]
    fn equal_entries_have_equal_digests_and_any_change_shows() {
        let rules_a = school("");
        let mapping = &rules_a.sources[0];
        let one = entry(
            "uid=ann,ou=S,dc=x",
            &[
                ("sn", "Lee"),
                ("mail", "a@x.example"),
                ("mail", "ann@x.example"),
            ],
        );
        // Attribute names in another case, values in another order, the DN spelled otherwise.
        let same = entry(
            "UID=ann, OU=S,DC=x",
            &[
                ("SN", "Lee"),
                ("Mail", "ann@x.example"),
                ("Mail", "a@x.example"),
            ],
        );
        let digest_of = |source: &Source, role, entry: &Entry| {
            digest(&rules(source), role, &dn::normalise(&entry.dn), entry)
        };
        let base = digest_of(mapping, Role::Student, &one);
        assert_eq!(base.len(), 32);
        assert_eq!(digest_of(mapping, Role::Student, &same), base);
        let renamed = entry(
            "uid=ann,ou=S,dc=x",
            &[
                ("sn", "Leigh"),
                ("mail", "a@x.example"),
                ("mail", "ann@x.example"),
            ],
        );
        assert_ne!(digest_of(mapping, Role::Student, &renamed), base);
        // A value moved from one attribute to another is a change.
        let moved = entry(
            "uid=ann,ou=S,dc=x",
            &[
                ("sn", "Lee"),
                ("sn", "a@x.example"),
                ("mail", "ann@x.example"),
            ],
        );
        assert_ne!(digest_of(mapping, Role::Student, &moved), base);
        assert_ne!(digest_of(mapping, Role::Tutor, &one), base, "another role");
        let other = school("[schools.sources.attributes]\nuid = \"cn\"\n");
        assert_ne!(
            digest_of(&other.sources[0], Role::Student, &one),
            base,
            "other rules"
        );
    }
}
