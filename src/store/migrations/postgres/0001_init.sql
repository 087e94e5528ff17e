-- rollcall's schema on PostgreSQL: the same tables and meanings as migrations/sqlite/0001-0005.
-- Ids, names and timestamps are TEXT as on SQLite (timestamps are RFC 3339 with a fixed
-- six-digit fraction, so text order is time order); documents are JSON text, kept byte for
-- byte, and read as jsonb by filters.

-- Schools come from the configuration; each start-up upserts them.
CREATE TABLE schools (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL
);

-- People who manage one school's accounts: API tokens, and a console password.
CREATE TABLE admins (
    id              TEXT PRIMARY KEY,
    school_id       TEXT NOT NULL,
    user_name       TEXT NOT NULL,
    user_name_key   TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    password_hash   TEXT,
    password_set_at TEXT
);
CREATE UNIQUE INDEX admins_user_name ON admins (school_id, user_name_key);

-- Bearer tokens: only the SHA-256 of a token is kept.
CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    school_id  TEXT NOT NULL,
    source     TEXT NOT NULL,
    hash       BYTEA NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    admin_id   TEXT REFERENCES admins (id)
);

-- A user's SCIM document lives in `data` (JSON, without id, meta, groups or password); the other
-- columns are derived from it on every write, for uniqueness and for indexed filters.
CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    school_id       TEXT NOT NULL,
    source          TEXT NOT NULL,
    user_name       TEXT NOT NULL,
    user_name_key   TEXT NOT NULL,
    external_id     TEXT,
    active          BOOLEAN NOT NULL,
    data            TEXT NOT NULL,
    password_hash   TEXT,
    must_change     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TEXT NOT NULL,
    modified_at     TEXT NOT NULL,
    version         BIGINT NOT NULL,
    password_set_at TEXT
);
CREATE UNIQUE INDEX users_user_name ON users (school_id, user_name_key);
-- Prefix range scans (`user_name_key >= $1 AND < $2`) compare bytes, whatever the collation.
CREATE INDEX users_user_name_prefix ON users (school_id, user_name_key COLLATE "C");
CREATE INDEX users_external_id ON users (school_id, external_id);
CREATE INDEX users_school ON users (school_id, id);

-- Lower-cased e-mail addresses, so `emails[type eq "work"].value eq "…"` is an index lookup.
CREATE TABLE user_emails (
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    school_id TEXT NOT NULL,
    type_key  TEXT,
    value_key TEXT NOT NULL
);
CREATE INDEX user_emails_value ON user_emails (school_id, value_key);
CREATE INDEX user_emails_user ON user_emails (user_id);

CREATE TABLE groups (
    id               TEXT PRIMARY KEY,
    school_id        TEXT NOT NULL,
    source           TEXT NOT NULL,
    display_name     TEXT NOT NULL,
    display_name_key TEXT NOT NULL,
    external_id      TEXT,
    data             TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    modified_at      TEXT NOT NULL,
    version          BIGINT NOT NULL
);
CREATE UNIQUE INDEX groups_display_name ON groups (school_id, display_name_key);
CREATE INDEX groups_external_id ON groups (school_id, external_id);
CREATE INDEX groups_school ON groups (school_id, id);

-- A member is a user or a group of the same school.
CREATE TABLE group_members (
    group_id    TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member_id   TEXT NOT NULL,
    member_type TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member ON group_members (member_id);

-- Every change: who (token and source), what, when, and the resource before and after.
CREATE TABLE audit_events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    school_id     TEXT NOT NULL,
    at            TEXT NOT NULL,
    actor         TEXT NOT NULL,
    source        TEXT NOT NULL,
    request_id    TEXT,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    before        TEXT,
    after         TEXT
);
CREATE INDEX audit_events_resource ON audit_events (school_id, resource_id);

-- Usernames freed by deletions: not given out again until the school's reuse period has passed.
CREATE TABLE retired_user_names (
    school_id     TEXT NOT NULL,
    user_name_key TEXT NOT NULL,
    retired_at    TEXT NOT NULL,
    PRIMARY KEY (school_id, user_name_key)
);
CREATE INDEX retired_user_names_prefix ON retired_user_names (school_id, user_name_key COLLATE "C");

-- First passwords waiting, sealed, until an admin collects them or they expire.
CREATE TABLE pending_slips (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    school_id  TEXT NOT NULL,
    sealed     BYTEA NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX pending_slips_school ON pending_slips (school_id, created_at);
CREATE INDEX pending_slips_expiry ON pending_slips (expires_at);

-- Accounts a directory source disabled because they left it, and since when.
CREATE TABLE sync_leavers (
    user_id   TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    school_id TEXT NOT NULL,
    source    TEXT NOT NULL,
    since     TEXT NOT NULL
);
CREATE INDEX sync_leavers_source ON sync_leavers (school_id, source);

-- A plan the deletion threshold stopped, until an admin approves it or a later run replaces it.
CREATE TABLE sync_held_plans (
    school_id  TEXT NOT NULL,
    source     TEXT NOT NULL,
    plan       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (school_id, source)
);

-- Every run of a source: when, how long, what it did or why it failed.
CREATE TABLE sync_runs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    school_id   TEXT NOT NULL,
    source      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    report      TEXT NOT NULL
);
CREATE INDEX sync_runs_source ON sync_runs (school_id, source, id);

-- Who is running a source now, until when: one run at a time per source, across every instance.
CREATE TABLE sync_leases (
    school_id  TEXT NOT NULL,
    source     TEXT NOT NULL,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (school_id, source)
);

-- What a source last applied of each person's directory entry (location and digest).
CREATE TABLE sync_entries (
    school_id TEXT NOT NULL,
    source    TEXT NOT NULL,
    anchor    TEXT NOT NULL,
    dn_key    TEXT NOT NULL,
    uid_key   TEXT,
    digest    TEXT NOT NULL,
    PRIMARY KEY (school_id, source, anchor)
);

-- How far a source has read, and when its last full run was.
CREATE TABLE sync_cursors (
    school_id TEXT NOT NULL,
    source    TEXT NOT NULL,
    marker    TEXT NOT NULL,
    full_at   TEXT NOT NULL,
    PRIMARY KEY (school_id, source)
);

-- Signed-in browsers (the admin console, a person between a first password and a chosen one).
CREATE TABLE sessions (
    hash       BYTEA PRIMARY KEY,
    kind       TEXT NOT NULL,
    school_id  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
