//! `[[schools.sources]]`: the directories a school's people are pulled from (LDAP, Google
//! Workspace, OneRoster CSV), and the rules that map their entries to students, tutors and
//! teaching groups.

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
    pub connection: Connection,
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

/// Where a source's entries come from.
#[derive(Debug, Clone)]
pub enum Connection {
    Ldap(Ldap),
    Google(Google),
    OneRoster(OneRoster),
}

/// Google Workspace's Admin SDK Directory API, as a service account with domain-wide
/// delegation acting for one of the domain's admins.
#[derive(Debug, Clone)]
pub struct Google {
    /// The service account's JSON key (`client_email`, `private_key`, `token_uri`).
    pub key: Secret,
    /// The admin the service account acts for (the assertion's `sub`).
    pub admin: String,
    /// `my_customer` (the admin's own account) or a customer id.
    pub customer: String,
    /// The OAuth 2.0 token endpoint; the key file's `token_uri` when not set.
    pub token_url: Option<String>,
    /// The Directory API's root, `https://admin.googleapis.com` by default.
    pub api_url: String,
    /// `maxResults` for `users.list` (at most 500) and the groups and members lists (at most 200).
    pub page_size: u32,
    /// Each request gives up after this.
    pub timeout: Duration,
    /// A run that has not read everything by then (retries included) gives up, changing nothing.
    pub deadline: Duration,
}

/// A folder of OneRoster 1.1 CSV files (or a zip of them), as a school information system
/// exports it.
#[derive(Debug, Clone)]
pub struct OneRoster {
    pub path: PathBuf,
    /// The `sourcedId` of this school's org in orgs.csv (or of a district: every org under it
    /// too): only its people, classes and enrollments are read. Needed when the export holds
    /// more than one school, as a trust's does.
    pub org: Option<String>,
}

/// Which entries a search reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// Everything under `base` that matches `filter`.
    Ldap { base: String, filter: String },
    /// Google users in this org unit and those below it; for groups, a `groups.list` query
    /// (empty: every group of the customer).
    Google(String),
    /// OneRoster users with this role; for groups, every class.
    OneRoster(String),
}

impl std::fmt::Display for Select {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Select::Ldap { base, .. } => write!(f, "under `{base}`"),
            Select::Google(path) if path.starts_with('/') => write!(f, "in org unit `{path}`"),
            Select::Google(query) if query.is_empty() => write!(f, "of the Google customer"),
            Select::Google(query) => write!(f, "matching `{query}`"),
            Select::OneRoster(role) if role.is_empty() => write!(f, "in classes.csv"),
            Select::OneRoster(role) => write!(f, "with role `{role}` in users.csv"),
        }
    }
}

impl Source {
    /// The LDAP settings, for an LDAP source.
    pub fn ldap(&self) -> Option<&Ldap> {
        match &self.connection {
            Connection::Ldap(ldap) => Some(ldap),
            _ => None,
        }
    }

    /// Where it reads from, for people: a URL, a Google customer, a path.
    pub fn location(&self) -> String {
        match &self.connection {
            Connection::Ldap(ldap) => ldap.url.clone(),
            Connection::Google(google) => {
                format!(
                    "{} ({} as {})",
                    google.api_url, google.customer, google.admin
                )
            }
            Connection::OneRoster(roster) => roster.path.display().to_string(),
        }
    }

    /// `ldap`, `google` or `oneroster`.
    pub fn kind(&self) -> &'static str {
        match &self.connection {
            Connection::Ldap(_) => "ldap",
            Connection::Google(_) => "google",
            Connection::OneRoster(_) => "oneroster",
        }
    }

    /// A OneRoster source with every rule at its default, reading `path`: what `rollcall
    /// import-oneroster` uses for a school that declares none. Built by the same code as a
    /// declared one, so the defaults cannot drift apart.
    pub fn default_oneroster(
        id: &str,
        path: &Path,
        catalogue: &crate::courses::Catalogue,
    ) -> Result<Source, String> {
        let text = format!(
            "id = {}\nkind = \"oneroster\"\npath = {}\n",
            toml::Value::String(id.to_owned()),
            toml::Value::String(path.to_string_lossy().into_owned())
        );
        let file: SourceFile = toml::from_str(&text).map_err(|e| e.to_string())?;
        source(file, Path::new(""), catalogue)
            .map(|(_, source)| source)
            .map_err(|(_, key, message)| format!("{key}: {message}"))
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
    pub select: Select,
    /// The attribute holding a student's year group.
    pub year_group: Option<String>,
    /// Takes the year group out of that attribute's value (`/Students/Year 12` → `12` with
    /// `Year (?<year>\d+)`): the capture named `year`, else the first capture, else the match.
    /// A value it does not match gives no year group.
    pub year_group_pattern: Option<Regex>,
}

impl People {
    /// The year group an attribute's value gives.
    pub fn year_group_of(&self, value: &str) -> String {
        let Some(pattern) = &self.year_group_pattern else {
            return value.to_owned();
        };
        let Some(captures) = pattern.captures(value) else {
            return String::new();
        };
        captures
            .name("year")
            .or_else(|| captures.get(1))
            .or_else(|| captures.get(0))
            .map_or_else(String::new, |m| m.as_str().trim().to_owned())
    }
}

/// Where groups are found and which are teaching groups.
#[derive(Debug, Clone)]
pub struct Groups {
    pub select: Select,
    /// The attribute holding the group's name.
    pub name: String,
    /// The attribute `teaching` and the course rules look at (a Google group's `email`, say);
    /// the name's when `None`.
    pub match_on: Option<String>,
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
    /// The attribute names of a Google user and of a OneRoster users.csv row.
    fn google() -> Attributes {
        Attributes {
            anchor: "id".into(),
            first_name: "name.givenName".into(),
            surname: "name.familyName".into(),
            email: "primaryEmail".into(),
            student_number: Some("externalIds.organization".into()),
            uid: "primaryEmail".into(),
        }
    }

    fn oneroster() -> Attributes {
        Attributes {
            anchor: "sourcedId".into(),
            first_name: "givenName".into(),
            surname: "familyName".into(),
            email: "email".into(),
            student_number: Some("identifier".into()),
            uid: "username".into(),
        }
    }

    fn ldap(dialect: Dialect) -> Attributes {
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
    // ldap
    url: Option<Spanned<String>>,
    starttls: Option<Spanned<bool>>,
    ca_file: Option<Spanned<PathBuf>>,
    bind_dn: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<PathBuf>>,
    dialect: Option<Spanned<Dialect>>,
    incremental: Option<Spanned<bool>>,
    full_every_hours: Option<Spanned<u64>>,
    change_attribute: Option<Spanned<String>>,
    // google
    key_env: Option<Spanned<String>>,
    key_file: Option<Spanned<PathBuf>>,
    admin: Option<Spanned<String>>,
    customer: Option<Spanned<String>>,
    token_url: Option<Spanned<String>>,
    api_url: Option<Spanned<String>>,
    deadline_secs: Option<Spanned<u64>>,
    // oneroster
    path: Option<Spanned<PathBuf>>,
    org: Option<Spanned<String>>,
    // ldap and google
    page_size: Option<Spanned<i32>>,
    timeout_secs: Option<Spanned<u64>>,
    // every kind
    interval_minutes: Option<u64>,
    lease_secs: Option<Spanned<u64>>,
    passwords: Option<bool>,
    retention_days: Option<u32>,
    max_disable_percent: Option<Spanned<u32>>,
    max_disable_count: Option<u32>,
    students: Option<Spanned<PeopleFile>>,
    tutors: Option<Spanned<PeopleFile>>,
    groups: Option<Spanned<GroupsFile>>,
    attributes: Option<AttributesFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PeopleFile {
    base: Option<Spanned<String>>,
    filter: Option<Spanned<String>>,
    org_unit: Option<Spanned<String>>,
    year_group: Option<String>,
    year_group_pattern: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GroupsFile {
    base: Option<Spanned<String>>,
    filter: Option<Spanned<String>>,
    query: Option<Spanned<String>>,
    name: Option<String>,
    match_on: Option<String>,
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum KindName {
    Ldap,
    Google,
    OneRoster,
}

impl KindName {
    fn name(self) -> &'static str {
        match self {
            KindName::Ldap => "ldap",
            KindName::Google => "google",
            KindName::OneRoster => "oneroster",
        }
    }
}

type Span = std::ops::Range<usize>;

/// The span of a key that is present.
fn at<T>(value: &Option<Spanned<T>>) -> Option<Span> {
    value.as_ref().map(Spanned::span)
}

/// Validates a school's sources; relative paths are taken from `base`.
pub(super) fn sources(
    files: Vec<SourceFile>,
    base: &Path,
    catalogue: &crate::courses::Catalogue,
) -> Result<Vec<Source>, Invalid> {
    let mut out: Vec<Source> = Vec::new();
    for file in files {
        let source = source(file, base, catalogue)?;
        if out.iter().any(|known| known.id == source.1.id) {
            return Err((
                source.0,
                "schools.sources.id".into(),
                format!("source `{}` is declared twice in this school", source.1.id),
            ));
        }
        out.push(source.1);
    }
    Ok(out)
}

fn fail(span: Span, key: &str, message: String) -> Invalid {
    (span, format!("schools.sources.{key}"), message)
}

/// One source, with the span of its id.
fn source(
    file: SourceFile,
    base: &Path,
    catalogue: &crate::courses::Catalogue,
) -> Result<(Span, Source), Invalid> {
    let id_span = file.id.span();
    let id = file.id.get_ref();
    if !super::is_identifier(id) || id == crate::roster::ADMIN_SOURCE {
        return Err(fail(
            id_span,
            "id",
            format!(
                "`{id}` cannot name a source: use 1 to 64 lower-case letters, digits, `-` or \
                 `_`, and not `admin`"
            ),
        ));
    }
    let kind = match file.kind.get_ref().as_str() {
        "ldap" => KindName::Ldap,
        "google" => KindName::Google,
        "oneroster" => KindName::OneRoster,
        other => {
            return Err(fail(
                file.kind.span(),
                "kind",
                format!("`{other}` is not a kind of source: use `ldap`, `google` or `oneroster`"),
            ));
        }
    };
    // Keys of another kind are mistakes, not silently ignored settings.
    let foreign = [
        ("url", at(&file.url), KindName::Ldap),
        ("starttls", at(&file.starttls), KindName::Ldap),
        ("ca_file", at(&file.ca_file), KindName::Ldap),
        ("bind_dn", at(&file.bind_dn), KindName::Ldap),
        ("password_env", at(&file.password_env), KindName::Ldap),
        ("password_file", at(&file.password_file), KindName::Ldap),
        ("dialect", at(&file.dialect), KindName::Ldap),
        ("incremental", at(&file.incremental), KindName::Ldap),
        (
            "full_every_hours",
            at(&file.full_every_hours),
            KindName::Ldap,
        ),
        (
            "change_attribute",
            at(&file.change_attribute),
            KindName::Ldap,
        ),
        ("key_env", at(&file.key_env), KindName::Google),
        ("key_file", at(&file.key_file), KindName::Google),
        ("admin", at(&file.admin), KindName::Google),
        ("customer", at(&file.customer), KindName::Google),
        ("token_url", at(&file.token_url), KindName::Google),
        ("api_url", at(&file.api_url), KindName::Google),
        ("deadline_secs", at(&file.deadline_secs), KindName::Google),
        ("path", at(&file.path), KindName::OneRoster),
        ("org", at(&file.org), KindName::OneRoster),
    ];
    for (key, span, owner) in foreign {
        if let Some(span) = span
            && owner != kind
        {
            return Err(fail(
                span,
                key,
                format!(
                    "`{key}` is a setting of `{}` sources; source `{id}` is `{}`",
                    owner.name(),
                    kind.name()
                ),
            ));
        }
    }
    if kind == KindName::OneRoster {
        for (key, span) in [
            ("page_size", at(&file.page_size)),
            ("timeout_secs", at(&file.timeout_secs)),
        ] {
            if let Some(span) = span {
                return Err(fail(
                    span,
                    key,
                    "a OneRoster source reads files; it has no pages or time-outs".into(),
                ));
            }
        }
    }
    let page_size = match &file.page_size {
        None => 500,
        Some(size) => {
            let most = if kind == KindName::Google { 500 } else { 5000 };
            if !(1..=most).contains(size.get_ref()) {
                return Err(fail(
                    size.span(),
                    "page_size",
                    format!("{} is not between 1 and {most}", size.get_ref()),
                ));
            }
            *size.get_ref()
        }
    };
    let timeout = Duration::from_secs(
        file.timeout_secs
            .as_ref()
            .map_or(30, |t| *t.get_ref())
            .max(1),
    );
    let dialect = file
        .dialect
        .as_ref()
        .map_or(Dialect::Openldap, |d| *d.get_ref());
    let (connection, mut attributes) = match kind {
        KindName::Ldap => (
            Connection::Ldap(ldap(
                &file,
                id,
                id_span.clone(),
                base,
                dialect,
                timeout,
                page_size,
            )?),
            Attributes::ldap(dialect),
        ),
        KindName::Google => (
            Connection::Google(google(
                &file,
                id,
                id_span.clone(),
                base,
                timeout,
                page_size,
            )?),
            Attributes::google(),
        ),
        KindName::OneRoster => {
            let Some(path) = &file.path else {
                return Err(fail(
                    id_span,
                    "path",
                    format!(
                        "source `{id}` needs `path`: the folder (or zip file) of its OneRoster \
                         CSV files"
                    ),
                ));
            };
            let org = match &file.org {
                Some(org) if org.get_ref().trim().is_empty() => {
                    return Err(fail(
                        org.span(),
                        "org",
                        "is empty: give the sourcedId of this school's org in orgs.csv".into(),
                    ));
                }
                org => org.as_ref().map(|org| org.get_ref().trim().to_owned()),
            };
            (
                Connection::OneRoster(OneRoster {
                    path: base.join(path.get_ref()),
                    org,
                }),
                Attributes::oneroster(),
            )
        }
    };
    let incremental = match kind {
        KindName::Ldap => incremental(&file, dialect)?,
        _ => None,
    };
    if let Some(a) = file.attributes {
        attributes = Attributes {
            anchor: a.anchor.unwrap_or(attributes.anchor),
            first_name: a.first_name.unwrap_or(attributes.first_name),
            surname: a.surname.unwrap_or(attributes.surname),
            email: a.email.unwrap_or(attributes.email),
            student_number: a.student_number.or(attributes.student_number),
            uid: a.uid.unwrap_or(attributes.uid),
        };
    }
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
    let students = match (file.students, kind) {
        (Some(students), _) => people(students, "students", kind, dialect)?,
        // OneRoster marks its students by role.
        (None, KindName::OneRoster) => people(
            Spanned::new(id_span.clone(), PeopleFile::default()),
            "students",
            kind,
            dialect,
        )?,
        (None, _) => {
            return Err(fail(
                id_span,
                "students",
                format!("source `{id}` needs [schools.sources.students]: where its students are"),
            ));
        }
    };
    let tutors = match (file.tutors, kind) {
        (Some(tutors), _) => Some(people(tutors, "tutors", kind, dialect)?),
        (None, KindName::OneRoster) => Some(people(
            Spanned::new(id_span.clone(), PeopleFile::default()),
            "tutors",
            kind,
            dialect,
        )?),
        (None, _) => None,
    };
    let groups = match (file.groups, kind) {
        (Some(groups), _) => Some(groups_rules(groups, kind, dialect, catalogue)?),
        // A roster's classes are its teaching groups.
        (None, KindName::OneRoster) => Some(groups_rules(
            Spanned::new(id_span.clone(), GroupsFile::default()),
            kind,
            dialect,
            catalogue,
        )?),
        (None, _) => None,
    };
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
    Ok((
        id_span,
        Source {
            id: file.id.into_inner(),
            connection,
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
        },
    ))
}

fn ldap(
    file: &SourceFile,
    id: &str,
    id_span: Span,
    base: &Path,
    dialect: Dialect,
    timeout: Duration,
    page_size: i32,
) -> Result<Ldap, Invalid> {
    let (Some(url), Some(bind_dn)) = (&file.url, &file.bind_dn) else {
        return Err(fail(
            id_span,
            if file.url.is_none() { "url" } else { "bind_dn" },
            format!("source `{id}` needs `url` and `bind_dn`: where and as whom to bind"),
        ));
    };
    let secure = url.get_ref().starts_with("ldaps://");
    if !secure && !url.get_ref().starts_with("ldap://") {
        return Err(fail(
            url.span(),
            "url",
            format!("`{}` is not an ldap:// or ldaps:// URL", url.get_ref()),
        ));
    }
    let starttls = file.starttls.as_ref().is_some_and(|s| *s.get_ref());
    if secure && starttls {
        return Err(fail(
            url.span(),
            "starttls",
            "StartTLS upgrades an ldap:// connection; an ldaps:// one is encrypted already".into(),
        ));
    }
    let password = secret(
        &file.password_env,
        &file.password_file,
        base,
        (id, id_span, "password_env"),
        "`password_env` (a variable's name) or `password_file`: the bind password never goes \
         in this file",
    )?;
    Ok(Ldap {
        url: url.get_ref().clone(),
        starttls,
        ca_file: file.ca_file.as_ref().map(|path| base.join(path.get_ref())),
        bind_dn: bind_dn.get_ref().clone(),
        password,
        dialect,
        timeout,
        page_size,
    })
}

/// Exactly one of an environment variable's name and a file.
fn secret(
    env: &Option<Spanned<String>>,
    file: &Option<Spanned<PathBuf>>,
    base: &Path,
    (id, id_span, key): (&str, Span, &str),
    what: &str,
) -> Result<Secret, Invalid> {
    match (env, file) {
        (Some(name), None) => Ok(Secret::Env(name.get_ref().clone())),
        (None, Some(path)) => Ok(Secret::File(base.join(path.get_ref()))),
        _ => Err(fail(
            id_span,
            key,
            format!("source `{id}` needs exactly one of {what}"),
        )),
    }
}

fn google(
    file: &SourceFile,
    id: &str,
    id_span: Span,
    base: &Path,
    timeout: Duration,
    page_size: i32,
) -> Result<Google, Invalid> {
    let key = secret(
        &file.key_env,
        &file.key_file,
        base,
        (id, id_span.clone(), "key_file"),
        "`key_file` (the service account's JSON key) or `key_env` (a variable holding it): the \
         key never goes in this file",
    )?;
    let Some(admin) = &file.admin else {
        return Err(fail(
            id_span,
            "admin",
            format!(
                "source `{id}` needs `admin`: the address of a Workspace admin the service \
                 account acts for (domain-wide delegation)"
            ),
        ));
    };
    if !admin.get_ref().contains('@') {
        return Err(fail(
            admin.span(),
            "admin",
            format!("`{}` is not an e-mail address", admin.get_ref()),
        ));
    }
    let http_url =
        |value: &Option<Spanned<String>>, key: &str| -> Result<Option<String>, Invalid> {
            match value {
                None => Ok(None),
                Some(url) => {
                    let text = url.get_ref().trim_end_matches('/');
                    if text.starts_with("https://") || text.starts_with("http://") {
                        Ok(Some(text.to_owned()))
                    } else {
                        Err(fail(
                            url.span(),
                            key,
                            format!("`{}` is not an http:// or https:// URL", url.get_ref()),
                        ))
                    }
                }
            }
        };
    let deadline = match &file.deadline_secs {
        None => 900,
        Some(secs) if (10..=86_400).contains(secs.get_ref()) => *secs.get_ref(),
        Some(secs) => {
            return Err(fail(
                secs.span(),
                "deadline_secs",
                format!("{} is not between 10 and 86400", secs.get_ref()),
            ));
        }
    };
    Ok(Google {
        key,
        admin: admin.get_ref().clone(),
        customer: file
            .customer
            .as_ref()
            .map_or_else(|| "my_customer".to_owned(), |c| c.get_ref().clone()),
        token_url: http_url(&file.token_url, "token_url")?,
        api_url: http_url(&file.api_url, "api_url")?
            .unwrap_or_else(|| "https://admin.googleapis.com".to_owned()),
        page_size: u32::try_from(page_size).unwrap_or(500),
        timeout,
        deadline: Duration::from_secs(deadline),
    })
}

fn incremental(file: &SourceFile, dialect: Dialect) -> Result<Option<Incremental>, Invalid> {
    let full_every = match &file.full_every_hours {
        None => 24,
        Some(hours) if *hours.get_ref() >= 1 => *hours.get_ref(),
        Some(hours) => {
            return Err(fail(
                hours.span(),
                "full_every_hours",
                "a full run at least every hour is the most; use `incremental = false` to read \
                 everything every time"
                    .into(),
            ));
        }
    };
    let on = file.incremental.as_ref().is_none_or(|i| *i.get_ref());
    Ok(on.then(|| Incremental {
        attribute: file.change_attribute.as_ref().map_or_else(
            || {
                match dialect {
                    Dialect::Openldap => "entryCSN",
                    Dialect::ActiveDirectory => "uSNChanged",
                }
                .into()
            },
            |a| a.get_ref().clone(),
        ),
        full_every: Duration::from_secs(full_every * 3600),
    }))
}

fn pattern(text: &Spanned<String>, key: &str) -> Result<Regex, Invalid> {
    Regex::new(text.get_ref()).map_err(|e| fail(text.span(), key, format!("not a pattern: {e}")))
}

fn people(
    file: Spanned<PeopleFile>,
    key: &str,
    kind: KindName,
    dialect: Dialect,
) -> Result<People, Invalid> {
    let span = file.span();
    let file = file.into_inner();
    let not_here = |value: Option<Span>, name: &str, instead: &str| match value {
        Some(span) => Err(fail(
            span,
            &format!("{key}.{name}"),
            format!(
                "a `{}` source does not use `{name}`: {instead}",
                kind.name()
            ),
        )),
        None => Ok(()),
    };
    let select = match kind {
        KindName::Ldap => {
            not_here(at(&file.org_unit), "org_unit", "use `base` and `filter`")?;
            let Some(base) = file.base else {
                return Err(fail(
                    span,
                    &format!("{key}.base"),
                    format!("[schools.sources.{key}] needs `base`: the DN to search under"),
                ));
            };
            let filter = match file.filter {
                None => match dialect {
                    Dialect::Openldap => "(objectClass=inetOrgPerson)",
                    Dialect::ActiveDirectory => "(&(objectCategory=person)(objectClass=user))",
                }
                .to_owned(),
                Some(filter) => {
                    check_filter(filter.get_ref())
                        .map_err(|m| fail(filter.span(), &format!("{key}.filter"), m))?;
                    filter.into_inner()
                }
            };
            Select::Ldap {
                base: base.into_inner(),
                filter,
            }
        }
        KindName::Google => {
            not_here(at(&file.base), "base", "use `org_unit`")?;
            not_here(at(&file.filter), "filter", "use `org_unit`")?;
            let Some(unit) = file.org_unit else {
                return Err(fail(
                    span,
                    &format!("{key}.org_unit"),
                    format!(
                        "[schools.sources.{key}] needs `org_unit`: the org unit path (such as \
                         `/Students`) holding them"
                    ),
                ));
            };
            if !unit.get_ref().starts_with('/') {
                return Err(fail(
                    unit.span(),
                    &format!("{key}.org_unit"),
                    format!(
                        "`{}` is not an org unit path: it starts with `/`",
                        unit.get_ref()
                    ),
                ));
            }
            Select::Google(unit.into_inner())
        }
        KindName::OneRoster => {
            let instead = "people are chosen by their role in users.csv";
            not_here(at(&file.base), "base", instead)?;
            not_here(at(&file.filter), "filter", instead)?;
            not_here(at(&file.org_unit), "org_unit", instead)?;
            Select::OneRoster(
                if key == "tutors" {
                    "teacher"
                } else {
                    "student"
                }
                .into(),
            )
        }
    };
    let year_group_pattern = file
        .year_group_pattern
        .as_ref()
        .map(|text| pattern(text, &format!("{key}.year_group_pattern")))
        .transpose()?;
    let year_group = file.year_group.or_else(|| match kind {
        KindName::OneRoster => Some("grades".into()),
        _ => None,
    });
    if year_group_pattern.is_some() && year_group.is_none() {
        return Err(fail(
            span,
            &format!("{key}.year_group_pattern"),
            "`year_group_pattern` reads the `year_group` attribute: set that too".into(),
        ));
    }
    Ok(People {
        select,
        year_group,
        year_group_pattern,
    })
}

fn groups_rules(
    file: Spanned<GroupsFile>,
    kind: KindName,
    dialect: Dialect,
    catalogue: &crate::courses::Catalogue,
) -> Result<Groups, Invalid> {
    let span = file.span();
    let groups = file.into_inner();
    let not_here = |value: Option<Span>, name: &str| match value {
        Some(span) => Err(fail(
            span,
            &format!("groups.{name}"),
            format!("a `{}` source does not use `groups.{name}`", kind.name()),
        )),
        None => Ok(()),
    };
    let select = match kind {
        KindName::Ldap => {
            not_here(at(&groups.query), "query")?;
            let Some(base) = groups.base else {
                return Err(fail(
                    span,
                    "groups.base",
                    "[schools.sources.groups] needs `base`: the DN to search under".into(),
                ));
            };
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
            Select::Ldap {
                base: base.into_inner(),
                filter,
            }
        }
        KindName::Google => {
            not_here(at(&groups.base), "base")?;
            not_here(at(&groups.filter), "filter")?;
            Select::Google(groups.query.map(Spanned::into_inner).unwrap_or_default())
        }
        KindName::OneRoster => {
            not_here(at(&groups.base), "base")?;
            not_here(at(&groups.filter), "filter")?;
            not_here(at(&groups.query), "query")?;
            Select::OneRoster(String::new())
        }
    };
    let teaching = groups
        .teaching
        .as_ref()
        .map(|text| pattern(text, "groups.teaching"))
        .transpose()?;
    let mut rules = Vec::new();
    for rule in groups.courses {
        let compiled = pattern(&rule.pattern, "groups.courses.pattern")?;
        for course in &rule.courses {
            check_course_template(&compiled, course, catalogue)
                .map_err(|m| fail(rule.pattern.span(), "groups.courses.courses", m))?;
        }
        rules.push(CourseRule {
            pattern: compiled,
            courses: rule.courses,
        });
    }
    if (!rules.is_empty() || groups.courses_attribute.is_some()) && catalogue.is_empty() {
        return Err(fail(
            span,
            "groups.courses",
            "courses need the school's catalogue: add [[schools.courses]]".into(),
        ));
    }
    let name = groups.name.unwrap_or_else(|| {
        match kind {
            KindName::Ldap => "cn",
            KindName::Google => "name",
            KindName::OneRoster => "title",
        }
        .into()
    });
    Ok(Groups {
        select,
        name,
        match_on: groups.match_on,
        teaching,
        courses_attribute: groups.courses_attribute,
        courses: rules,
        flatten_nested: groups.flatten_nested,
    })
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
