"""The simulator's record of what users did, to judge "no write lost" at the end of a run.

Every user write gets a unique content (the write's id is part of its bytes), so content
identifies the write wherever it lands. A write is *knowingly overwritten* when, at the moment a
user changed or deleted a path, that write's content was what their disk held at that path: the
user saw it and replaced it. A write is lost when it was not knowingly overwritten (through a
chain of valid writes) and some live node holds neither it at its path nor its conflict copy
(`core.conflict.conflict_name` of the path, the write's mtime and author).

A write whose author left the mesh for good while no other live node held its content went
with it (`left_alone`): nothing can bring it back, so it is not counted as lost. Likewise a
write whose bytes a power cut took from its author's disk (`power_lost`) before the node had
published it, or while no other live node held the content: the machine lost the user's
unsynced bytes, not the mesh. A published write that another node held must survive the cut.
Writes whose author may not write (read-only, not yet a member, revoked before the write's
update) must not land anywhere: they are the "forbidden" contents.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from gossip_backer.core.record import FileRecord, SignedUpdate

__all__ = ["Oracle", "Write", "content_id"]


def content_id(data: bytes) -> bytes:
    """The oracle's own hash of a content (independent of the product's hashes)."""
    return hashlib.blake2b(data, digest_size=16).digest()


@dataclass
class Write:
    id: int
    node: int
    author: bytes
    path: str
    content: bytes | None  # content_id, None for a deletion
    core_hash: bytes | None  # the product's hash of the content (what records carry)
    mtime_ns: int
    at: float
    overwrote: tuple[int, ...]  # ids of writes whose content the user replaced
    updates: list[tuple[bytes, int]] = field(default_factory=list)  # (origin, seq) published
    left_alone: bool = False  # its author left the mesh while no other live node held it
    power_lost: bool = False  # a power cut took it before anyone else could hold it


class Oracle:
    def __init__(self) -> None:
        self.writes: list[Write] = []
        self.by_content: dict[bytes, list[int]] = {}  # content id -> writes of it, in order
        self._unpublished: dict[tuple[int, str], int] = {}  # (node, path) -> latest write id
        self.born_stale: list[tuple[int, int, float]] = []  # user changes published dominated
        self.attacks: dict[str, int] = {}  # misbehaviour tried by evil nodes, by kind

    def user_write(self, node: int, author: bytes, path: str, data: bytes | None,
                   mtime_ns: int, at: float, previous: bytes | None,
                   core_hash: bytes | None = None) -> Write:
        """Record a write (`data` None: a deletion) over `previous`, the bytes the disk held."""
        overwrote: tuple[int, ...] = ()
        if previous is not None:  # a content written more than once at a path (restores of
            # one version): the user saw all of them there, whichever made the bytes
            ids = self.by_content.get(content_id(previous), [])
            same = [i for i in ids if self.writes[i].path == path]
            overwrote = tuple(same or ids[:1])
        cid = None if data is None else content_id(data)
        w = Write(len(self.writes), node, author, path, cid, core_hash, mtime_ns, at, overwrote)
        self.writes.append(w)
        if cid is not None:
            self.by_content.setdefault(cid, []).append(w.id)
        self._unpublished[(node, path)] = w.id
        return w

    def published(self, node, update: SignedUpdate, *, user: bool) -> None:
        """A node signed a version of a user's change (the scan saw the latest write)."""
        if not user or not isinstance(update.payload, FileRecord):
            return
        wid = self._unpublished.pop((node.index, update.payload.path), None)
        if wid is not None:
            self.writes[wid].updates.append((update.origin, update.seq))

    def author_leaves(self, author: bytes, held: set[bytes]) -> None:
        """`author` leaves for good; `held` are the content ids other live nodes hold."""
        for w in self.writes:
            if w.author == author and w.content is not None and w.content not in held:
                w.left_alone = True

    def power_cut(self, node: int, gone: set[bytes], held: set[bytes]) -> list[Write]:
        """A power cut of `node`'s machine took the contents `gone` (content ids) from its disk;
        `held`: the contents other live nodes held at that moment. Returns the writes lost with
        the machine (not the mesh's to keep)."""
        out = []
        for w in self.writes:
            if w.node != node or w.content not in gone or w.power_lost:
                continue
            if not w.updates or w.content not in held:
                w.power_lost = True
                out.append(w)
                if self._unpublished.get((node, w.path)) == w.id:
                    del self._unpublished[(node, w.path)]  # the rescan will not publish it
        return out

    def superseded(self, valid: set[int]) -> set[int]:
        """Writes knowingly overwritten by a valid write, directly or through a chain."""
        out: set[int] = set()
        for w in self.writes:
            if w.id in valid:
                out.update(w.overwrote)
        return out
