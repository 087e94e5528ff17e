-- A digest of each person's directory entry as last applied (with the mapping rules that read
-- it), so that a full run builds and compares documents only for entries that changed.
CREATE TABLE sync_digests (
    school_id TEXT NOT NULL,
    source    TEXT NOT NULL,
    anchor    TEXT NOT NULL,
    digest    TEXT NOT NULL,
    PRIMARY KEY (school_id, source, anchor)
);
