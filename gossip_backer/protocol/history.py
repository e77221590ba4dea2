"""History of a path, sans-IO: the versions the map holds (current and concurrent ones), those
this node keeps in its revision archive, and those peers report keeping, merged into one list,
newest first; and which version `restore` brings back by default.

A version's id is derived from what it is: (path, content, mtime) for content, (path, mtime,
origin) for a deletion. Not the origin of content: a node that archived a version it received
no longer knows for sure who made it (the map forgets superseded versions), and the same version
must be listed once, with one id, on every node. Among reports of one version the map's entry
wins (it knows the origin and which version is current), else the least origin; ties of mtime
sort by id, so every node lists the same versions in the same order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from gossip_backer.errors import UserError
from gossip_backer.core.ids import NodeId
from gossip_backer.core.metamap import MetaMap
from gossip_backer.core.paths import BadPath, check, to_bytes
from gossip_backer.core.record import FILE, Block
from gossip_backer.wire.messages import HistoryReply, HistoryRequest


@dataclass(frozen=True, slots=True)
class Version:
    path: str
    hash: bytes | None
    size: int
    mtime_ns: int
    origin: bytes
    deleted: bool
    current: bool = False

    @property
    def id(self) -> str:
        h = hashlib.blake2b(digest_size=8, person=b"backer-version")
        origin = self.origin if self.hash is None else b""  # see the module docstring
        for part in (to_bytes(self.path), self.hash or b"deleted", str(self.mtime_ns).encode(), origin):
            h.update(len(part).to_bytes(4, "big") + part)
        return h.hexdigest()

    def to_json(self) -> dict:
        return {"version": self.id, "time": self.mtime_ns / 1e9, "size": self.size,
                "hash": self.hash.hex() if self.hash else None, "node_id": str(NodeId(self.origin)),
                "deleted": self.deleted}


def from_map(metamap: MetaMap, path: str) -> list[Version]:
    winner = metamap.winner(path)
    out = []
    for v in metamap.versions(path):
        if v.kind != FILE and not v.deleted:
            continue
        out.append(Version(path, None if v.deleted else v.hash, 0 if v.deleted else v.size,
                           v.mtime_ns, v.origin, v.deleted, current=v is winner))
    return out


def from_archive(path: str, rows: list[tuple[bytes, int, int, bytes]]) -> list[Version]:
    """Rows of (hash, size, mtime_ns, origin) from a revision archive (ours or a peer's)."""
    return [Version(path, h, size, mtime, origin, False) for h, size, mtime, origin in rows]


def local(path: str, rows: list[tuple[bytes, int, int, bytes]], metamap: MetaMap) -> list[Version]:
    """This node's own view of `path`: the versions its archive keeps (`rows`) and the map's."""
    return merged(from_archive(path, rows), known=from_map(metamap, path))


def merged(*lists: list[Version], known: list[Version] = ()) -> list[Version]:
    """One entry per version id, newest first, in the same order on every node. The current
    entry wins, then one in `known` (the map's, whose origin is sure), then the least origin."""
    seen: dict[str, Version] = {}
    sure = {v.id: v.origin for v in known}
    for versions in (*lists, known):
        for v in versions:
            if v.id in sure and v.origin != sure[v.id]:
                v = Version(v.path, v.hash, v.size, v.mtime_ns, sure[v.id], v.deleted, v.current)
            old = seen.get(v.id)
            if old is None or (v.current, -_rank(v)) > (old.current, -_rank(old)):
                seen[v.id] = v
    return sorted(seen.values(), key=lambda v: (v.mtime_ns, v.current, v.id), reverse=True)


def _rank(v: Version) -> int:
    return int.from_bytes(v.origin[:8], "big")


def default_restore(versions: list[Version]) -> Version | None:
    """The one before the current, or a deleted file's last content."""
    current = next((v for v in versions if v.current), None)
    with_content = [v for v in versions if not v.deleted and v.hash is not None]
    if current is None or current.deleted:
        return with_content[0] if with_content else None
    older = [v for v in with_content if v.mtime_ns <= current.mtime_ns and v.hash != current.hash]
    return older[0] if older else None


def choose(versions_: list[Version], version_id: str | None, path: str) -> Version:
    """The version `restore` brings back: `version_id`, or by default the one before the
    current (a deleted file's last content). A deletion or an unknown id is the user's error."""
    if not versions_:
        raise UserError(f"no such file in the mesh: {path}")
    if version_id is None:
        chosen = default_restore(versions_)
        if chosen is None:
            raise UserError(f"{path} has no earlier version to restore")
        return chosen
    for v in versions_:
        if v.id == version_id:
            if v.deleted:
                raise UserError(f"version {version_id} is a deletion: nothing to restore")
            return v
    raise UserError(f"no such version of {path}: {version_id}")


# -- restore: whether it may run, where the bytes come from ------------------------------------
ARCHIVE, CURRENT, PEERS = "archive", "current", "peers"


def refuse_restore(read_only: bool, busy: bool, path: str, restoring: bool = False) -> None:
    """A read-only member's changes are never published: a restore there would only change its
    own disk (and be overwritten by the mesh's next version); a path being synced right now
    (`busy`) would race the download, and a second restore of a path (`restoring`: one is under
    way, a double click) would build in the same temp file. Each is said to the user instead."""
    if read_only:
        raise UserError("this node is a read-only member: a restore here would stay on this "
                        "disk only; restore on a read-write node of the mesh")
    if busy:
        raise UserError(f"{path} is being synced right now; try again in a moment")
    if restoring:
        raise UserError(f"a restore of {path} is under way; wait for it to finish")


def restore_source(v: Version, archived: bool, index: dict,
                   holders: set[bytes] | None) -> tuple[str, str | None]:
    """Where `restore` takes version `v`'s bytes: this node's archive (`archived`: it holds
    them), else a current file of this node with that content (its path), else the peers that
    reported keeping it (`holders`; None when the node is stopped and cannot ask). The bytes are
    checked against the version's whole hash whichever the source."""
    if archived:
        return ARCHIVE, None
    for e in index.values():
        if e.kind == FILE and e.hash == v.hash:
            return CURRENT, e.path
    if holders is None:
        raise UserError("that version is kept only on other nodes: start `backer run` so it "
                        "can be fetched, then restore again")
    if not holders:
        raise UserError("that version's content is on no connected node")
    return PEERS, None


RESTORE_PIECE = 1 << 20  # a version only peers keep is fetched in pieces of this size


def restore_pieces(size: int) -> list[tuple[int, Block]]:
    """The pieces of a version fetched from peers by its content hash: no block hash each (a
    holder serves them from the file or archive copy of that content; the whole hash is checked
    once the version is complete)."""
    return [(i, Block(b"", 0)) for i in range((size + RESTORE_PIECE - 1) // RESTORE_PIECE)]


# -- history requests: whom to ask, what a reply may hold, how replies become one list -----------
ASK_TIMEOUT = 3.0  # seconds to wait for the connected peers' answers
CONNECT_GRACE = 8.0  # seconds after the node starts in which a request also waits for members
#                      not connected yet (a node that just started has not reached them yet)
REPLY_ROWS = 10_000  # rows of one reply looked at, at most

Row = tuple[bytes, int, int, bytes]  # (content hash, size, mtime_ns, origin)


def requested_path(req: HistoryRequest) -> str | None:
    """The path a peer asks about, or None for one that is not a mesh path (answered empty)."""
    try:
        return check(req.path)
    except BadPath:
        return None


def reply(req: HistoryRequest, rows: list[Row]) -> HistoryReply:
    """The answer to a peer's request: the versions of the path this node keeps archived."""
    return HistoryReply(req.request_id, tuple([h, s, m, o] for h, s, m, o in rows))


def _row_ok(entry: object) -> bool:
    return (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], bytes)
            and len(entry[0]) == 32 and all(isinstance(x, int) for x in entry[1:3])
            and isinstance(entry[3], bytes) and len(entry[3]) == 32)


class Ask:
    """One history request of this node, sans-IO: every connected peer is asked (and every peer
    that connects while we wait); it is complete once each asked peer answered, and, while the
    node is young (CONNECT_GRACE since it started), each member too: a node restarted after a
    while must not answer from its own stale view alone. `deadline`: when to stop waiting."""

    def __init__(self, request_id: int, path: str, now: float, started: float) -> None:
        self.request = HistoryRequest(request_id, path)
        self.path = path
        self.started = started
        young = now - started < CONNECT_GRACE
        self.deadline = max(now + ASK_TIMEOUT, started + CONNECT_GRACE if young else 0.0)
        self.asked: set[bytes] = set()
        self.answered: set[bytes] = set()
        self.rows: list[tuple[bytes, Row]] = []

    def to_ask(self, connected: Iterable[bytes]) -> list[bytes]:
        """The connected peers not asked yet: send them `request` now."""
        new = sorted(set(connected) - self.asked)
        self.asked.update(new)
        return new

    def on_reply(self, peer: bytes, message: HistoryReply) -> None:
        """A reply: rows of the wrong shape are left out; a peer we did not ask is ignored."""
        if peer not in self.asked or message.request_id != self.request.request_id:
            return
        self.answered.add(peer)
        self.rows.extend((peer, tuple(e)) for e in message.entries[:REPLY_ROWS] if _row_ok(e))

    def complete(self, now: float, members: Iterable[bytes]) -> bool:
        waiting_for = self.asked - self.answered
        if now - self.started < CONNECT_GRACE:
            waiting_for |= set(members) - self.answered
        return not waiting_for

    def listing(self, local: list[Version], known: list[Version]
                ) -> tuple[list[Version], dict[str, set[bytes]]]:
        """The merged list (ours, `local`, and the peers' rows; `known`: the map's versions)
        and which peers reported keeping each version (where a restore can fetch it)."""
        holders: dict[str, set[bytes]] = {}
        remote = []
        for peer, row in self.rows:
            v = from_archive(self.path, [row])[0]
            remote.append(v)
            holders.setdefault(v.id, set()).add(peer)
        return merged(local, remote, known=known), holders


def members_to_wait_for(metamap: MetaMap, me: bytes) -> set[bytes]:
    """The other members that may keep versions (revoked ones are not asked)."""
    return {k for k, m in metamap.membership.members.items() if k != me and not m.revoked}
