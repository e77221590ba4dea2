-- local_files: what this node saw on its own disk at its last scan, one row per path. The next
-- scan compares (size, mtime_ns, inode, mode) with the disk to skip re-hashing unchanged files;
-- hash, block_size and the msgpack-packed block list are the results of the last hashing, so a
-- restart resumes without hashing or fetching verified content again. target is a symlink's
-- target (NULL for anything else). vv is the version vector of the mesh version this content
-- is (packed): a local edit supersedes exactly what was on disk, nothing the node merely heard of.
CREATE TABLE local_files (
    path       TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    inode      INTEGER NOT NULL,
    mode       INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('file', 'dir', 'symlink')),
    hash       BLOB,
    block_size INTEGER NOT NULL,
    blocks     BLOB NOT NULL,
    target     TEXT,
    vv         BLOB NOT NULL
) STRICT;
