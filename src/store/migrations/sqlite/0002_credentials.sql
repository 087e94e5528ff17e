-- People who manage one school's accounts through /api/v1. They authenticate with tokens
-- (`tokens.admin_id` set); SCIM tokens have no admin.
CREATE TABLE admins (
    id            TEXT PRIMARY KEY NOT NULL,
    school_id     TEXT NOT NULL,
    user_name     TEXT NOT NULL,
    user_name_key TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX admins_user_name ON admins (school_id, user_name_key);

ALTER TABLE tokens ADD COLUMN admin_id TEXT REFERENCES admins (id);

-- When the stored password was set (must_change is set on every generated one).
ALTER TABLE users ADD COLUMN password_set_at TEXT;

-- Usernames freed by deletions: not given out again until the school's reuse period has passed.
CREATE TABLE retired_user_names (
    school_id     TEXT NOT NULL,
    user_name_key TEXT NOT NULL,
    retired_at    TEXT NOT NULL,
    PRIMARY KEY (school_id, user_name_key)
);

-- First passwords generated outside an admin's request (SCIM pushes, directory syncs), sealed
-- with a key kept outside the store, until an admin collects them (then erased) or they expire.
-- One per account: a newer password replaces the older slip.
CREATE TABLE pending_slips (
    user_id    TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    school_id  TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX pending_slips_school ON pending_slips (school_id, created_at);
CREATE INDEX pending_slips_expiry ON pending_slips (expires_at);
