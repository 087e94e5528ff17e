//! Persistence: the only module that contains SQL.
//!
//! The store keeps SCIM resources as JSON documents plus the columns derived from them that
//! uniqueness and indexed filters need. It knows nothing of HTTP; the SCIM layer hands it
//! validated documents ([`NewRecord`]) and filter ASTs, and gets typed [`Error`]s back.
//!
//! Two backends, the same methods: SQLite ([`sqlite`], one file, the default) and PostgreSQL
//! ([`postgres`], for several instances on one database). [`Store`] is either.

mod backends;
pub mod copy;
mod entitlements;
mod filter_sql;
pub mod outbox;
mod postgres;
mod sqlite;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::scim::filter::{AttrPath, Filter};
use crate::scim::schema::Kind;

pub use backends::Store;
pub use outbox::{Attempt, Outbox, OutboxEvent, OutboxStatus};

/// The highest character, to close a prefix range (`key >= p AND key < p || MAX_CHAR`).
const MAX_CHAR: char = char::MAX;

/// Which school's data a request may touch, and the source acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub school_id: String,
    pub source: String,
}

/// Who made a change, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `token:<id>`, or `cli` for the command line.
    pub name: String,
    pub request_id: Option<String>,
}

/// Who made a change and when: written to the audit log with it.
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    pub actor: &'a Actor,
    pub at: OffsetDateTime,
}

/// A stored user or group.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub source: String,
    /// The SCIM document without `id`, `meta`, `groups`/`members` or a password.
    pub data: Map<String, Value>,
    /// For a group its members; for a user the groups it belongs to directly.
    pub links: Vec<Link>,
    pub created: OffsetDateTime,
    pub last_modified: OffsetDateTime,
    pub version: i64,
}

/// One end of a membership: the other resource's id, type and display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: String,
    pub kind: Kind,
    pub display: Option<String>,
    /// For a user's group: the group's courses as stored (implied modules marked), which the
    /// user's entitlements are derived from; empty otherwise.
    pub courses: Vec<crate::courses::Assigned>,
}

/// What the SCIM layer asks the store to write.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub data: Map<String, Value>,
    pub index: Index,
    /// A group's members by id (`None` for users). The store checks each exists in the school.
    pub members: Option<Vec<String>>,
    /// A new argon2id PHC string; `None` keeps the stored one.
    pub password_hash: Option<String>,
    /// Whether the person must choose a new password at the next log-in (with `password_hash`).
    pub must_change: bool,
    /// A generated first password, sealed, to hold until an admin collects it (users only).
    pub slip: Option<PendingSlip>,
    /// How a new user's `userName` is settled (ignored for groups and replacements).
    pub user_name: UserName,
}

/// How the store settles a new user's `userName`.
#[derive(Debug, Clone, Default)]
pub enum UserName {
    /// `index.name` as it is: the sender owns it (a SCIM client).
    #[default]
    AsGiven,
    /// `index.name` as it is, refused if a deleted account freed it after this time.
    Checked { retired_after: OffsetDateTime },
    /// The first free candidate of `base` (`base`, `base2`, …), skipping names retired after
    /// `retired_after` and reserved ones. Decided under the write lock, so it is race-free.
    Generate {
        base: String,
        max_len: usize,
        reserved: Vec<String>,
        retired_after: OffsetDateTime,
    },
}

/// A sealed first password and when it expires.
#[derive(Debug, Clone)]
pub struct PendingSlip {
    pub sealed: Vec<u8>,
    pub expires: OffsetDateTime,
}

/// A pending slip taken out of the store, with its account.
#[derive(Debug, Clone)]
pub struct TakenSlip {
    pub sealed: Vec<u8>,
    /// The account's document and groups.
    pub user: Record,
}

/// What a log-in checks.
#[derive(Debug, Clone)]
pub struct StoredCredential {
    pub user_id: String,
    pub user_name: String,
    pub password_hash: Option<String>,
    pub must_change: bool,
    pub active: bool,
}

/// The teaching group an import's accounts join.
#[derive(Debug, Clone)]
pub enum ImportGroup {
    None,
    Existing(String),
    New { id: String, record: Box<NewRecord> },
}

/// What one directory sync writes, in one transaction. Every record belongs to the source.
#[derive(Debug, Clone, Default)]
pub struct SyncChanges {
    /// New accounts (their names settled as in a class import).
    pub create_users: Vec<(String, NewRecord)>,
    /// `(id, version read when planning, new document)`.
    pub replace_users: Vec<(String, i64, NewRecord)>,
    pub create_groups: Vec<(String, NewRecord)>,
    pub replace_groups: Vec<(String, i64, NewRecord)>,
    pub delete_groups: Vec<(String, i64)>,
    /// Leavers past the retention period.
    pub delete_users: Vec<(String, i64)>,
    /// Accounts that left the directory now.
    pub left: Vec<String>,
    /// Accounts back in the directory.
    pub returned: Vec<String>,
    /// The people whose entries this run applied: where they live and their digests.
    pub entries: Vec<SyncEntry>,
    /// Anchors whose entries no longer hold (leavers, deleted accounts).
    pub forget_entries: Vec<String>,
    /// The change marker to resume from, and whether this was a full run.
    pub cursor: Option<(String, bool)>,
}

/// A person's directory entry as a source last applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncEntry {
    pub anchor: String,
    /// The normalised DN.
    pub dn: String,
    /// The lower-cased uid, for posixGroup members.
    pub uid: Option<String>,
    /// See [`crate::sync::map::digest`].
    pub digest: String,
}

/// A user a source owns, without its document.
#[derive(Debug, Clone)]
pub struct OwnedUser {
    pub id: String,
    /// The directory anchor (`externalId`).
    pub anchor: Option<String>,
    pub user_name: String,
    pub active: bool,
    pub version: i64,
    /// The digest of its entry as last applied.
    pub digest: Option<String>,
}

/// Changes to a source's DN → anchor map.
#[derive(Debug, Clone, Default)]
pub struct EntryChanges {
    pub upsert: Vec<(String, String)>,
    pub delete: Vec<String>,
}

/// How far a source has read.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub marker: String,
    pub full_at: OffsetDateTime,
}

/// A finished sync run, as `rollcall sync --status` and the admin API show it.
#[derive(Debug, Clone)]
pub struct SyncRun {
    pub source: String,
    pub started: OffsetDateTime,
    pub finished: OffsetDateTime,
    /// `applied`, `held`, `planned` (a dry run) or `failed`.
    pub outcome: String,
    /// JSON: counts, skipped entries, the error.
    pub report: String,
}

/// Columns derived from a document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    /// `userName` for users, `displayName` for groups.
    pub name: String,
    pub external_id: Option<String>,
    pub active: bool,
    /// `(type, value)` of each e-mail address.
    pub emails: Vec<(Option<String>, String)>,
}

/// A list query: filter, order and page.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub filter: Option<Filter>,
    pub sort_by: Option<AttrPath>,
    pub descending: bool,
    /// 0-based offset.
    pub offset: i64,
    pub limit: i64,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub id: String,
    pub school_id: String,
    pub source: String,
    /// For an admin's token, the admin's username; `None` for a SCIM client's.
    pub admin: Option<String>,
    pub created: OffsetDateTime,
    pub revoked: Option<OffsetDateTime>,
}

/// A signed-in browser (the admin console, or a person on the log-in page).
#[derive(Debug, Clone)]
pub struct Session {
    pub kind: SessionKind,
    pub school_id: String,
    /// The admin's id, or the person's user id.
    pub subject: String,
    /// The admin's or person's username, for display and the audit log.
    pub name: String,
    pub created: OffsetDateTime,
    pub expires: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A school admin in the console.
    Admin,
    /// A person who signed in with a first password and must choose a new one.
    Person,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Admin => "admin",
            SessionKind::Person => "person",
        }
    }

    pub fn parse(text: &str) -> Option<SessionKind> {
        match text {
            "admin" => Some(SessionKind::Admin),
            "person" => Some(SessionKind::Person),
            _ => None,
        }
    }
}

/// What a member of staff may do (the table is `roster::access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StaffRole {
    /// Full user management for the school.
    Admin,
    /// Their own teaching groups and those groups' students.
    Tutor,
    /// Sees what an admin sees; changes nothing.
    ReadOnly,
    /// Nothing: the role was taken away (the row stays, since tokens refer to it).
    None,
}

impl StaffRole {
    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::Admin => "admin",
            StaffRole::Tutor => "tutor",
            StaffRole::ReadOnly => "readonly",
            StaffRole::None => "none",
        }
    }

    /// The stored name, or as an admin types it (`read-only` too).
    pub fn parse(text: &str) -> Option<StaffRole> {
        match text.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(StaffRole::Admin),
            "tutor" => Some(StaffRole::Tutor),
            "readonly" | "read-only" => Some(StaffRole::ReadOnly),
            "none" => Some(StaffRole::None),
            _ => None,
        }
    }
}

/// A member of staff: a row of `admins`, with the role that decides what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    pub id: String,
    pub school_id: String,
    pub user_name: String,
    /// The role as granted. [`Staff::effective`] is what counts.
    pub role: StaffRole,
    /// The account they sign in with (a tutor's), if any.
    pub account: Option<String>,
    /// Whether that account exists and is active (true without one).
    pub account_active: bool,
}

/// What a console log-in checks a password against: a member of staff's id and username, and
/// the hash their password must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCredential {
    pub id: String,
    pub user_name: String,
    /// Their account's when they sign in with one, else their console password's; `None` when
    /// there is none, the role is `none` or their account is disabled.
    pub hash: Option<String>,
    /// Their account's password is still a first (or reset) one, not yet replaced by one they
    /// chose: it opens nothing until they have.
    pub must_change: bool,
}

impl Staff {
    /// The role that applies now: none while the account they sign in with is disabled or gone.
    pub fn effective(&self) -> StaffRole {
        if self.account_active {
            self.role
        } else {
            StaffRole::None
        }
    }
}

/// An account that may ask for a forgotten-password link: active, with a password.
#[derive(Debug, Clone)]
pub struct ResetAccount {
    pub user_id: String,
    pub user_name: String,
    /// The SCIM document (its name and email addresses).
    pub data: serde_json::Value,
}

/// A forgotten-password link as stored (found by its token's SHA-256), with its account.
#[derive(Debug, Clone)]
pub struct ResetLink {
    pub user_id: String,
    pub user_name: String,
    pub expires: OffsetDateTime,
    /// Used to set a password, or replaced by a newer link.
    pub used: bool,
    /// The account is active and has a password.
    pub usable_account: bool,
}

/// One line of a resource's history: who did what, when, through which source.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryEntry {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub action: String,
    pub actor: String,
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found")]
    NotFound,
    #[error("{field} `{value}` is already taken")]
    Conflict { field: &'static str, value: String },
    #[error("the resource has changed since version {expected}")]
    VersionMismatch { expected: i64 },
    #[error("owned by source `{0}`")]
    OwnedBy(String),
    #[error("no user or group {0} in this school")]
    UnknownMember(String),
    #[error("userName `{value}` belonged to an account deleted on {retired}")]
    Retired { value: String, retired: String },
    #[error("no free username left for `{0}`")]
    NamesExhausted(String),
    #[error("{0}")]
    InvalidFilter(String),
    #[error("cannot open the store at {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored document {id} is corrupt: {source}")]
    Corrupt {
        id: String,
        source: serde_json::Error,
    },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A store URL fit for messages and logs: any password replaced by `***`.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        _ => url.to_owned(),
    }
}

/// RFC 3339 with a fixed six-digit fraction, so stored timestamps sort as text.
pub fn format_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn a_store_url_is_shown_without_its_password() {
        assert_eq!(
            redacted("postgres://rollcall:hunter2@db.example:5432/rc"),
            "postgres://rollcall:***@db.example:5432/rc"
        );
        assert_eq!(
            redacted("postgres://rollcall@db.example/rc"),
            "postgres://rollcall@db.example/rc"
        );
        assert_eq!(
            redacted("sqlite:///var/lib/rc.db"),
            "sqlite:///var/lib/rc.db"
        );
        assert_eq!(redacted("sqlite::memory:"), "sqlite::memory:");
    }
}
