//! OneRoster 1.1 CSV: a school information system's export, as a folder or a zip file, read as
//! directory entries so that the mapping rules, the plan and its safety checks are the sync's.
//!
//! - `manifest.csv` says which files there are and whether each is `bulk` (every record) or
//!   `delta` (the records changed since the last export); [`export`] checks every file against
//!   the CSV binding's tables, and this module checks how they refer to each other. Every
//!   problem is reported with its file, line and column, all at once, before anything changes.
//! - Of a trust's export, only the source's `org` (and the orgs under it) is read: users whose
//!   `orgSourcedIds` name it, its classes, and their enrollments. Several schools and no `org`
//!   is refused.
//! - Users with the students' role (`student`) become student entries, those with the tutors'
//!   (`teacher`) tutor entries, `sourcedId=…,ou=users,o=oneroster`, with the users.csv columns
//!   as attributes (`grades` and the other lists split; never `password`). `enabledUser=false`
//!   or `status=tobedeleted` makes the account inactive.
//! - Classes become group entries `sourcedId=…,ou=classes,o=oneroster` with the class's
//!   columns and its course's, prefixed `course.` (`course.courseCode`), and as `member` the
//!   people enrolled as students or teachers, enrollment active and today within its
//!   `beginDate` (inclusive) and `endDate` (exclusive). A class marked `tobedeleted` is left out
//!   (a full run deletes its group) or, in a delta, named for deletion.
//! - A run is full (leavers are disabled, classes no longer exported deleted) when users.csv,
//!   classes.csv and enrollments.csv are all bulk, or users.csv is bulk and the other two
//!   absent (people only; groups are left as they are). Anything else is a delta run: nobody is
//!   disabled for being absent; a class whose row or enrollments the export carries is written
//!   whole, its members being those the store holds ± the export's enrollments (all of them
//!   when enrollments.csv is bulk), its title and courses those the store holds when the export
//!   does not carry its row.

mod export;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use export::{Export, Table};
pub use export::{Mode, Problem};

use super::Progress;
use super::ldap::Entry;
use super::map::Read;
use crate::config::{Select, Source};
use crate::provider::Provider;
use crate::scim::schema::{Kind, SCHOOL_GROUP};
use crate::store::{self, Scope};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The export is wrong; every problem, in the order a person reads the files.
    #[error("{}", refused(path, problems))]
    Refused {
        path: PathBuf,
        problems: Vec<Problem>,
    },
    #[error("reading the OneRoster export failed: {0}")]
    Internal(String),
    #[error("store: {0}")]
    Store(#[from] store::Error),
}

fn refused(path: &Path, problems: &[Problem]) -> String {
    let mut text = format!(
        "the OneRoster export {} was refused ({} problem{}); nothing was changed:",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in problems {
        text.push_str("\n  ");
        text.push_str(&problem.to_string());
    }
    text
}

/// A roster read as directory entries.
pub struct Roster {
    pub read: Read,
    /// A delta export: only what changed (a run disables nobody for being absent).
    pub delta: bool,
}

/// Where users and classes are in the entries' DNs.
const USERS_DN: &str = "ou=users,o=oneroster";
const CLASSES_DN: &str = "ou=classes,o=oneroster";

/// A user's DN.
pub fn user_dn(sourced_id: &str) -> String {
    format!("sourcedId={},{USERS_DN}", ldap3::dn_escape(sourced_id))
}

/// A class's DN.
pub fn class_dn(sourced_id: &str) -> String {
    format!("sourcedId={},{CLASSES_DN}", ldap3::dn_escape(sourced_id))
}

/// Reads a OneRoster export (a folder or a zip file) for a source. A delta export reads the
/// source's teaching groups from the store, to complete the classes it changes.
pub async fn read(
    provider: &Provider,
    scope: &Scope,
    source: &Source,
    path: &Path,
    progress: Progress<'_>,
) -> Result<Roster, Error> {
    progress(&format!("reading the OneRoster export {}", path.display()));
    let export = parse(path).await?;
    let today = provider.clock.now().date();
    let held = if full(&export) || source.groups.is_none() {
        Held::default()
    } else {
        held(provider, scope).await?
    };
    let built = build(source, &export, &held, today).map_err(|problems| Error::Refused {
        path: path.to_owned(),
        problems,
    })?;
    progress(&built.summary());
    Ok(Roster {
        delta: !full(&export),
        read: built.read,
    })
}

/// What `rollcall check-config --connect` says about a OneRoster source: the export's files,
/// how many rows each has, and every problem.
pub async fn check(source: &Source, path: &Path) -> Result<Vec<(String, bool)>, Error> {
    let export = match parse(path).await {
        Ok(export) => export,
        Err(Error::Refused { problems, .. }) => {
            return Ok(problems.iter().map(|p| (p.to_string(), false)).collect());
        }
        Err(other) => return Err(other),
    };
    let kind = if full(&export) { "bulk" } else { "delta" };
    let mut lines = vec![(format!("manifest.csv: a OneRoster 1.1 {kind} export"), true)];
    for name in export::FILES {
        let line = match export.table(name) {
            Some(table) => format!(
                "{name}.csv: {} ({} row{})",
                table.mode.name(),
                table.rows.len(),
                if table.rows.len() == 1 { "" } else { "s" }
            ),
            None => format!("{name}.csv: absent"),
        };
        lines.push((line, true));
    }
    let today = crate::clock::Clock::system().now().date();
    match build(source, &export, &Held::default(), today) {
        Ok(built) => lines.push((built.summary(), true)),
        Err(problems) => lines.extend(problems.iter().map(|p| (p.to_string(), false))),
    }
    Ok(lines)
}

/// Reads and checks the files, on the blocking pool.
async fn parse(path: &Path) -> Result<Export, Error> {
    let owned = path.to_owned();
    let export = tokio::task::spawn_blocking(move || {
        let (export, mut problems) = export::read(&owned)?;
        problems.extend(references(&export));
        export::sort(&mut problems);
        if problems.is_empty() {
            Ok(export)
        } else {
            Err(problems)
        }
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?;
    export.map_err(|problems| Error::Refused {
        path: path.to_owned(),
        problems,
    })
}

/// Whether the export holds everything (see the module's description).
fn full(export: &Export) -> bool {
    let groups = matches!(
        (export.mode("classes"), export.mode("enrollments")),
        (Mode::Bulk, Mode::Bulk) | (Mode::Absent, Mode::Absent)
    );
    export.mode("users") == Mode::Bulk && groups
}

/// Unique sourcedIds in each file, and references that resolve: within the export when the
/// file referred to is bulk; a delta may refer to what an earlier export brought.
fn references(export: &Export) -> Vec<Problem> {
    let mut problems = Vec::new();
    // sourcedId → row index, per file.
    let mut ids: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    for name in export::FILES {
        let Some(table) = export.table(name) else {
            continue;
        };
        let file = table.file();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        // Users and classes are told apart by DNs, which LDAP compares without case.
        let folded = matches!(name, "users" | "classes");
        let mut lower: HashMap<String, usize> = HashMap::new();
        for (index, row) in table.rows.iter().enumerate() {
            let id = table.get(row, "sourcedId");
            if id.is_empty() {
                continue;
            }
            if let Some(&first) = seen.get(id) {
                problems.push(Problem::at(
                    &file,
                    row.line,
                    Some("sourcedId"),
                    format!(
                        "`{id}` is the sourcedId of line {} already",
                        table.rows[first].line
                    ),
                ));
                continue;
            }
            if folded && let Some(&other) = lower.get(&id.to_lowercase()) {
                let other = &table.rows[other];
                problems.push(Problem::at(
                    &file,
                    row.line,
                    Some("sourcedId"),
                    format!(
                        "`{id}` differs from `{}` (line {}) only in case, which rollcall \
                         cannot tell apart",
                        table.get(other, "sourcedId"),
                        other.line
                    ),
                ));
                continue;
            }
            seen.insert(id, index);
            lower.insert(id.to_lowercase(), index);
        }
        ids.insert(name, seen);
    }
    // (file, column, the file it refers to, a list, the org must be a school)
    const REFERENCES: [(&str, &str, &str, bool, bool); 9] = [
        ("orgs", "parentSourcedId", "orgs", false, false),
        ("users", "orgSourcedIds", "orgs", true, false),
        ("users", "agentSourcedIds", "users", true, false),
        ("courses", "orgSourcedId", "orgs", false, false),
        ("classes", "courseSourcedId", "courses", false, false),
        ("classes", "schoolSourcedId", "orgs", false, true),
        ("enrollments", "classSourcedId", "classes", false, false),
        ("enrollments", "userSourcedId", "users", false, false),
        ("enrollments", "schoolSourcedId", "orgs", false, true),
    ];
    let orgs = export.table("orgs");
    for (name, column, target, list, school) in REFERENCES {
        let (Some(table), Some(known)) = (export.table(name), ids.get(target)) else {
            continue;
        };
        // Only a bulk file is the whole list.
        let whole = export.mode(target) == Mode::Bulk;
        let file = table.file();
        for row in &table.rows {
            let values = if list {
                table.list(row, column)
            } else {
                Some(table.get(row, column))
                    .filter(|v| !v.is_empty())
                    .into_iter()
                    .collect()
            };
            let broken = export.table(target).map(|t| &t.broken);
            for value in values {
                match known.get(value) {
                    None if broken.is_some_and(|b| b.contains(value)) => {}
                    None if whole => problems.push(Problem::at(
                        &file,
                        row.line,
                        Some(column),
                        format!("`{value}` is not a sourcedId in {target}.csv"),
                    )),
                    None => {}
                    Some(&index) => {
                        if let (true, Some(orgs)) = (school, orgs) {
                            let org = &orgs.rows[index];
                            let kind = orgs.get(org, "type");
                            if kind != "school" {
                                problems.push(Problem::at(
                                    &file,
                                    row.line,
                                    Some(column),
                                    format!(
                                        "`{value}` is an org of type `{kind}` (orgs.csv line {}), \
                                         not a school",
                                        org.line
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    export::sort(&mut problems);
    problems
}

/// What the store holds for the source's teaching groups, for a delta.
#[derive(Debug, Clone, Default)]
struct Held {
    /// By anchor (the class's sourcedId).
    groups: HashMap<String, HeldGroup>,
}

#[derive(Debug, Clone, Default)]
struct HeldGroup {
    name: String,
    /// Catalogue codes, as chosen (not the implied ones).
    courses: Vec<String>,
    /// Anchors (users' sourcedIds).
    members: Vec<String>,
}

async fn held(provider: &Provider, scope: &Scope) -> Result<Held, Error> {
    let store = &provider.store;
    let anchors: HashMap<String, String> = store
        .owned_users(scope)
        .await?
        .into_iter()
        .filter_map(|user| Some((user.id, user.anchor?)))
        .collect();
    let mut out = Held::default();
    for group in store.owned(scope, Kind::Group).await? {
        let text = |name: &str| {
            group
                .data
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let anchor = text("externalId");
        if anchor.is_empty() {
            continue;
        }
        let courses = group
            .data
            .get(SCHOOL_GROUP)
            .and_then(|school| school.get("courses"))
            .and_then(Value::as_array)
            .map(|courses| {
                courses
                    .iter()
                    .filter(|c| c.get("implied") != Some(&Value::Bool(true)))
                    .filter_map(|c| c.get("value").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let members = group
            .links
            .iter()
            .filter_map(|link| anchors.get(&link.id).cloned())
            .collect();
        out.groups.insert(
            anchor,
            HeldGroup {
                name: text("displayName"),
                courses,
                members,
            },
        );
    }
    Ok(out)
}

/// The orgs whose people and classes the source reads: its `org` and every org under it in
/// orgs.csv; `None` (everything) when it names none and the export holds one school at most.
/// An `org` orgs.csv does not list, or several schools and no `org`, is refused: reading a
/// trust's export for one school must not bring in another's students.
fn ours(source: &Source, export: &Export) -> Result<Option<HashSet<String>>, Problem> {
    let org = match &source.connection {
        crate::config::Connection::OneRoster(roster) => roster.org.as_deref(),
        _ => None,
    };
    let orgs = export.table("orgs");
    let Some(org) = org else {
        let schools: Vec<String> = orgs.map_or_else(Vec::new, |orgs| {
            orgs.rows
                .iter()
                .filter(|row| orgs.get(row, "type") == "school")
                .map(|row| {
                    format!(
                        "`{}` ({})",
                        orgs.get(row, "sourcedId"),
                        orgs.get(row, "name")
                    )
                })
                .collect()
        });
        if schools.len() > 1 {
            return Err(Problem::file(
                "orgs.csv",
                format!(
                    "lists {} schools ({}): set `org` on source `{}` to the sourcedId of this \
                     school's, so that no other school's people are read",
                    schools.len(),
                    schools.join(", "),
                    source.id
                ),
            ));
        }
        return Ok(None);
    };
    let mut ours = HashSet::from([org.to_owned()]);
    let Some(orgs) = orgs else {
        // A delta without orgs.csv: the org itself, as the rows name it.
        return Ok(Some(ours));
    };
    // A delta's orgs.csv holds the orgs that changed, not necessarily this one.
    if export.mode("orgs") == Mode::Bulk
        && !orgs
            .rows
            .iter()
            .any(|row| orgs.get(row, "sourcedId") == org)
    {
        return Err(Problem::file(
            "orgs.csv",
            format!(
                "has no org `{org}`, the `org` of source `{}`: give the sourcedId of this \
                 school's row",
                source.id
            ),
        ));
    }
    // Every org under it, however deep: add children until nothing changes.
    loop {
        let before = ours.len();
        for row in &orgs.rows {
            if ours.contains(orgs.get(row, "parentSourcedId")) {
                ours.insert(orgs.get(row, "sourcedId").to_owned());
            }
        }
        if ours.len() == before {
            return Ok(Some(ours));
        }
    }
}

/// Whether a cell of one or more org ids names one of `ours`.
fn ids_in(ids: &str, ours: &HashSet<String>) -> bool {
    export::split(ids).into_iter().any(|id| ours.contains(id))
}

/// The entries, and what was left out.
struct Built {
    read: Read,
    delta: bool,
    /// Users of roles the source does not read, by role.
    other_roles: BTreeMap<String, usize>,
    /// Classes a delta's enrollments name that neither the export nor the store holds.
    unknown_classes: usize,
    /// Users and classes of other schools than the source's `org`.
    other_schools: (usize, usize),
}

impl Built {
    fn summary(&self) -> String {
        let mut text = format!(
            "{} export: {} students, {} tutors, {} classes",
            if self.delta { "delta" } else { "bulk" },
            self.read.students.len(),
            self.read.tutors.len(),
            self.read.groups.as_ref().map_or(0, Vec::len),
        );
        if !self.other_roles.is_empty() {
            let roles: Vec<String> = self
                .other_roles
                .iter()
                .map(|(role, n)| format!("{n} {role}"))
                .collect();
            text.push_str(&format!(
                "; users of other roles left out: {}",
                roles.join(", ")
            ));
        }
        if self.other_schools != (0, 0) {
            text.push_str(&format!(
                "; {} users and {} classes of other schools left out",
                self.other_schools.0, self.other_schools.1
            ));
        }
        if self.unknown_classes > 0 {
            text.push_str(&format!(
                "; enrollments in {} classes neither this export nor an earlier one brought \
                 (or not teaching groups) left out",
                self.unknown_classes
            ));
        }
        text
    }
}

/// What enrollments.csv says of one class.
#[derive(Debug, Default)]
struct Changes {
    /// The first line naming the class.
    line: u64,
    /// Enrolled now.
    come: BTreeSet<String>,
    /// Enrolled no longer (or not yet).
    gone: BTreeSet<String>,
}

/// The role a search reads (`student`, `teacher`).
fn role(select: &Select) -> Option<&str> {
    match select {
        Select::OneRoster(role) => Some(role.as_str()),
        _ => None,
    }
}

/// Attributes from a row: each column with a value (lists split), leaving out
/// `dateLastModified` (a change of it alone changes nothing) and `password`; `status` is
/// `active` when empty, so that bulk and delta rows of the same record are equal.
fn attributes(
    table: &Table,
    row: &export::Row,
    prefix: &str,
    attrs: &mut HashMap<String, Vec<String>>,
) {
    for (i, name, kind) in table.columns() {
        if matches!(name, "dateLastModified" | "password") {
            continue;
        }
        let value = row.fields.get(i).map_or("", String::as_str);
        let values: Vec<String> = match kind {
            Some(export::Type::Ids | export::Type::List | export::Type::UserIds) => {
                export::split(value)
                    .into_iter()
                    .map(str::to_owned)
                    .collect()
            }
            _ if name == "status" && value.is_empty() => vec!["active".to_owned()],
            _ if value.is_empty() => Vec::new(),
            _ => vec![value.to_owned()],
        };
        if !values.is_empty() {
            attrs.insert(format!("{prefix}{name}"), values);
        }
    }
}

fn entry(dn: String, attrs: HashMap<String, Vec<String>>) -> Entry {
    Entry {
        dn,
        attrs,
        bin_attrs: HashMap::new(),
    }
}

/// Turns a checked export into entries, completing a delta's classes from `held`.
fn build(
    source: &Source,
    export: &Export,
    held: &Held,
    today: time::Date,
) -> Result<Built, Vec<Problem>> {
    let delta = !full(export);
    let mut problems = Vec::new();
    if delta && source.attributes.anchor != "sourcedId" {
        problems.push(Problem::file(
            "manifest.csv",
            format!(
                "declares a delta export, which is applied by sourcedId, but source `{}` \
                 anchors entries by `{}`: send bulk exports, or anchor by sourcedId",
                source.id, source.attributes.anchor
            ),
        ));
        return Err(problems);
    }
    let ours = ours(source, export).map_err(|problem| vec![problem])?;
    let ours = |ids: &str| ours.as_ref().is_none_or(|ours| ids_in(ids, ours));
    let mut out = Built {
        read: Read::default(),
        delta,
        other_roles: BTreeMap::new(),
        unknown_classes: 0,
        other_schools: (0, 0),
    };

    // People.
    let students = role(&source.students.select).unwrap_or("student");
    let tutors = source.tutors.as_ref().and_then(|t| role(&t.select));
    if let Some(users) = export.table("users") {
        for row in &users.rows {
            if !ours(users.get(row, "orgSourcedIds")) {
                out.other_schools.0 += 1;
                continue;
            }
            let user_role = users.get(row, "role");
            let list = if user_role == students {
                &mut out.read.students
            } else if Some(user_role) == tutors {
                &mut out.read.tutors
            } else {
                *out.other_roles.entry(user_role.to_owned()).or_default() += 1;
                continue;
            };
            let mut attrs = HashMap::new();
            attributes(users, row, "", &mut attrs);
            list.push(entry(user_dn(users.get(row, "sourcedId")), attrs));
        }
    }

    // Classes.
    let Some(rules) = &source.groups else {
        return Ok(out);
    };
    let (classes_mode, enrollments_mode) = (export.mode("classes"), export.mode("enrollments"));
    if classes_mode == Mode::Absent && enrollments_mode == Mode::Absent {
        return Ok(out);
    }
    let by_id = |table: Option<&'_ Table>| -> HashMap<String, usize> {
        table.map_or_else(HashMap::new, |table| {
            table
                .rows
                .iter()
                .enumerate()
                .map(|(i, row)| (table.get(row, "sourcedId").to_owned(), i))
                .collect()
        })
    };
    let classes = export.table("classes");
    let courses = export.table("courses");
    let class_rows = by_id(classes);
    let course_rows = by_id(courses);
    // What enrollments.csv says of each class's people: who is enrolled now (active, and
    // today within the dates), and who no longer is.
    let enrollments_bulk = enrollments_mode == Mode::Bulk;
    let mut changes: HashMap<String, Changes> = HashMap::new();
    // Classes to write: every class row, and every class whose enrollments changed (in a
    // delta, every held one when enrollments.csv is bulk).
    let mut touched: Vec<String> = Vec::new();
    // Another school's classes, which no enrollment brings in, whatever school it names.
    let mut theirs = HashSet::new();
    if let Some(classes) = classes {
        for row in &classes.rows {
            let id = classes.get(row, "sourcedId");
            if ours(classes.get(row, "schoolSourcedId")) {
                touched.push(id.to_owned());
            } else {
                theirs.insert(id);
            }
        }
        out.other_schools.1 = theirs.len();
    }
    if let Some(enrollments) = export.table("enrollments") {
        for row in &enrollments.rows {
            if !matches!(enrollments.get(row, "role"), "student" | "teacher")
                || !ours(enrollments.get(row, "schoolSourcedId"))
                || theirs.contains(enrollments.get(row, "classSourcedId"))
            {
                continue;
            }
            let class = enrollments.get(row, "classSourcedId");
            let user = enrollments.get(row, "userSourcedId").to_owned();
            let within = |column: &str, on_or_after: bool| {
                export::date(enrollments.get(row, column)).map_or(true, |date| {
                    if on_or_after {
                        today >= date
                    } else {
                        today < date
                    }
                })
            };
            let current =
                !enrollments.deleted(row) && within("beginDate", true) && within("endDate", false);
            let change = changes.entry(class.to_owned()).or_insert_with(|| {
                touched.push(class.to_owned());
                Changes {
                    line: row.line,
                    ..Changes::default()
                }
            });
            if current {
                change.come.insert(user);
            } else {
                change.gone.insert(user);
            }
        }
    }
    if delta && enrollments_bulk {
        let mut all: Vec<&String> = held.groups.keys().collect();
        all.sort();
        touched.extend(all.into_iter().cloned());
    }
    let mut seen = HashSet::new();
    touched.retain(|id| seen.insert(id.clone()));
    let name_attribute = rules.name.as_str();
    let mut groups = Vec::new();
    for id in touched {
        let held_group = held.groups.get(&id);
        let change = changes.get(&id);
        // A delta's class: the people held, less those who left, with those who came (an
        // enrollment ended and another begun for one person keeps them). A bulk
        // enrollments.csv says who is in every class.
        let mut people: BTreeSet<&str> = match held_group {
            Some(group) if delta && !enrollments_bulk => {
                group.members.iter().map(String::as_str).collect()
            }
            _ => BTreeSet::new(),
        };
        if let Some(change) = change {
            for user in &change.gone {
                people.remove(user.as_str());
            }
            people.extend(change.come.iter().map(String::as_str));
        }
        let member: Vec<String> = people.into_iter().map(user_dn).collect();
        let mut attrs = HashMap::new();
        let row = class_rows
            .get(&id)
            .zip(classes)
            .map(|(&index, classes)| (classes, &classes.rows[index]));
        let deleted = row.is_some_and(|(classes, row)| classes.deleted(row));
        match row.filter(|_| !deleted) {
            // A class to be deleted is left out of a full run, which deletes its group; a
            // delta names it for deletion.
            None if deleted => {
                if delta && held_group.is_some() {
                    out.read.deleted_groups.push(id);
                }
                continue;
            }
            Some((classes, row)) => {
                attributes(classes, row, "", &mut attrs);
                let course_id = classes.get(row, "courseSourcedId");
                match (course_rows.get(course_id), courses) {
                    (Some(&course), Some(courses)) => {
                        attributes(courses, &courses.rows[course], "course.", &mut attrs);
                    }
                    // The course is in an earlier export: its courses as held.
                    _ => {
                        if let (Some(attribute), Some(group)) =
                            (&rules.courses_attribute, held_group)
                            && attribute.starts_with("course.")
                        {
                            attrs.insert(attribute.clone(), group.courses.clone());
                        }
                    }
                }
            }
            None => {
                let Some(group) = held_group else {
                    // Neither in this export nor an earlier one (or not a teaching group).
                    out.unknown_classes += 1;
                    continue;
                };
                if let Some(attribute) = &rules.match_on
                    && attribute != name_attribute
                {
                    problems.push(Problem::at(
                        "enrollments.csv",
                        change.map_or(1, |c| c.line),
                        Some("classSourcedId"),
                        format!(
                            "class `{id}` is not in this export's classes.csv, and source \
                             `{}` recognises teaching groups by `{attribute}`, which only its \
                             row has: export the class's row with its enrollments",
                            source.id
                        ),
                    ));
                    continue;
                }
                attrs.insert("sourcedId".into(), vec![id.clone()]);
                attrs.insert("status".into(), vec!["active".into()]);
                attrs.insert(name_attribute.to_owned(), vec![group.name.clone()]);
                if let Some(attribute) = &rules.courses_attribute {
                    attrs.insert(attribute.clone(), group.courses.clone());
                }
            }
        }
        if !member.is_empty() {
            attrs.insert("member".into(), member);
        }
        groups.push(entry(class_dn(&id), attrs));
    }
    if !problems.is_empty() {
        export::sort(&mut problems);
        return Err(problems);
    }
    out.read.groups = Some(groups);
    Ok(out)
}
