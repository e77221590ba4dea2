-- invites: invitations this node issued. Only a hash of each invite's secret is kept, so reading
-- the store does not reveal usable invites. An invite is claimed once: used_at goes from NULL to
-- the claim time in a single guarded UPDATE, so two joiners racing with one invite cannot both win.
-- Times are Unix seconds.
CREATE TABLE invites (
    invite_id   BLOB PRIMARY KEY,
    secret_hash BLOB NOT NULL,
    read_only   INTEGER NOT NULL CHECK (read_only IN (0, 1)),
    expires     REAL NOT NULL,
    created     REAL NOT NULL,
    used_at     REAL
) STRICT;
