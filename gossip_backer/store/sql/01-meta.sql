-- Store bookkeeping. Applied first on a new store; db.py reads and writes these tables only.

-- schema_version: one row per schema version this store has reached, the highest being the
-- current one. A new store gets one row (the version of the schema files it was built from);
-- each migration in migrations/NN-*.sql adds row NN in the same transaction as its own changes,
-- so a store is never left between two versions.
CREATE TABLE schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER))
) STRICT;

-- config: this node's settings and the mesh's local facts (mesh_id, founder, mesh secret, node
-- name, listen address...). The value is msgpack-packed so that text, bytes, integers, booleans
-- and lists all fit one column and come back with their type.
CREATE TABLE config (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
