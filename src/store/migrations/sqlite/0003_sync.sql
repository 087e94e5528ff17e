-- Accounts a directory source disabled because they left it, and since when: deleted once the
-- source's retention period has passed, forgotten when they come back.
CREATE TABLE sync_leavers (
    user_id   TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    school_id TEXT NOT NULL,
    source    TEXT NOT NULL,
    since     TEXT NOT NULL
);
CREATE INDEX sync_leavers_source ON sync_leavers (school_id, source);

-- A plan the deletion threshold stopped, until an admin approves it or a later run replaces it.
-- `plan` is its JSON summary, with the ids of the accounts it would disable.
CREATE TABLE sync_held_plans (
    school_id  TEXT NOT NULL,
    source     TEXT NOT NULL,
    plan       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (school_id, source)
);

-- Every run of a source: when, how long, what it did or why it failed.
CREATE TABLE sync_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    school_id   TEXT NOT NULL,
    source      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    report      TEXT NOT NULL
);
CREATE INDEX sync_runs_source ON sync_runs (school_id, source, id);

-- Who is running a source now, until when: one run at a time per source, whichever process
-- (the daemon's schedule or `rollcall sync`) starts it. An expired lease may be taken over.
CREATE TABLE sync_leases (
    school_id  TEXT NOT NULL,
    source     TEXT NOT NULL,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (school_id, source)
);
