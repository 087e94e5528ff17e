//! The store the rest of rollcall sees: one type over the backends, chosen by the store URL
//! (`sqlite://…` or `postgres://…`). Each method is the backend's own, with the same
//! meaning on both; `tests/it` runs against each (see ARCHITECTURE.md).

use time::OffsetDateTime;

use super::{
    Attempt, Cursor, HistoryEntry, ImportGroup, NewRecord, OutboxEvent, OutboxStatus, OwnedUser,
    PendingSlip, Query, Record, Result, Scope, Session, Stamp, StoredCredential, SyncChanges,
    SyncRun, TakenSlip, Token,
};
use super::{postgres, sqlite};
use crate::scim::schema::{Kind, Registry};

#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(sqlite::Store),
    Postgres(postgres::Store),
}

impl Store {
    /// Opens the store at `url` (creating a SQLite file if needed) and brings its schema up to
    /// date. Several processes may open one PostgreSQL database at once: its migrations run
    /// under an advisory lock, one process after the other.
    pub async fn open(url: &str) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(postgres::Store::open(url).await?))
        } else {
            Ok(Store::Sqlite(sqlite::Store::open(url).await?))
        }
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite(store) => store.close().await,
            Store::Postgres(store) => store.close().await,
        }
    }

    /// Sets the webhooks whose events every later write of this store (and of its clones made
    /// afterwards) adds to the outbox, in the write's transaction. Set once, at open.
    pub fn set_outbox(&mut self, outbox: super::Outbox) {
        match self {
            Store::Sqlite(store) => store.set_outbox(outbox),
            Store::Postgres(store) => store.set_outbox(outbox),
        }
    }

    pub fn outbox(&self) -> &super::Outbox {
        match self {
            Store::Sqlite(store) => store.outbox(),
            Store::Postgres(store) => store.outbox(),
        }
    }
}

/// Each method, passed on to the backend.
macro_rules! delegate {
    ($( $(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        impl Store {
            $(
                $(#[$meta])*
                #[allow(clippy::too_many_arguments)]
                pub async fn $name(&self, $($arg: $ty),*) -> $ret {
                    match self {
                        Store::Sqlite(store) => store.$name($($arg),*).await,
                        Store::Postgres(store) => store.$name($($arg),*).await,
                    }
                }
            )*
        }
    };
}

delegate! {
    fn ping() -> Result<()>;
    /// Makes the stored schools match the configuration's names.
    fn upsert_schools(schools: &[crate::config::School]) -> Result<()>;
    fn insert_token(token: &Token, hash: &[u8]) -> Result<()>;
    /// The live (not revoked) token with this hash.
    fn token_by_hash(hash: &[u8]) -> Result<Option<Token>>;
    fn list_tokens(school_id: Option<&str>) -> Result<Vec<Token>>;
    /// Revokes a token; revoking twice is harmless. Unknown ids are `NotFound`.
    fn revoke_token(id: &str, at: OffsetDateTime) -> Result<()>;
    fn get(scope: &Scope, kind: Kind, id: &str) -> Result<Record>;
    /// One page of a filtered, sorted list, and the total number of matches.
    fn list(scope: &Scope, kind: Kind, registry: &Registry, query: &Query, with_links: bool) -> Result<(i64, Vec<Record>)>;
    fn insert(scope: &Scope, kind: Kind, id: &str, new: &NewRecord, stamp: Stamp<'_>) -> Result<Record>;
    /// Replaces a resource's document. `expected_version`, when given, guards against lost
    /// updates: the write happens only if the stored version still equals it.
    fn replace(scope: &Scope, kind: Kind, id: &str, expected_version: Option<i64>, new: &NewRecord, stamp: Stamp<'_>) -> Result<Record>;
    /// Replaces several resources of one kind in one transaction, each only if its stored
    /// version still equals the one given: all of them, or none.
    fn replace_all(scope: &Scope, kind: Kind, changes: &[(String, i64, NewRecord)], stamp: Stamp<'_>) -> Result<()>;
    fn delete(scope: &Scope, kind: Kind, id: &str, expected_version: Option<i64>, stamp: Stamp<'_>) -> Result<()>;
    /// Audit events for one resource, oldest first: `(action, actor, source, before, after)`.
    fn audit_trail(school_id: &str, resource_id: &str) -> Result<Vec<(String, String, String, Option<String>, Option<String>)>>;
    /// Records an admin of a school. A second admin with the same name is a `Conflict`.
    fn insert_admin(school_id: &str, id: &str, user_name: &str, at: OffsetDateTime) -> Result<()>;
    fn admin_exists(school_id: &str, user_name: &str) -> Result<bool>;
    /// The credential of the account with this username, if there is one.
    fn credential(school_id: &str, user_name: &str) -> Result<Option<StoredCredential>>;
    /// Sets an account's password, if its hash is still `expected_hash` (so two changes racing
    /// from the same old password cannot both win). Erases any pending slip, whose password no
    /// longer works, and holds `slip` instead when given (a reset by an admin). Audited without
    /// the secret.
    fn set_password(scope: &Scope, user_id: &str, expected_hash: Option<&str>, hash: &str, must_change: bool, slip: Option<&PendingSlip>, stamp: Stamp<'_>) -> Result<()>;
    /// Writes a class import in one transaction: the group (when new), every new account with
    /// its credential, and the group's new members (new accounts, and existing ones named in
    /// `existing_members`). Returns the `userName` each new account got, in order.
    fn import(scope: &Scope, group: &ImportGroup, accounts: &[(String, NewRecord)], existing_members: &[String], stamp: Stamp<'_>) -> Result<Vec<String>>;
    /// Takes a school's pending slips (of one group's members, when given) out of the store:
    /// they are erased in the same transaction, so each is handed out once. Expired slips are
    /// erased, not returned.
    fn take_slips(school_id: &str, group_id: Option<&str>, now: OffsetDateTime) -> Result<Vec<TakenSlip>>;
    /// How many slips a school holds (of one group's members, when given), not yet expired.
    fn count_slips(school_id: &str, group_id: Option<&str>, now: OffsetDateTime) -> Result<i64>;
    /// Usernames freed by deletions after `after`: not to be given out yet.
    fn retired_names(school_id: &str, after: OffsetDateTime) -> Result<Vec<String>>;
    /// Erases every expired slip; returns how many.
    fn purge_expired_slips(now: OffsetDateTime) -> Result<u64>;
    /// The school's active accounts with a password whose username, or one of whose email
    /// addresses, is `name_or_email` (any case).
    fn reset_accounts(school_id: &str, name_or_email: &str) -> Result<Vec<super::ResetAccount>>;
    /// Records a forgotten-password link (its token's SHA-256) for an account, replacing its
    /// unused ones, with its `password_reset.requested` audit event, in one transaction.
    fn insert_reset(school_id: &str, user_id: &str, hash: &[u8], expires: OffsetDateTime, stamp: Stamp<'_>) -> Result<()>;
    /// The school's link with this token hash, used or not, expired or not.
    fn reset_link(school_id: &str, hash: &[u8]) -> Result<Option<super::ResetLink>>;
    /// Uses a link and sets the account's new password in one transaction (the link and the
    /// account's other links marked used, `must_change` off, the pending slip erased, the
    /// sessions signed in with the old password ended, audited); `None`, changing nothing, when the link is not
    /// this school's, used, expired, or its account disabled.
    fn complete_reset(school_id: &str, hash: &[u8], password_hash: &str, stamp: Stamp<'_>) -> Result<Option<String>>;
    /// Erases every expired forgotten-password link; returns how many.
    fn purge_expired_resets(now: OffsetDateTime) -> Result<u64>;
    /// A group of the school by id or, failing that, by display name (any case).
    fn find_group(scope: &Scope, id_or_name: &str) -> Result<Record>;
    /// Sets an admin's console password (an argon2id PHC string). `NotFound` if no such admin.
    fn set_admin_password(school_id: &str, user_name: &str, hash: &str, at: OffsetDateTime) -> Result<()>;
    /// What a member of staff's console password is checked against.
    fn admin_credential(school_id: &str, user_name: &str) -> Result<Option<super::AdminCredential>>;
    /// Writes an audit event that records no change: who tried what on which resource (a
    /// refused action, a step of a password reset).
    fn record_event(school_id: &str, actor: &super::Actor, action: &str, resource_type: &str, resource_id: &str, at: OffsetDateTime) -> Result<()>;
    /// The member of staff with this username (any case), if any.
    fn staff_named(school_id: &str, user_name: &str) -> Result<Option<super::Staff>>;
    /// The school's staff, by username.
    fn list_staff(school_id: &str) -> Result<Vec<super::Staff>>;
    /// Gives a role to a member of staff, or makes one who signs in with `account` (an account
    /// id of the school, whose username is `user_name`). Audited. `NotFound` when there is no
    /// such member of staff and no account; `Conflict` when the name is another's.
    fn grant_role(school_id: &str, user_name: &str, account: Option<&str>, role: super::StaffRole, new_id: &str, actor: &super::Actor, at: OffsetDateTime) -> Result<super::Staff>;
    /// Records a session under the SHA-256 of its token.
    fn insert_session(hash: &[u8], session: &Session) -> Result<()>;
    /// The live session with this token hash, if any.
    fn session(hash: &[u8], now: OffsetDateTime) -> Result<Option<Session>>;
    /// Ends a session (and any expired ones on the way).
    fn delete_session(hash: &[u8], now: OffsetDateTime) -> Result<()>;
    /// How many failed log-ins `key` has had after `since`, and the oldest one's time.
    fn recent_failures(key: &[u8], since: OffsetDateTime) -> Result<(i64, Option<OffsetDateTime>)>;
    /// Records a failed log-in against each key, forgetting those from before `forget`.
    fn record_failure(keys: &[&[u8]], at: OffsetDateTime, forget: OffsetDateTime) -> Result<()>;
    /// Forgets a key's failed log-ins.
    fn clear_failures(key: &[u8]) -> Result<()>;
    /// The newest `limit` audit events of one resource, newest first, without documents.
    fn history(school_id: &str, resource_id: &str, limit: i64) -> Result<Vec<HistoryEntry>>;
    /// Every user or group the scope's source owns, active or not: groups with their members,
    /// users without their groups (a sync compares memberships from the groups' side).
    fn owned(scope: &Scope, kind: Kind) -> Result<Vec<Record>>;
    /// Every user the scope's source owns, active or not, without its document but with its
    /// entry's digest. One row of JSON: a school's accounts cost one round trip, not one each.
    fn owned_users(scope: &Scope) -> Result<Vec<OwnedUser>>;
    /// How many active accounts with this role (`student`, `tutor`) the source owns.
    fn count_active(scope: &Scope, role: &str) -> Result<i64>;
    /// The source's users with these ids, with their documents (not their groups).
    fn owned_users_by_id(scope: &Scope, ids: &[&str]) -> Result<Vec<Record>>;
    /// The names (lower-cased) of the school's groups that another source owns.
    fn group_names_of_others(scope: &Scope) -> Result<Vec<String>>;
    /// The source's leavers: user id → when they left.
    fn leavers(scope: &Scope) -> Result<Vec<(String, OffsetDateTime)>>;
    /// Writes a sync's changes in one transaction, each with its audit event; returns the
    /// usernames the new accounts got, in order. A record changed since it was planned fails
    /// the whole write (`VersionMismatch`).
    fn apply_sync(scope: &Scope, changes: &SyncChanges, stamp: Stamp<'_>) -> Result<Vec<String>>;
    /// Where the source's people were last seen: normalised DN → anchor, and `uid:<uid>` →
    /// anchor. One row of JSON, like [`Store::owned_users`].
    fn entry_locations(scope: &Scope) -> Result<Vec<(String, String)>>;
    /// Where the source's last run stopped reading.
    fn cursor(scope: &Scope) -> Result<Option<Cursor>>;
    /// Keeps a plan the threshold stopped (replacing an older one).
    fn hold_plan(scope: &Scope, plan: &str, at: OffsetDateTime) -> Result<()>;
    /// The held plan of a source and when it was held.
    fn held_plan(scope: &Scope) -> Result<Option<(String, OffsetDateTime)>>;
    fn clear_held_plan(scope: &Scope) -> Result<()>;
    /// Records a finished run; the last 100 of each source are kept.
    fn record_run(school_id: &str, run: &SyncRun) -> Result<()>;
    /// A source's most recent runs, newest first.
    fn runs(school_id: &str, source: &str, limit: i64) -> Result<Vec<SyncRun>>;
    /// Takes the source's lease for `holder` until `until`, if nobody holds an unexpired one.
    fn take_lease(scope: &Scope, holder: &str, now: OffsetDateTime, until: OffsetDateTime) -> Result<bool>;
    /// Gives the lease back (only if `holder` still has it).
    fn release_lease(scope: &Scope, holder: &str) -> Result<()>;
    /// Up to `limit` pending events of a webhook due at `now`, oldest first, each the earliest
    /// undelivered event of its subject (so at most one per subject).
    fn due_events(webhook: &str, now: OffsetDateTime, limit: i64) -> Result<Vec<OutboxEvent>>;
    /// Records what became of an attempt to deliver event `seq`.
    fn record_attempt(seq: i64, attempt: &Attempt, now: OffsetDateTime) -> Result<()>;
    /// Takes (or renews) a webhook's delivery lease for `holder` until `until`, unless another
    /// holder's has not expired.
    fn take_webhook_lease(webhook: &str, holder: &str, now: OffsetDateTime, until: OffsetDateTime) -> Result<bool>;
    /// Gives a webhook's lease back (only if `holder` still has it).
    fn release_webhook_lease(webhook: &str, holder: &str) -> Result<()>;
    /// Erases events delivered before `before`; returns how many.
    fn prune_delivered(before: OffsetDateTime) -> Result<u64>;
    /// Each webhook with events in the outbox, with events delivered since `since` counted.
    fn outbox_status(since: OffsetDateTime) -> Result<Vec<OutboxStatus>>;
    /// The events left `failed` (of one webhook, when given), oldest first.
    fn failed_events(webhook: Option<&str>) -> Result<Vec<OutboxEvent>>;
    /// Queues failed events again (of one webhook, one event id, when given), due at `now`.
    fn replay_events(webhook: Option<&str>, event_id: Option<&str>, now: OffsetDateTime) -> Result<u64>;
}
