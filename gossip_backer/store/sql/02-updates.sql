-- updates: the signed update log that the in-memory MetaMap folds into the mesh state. One row
-- per update held: its origin node, sequence number, key ("f:PATH", "g:NODE", ...), the exact
-- signed body bytes and the signature, kept untouched so relays forward the origin's bytes.
-- The log keeps only the newest update per (origin, key), as the MetaMap does, hence the unique
-- constraint; a batch of updates applied together is saved in one transaction, with the entries
-- it superseded or voided removed in that same transaction.
CREATE TABLE updates (
    origin BLOB NOT NULL CHECK (length(origin) = 32),
    seq    INTEGER NOT NULL CHECK (seq > 0),
    key    TEXT NOT NULL,
    body   BLOB NOT NULL,
    sig    BLOB NOT NULL,
    PRIMARY KEY (origin, seq),
    UNIQUE (origin, key)
) STRICT;
