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
from dataclasses import dataclass

from gossip_backer.errors import UserError
from gossip_backer.core.ids import NodeId
from gossip_backer.core.metamap import MetaMap
from gossip_backer.core.paths import to_bytes
from gossip_backer.core.record import FILE


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
