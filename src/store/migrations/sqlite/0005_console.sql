-- The admin console: admins' passwords and browser sessions.

ALTER TABLE admins ADD COLUMN password_hash TEXT;
ALTER TABLE admins ADD COLUMN password_set_at TEXT;

-- A signed-in browser: an admin of a school (`kind` = 'admin', `subject` the admin's id) or a
-- person signing in on the log-in page (`kind` = 'person', `subject` the user's id). Only the
-- SHA-256 of the cookie's token is stored.
CREATE TABLE sessions (
    hash       BLOB PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    school_id  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
