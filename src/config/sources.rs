//! `[[schools.sources]]`: the directories a school's people are pulled from, and the rules that
//! map their entries to students, tutors and teaching groups.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

/// A directory a school is synced from.
#[derive(Debug, Clone)]
pub struct Source {
    /// Unique within the school; also the owner recorded on everything the source creates.
    pub id: String,
    pub ldap: Ldap,
    /// How often the daemon runs the sync; `None`: only when asked (`rollcall sync`).
    pub interval: Option<Duration>,
    /// How long a run's lease lasts without renewal: how soon another process (or instance)
    /// may take over the source from a run that died.
    pub lease: Duration,
    /// Read only what changed between full runs; `None`: every run reads everything.
    pub incremental: Option<Incremental>,
    /// Generate first passwords (held as pending slips) for the accounts it creates.
    pub passwords: bool,
    /// Disabled leavers are deleted after this many days.
    pub retention_days: u32,
    /// A run that would disable more than this share of the source's active accounts is held.
    pub max_disable_percent: u32,
    /// … or more than this many.
    pub max_disable_count: u32,
    pub students: People,
    pub tutors: Option<People>,
    pub groups: Option<Groups>,
    pub attributes: Attributes,
}

/// Incremental runs: the entries whose change marker is past the highest one seen last time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incremental {
    /// `entryCSN` (OpenLDAP's change sequence number, which the RFC 4533 sync control is
    /// built on; `modifyTimestamp` works too, at one-second resolution) or `uSNChanged`
    /// (Active Directory).
    pub attribute: String,
    /// A full run (which also finds deletions) when the last one is older than this.
    pub full_every: Duration,
}

impl Incremental {
    /// Whether the marker is a number (`uSNChanged`) rather than a time-based text.
    pub fn numeric(&self) -> bool {
        self.attribute.eq_ignore_ascii_case("uSNChanged")
    }

    /// Whether each change gets a marker of its own, so that a run can resume strictly after
    /// the last one seen (`entryCSN`, `uSNChanged`); `modifyTimestamp` changes once a second.
    pub fn unique(&self) -> bool {
        self.numeric() || self.attribute.eq_ignore_ascii_case("entryCSN")
    }
}

/// Active Directory or OpenLDAP: decides the defaults and how accounts are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    Openldap,
    ActiveDirectory,
}

/// Connecting and binding.
#[derive(Debug, Clone)]
pub struct Ldap {
    /// `ldap://host[:port]` or `ldaps://host[:port]`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub starttls: bool,
    /// PEM certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    pub bind_dn: String,
    pub password: Secret,
    pub dialect: Dialect,
    pub timeout: Duration,
    pub page_size: i32,
}

/// Where a secret comes from; read when it is needed, never kept in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Env(String),
    File(PathBuf),
}

impl Secret {
    /// Reads the secret (a file's trailing newline is not part of it).
    pub fn read(&self) -> Result<zeroize::Zeroizing<String>, String> {
        match self {
            Secret::Env(name) => std::env::var(name)
                .map(zeroize::Zeroizing::new)
                .map_err(|_| format!("environment variable {name} is not set")),
            Secret::File(path) => std::fs::read_to_string(path)
                .map(|text| zeroize::Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned()))
                .map_err(|e| format!("cannot read {}: {e}", path.display())),
        }
    }
}

/// Where students or tutors are found.
#[derive(Debug, Clone)]
pub struct People {
    pub base: String,
    pub filter: String,
    /// The attribute holding a student's year group.
    pub year_group: Option<String>,
}

/// Where groups are found and which are teaching groups.
#[derive(Debug, Clone)]
pub struct Groups {
    pub base: String,
    pub filter: String,
    /// The attribute holding the group's name.
    pub name: String,
    /// Only groups whose name matches are teaching groups (all, when `None`).
    pub teaching: Option<Regex>,
    /// Values are course codes or titles of the school's catalogue.
    pub courses_attribute: Option<String>,
    /// Courses by the group's name.
    pub courses: Vec<CourseRule>,
    /// A member that is a group contributes its members (at any depth).
    pub flatten_nested: bool,
}

/// `pattern` matches a group's name → `courses`, where `{name}` stands for a named capture.
#[derive(Debug, Clone)]
pub struct CourseRule {
    pub pattern: Regex,
    pub courses: Vec<String>,
}

/// Which attribute holds what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// The stable identity of an entry: never reused, kept across renames and moves.
    pub anchor: String,
    pub first_name: String,
    pub surname: String,
    pub email: String,
    pub student_number: Option<String>,
    /// For `posixGroup` members (`memberUid` values).
    pub uid: String,
}

impl Attributes {
    fn defaults(dialect: Dialect) -> Attributes {
        Attributes {
            anchor: match dialect {
                Dialect::Openldap => "employeeNumber",
                Dialect::ActiveDirectory => "objectGUID",
            }
            .into(),
            first_name: "givenName".into(),
            surname: "sn".into(),
            email: "mail".into(),
            student_number: match dialect {
                Dialect::Openldap => None,
                Dialect::ActiveDirectory => Some("employeeID".into()),
            },
            uid: match dialect {
                Dialect::Openldap => "uid",
                Dialect::ActiveDirectory => "sAMAccountName",
            }
            .into(),
        }
    }
}

/// A validation failure: the byte offset it concerns, the key, and the message.
pub(super) type Invalid = (std::ops::Range<usize>, String, String);

// The file model.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SourceFile {
    id: Spanned<String>,
    kind: Spanned<String>,
    url: Spanned<String>,
    #[serde(default)]
    starttls: bool,
    ca_file: Option<PathBuf>,
    bind_dn: String,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    dialect: Option<Dialect>,
    page_size: Option<Spanned<i32>>,
    timeout_secs: Option<u64>,
    interval_minutes: Option<u64>,
    lease_secs: Option<Spanned<u64>>,
    incremental: Option<bool>,
    full_every_hours: Option<Spanned<u64>>,
    change_attribute: Option<String>,
    passwords: Option<bool>,
    retention_days: Option<u32>,
    max_disable_percent: Option<Spanned<u32>>,
    max_disable_count: Option<u32>,
    students: PeopleFile,
    tutors: Option<PeopleFile>,
    groups: Option<Spanned<GroupsFile>>,
    attributes: Option<AttributesFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeopleFile {
    base: String,
    filter: Option<Spanned<String>>,
    year_group: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupsFile {
    base: String,
    filter: Option<Spanned<String>>,
    name: Option<String>,
    teaching: Option<Spanned<String>>,
    courses_attribute: Option<String>,
    #[serde(default)]
    courses: Vec<CourseRuleFile>,
    #[serde(default)]
    flatten_nested: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CourseRuleFile {
    pattern: Spanned<String>,
    courses: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttributesFile {
    anchor: Option<String>,
    first_name: Option<String>,
    surname: Option<String>,
    email: Option<String>,
    student_number: Option<String>,
    uid: Option<String>,
}

/// Validates a school's sources; relative paths are taken from `base`.
pub(super) fn sources(
    files: Vec<SourceFile>,
    base: &Path,
    catalogue: &crate::courses::Catalogue,
) -> Result<Vec<Source>, Invalid> {
    let mut out: Vec<Source> = Vec::new();
    for file in files {
        let id = file.id.get_ref();
        let fail = |span: std::ops::Range<usize>, key: &str, message: String| {
            (span, format!("schools.sources.{key}"), message)
        };
        if !super::is_identifier(id) || id == crate::roster::ADMIN_SOURCE {
            return Err(fail(
                file.id.span(),
                "id",
                format!(
                    "`{id}` cannot name a source: use 1 to 64 lower-case letters, digits, `-` \
                     or `_`, and not `admin`"
                ),
            ));
        }
        if out.iter().any(|known| &known.id == id) {
            return Err(fail(
                file.id.span(),
                "id",
                format!("source `{id}` is declared twice in this school"),
            ));
        }
        if file.kind.get_ref() != "ldap" {
            return Err(fail(
                file.kind.span(),
                "kind",
                format!(
                    "`{}` is not a kind of source: use `ldap`",
                    file.kind.get_ref()
                ),
            ));
        }
        let url = file.url.get_ref();
        let secure = url.starts_with("ldaps://");
        if !secure && !url.starts_with("ldap://") {
            return Err(fail(
                file.url.span(),
                "url",
                format!("`{url}` is not an ldap:// or ldaps:// URL"),
            ));
        }
        if secure && file.starttls {
            return Err(fail(
                file.url.span(),
                "starttls",
                "StartTLS upgrades an ldap:// connection; an ldaps:// one is encrypted already"
                    .into(),
            ));
        }
        let password = match (file.password_env, file.password_file) {
            (Some(name), None) => Secret::Env(name),
            (None, Some(path)) => Secret::File(base.join(path)),
            _ => {
                return Err(fail(
                    file.id.span(),
                    "password_env",
                    format!(
                        "source `{id}` needs exactly one of `password_env` (a variable's name) \
                         or `password_file`: the bind password never goes in this file"
                    ),
                ));
            }
        };
        let page_size = match file.page_size {
            None => 500,
            Some(size) if (1..=5000).contains(size.get_ref()) => size.into_inner(),
            Some(size) => {
                return Err(fail(
                    size.span(),
                    "page_size",
                    format!("{} is not between 1 and 5000", size.get_ref()),
                ));
            }
        };
        let max_disable_percent = match file.max_disable_percent {
            None => 10,
            Some(p) if *p.get_ref() <= 100 => p.into_inner(),
            Some(p) => {
                return Err(fail(
                    p.span(),
                    "max_disable_percent",
                    format!("{} is not a percentage", p.get_ref()),
                ));
            }
        };
        let dialect = file.dialect.unwrap_or(Dialect::Openldap);
        let defaults = Attributes::defaults(dialect);
        let attributes = match file.attributes {
            None => defaults,
            Some(a) => Attributes {
                anchor: a.anchor.unwrap_or(defaults.anchor),
                first_name: a.first_name.unwrap_or(defaults.first_name),
                surname: a.surname.unwrap_or(defaults.surname),
                email: a.email.unwrap_or(defaults.email),
                student_number: a.student_number.or(defaults.student_number),
                uid: a.uid.unwrap_or(defaults.uid),
            },
        };
        let person_filter = match dialect {
            Dialect::Openldap => "(objectClass=inetOrgPerson)",
            Dialect::ActiveDirectory => "(&(objectCategory=person)(objectClass=user))",
        };
        let people = |file: PeopleFile, key: &str| -> Result<People, Invalid> {
            let filter = match file.filter {
                None => person_filter.to_owned(),
                Some(filter) => {
                    check_filter(filter.get_ref())
                        .map_err(|m| fail(filter.span(), &format!("{key}.filter"), m))?;
                    filter.into_inner()
                }
            };
            Ok(People {
                base: file.base,
                filter,
                year_group: file.year_group,
            })
        };
        let students = people(file.students, "students")?;
        let tutors = file.tutors.map(|t| people(t, "tutors")).transpose()?;
        let groups = match file.groups {
            None => None,
            Some(groups) => {
                let span = groups.span();
                let groups = groups.into_inner();
                let filter = match groups.filter {
                    None => match dialect {
                        Dialect::Openldap => {
                            "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))"
                        }
                        Dialect::ActiveDirectory => "(objectClass=group)",
                    }
                    .to_owned(),
                    Some(filter) => {
                        check_filter(filter.get_ref())
                            .map_err(|m| fail(filter.span(), "groups.filter", m))?;
                        filter.into_inner()
                    }
                };
                let teaching = groups
                    .teaching
                    .map(|text| {
                        Regex::new(text.get_ref()).map_err(|e| {
                            fail(
                                text.span(),
                                "groups.teaching",
                                format!("not a pattern: {e}"),
                            )
                        })
                    })
                    .transpose()?;
                let mut rules = Vec::new();
                for rule in groups.courses {
                    let pattern = Regex::new(rule.pattern.get_ref()).map_err(|e| {
                        fail(
                            rule.pattern.span(),
                            "groups.courses.pattern",
                            format!("not a pattern: {e}"),
                        )
                    })?;
                    for course in &rule.courses {
                        check_course_template(&pattern, course, catalogue)
                            .map_err(|m| fail(rule.pattern.span(), "groups.courses.courses", m))?;
                    }
                    rules.push(CourseRule {
                        pattern,
                        courses: rule.courses,
                    });
                }
                if (!rules.is_empty() || groups.courses_attribute.is_some()) && catalogue.is_empty()
                {
                    return Err(fail(
                        span,
                        "groups.courses",
                        "courses need the school's catalogue: add [[schools.courses]]".into(),
                    ));
                }
                Some(Groups {
                    base: groups.base,
                    filter,
                    name: groups.name.unwrap_or_else(|| "cn".into()),
                    teaching,
                    courses_attribute: groups.courses_attribute,
                    courses: rules,
                    flatten_nested: groups.flatten_nested,
                })
            }
        };
        let timeout = Duration::from_secs(file.timeout_secs.unwrap_or(30).max(1));
        let lease = match file.lease_secs {
            None => 120,
            Some(secs) if (5..=3600).contains(secs.get_ref()) => secs.into_inner(),
            Some(secs) => {
                return Err(fail(
                    secs.span(),
                    "lease_secs",
                    format!("{} is not between 5 and 3600", secs.get_ref()),
                ));
            }
        };
        let full_every = match file.full_every_hours {
            None => 24,
            Some(hours) if *hours.get_ref() >= 1 => hours.into_inner(),
            Some(hours) => {
                return Err(fail(
                    hours.span(),
                    "full_every_hours",
                    "a full run at least every hour is the most; use `incremental = false` \
                     to read everything every time"
                        .into(),
                ));
            }
        };
        let incremental = file.incremental.unwrap_or(true).then(|| Incremental {
            attribute: file.change_attribute.unwrap_or_else(|| {
                match dialect {
                    Dialect::Openldap => "entryCSN",
                    Dialect::ActiveDirectory => "uSNChanged",
                }
                .into()
            }),
            full_every: Duration::from_secs(full_every * 3600),
        });
        out.push(Source {
            id: file.id.into_inner(),
            ldap: Ldap {
                url: file.url.into_inner(),
                starttls: file.starttls,
                ca_file: file.ca_file.map(|path| base.join(path)),
                bind_dn: file.bind_dn,
                password,
                dialect,
                timeout,
                page_size,
            },
            interval: file
                .interval_minutes
                .filter(|&m| m > 0)
                .map(|m| Duration::from_secs(m * 60)),
            lease: Duration::from_secs(lease),
            incremental,
            passwords: file.passwords.unwrap_or(true),
            retention_days: file.retention_days.unwrap_or(365),
            max_disable_percent,
            max_disable_count: file.max_disable_count.unwrap_or(50),
            students,
            tutors,
            groups,
            attributes,
        });
    }
    Ok(out)
}

/// An LDAP filter must at least be parenthesised and balanced; the server judges the rest
/// (and `check-config --connect` asks it).
fn check_filter(filter: &str) -> Result<(), String> {
    let mut depth = 0_i32;
    for c in filter.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    if !filter.starts_with('(') || !filter.ends_with(')') || depth != 0 {
        return Err(format!(
            "`{filter}` is not an LDAP filter: it must be enclosed in balanced parentheses"
        ));
    }
    Ok(())
}

/// A course in a rule names a catalogue course, with `{capture}`s the pattern has.
fn check_course_template(
    pattern: &Regex,
    course: &str,
    catalogue: &crate::courses::Catalogue,
) -> Result<(), String> {
    let names: Vec<&str> = pattern.capture_names().flatten().collect();
    let mut rest = course;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("`{course}`: `{{` without `}}`"));
        };
        let name = &rest[open + 1..open + close];
        if !names.contains(&name) {
            return Err(format!(
                "`{course}` uses `{{{name}}}`, which the pattern does not capture (name a \
                 group with `(?<{name}>…)`)"
            ));
        }
        rest = &rest[open + close + 1..];
    }
    if !course.contains('{') && catalogue.expand(&[course.to_owned()]).is_err() {
        return Err(format!(
            "`{course}` is not in the school's course catalogue"
        ));
    }
    Ok(())
}

impl CourseRule {
    /// The courses for a group's name, with captures filled in; `None` when it does not match.
    pub fn courses_for(&self, name: &str) -> Option<Vec<String>> {
        let captures = self.pattern.captures(name)?;
        Some(
            self.courses
                .iter()
                .map(|course| {
                    let mut out = String::new();
                    captures.expand(&course.replace('$', "$$").replace('{', "${"), &mut out);
                    out
                })
                .collect(),
        )
    }
}
