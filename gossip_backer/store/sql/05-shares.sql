-- shares: public read-only links (/s/TOKEN/...) to a file or folder, served by the running node.
-- expires is a Unix time, or NULL for a link that lasts until revoked; revoking deletes the row.
CREATE TABLE shares (
    token   TEXT PRIMARY KEY,
    path    TEXT NOT NULL,
    expires REAL,
    created REAL NOT NULL
) STRICT;
