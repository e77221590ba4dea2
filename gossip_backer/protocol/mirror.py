"""Mirroring decisions, sans-IO: what the disk lacks, what a local change becomes, which conflict
copies to publish.

Theory of operation. The local index says, per path, what is on this node's disk and which mesh
version that content is (`vv`). The map says which version every node should hold (the winner).
- A path is *needed* when its winner's content differs from the disk's. A winner equal in content
  (a conflict copy of our own file, the same edit made twice) only needs the index's vv updated.
- A local change supersedes exactly what was on disk: its vv is the disk version's vv bumped at
  this node. So a file the user edits while a remote version is in flight is concurrent with
  that version, and the conflict rule (not the arrival order) decides, the same on every node.
  When the disk holds the winner of a conflict whose losers have their copies, the disk version is
  the merge of all of them: the user's next edit settles the conflict.
- Every read-write node that sees a conflict publishes the losers' conflict-copy records; those
  are derived only from the loser (and the update that carried it), so the copies published by
  different nodes are one version.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable, Iterator
from typing import Protocol

from gossip_backer.core import conflict
from gossip_backer.core.metamap import MetaMap
from gossip_backer.core.record import DIR, FILE, SYMLINK, FileRecord
from gossip_backer.core.vv import VersionVector

CREATE_DIR, WRITE_FILE, WRITE_LINK, DELETE, ADOPT, META = "dir", "file", "link", "delete", "adopt", "meta"


class DiskEntry(Protocol):
    """What the local index holds for a path (core.record.IndexEntry satisfies it, and so does a
    FileRecord describing what a scan found)."""

    path: str
    kind: str
    size: int
    mode: int
    mtime_ns: int
    hash: bytes | None
    target: str | None
    vv: VersionVector


@dataclass(frozen=True, slots=True)
class Need:
    """One thing to do on disk: `action` brings `record` (the winner) to `path`."""

    action: str
    path: str
    record: FileRecord
    disk_vv: VersionVector  # the vv the index records once done

    @property
    def bytes(self) -> int:
        return self.record.size if self.action == WRITE_FILE else 0


def same_content(rec: FileRecord, entry: DiskEntry | None) -> bool:
    """Does the disk already hold `rec`'s content (its bytes, link target, or a folder)?"""
    if entry is None:
        return rec.deleted
    if rec.deleted or rec.kind != entry.kind:
        return False
    if rec.kind == FILE:
        return rec.hash == entry.hash and rec.size == entry.size
    if rec.kind == SYMLINK:
        return rec.target == entry.target
    return True


def same_meta(rec: FileRecord, entry: DiskEntry) -> bool:
    """Do permission bits (files and folders) and modification time (files) agree too?"""
    if rec.kind == SYMLINK:
        return True
    if (rec.mode & 0o777) != (entry.mode & 0o777):
        return False
    return rec.kind != FILE or rec.mtime_ns == entry.mtime_ns


def same_as_disk(rec: FileRecord, entry: DiskEntry | None) -> bool:
    """Does the disk hold `rec` exactly: content, permission bits and a file's mtime?"""
    return same_content(rec, entry) and (entry is None or same_meta(rec, entry))


def disk_version(metamap: MetaMap, path: str) -> VersionVector:
    """The vv the disk holds once the winner of `path` is on it: the winner's, merged with the
    versions it settles (deletions, same content, losers whose conflict copy the map holds). A
    loser without its copy yet stays concurrent, so the user's next edit cannot erase it."""
    versions = metamap.versions(path)
    if not versions:
        return VersionVector()
    best = conflict.winner(versions)
    merged = best.vv
    for v in versions:
        if v is best or v.deleted or v.same_content(best) or _copied(metamap, v):
            merged = merged.merge(v.vv)
    return merged


def _copied(metamap: MetaMap, loser: FileRecord) -> bool:
    return any(_holds_copy(metamap, conflict.conflict_copy(loser, suffixed))
               for suffixed in (False, True))


def _holds_copy(metamap: MetaMap, copy: FileRecord) -> bool:
    return any(v.vv.dominates(copy.vv) for v in metamap.versions(copy.path))


def copy_of(metamap: MetaMap, loser: FileRecord) -> FileRecord:
    """The conflict-copy record for `loser`: at the usual name, unless the map holds another
    loser's copy there (SPEC: two different losers never share one name), then at the name
    suffixed with one derived from `loser`'s own version. It names the update of the loser's
    origin that carried the loser (`source_seq`), so revoking that origin voids the copy as it
    voids the loser; an origin publishes a version in one update, so every node copying it
    makes the same record."""
    from dataclasses import replace

    loser = replace(loser, source_seq=metamap.source_seq(loser))
    copy = conflict.conflict_copy(loser)
    taken = any(not v.deleted and not v.same_content(copy) and not v.vv.dominates(copy.vv)
                for v in metamap.versions(copy.path))
    return conflict.conflict_copy(loser, suffixed=True) if taken else copy


def need_for(metamap: MetaMap, path: str, entry: DiskEntry | None) -> Need | None:
    versions = metamap.versions(path)
    if not versions:
        return None if entry is None else _voided(path, entry)
    if len(versions) == 1:  # (most paths: the winner and the disk's vv without a ranking)
        winner = versions[0]
        vv = winner.vv
    else:
        winner = conflict.winner(versions)
        vv = disk_version(metamap, path)
    if entry is not None and entry.vv == vv:
        return None
    if same_content(winner, entry):
        if entry is None:
            return None
        return Need(ADOPT if same_meta(winner, entry) else META, path, winner, vv)
    if winner.deleted:
        return Need(DELETE, path, winner, vv)
    action = {DIR: CREATE_DIR, FILE: WRITE_FILE, SYMLINK: WRITE_LINK}[winner.kind]
    return Need(action, path, winner, vv)


AFTER_FILES = (2,)  # order keys from here on are deletions


def order(need: Need) -> tuple:
    depth = need.path.count("/")
    if need.action == DELETE:
        return (2, -depth, need.path)  # deepest first, after everything else
    if need.action == CREATE_DIR:
        return (0, depth, need.path)  # shallow folders first
    return (1, depth, need.path)


def _voided(path: str, entry: DiskEntry) -> Need | None:
    """The disk holds a mesh version (its row has a vv) of a path the map no longer has: every
    version of it was voided (made by a member after its revocation's cutoff). It goes, as a
    deletion would (archived). A row without a vv is the user's own, unpublished: it stays."""
    if not entry.vv:
        return None
    origin = max(entry.vv.items(), key=lambda kv: kv[1])[0]
    gone = FileRecord(path=path, kind=entry.kind, vv=entry.vv, origin=origin, deleted=True)
    return Need(DELETE, path, gone, VersionVector())


def keeps_under(metamap: MetaMap, folder: str) -> bool:
    """Does the map keep (hold a live winner for) any path inside `folder`? Asked only when a
    folder to delete turns out to hold entries, so a walk of the map is fine."""
    prefix = folder + "/"
    for path in metamap.files:
        if path.startswith(prefix):
            winner = metamap.winner(path)
            if winner is not None and not winner.deleted:
                return True
    return False


def kept_folder(metamap: MetaMap, me: bytes, record: FileRecord, disk_vv: VersionVector) -> FileRecord:
    """Our version of a folder we were told to delete that must stay (`keeps_under`): it
    supersedes every version of the path (the deletion, or the voided versions the disk held:
    `disk_vv`), as Syncthing announces such a folder again."""
    base = disk_vv
    for v in metamap.versions(record.path):
        base = base.merge(v.vv)
    from dataclasses import replace

    return replace(record, vv=fresh(metamap, record.path, base, me), origin=me, deleted=False)


def paths_to_judge(metamap: MetaMap, index: dict[str, DiskEntry]) -> Iterator[str]:
    """Every path of the map, and every path the disk holds a mesh version of, each once (read
    as they are judged: a folder's full refresh, every 30 s, made three passing sets of every
    path here, ~4 MB each at 100,000 paths)."""
    files = metamap.files
    yield from files
    for path, entry in index.items():
        if entry.vv and path not in files:
            yield path


def needed(metamap: MetaMap, index: dict[str, DiskEntry]) -> list[Need]:
    """Everything the disk lacks, in an order that works (folders, files, then deletions)."""
    out = []
    for path in paths_to_judge(metamap, index):
        need = need_for(metamap, path, index.get(path))
        if need is not None:
            out.append(need)
    return sorted(out, key=order)


def local_version(metamap: MetaMap, me: bytes, path: str, entry: DiskEntry | None,
                  now_record: FileRecord) -> FileRecord | None:
    """The version to publish for what the scan found at `path` (`now_record`, vv and origin
    left empty), or None when the mesh already has that content as the winner."""
    winner = metamap.winner(path)
    if winner is not None and not winner.deleted and same_as_disk(winner, now_record):
        return None
    if entry is not None:
        base = entry.vv
    else:  # a new path: it supersedes the deletions we applied, nothing else
        base = VersionVector()
        for v in metamap.versions(path):
            if v.deleted:
                base = base.merge(v.vv)
    from dataclasses import replace

    return replace(now_record, vv=fresh(metamap, path, base, me), origin=me)


def fresh(metamap: MetaMap, path: str, base: VersionVector, me: bytes) -> VersionVector:
    """`base` with our counter past every counter of ours any version of `path` carries, so a
    new version of ours is never equal to, or dominated by, one we made before; and covering
    every live version of ours: an update log keeps one update per origin and path, so our new
    version evicts our older one everywhere. Were it not its successor too, the older version
    would vanish from the map unkept, and the versions it had replaced would come back (a
    power loss can leave the disk on bytes older than our last version: the folder machine
    keeps that unseen version as a conflict copy, see `FolderMachine._keep_unseen`)."""
    for v in metamap.versions(path):
        if v.origin == me:
            base = base.merge(v.vv)
    counters = dict(base.items())
    counters[me] = max([base.get(me)] + [v.vv.get(me) for v in metamap.versions(path)]) + 1
    return VersionVector(counters)


def deletion(metamap: MetaMap, me: bytes, path: str, entry: DiskEntry, mtime_ns: int) -> FileRecord | None:
    """The tombstone for a path the user deleted (None when the winner is already deleted)."""
    winner = metamap.winner(path)
    if winner is None or winner.deleted:
        return None
    return FileRecord(path=path, kind=entry.kind, vv=fresh(metamap, path, entry.vv, me),
                      origin=me, mtime_ns=mtime_ns, deleted=True)


def conflict_copies(metamap: MetaMap, path: str,
                    holds: Callable[[bytes], bool] = lambda h: True) -> list[FileRecord]:
    """Conflict-copy records for the losers at `path` that the map does not hold yet, among
    those whose content `holds` says this node has (on disk or archived): a copy published by
    a node that cannot serve it could name content nobody holds."""
    out = []
    for loser in conflict.losers(metamap.versions(path)):
        if loser.kind != FILE or loser.hash is None or not holds(loser.hash):
            continue
        if _copied(metamap, loser):
            continue
        out.append(copy_of(metamap, loser))
    return out


def file_totals(index: dict[str, DiskEntry]) -> tuple[int, int, list[str]]:
    """(files, their bytes, the conflict copies among them, sorted) of an index, in one pass:
    `status` is asked many times a second while a script waits for a sync, and three passes
    over 2,000 rows (each field of a row a call) were half of its cost."""
    files = size = 0
    copies = []
    for path, e in index.items():
        if e.kind == FILE:
            files += 1
            size += e.size
            if conflict.is_conflict_copy(path):
                copies.append(path)
    return files, size, sorted(copies)
