"""History of a path, sans-IO: the versions the map holds (current and concurrent ones), those
this node keeps in its revision archive, and those peers report keeping, merged into one list,
newest first; and which version `restore` brings back by default.

A version's id is derived from what it is (path, content, mtime, origin), so the same version
reported by several nodes is listed once and has the same id on every node.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gossip_backer.core.ids import NodeId
from gossip_backer.core.metamap import MetaMap
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
        for part in (self.path.encode(), self.hash or b"deleted", str(self.mtime_ns).encode(), self.origin):
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


def merged(*lists: list[Version]) -> list[Version]:
    """One entry per version id (the map's entry wins: it knows which one is current)."""
    seen: dict[str, Version] = {}
    for versions in lists:
        for v in versions:
            if v.id not in seen or (v.current and not seen[v.id].current):
                seen[v.id] = v
    return sorted(seen.values(), key=lambda v: (v.mtime_ns, v.current), reverse=True)


def default_restore(versions: list[Version]) -> Version | None:
    """The one before the current, or a deleted file's last content."""
    current = next((v for v in versions if v.current), None)
    with_content = [v for v in versions if not v.deleted and v.hash is not None]
    if current is None or current.deleted:
        return with_content[0] if with_content else None
    older = [v for v in with_content if v.mtime_ns <= current.mtime_ns and v.hash != current.hash]
    return older[0] if older else None
