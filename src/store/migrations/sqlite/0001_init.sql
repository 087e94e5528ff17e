-- Schools come from the configuration; each start-up upserts them.
CREATE TABLE schools (
    id   TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL
);

-- SCIM bearer tokens. Only the SHA-256 of a token is kept: tokens are 256 random bits, so a
-- fast hash is enough and lets a request find its token with one indexed lookup.
CREATE TABLE tokens (
    id         TEXT PRIMARY KEY NOT NULL,
    school_id  TEXT NOT NULL,
    source     TEXT NOT NULL,
    hash       BLOB NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- A user's SCIM document lives in `data` (JSON, without id, meta, groups or password); the other
-- columns are derived from it on every write, for uniqueness and for indexed filters.
CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    school_id     TEXT NOT NULL,
    source        TEXT NOT NULL,
    user_name     TEXT NOT NULL,
    user_name_key TEXT NOT NULL,
    external_id   TEXT,
    active        INTEGER NOT NULL,
    data          TEXT NOT NULL,
    password_hash TEXT,
    must_change   INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    modified_at   TEXT NOT NULL,
    version       INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_user_name ON users (school_id, user_name_key);
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
    id               TEXT PRIMARY KEY NOT NULL,
    school_id        TEXT NOT NULL,
    source           TEXT NOT NULL,
    display_name     TEXT NOT NULL,
    display_name_key TEXT NOT NULL,
    external_id      TEXT,
    data             TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    modified_at      TEXT NOT NULL,
    version          INTEGER NOT NULL
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
-- Documents never hold a password or its hash.
CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
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
