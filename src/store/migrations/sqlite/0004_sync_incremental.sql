-- Where each person a source read lives in the directory (normalised DN → anchor), so that an
-- incremental run, which reads only what changed, can still resolve a changed group's members.
CREATE TABLE sync_entries (
    school_id TEXT NOT NULL,
    source    TEXT NOT NULL,
    dn_key    TEXT NOT NULL,
    anchor    TEXT NOT NULL,
    PRIMARY KEY (school_id, source, dn_key)
);

-- How far a source has read: the highest change marker seen (modifyTimestamp, uSNChanged) and
-- when the last full run was.
CREATE TABLE sync_cursors (
    school_id TEXT NOT NULL,
    source    TEXT NOT NULL,
    marker    TEXT NOT NULL,
    full_at   TEXT NOT NULL,
    PRIMARY KEY (school_id, source)
);
