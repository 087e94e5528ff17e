//! Persistence: the only module that contains SQL.
//!
//! The store keeps SCIM resources as JSON documents plus the columns derived from them that
//! uniqueness and indexed filters need. It knows nothing of HTTP; the SCIM layer hands it
//! validated documents ([`NewRecord`]) and filter ASTs, and gets typed [`Error`]s back.
//!
//! Today's backend is SQLite ([`sqlite`]); every query goes through [`Store`], so a second
//! backend slots in behind the same methods.

mod filter_sql;
mod sqlite;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::scim::filter::{AttrPath, Filter};
use crate::scim::schema::Kind;

pub use sqlite::Store;

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
    pub created: OffsetDateTime,
    pub revoked: Option<OffsetDateTime>,
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
