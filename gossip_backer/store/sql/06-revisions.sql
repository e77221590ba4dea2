-- revisions: the content versions this node archived under .backer/versions/ when they were
-- replaced or deleted, for `history`, `restore` and the retention rule. node is the node id that
-- made the version, mtime_ns its modification time, archived_at (Unix seconds) when it was kept.
CREATE TABLE revisions (
    id          INTEGER PRIMARY KEY,
    path        TEXT NOT NULL,
    hash        BLOB NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    node        BLOB NOT NULL,
    archived_at REAL NOT NULL
) STRICT;

CREATE INDEX revisions_by_path ON revisions (path, mtime_ns);
