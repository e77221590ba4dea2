"""The node's named store operations: every data query of the store is in `Q`, and each method runs
one or a few of them. No decisions are made here; the callers decide, the repo remembers.

Values that are not plain columns (config values, block lists) are msgpack-packed with
`wire.codec`; update bodies and signatures are stored as the exact bytes the origin signed.
Paths are TEXT columns: a name that is not UTF-8 is stored as `core.paths.escape` writes it
(`\\xNN` for each odd byte; a mesh path never holds a backslash), every other path as it is.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from gossip_backer.core.indexrow import Row, compact
from gossip_backer.core.paths import escape, unescape
from gossip_backer.core.record import (FileRecord, IndexEntry, SignedUpdate, blocks_from_plain, common_int, common_kind,
                                       payload_from_plain)
from gossip_backer.core.vv import VersionVector, node_key
from gossip_backer.errors import RemoteError, StoreError
from gossip_backer.store.db import Database, open_db
from gossip_backer.wire.codec import encode_payload, pack, unpack

__all__ = ["IndexEntry", "Invite", "Q", "Repo", "Revision", "Share"]

Q = {
    # update log
    "delete_update": "DELETE FROM updates WHERE origin = ? AND seq = ?",
    # Re-saving an update is a no-op; a newer update of an (origin, key) replaces the older one
    # (as in the MetaMap's log), and an older one never replaces a newer.
    "put_update": """
        INSERT INTO updates (origin, seq, key, body, sig) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (origin, seq) DO NOTHING
        ON CONFLICT (origin, key) DO UPDATE
            SET seq = excluded.seq, body = excluded.body, sig = excluded.sig
            WHERE excluded.seq > updates.seq""",
    "all_updates": "SELECT origin, seq, body, sig FROM updates ORDER BY origin, seq",
    "count_updates": "SELECT count(*) FROM updates",
    # config
    "get_config": "SELECT value FROM config WHERE key = ?",
    "set_config": "INSERT INTO config (key, value) VALUES (?, ?) "
                  "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    "delete_config": "DELETE FROM config WHERE key = ?",
    # local file index
    "index_put": """
        INSERT OR REPLACE INTO local_files
            (path, size, mtime_ns, inode, mode, kind, hash, block_size, blocks, target, vv)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
    "index_get": "SELECT path, size, mtime_ns, inode, mode, kind, hash, block_size, blocks, target, vv "
                 "FROM local_files WHERE path = ?",
    "index_all": "SELECT path, size, mtime_ns, inode, mode, kind, hash, block_size, blocks, target, vv "
                 "FROM local_files ORDER BY path",
    "index_delete": "DELETE FROM local_files WHERE path = ?",
    # invites
    "add_invite": "INSERT INTO invites (invite_id, secret_hash, read_only, expires, created) "
                  "VALUES (?, ?, ?, ?, ?)",
    "invite_usable": "SELECT 1 FROM invites WHERE invite_id = ? AND used_at IS NULL AND expires > ?",
    "all_invites": "SELECT invite_id, read_only, expires, used_at FROM invites",
    "claim_invite": """
        UPDATE invites SET used_at = :now
        WHERE invite_id = :id AND used_at IS NULL AND expires > :now
        RETURNING invite_id, secret_hash, read_only, expires, created, used_at""",
    # shares
    "add_share": "INSERT INTO shares (token, path, expires, created) VALUES (?, ?, ?, ?)",
    "list_shares": "SELECT token, path, expires, created FROM shares ORDER BY created, token",
    "get_share": "SELECT token, path, expires, created FROM shares WHERE token = ?",
    "revoke_share": "DELETE FROM shares WHERE token = ?",
    # revisions
    "add_revision": "INSERT INTO revisions (path, hash, size, mtime_ns, node, archived_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    "revisions": "SELECT id, path, hash, size, mtime_ns, node, archived_at FROM revisions "
                 "WHERE path = ? ORDER BY mtime_ns DESC, id DESC",
    "delete_revision": "DELETE FROM revisions WHERE id = ?",
    "revision_paths": "SELECT DISTINCT path FROM revisions ORDER BY path",
    "revision_hash_used": "SELECT 1 FROM revisions WHERE hash = ? LIMIT 1",
}


@dataclass(frozen=True, slots=True)
class Invite:
    invite_id: bytes
    secret_hash: bytes
    read_only: bool
    expires: float
    created: float
    used_at: float | None


@dataclass(frozen=True, slots=True)
class Share:
    token: str
    path: str
    expires: float | None
    created: float


@dataclass(frozen=True, slots=True)
class Revision:
    id: int
    path: str
    hash: bytes
    size: int
    mtime_ns: int
    node: bytes
    archived_at: float


_NO_VERSIONS: Mapping[str, tuple[FileRecord, ...]] = MappingProxyType({})


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic GC while decoding a whole table: the many small lists it makes would
    trigger it over and over (measured: it doubles the load time of 10,000 updates)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class Repo:
    """Named load / save operations over one Database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def open(cls, path: str | Path) -> "Repo":
        return cls(open_db(path))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Repo":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _decode(self, blob: bytes) -> object:
        try:
            return unpack(blob)
        except RemoteError:
            raise StoreError(f"store {self.db.path} holds an undecodable value") from None

    # -- update log --------------------------------------------------------------------------
    def save_updates(self, updates: Iterable[SignedUpdate],
                     removed: Iterable[tuple[bytes, int]] = ()) -> None:
        """One applied batch, atomically: drop the (origin, seq) entries it superseded or voided,
        add its updates."""
        with self.db.transaction():
            self.db.run_many(Q["delete_update"], removed)
            self.db.run_many(Q["put_update"], ((u.origin, u.seq, escape(u.key), u.body, u.sig)
                                               for u in updates))

    def load_updates(self) -> list[SignedUpdate]:
        """Every stored update, per origin in sequence order (as MetaMap.updates())."""
        return list(self.each_update())

    def each_update(self) -> Iterator[SignedUpdate]:
        """`load_updates` one at a time, so that the whole log is never held at once. Read it
        through at once: the connection stays taken, and the cyclic GC paused, meanwhile."""
        with _no_gc():
            for row in self.db.query_rows(Q["all_updates"]):
                yield self._update(*row)

    def _update(self, origin: bytes, seq: int, body: bytes, sig: bytes) -> SignedUpdate:
        try:
            payload = payload_from_plain(self._decode(body))
        except ValueError as exc:
            raise StoreError(f"store {self.db.path} holds a damaged update: {exc}") from None
        return SignedUpdate.compact(node_key(origin), seq, payload, body, sig, encode_payload)

    def count_updates(self) -> int:
        return self.db.query_one(Q["count_updates"])[0]

    # -- config ------------------------------------------------------------------------------
    def get_config(self, key: str, default: object = None) -> object:
        row = self.db.query_one(Q["get_config"], (key,))
        return default if row is None else self._decode(row[0])

    def set_config(self, key: str, value: object) -> None:
        with self.db.transaction():
            self.db.run(Q["set_config"], (key, pack(value)))

    def delete_config(self, key: str) -> bool:
        with self.db.transaction():
            return self.db.run(Q["delete_config"], (key,)) > 0

    # -- local file index --------------------------------------------------------------------
    def index_put(self, entries: Iterable[IndexEntry]) -> None:
        with self.db.transaction():
            self.db.run_many(Q["index_put"], (_index_row(e) for e in entries))

    def index_write(self, puts: Iterable[IndexEntry], deletes: Iterable[str]) -> None:
        """Rows written and rows removed, in one transaction."""
        with self.db.transaction():
            self.db.run_many(Q["index_put"], (_index_row(e) for e in puts))
            self.db.run_many(Q["index_delete"], ((escape(p),) for p in deletes))

    def index_get(self, path: str) -> IndexEntry | None:
        row = self.db.query_one(Q["index_get"], (escape(path),))
        return None if row is None else self._index_entry(*row)

    def index_all(self, like: Mapping[str, tuple[FileRecord, ...]] | None = None) -> list[Row]:
        """The whole local index. `like`: the map's versions by path; a row holding the content
        of one of them shares its path, hash, blocks (and equal size and mtime) objects (100,000 rows would otherwise
        hold a second copy of each), and one holding exactly its content is that version and
        an inode (core/indexrow.py)."""
        like = like or _NO_VERSIONS
        with _no_gc():
            return [self._index_entry(*row, like=like) for row in self.db.query_rows(Q["index_all"])]

    def index_delete(self, paths: Iterable[str]) -> None:
        with self.db.transaction():
            self.db.run_many(Q["index_delete"], ((escape(p),) for p in paths))

    def _index_entry(self, *row: object, like: Mapping[str, tuple[FileRecord, ...]] = _NO_VERSIONS
                     ) -> Row:
        path, size, mtime_ns, inode, mode, kind, h, block_size, blocks, target, vv = row
        try:
            parsed = blocks_from_plain(self._decode(blocks), h)
            version = VersionVector.decode(self._decode(vv))
        except (ValueError, TypeError) as exc:
            raise StoreError(f"store {self.db.path} holds a damaged index entry: {exc}") from None
        path = unescape(path)
        same = None
        for v in like.get(path, ()):
            if v.hash == h and v.blocks == parsed:
                path, h, parsed, same = v.path, v.hash, v.blocks, v
                size = v.size if v.size == size else size
                mtime_ns = v.mtime_ns if v.mtime_ns == mtime_ns else mtime_ns
                break
        return compact(IndexEntry(path, size, mtime_ns, inode, common_int(mode), common_kind(kind), h,
                                  common_int(block_size), blocks=parsed, target=target, vv=version), same)

    # -- invites -----------------------------------------------------------------------------
    def add_invite(self, invite_id: bytes, secret_hash: bytes, read_only: bool,
                   expires: float, created: float) -> None:
        with self.db.transaction():
            self.db.run(Q["add_invite"], (invite_id, secret_hash, int(read_only), expires, created))

    def invite_usable(self, invite_id: bytes, now: float) -> bool:
        """Known, unused and unexpired (a look, not a claim)."""
        return self.db.query_one(Q["invite_usable"], (invite_id, now)) is not None

    def invite_rows(self) -> list[tuple[bytes, bool, float, float | None]]:
        """Every invite made here, as (invite_id, read_only, expires, used_at): the running
        node holds them in memory (core.invite.InviteTable)."""
        return [(i, bool(ro), expires, used_at)
                for i, ro, expires, used_at in self.db.query(Q["all_invites"])]

    def claim_invite(self, invite_id: bytes, now: float) -> Invite | None:
        """Mark the invite used and return it; None if unknown, used or expired. One guarded
        UPDATE under the write lock: of racing claims exactly one wins."""
        with self.db.transaction():
            row = self.db.query_one(Q["claim_invite"], {"id": invite_id, "now": now})
        if row is None:
            return None
        invite_id, secret_hash, read_only, expires, created, used_at = row
        return Invite(invite_id, secret_hash, bool(read_only), expires, created, used_at)

    # -- shares ------------------------------------------------------------------------------
    def add_share(self, token: str, path: str, expires: float | None, created: float) -> None:
        with self.db.transaction():
            self.db.run(Q["add_share"], (token, escape(path), expires, created))

    def list_shares(self) -> list[Share]:
        return [_share(row) for row in self.db.query(Q["list_shares"])]

    def get_share(self, token: str) -> Share | None:
        row = self.db.query_one(Q["get_share"], (token,))
        return None if row is None else _share(row)

    def revoke_share(self, token: str) -> bool:
        with self.db.transaction():
            return self.db.run(Q["revoke_share"], (token,)) > 0

    # -- revisions ---------------------------------------------------------------------------
    def add_revision(self, path: str, hash: bytes, size: int, mtime_ns: int, node: bytes,
                     archived_at: float) -> int:
        with self.db.transaction():
            return self.db.query_one(Q["add_revision"], (escape(path), hash, size, mtime_ns, node,
                                                         archived_at))[0]

    def revisions(self, path: str) -> list[Revision]:
        """The archived versions of `path`, newest modification time first."""
        return [Revision(row[0], unescape(row[1]), *row[2:])
                for row in self.db.query(Q["revisions"], (escape(path),))]

    def revision_paths(self) -> list[str]:
        return [unescape(row[0]) for row in self.db.query(Q["revision_paths"])]

    def revision_hash_used(self, content_hash: bytes) -> bool:
        """Does any revision row still need the archived bytes with this hash?"""
        return self.db.query_one(Q["revision_hash_used"], (content_hash,)) is not None

    def delete_revision(self, revision_id: int) -> bool:
        with self.db.transaction():
            return self.db.run(Q["delete_revision"], (revision_id,)) > 0


def _share(row: tuple) -> Share:
    token, path, expires, created = row
    return Share(token, unescape(path), expires, created)


def _index_row(e: IndexEntry) -> tuple:
    blocks = pack([b.to_plain() for b in e.blocks])
    return (escape(e.path), e.size, e.mtime_ns, e.inode, e.mode, e.kind, e.hash, e.block_size, blocks,
            e.target, pack(e.vv.encode()))
