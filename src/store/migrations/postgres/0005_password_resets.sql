-- Forgotten-password links: one row per link sent. Only the SHA-256 of the link's token is
-- stored (`hash`), never the token. A link works once (`used_at` set in the transaction that
-- sets the new password, or when a newer link replaces it) and until `expires_at`.
CREATE TABLE password_resets (
    hash       BYTEA PRIMARY KEY,
    school_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX password_resets_user ON password_resets (user_id);
CREATE INDEX password_resets_expiry ON password_resets (expires_at);
