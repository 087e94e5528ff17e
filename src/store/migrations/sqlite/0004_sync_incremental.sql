-- What a source last applied of each person's directory entry: where it lives (normalised DN,
-- and uid for posixGroup members), so that an incremental run, which reads only what changed,
-- can still resolve a changed group's members; and a digest of the entry with the mapping
-- rules that read it, so that a full run builds and compares only the entries that changed.
CREATE TABLE sync_entries (
    school_id TEXT NOT NULL,
    source    TEXT NOT NULL,
    anchor    TEXT NOT NULL,
    dn_key    TEXT NOT NULL,
    uid_key   TEXT,
    digest    TEXT NOT NULL,
    PRIMARY KEY (school_id, source, anchor)
);

-- How far a source has read: the highest change marker seen (entryCSN, uSNChanged) and when
-- the last full run was.
CREATE TABLE sync_cursors (
    school_id TEXT NOT NULL,
    source    TEXT NOT NULL,
    marker    TEXT NOT NULL,
    full_at   TEXT NOT NULL,
    PRIMARY KEY (school_id, source)
);
