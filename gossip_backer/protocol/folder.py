"""The folder machine: every decision about one mirrored root, sans-IO.

Theory of operation
-------------------
One `FolderMachine` per node holds the local index (what is on this node's disk, and which mesh
version that content is) next to the replicated map (which version every node should hold). The
daemon (runtime/folder.py, runtime/puller.py) and the simulator (testing/node.py) both feed it
the same inputs and carry out the same effects; neither decides anything about versions itself.

Inputs, each a method call with the time passed in (`now`: the interpreter's monotonic clock,
`wall`: Unix seconds for events and new versions):
- `scanned(result)`: what a scan of the disk found. Changed paths become versions (signed by the
  interpreter on `Publish`), vanished ones deletions; young files wait (`Rescan`); a root that
  vanished (`root_unavailable`) or suddenly emptied pauses the folder instead of becoming a mass
  deletion.
- `map_changed(paths)`: the map moved, by a remote update or by our own `Publish`. Every
  read-write node that holds a conflict loser's content publishes its conflict copy, whichever
  came first: our version or theirs (the lost offline edit was a copy made only for remote
  updates). A node's role moving from "not admitted yet" to read-write publishes what it found on
  its disk meanwhile.
- `next_work(now)`: what to do on disk next (`mirror.Need`s in an order that works), then
  `done`, `failed`, `changed_under_us`, `unavailable` as the work ends.

Rules that keep writes:
- A disk change the scanner has not seen yet is never overwritten: the interpreter moves new
  content into place only if the path still has the stat the index says (`expect`), else it
  reports `changed_under_us` and the path is rescanned (the user's change becomes a version).
- Content found on a node before it was admitted is neither overwritten nor dropped: the needs of
  those paths wait for the role, then the content is published and the conflict rule decides.
- A version whose content no connected peer holds is `unavailable`: listed, never pending, and
  asked for again when a peer connects or the map moves.

Live files (`live`, a protocol/live.py LiveMachine the interpreter hands in): a changed live file
is read and merged into its document instead of becoming a version at once (a version follows
every few minutes of editing); the document, not the puller, brings its content to the disk;
no conflict copy is made of it. The `live_*` methods are the interpreters' doors to that machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, replace
from typing import Protocol

from sortedcontainers import SortedDict

from gossip_backer.core import conflict, indexrow
from gossip_backer.core.indexrow import Row, VersionRow, changed
from gossip_backer.core.metamap import MetaMap
from gossip_backer.core.record import DIR, FILE, SYMLINK, FileRecord, IndexEntry, common_int
from gossip_backer.core.vv import VersionVector
from gossip_backer.events import (Conflict, DiskFull, DiskSpaceBack, FileChanged, FileDeleted, FileUpdated, InSync,
                                  Refused, RootPaused, RootResumed)
from gossip_backer.core.ids import NodeId
from gossip_backer.protocol import mirror
from gossip_backer.protocol.effects import Emit, IndexWrite, Publish, ReadText, Rescan, WriteText
from gossip_backer.protocol.echoes import OwnWrites

SETTLE = 0.2  # seconds a changed file must stay still before it is announced
SETTLE_NS = int(SETTLE * 1e9)
SETTLE_MARGIN = 0.005  # seconds added to a wait for a path to be SETTLE old (the clocks of the sleep
# and of the files' mtimes differ a little)
EMPTIED_MIN_FILES = 2
MAX_FILES = 16  # files assembled at once (beyond the small ones)
SMALL_FILE = 256 << 10  # files up to this size are assembled many at once (batched on the wire
MAX_SMALL_FILES = 512  # and on disk): at most this many
SMALL_BYTES = 16 << 20  # and this many bytes of them (the puller holds their blocks in memory)
PASS_OVER = 1024  # files without a free slot of their kind one round passes over, at most
FULL_REFRESH = 30.0  # seconds between full recomputations of what the disk lacks
RETRY_AFTER = 10.0
DISK_FULL_RETRY = 5.0  # seconds between tries while the disk is full
STALL_RETRY = 0.25  # seconds before asking again for content no connected peer had (doubling
STALL_RETRY_MAX = 2.0  # up to this while it may still be spreading)
UNAVAILABLE_AFTER = 10.0  # seconds of that before the version is listed as unavailable
UNAVAILABLE_MAX = 30.0  # longest back-off before asking again for unavailable content
WRITEBACK = 35.0  # seconds of writes a power loss may take back: Linux's dirty_expire (30 s)
# plus the interval of the node's sign-of-life mark
FOREVER = 1e18

PENDING, READ_WRITE, READ_ONLY = "pending", "read-write", "read-only"

Holds = Callable[[bytes], bool]


class ScanEntryLike(Protocol):
    path: str
    size: int
    mtime_ns: int
    inode: int
    mode: int
    kind: str
    hash: bytes | None
    block_size: int
    blocks: tuple
    target: str | None


class ScanResultLike(Protocol):
    entries: MutableMapping[str, ScanEntryLike]  # (a full scan's: see scanned_root)
    changed: list[str]
    refreshed: list[str]
    deleted: list[str]
    unstable: list[str]


@dataclass(frozen=True, slots=True)
class DiskStat:
    """What the disk holds at a path after the interpreter wrote it."""

    size: int
    mtime_ns: int
    inode: int


def settle_wait(wall: float, mtimes_ns: Iterable[int | None] | None, waited: float) -> float:
    """Seconds to let the writers of a watcher batch finish before it is scanned: until the
    youngest of its paths (`mtimes_ns`; None for one gone) is SETTLE old, so that a save is
    announced by the first scan, not held back by the settling rule for a second. At most
    SETTLE less `waited` (the quiet the watcher already waited), which is also the wait when the
    ages are unknown (`mtimes_ns` None) or one lies ahead of this clock. A batch whose paths are
    all older (a folder moved in whole, a deletion) is scanned at once: any file inside it that
    is younger is still held back by `scanned_root`."""
    longest = max(0.0, SETTLE - waited)
    if mtimes_ns is None:
        return longest
    wall_ns, wait = int(wall * 1e9), 0.0
    for mtime_ns in mtimes_ns:
        if mtime_ns is None:
            continue
        age = wall_ns - mtime_ns
        if age < 0:
            return longest
        if age < SETTLE_NS:
            wait = max(wait, (SETTLE_NS - age) / 1e9 + SETTLE_MARGIN)
    return min(wait, longest)


def index_entry(s: ScanEntryLike, vv: VersionVector, version: FileRecord | None = None) -> Row:
    """The row of what a scan saw, the disk holding `vv`: `version` and an inode when that is
    exactly `version`'s content (made so at once: an IndexEntry per file of a first scan, made
    and dropped, left 12 MB of holes among the records made meanwhile)."""
    row = indexrow.row_of(s, vv, version) if version is not None else None
    if row is not None:
        return row
    return IndexEntry(s.path, s.size, s.mtime_ns, s.inode, s.mode, s.kind, s.hash, s.block_size,
                      tuple(s.blocks), s.target, vv)


def as_record(s: ScanEntryLike, me: bytes) -> FileRecord:
    """What a scan found, as a version of ours with its vv left empty (mirror.local_version)."""
    return FileRecord(path=s.path, kind=s.kind, vv=VersionVector(), origin=me,
                      size=s.size if s.kind == FILE else 0, mtime_ns=s.mtime_ns,
                      mode=common_int(s.mode & 0o777), hash=s.hash, block_size=s.block_size,
                      blocks=tuple(s.blocks), target=s.target)


@dataclass(frozen=True, slots=True)
class _Stall:
    since: float  # first time no connected peer had the content
    retry_at: float
    backoff: float
    listed: bool  # shown as unavailable (not pending)


def _is_large(need: mirror.Need) -> bool:
    """A file assembled on its own (not among the small files batched together)."""
    return need.action == mirror.WRITE_FILE and need.record.size > SMALL_FILE


class FolderMachine:
    """Every decision about one root (see the module docstring)."""

    def __init__(self, metamap: MetaMap, me: bytes, index: Iterable[IndexEntry] = (), *,
                 max_files: int = MAX_FILES, max_small_files: int = MAX_SMALL_FILES,
                 full_refresh: float = FULL_REFRESH,
                 retry_after: float = RETRY_AFTER) -> None:
        self.metamap = metamap
        self.me = me
        self.index: dict[str, IndexEntry] = {e.path: e for e in index}
        self._totals: tuple[int, int, list[str]] | None = None  # `counts`' walk of the index,
        # until `_write_index` puts or drops a row (other writes keep a row's path, kind, size)
        self.max_files = max_files
        self.max_small_files = max_small_files
        self.full_refresh = full_refresh
        self.retry_after = retry_after
        self.paused: str | None = None
        self.disk_full: str | None = None  # why pulling pauses (no room on the disk)
        self._disk_retry = 0.0
        self.scanned = False  # a first full scan has been judged
        self.busy: set[str] = set()  # paths with disk work under way
        self.assembling: set[str] = set()  # files being assembled (a subset of busy)
        self._small: dict[str, int] = {}  # those up to SMALL_FILE -> size
        self.failed: dict[str, tuple[VersionVector, float]] = {}  # path -> (disk vv, retry at)
        self.stalled: dict[str, _Stall] = {}  # needs whose content no connected peer had
        self._needs: dict[str, mirror.Need] = {}
        self._order: SortedDict = SortedDict()  # mirror.order(need) -> need
        self._large_needs = 0  # of those, files above SMALL_FILE to write
        self._dirty: set[str] | None = None  # paths to look at again; None: all of them
        self._full_at = -FULL_REFRESH
        self._role = self.role()
        self._was_in_sync = False
        self._rollback_ns: int | None = None  # see after_power_loss
        self._rolled_back: dict[str, VersionVector] = {}  # paths a power loss took back, being
        # refetched -> the vv of the version their row said the disk held
        self.live = None  # the LiveMachine (protocol/live.py), when the interpreter runs one
        self.own_writes = OwnWrites()  # files just placed: their watcher events are ours
        self._signing: dict[str, int] = {}  # paths of Publishes still being signed -> how many
        # (only an interpreter that signs them off its loop says so: `signing`, `published`)

    def after_power_loss(self, last_alive: float) -> None:
        """The previous run ended with the machine losing power (`last_alive`: its last sign of
        life, Unix seconds). Writes of the last moments may not have reached the disk: at the
        first full scan a path whose index row is that young and that looks older or gone is
        the disk going back in time, not the user's change. It is fetched again from the mesh,
        and no deletion or older content is published over a version the mesh already has."""
        self._rollback_ns = int((last_alive - WRITEBACK) * 1e9)

    # -- who we are in the mesh --------------------------------------------------------------
    def role(self) -> str:
        m = self.metamap.membership.members.get(self.me)
        if m is None:
            return PENDING
        return READ_ONLY if m.read_only or m.revoked else READ_WRITE

    # -- local side: scans become versions ---------------------------------------------------
    def root_unavailable(self, reason: str, wall: float) -> list:
        return self._pause(reason, wall)

    def scanned_root(self, result: ScanResultLike, wall: float, *, full: bool,
                     settle: bool = True) -> list:
        """A scan's result (`full`: of the whole root): versions to publish, rows to store.

        A full scan's result is the machine's once given: each changed path's entry is replaced
        by its row as soon as it is judged (the row has every field of the entry), so a first
        scan's 100,000 entries are freed one by one, their memory taken by the records and rows
        made next. Freed all at once at the end, they left ~11 MB of pages held for good."""
        if full and self._emptied(result):
            return self._pause("the root is suddenly empty (an unmounted disk?): "
                               "not mirroring that as a deletion", wall)
        out = self._resume(wall)
        if full:
            self.scanned = True
        wall_ns = int(wall * 1e9)
        settling = set(result.unstable)
        if settle:
            settling |= {p for p in result.changed if result.entries[p].kind == FILE
                         and 0 <= wall_ns - result.entries[p].mtime_ns < SETTLE_NS}
        waiting = self._waiting_for_signing(result)
        settling |= waiting
        if settling:
            out.append(Rescan(tuple(sorted(settling)), SETTLE))
        role = self.role()
        rolled, unsure = self._taken_back(result) if full else (set(), set())
        for path in unsure & settling:  # judged when it settles: remember what it may not have
            self._rolled_back[path] = self.index[path].vv  # seen (the power cut's mark is spent)
        kept: list[FileRecord] = []
        records: list[FileRecord] = []
        puts: list[IndexEntry] = []
        for path in result.changed:
            if path in rolled:  # an empty vv: the mesh's version is needed, nothing published
                puts.append(index_entry(result.entries[path], VersionVector()))
            elif path not in settling and self._live_takes(result.entries[path], wall, out):
                record, vv, live_out = self._live_scanned(result.entries[path], role, wall)
                out += live_out
                if record is not None:
                    records.append(record)
                puts.append(index_entry(result.entries[path], vv, record))
                if full:
                    result.entries[path] = puts[-1]
            elif path not in settling:
                unseen = self._rolled_back.pop(path, None)  # edited before the refetch
                if unseen is None:
                    unseen = self._awaiting_ours(path)  # (after a second power loss)
                if path in unsure:
                    unseen = self.index[path].vv
                record, vv = self._version_of(result.entries[path], role, unseen is not None)
                if record is not None:
                    records.append(record)
                    kept += self._keep_unseen(unseen, record)
                puts.append(index_entry(result.entries[path], vv, record))
                if full:
                    result.entries[path] = puts[-1]
        for path in result.refreshed:  # inode or folder mtime moved: no new version
            old = self.index.get(path)
            if old is not None and path not in result.changed and path not in waiting:
                puts.append(index_entry(result.entries[path], old.vv))
        gone = sorted((p for p in result.deleted if p in self.index and p not in waiting),
                      key=lambda p: -p.count("/"))
        if role == READ_WRITE:
            for path in gone:
                if path in rolled:
                    continue
                rec = mirror.deletion(self.metamap, self.me, path, self.index[path], wall_ns)
                if rec is not None:
                    records.append(rec)
        out += self._write_index(puts, gone)
        if full and role == READ_WRITE:
            records += self._unpublished(exclude={r.path for r in records})
        if full:
            out += self._live_adopt(self.index, wall)
        if records:
            out.append(Publish(tuple(records), user=True))
            out += [Emit(FileChanged(wall, r.path, r.deleted)) for r in records]
        if kept:
            out.append(Publish(tuple(kept), user=False))
            out += [Emit(Conflict(wall, conflict.original_of(c.path) or c.path, c.path))
                    for c in kept]
        return out

    def _waiting_for_signing(self, result: ScanResultLike) -> set[str]:
        """Paths a scan found changed or gone while our last version of them is still being
        signed: judged again once it is in the map. Judged now, a deletion would find no version
        to delete (the file would come back) and an edit a base the map does not hold yet."""
        if not self._signing:
            return set()
        return {p for p in (*result.changed, *result.deleted, *result.refreshed) if p in self._signing}

    def _keep_unseen(self, unseen: VersionVector | None, record: FileRecord) -> list[FileRecord]:
        """The conflict copy of the version the row said the disk held (`unseen`: the row's vv,
        which also covers the losers that version beat), when
        an edit made after a power loss (`record`, made on bytes that may not be that version:
        the loss may have taken it back first) still supersedes it, as our own versions do: its
        bytes are kept as a copy, served by the nodes that fetched them."""
        if unseen is None:
            return []
        return [mirror.copy_of(self.metamap, v) for v in self.metamap.versions(record.path)
                if (v.vv == unseen or unseen.dominates(v.vv)) and v.kind == FILE
                and not v.deleted and v.hash != record.hash and record.vv.dominates(v.vv)]

    def _taken_back(self, result: ScanResultLike) -> tuple[set[str], set[str]]:
        """After a power loss (see `after_power_loss`), judged at one full scan: the paths the
        disk took back (gone, or older than their row), and the paths changed since whose row
        is as young (a new edit, made on bytes that may not be the row's version)."""
        cut, self._rollback_ns = self._rollback_ns, None
        if cut is None:
            return set(), set()
        back = {p for p in result.deleted if p in self.index and self.index[p].mtime_ns >= cut}
        unsure = set()
        for p in result.changed:
            e, s = self.index.get(p), result.entries[p]
            if e is None or e.mtime_ns < cut:
                continue
            if s.mtime_ns < e.mtime_ns or (s.kind == FILE and s.size == 0 < e.size):
                back.add(p)
            else:
                unsure.add(p)
        self._rolled_back.update((p, self.index[p].vv) for p in back)
        return back, unsure

    def _version_of(self, entry: ScanEntryLike, role: str,
                    unsure: bool = False) -> tuple[FileRecord | None, VersionVector]:
        """The version to publish for a changed path (None when the mesh already has it, or
        when we may not publish) and the vv the index records for the disk. `unsure`: the
        change may not have been made on the row's version (after a power loss): not its base."""
        old = self.index.get(entry.path)
        base = None if unsure else old
        record = mirror.local_version(self.metamap, self.me, entry.path, base, as_record(entry, self.me))
        if record is None:
            return None, mirror.disk_version(self.metamap, entry.path)
        if role != READ_WRITE:  # changes of a read-only member, or of a node not admitted
            return None, old.vv if old else VersionVector()  # yet, stay local for now
        return record, record.vv

    def _awaiting_ours(self, path: str) -> VersionVector | None:
        """The vv of our versions at `path` when the disk went back in time under them and the
        mesh's copy is awaited (`_taken_back`): the row holds no version (an empty vv) although
        the mesh holds one we took part in, or there is no row at all although the live version
        there is ours (a power loss took a new file back: its row was dropped). Files found
        before we could publish have empty rows too, but never a version of ours beside them.
        Read from the stored rows and the map, not from memory, so a second power loss before
        the refetch does not forget it. None otherwise."""
        row = self.index.get(path)
        if row is not None and row.vv:
            return None
        if row is None:
            ours = [v.vv for v in self.metamap.versions(path)
                    if v.origin == self.me and not v.deleted and v.kind == FILE]
        else:
            ours = [v.vv for v in self.metamap.versions(path) if v.vv.get(self.me)]
        if not ours:
            return None
        merged = VersionVector()
        for vv in ours:
            merged = merged.merge(vv)
        return merged

    def _unpublished(self, exclude: set[str] = frozenset()) -> list[FileRecord]:
        """Versions for what the disk held before we could publish (files present at `join`,
        written before the grant arrived): index rows that are no mesh version yet."""
        out = []
        for path, entry in sorted(self.index.items()):
            if entry.vv or path in exclude or path in self.busy or path in self._rolled_back:
                continue
            if self._awaiting_ours(path) is not None:
                continue  # the disk went back in time: our version comes back from the mesh
            if self.live is not None and self.live.owns(path):
                continue
            record = mirror.local_version(self.metamap, self.me, path, None, as_record(entry, self.me))
            if record is None:
                continue  # the mesh has this content as the winner: the puller adopts it
            out.append(record)
            self.index[path] = changed(entry, vv=record.vv)
        if out:
            self._mark(r.path for r in out)
        return out

    def _emptied(self, result: ScanResultLike) -> bool:
        """Every path gone at once from a root that held several files: an unmounted disk looks
        like that. (Deleting the one file a root holds is an ordinary deletion.)"""
        files = sum(1 for e in self.index.values() if e.kind == FILE)
        if result.entries or files < EMPTIED_MIN_FILES:
            return False
        cut = self._rollback_ns  # after a power loss, a root whose every row is younger than
        # the write-back window is what the loss left: its files are fetched again, not deleted
        return cut is None or any(e.mtime_ns < cut for e in self.index.values())

    def all_gone(self, deleted: Iterable[str]) -> bool:
        """A partial scan found every known path gone: judge the root as a whole instead."""
        return bool(self.index) and set(deleted) >= self.index.keys()

    def _pause(self, reason: str, wall: float) -> list:
        if self.paused == reason:
            return []
        self.paused = reason
        return [Emit(RootPaused(wall, reason))]

    def _resume(self, wall: float) -> list:
        if not self.paused:
            return []
        self.paused = None
        self._dirty = None
        return [Emit(RootResumed(wall))]

    # -- the map moved: conflict copies, newly admitted nodes --------------------------------
    def map_changed(self, paths: Iterable[str] | None, holds: Holds, wall: float) -> list:
        """The map changed at `paths` (None: anywhere, as when membership moved), by a peer's
        update or by our own `Publish`. Publishes the conflict copies we can serve."""
        out: list = []
        role = self.role()
        if role != self._role:
            self._role = role
            paths = None
            if role == READ_WRITE and self.scanned:
                records = self._unpublished()
                if records:
                    out.append(Publish(tuple(records), user=True))
        if paths is None:
            self._dirty = None
            touched = list(self.metamap.files)
        else:
            touched = set(paths)
            # a conflict copy in the map settles its original's loser: its disk vv moves too
            touched |= {o for o in map(conflict.original_of, (  # (a regex: only where it can
                p for p in touched if conflict.CONFLICT_MARK in p)) if o is not None}  # match)
            touched = sorted(touched)
            self._mark(touched)
        for path in (list(self.stalled) if paths is None else touched):
            self.stalled.pop(path, None)
        out += self._live_adopt(self.index if paths is None else touched, wall)
        if role == READ_WRITE:
            copies = []
            for path in touched:
                if self.live is not None and self.live.owns(path):
                    continue  # one merged text: no conflict copy of a live file
                for copy in mirror.conflict_copies(self.metamap, path, holds):
                    copies.append(copy)
                    out.append(Emit(Conflict(wall, path, copy.path)))
            if copies:
                out.insert(0, Publish(tuple(copies), user=False))
        return out

    def peers_changed(self) -> None:
        """A peer connected or left: content that was unavailable may be reachable now."""
        if self.stalled:
            self._mark(self.stalled)
            self.stalled.clear()

    # -- our versions being signed (an interpreter that signs off its loop) -------------------
    def signing(self, records: Iterable[FileRecord]) -> None:
        """The interpreter began carrying out a `Publish` of `records` and signs them in the
        background: until `published`, their paths wait. No disk work starts there (a peer's
        version would be judged against a row whose version the map does not hold yet), a scan's
        change there is judged later, and the folder is not in sync."""
        signing = self._signing
        for r in records:
            signing[r.path] = signing.get(r.path, 0) + 1

    def published(self, records: Iterable[FileRecord], holds: Holds, wall: float) -> list:
        """`records` (an earlier `signing`'s) are signed, applied, stored and spread: the map
        moved there (`map_changed`)."""
        paths, signing = [], self._signing
        for r in records:
            paths.append(r.path)
            left = signing.pop(r.path, 1) - 1
            if left > 0:
                signing[r.path] = left
        if not signing:
            self._signing = {}  # a first scan's 100,000 paths: the table itself goes too
        return self.map_changed(paths, holds, wall)

    # -- disk side: needs, in order ------------------------------------------------------------
    def _mark(self, paths: Iterable[str]) -> None:
        if self._dirty is not None:
            self._dirty.update(paths)

    def _need(self, path: str) -> mirror.Need | None:
        if path in self._signing:
            return None  # our version there is not in the map yet: judged once it is
        entry = self.index.get(path)
        if entry is not None and not entry.vv and self._role == PENDING:
            return None  # our own content, unpublished until the grant says who we are
        if self.live is not None and self.live.owns(path):
            return None  # its document writes the disk (a deletion still goes through)
        return mirror.need_for(self.metamap, path, entry)

    def _set_need(self, path: str, need: mirror.Need | None) -> None:
        old = self._needs.pop(path, None)
        if old is not None:
            del self._order[mirror.order(old)]
            if _is_large(old):
                self._large_needs -= 1
        if need is not None:
            self._needs[path] = need
            self._order[mirror.order(need)] = need
            if _is_large(need):
                self._large_needs += 1

    def refresh(self, now: float) -> None:
        """Recompute the needs of the paths that moved (all of them now and then)."""
        if self.refresh_due(now):
            self._needs, self._order, self._large_needs = {}, SortedDict(), 0
            for path in mirror.paths_to_judge(self.metamap, self.index):
                self._set_need(path, self._need(path))
            self._full_at = now
        else:
            for path in self._dirty:
                self._set_need(path, self._need(path))
        self._dirty = set()

    def refresh_due(self, now: float) -> bool:
        """Is the safety-net recomputation of every need due (or were all marked)?"""
        return self._dirty is None or now - self._full_at > self.full_refresh

    @property
    def needs(self) -> list[mirror.Need]:
        return list(self._order.values())

    def next_work(self, now: float) -> list[mirror.Need]:
        """What to start now, in order, each marked busy: every folder, link and metadata
        change due, files up to the free assembly slots, then deletions, but only once no file
        is being assembled (a renamed file's old path stays until the new one copied from it).
        Small and large files have slots of their own: a file whose kind has no free slot is
        passed over (a large file waiting must not hold back the small ones behind it), the walk
        stops once neither kind has one (or none of the other kind waits), or after passing over
        PASS_OVER files: a round costs about what it starts."""
        if self.paused or (self.disk_full and now < self._disk_retry):
            return []
        self.refresh(now)
        out: list[mirror.Need] = []
        slots = self.max_files - (len(self.assembling) - len(self._small))
        small_bytes = sum(self._small.values())
        assembling = bool(self.assembling)
        small_full = len(self._small) >= self.max_small_files
        large = len(self.assembling) - len(self._small)  # large files under way
        small_waiting = len(self._needs) - self._large_needs > len(self._small)
        large_waiting = self._large_needs > large
        passed = PASS_OVER  # files passed over, at most
        for key in self._order.irange(maximum=mirror.AFTER_FILES, inclusive=(True, False)):
            need = self._order[key]
            if not self._startable(need, now):
                continue
            if need.action == mirror.WRITE_FILE:
                size = need.record.size
                if size > SMALL_FILE:
                    if slots <= 0:
                        passed -= 1
                        if small_full or not small_waiting or passed <= 0:
                            break
                        continue
                    slots -= 1
                elif small_full or len(self._small) >= self.max_small_files or (
                        self._small and small_bytes + size > SMALL_BYTES):
                    small_full = True
                    passed -= 1
                    if slots <= 0 or not large_waiting or passed <= 0:
                        break
                    continue
                else:
                    self._small[need.path] = size
                    small_bytes += size
                assembling = True
                self.assembling.add(need.path)
            out.append(need)
            self.busy.add(need.path)
        if not assembling:
            for key in self._order.irange(minimum=mirror.AFTER_FILES):
                need = self._order[key]
                if self._startable(need, now):
                    out.append(need)
                    self.busy.add(need.path)
        return out

    def _startable(self, need: mirror.Need, now: float) -> bool:
        if need.path in self.busy or need.path in self._signing:
            return False
        stall = self.stalled.get(need.path)
        if stall is not None and now < stall.retry_at:
            return False
        failed = self.failed.get(need.path)
        return failed is None or failed[0] != need.disk_vv or now >= failed[1]

    def superseded(self, need: mirror.Need) -> bool:
        """Has the map or the disk moved on since `need` was handed out?"""
        if self._current(need):
            return False
        current = self._need(need.path)
        return current is None or current.record != need.record

    def _current(self, need: mirror.Need) -> bool:
        """Is `need` still the path's need as last computed, with nothing that could change it
        since (the map at the path, its index row, the role, live documents: every such change
        marks the path)? Then it need not be computed again: the need was computed about three
        times per file written (handed out, checked before placing, after placing)."""
        return (self._dirty is not None and need.path not in self._dirty
                and self._needs.get(need.path) is need)

    def sealed(self, need: mirror.Need, st: DiskStat | None = None, wall: float = 0.0) -> None:
        """`need`'s bytes are in its temp file, no longer held in memory: they leave the
        SMALL_BYTES budget, so more small files start while it is made durable and placed
        (that took ~13 of the 16 MiB at ~130 MB/s). It stays busy, and counts among
        max_small_files, until `done` (or another ending). `st`: the sealed temp file's stat,
        which the rename keeps. Its watcher event is ours from now on: a round's renames are
        reported `done` only after the next round's sync, and an event judged before then was
        scanned again (a worker hop, an lstat, and a re-hash when the index row was not yet
        written)."""
        if st is not None and need.action == mirror.WRITE_FILE:
            self.own_writes.placed(need.path, st.size, st.mtime_ns, st.inode, need.record.mode,
                                   wall)
        if need.path in self._small and need.path in self.busy:
            self._small[need.path] = 0

    def _release(self, need: mirror.Need) -> None:
        self.busy.discard(need.path)
        self.assembling.discard(need.path)
        self._small.pop(need.path, None)
        self._mark([need.path])

    def entry_after(self, need: mirror.Need, st: DiskStat) -> IndexEntry:
        """The index row for what `need` put on disk (`st`: its stat once written)."""
        rec = need.record
        if rec.kind == DIR:
            return IndexEntry(need.path, 0, st.mtime_ns, st.inode, rec.mode, DIR, vv=need.disk_vv)
        mode = rec.mode if rec.kind != SYMLINK else 0o777
        return IndexEntry(need.path, st.size, st.mtime_ns, st.inode, mode, rec.kind, rec.hash,
                          rec.block_size, rec.blocks, rec.target, need.disk_vv)

    def done(self, need: mirror.Need, st: DiskStat | None, wall: float) -> list:
        """`need` is on disk (`st`: its stat; None for a deletion, or a path gone meanwhile)."""
        current = self._current(need)
        self._release(need)
        self.failed.pop(need.path, None)
        self.stalled.pop(need.path, None)
        self._rolled_back.pop(need.path, None)
        origin = str(NodeId(need.record.origin))
        out = []
        if self.disk_full and need.action != mirror.DELETE:
            self.disk_full = None
            out.append(Emit(DiskSpaceBack(wall)))
        if need.action == mirror.DELETE:
            return out + self._write_index([], [need.path]) + [Emit(FileDeleted(wall, need.path, origin))]
        if need.action == mirror.ADOPT:  # nothing moved on disk: only the row's version does
            entry = self.index.get(need.path)  # (a stat taken now could be a user's new write)
            return out if entry is None else out + self._write_index(
                [changed(entry, vv=need.disk_vv)], [])
        if st is None:
            return out
        row = self._placed_row(need, st) if current else None
        out += self._write_index([row or self.entry_after(need, st)], [])
        if need.action == mirror.WRITE_FILE:
            self.own_writes.placed(need.path, st.size, st.mtime_ns, st.inode, need.record.mode,
                                   wall)
        adopted = self._live_adopt([need.path], wall)
        if current and not adopted and need.action == mirror.WRITE_FILE:
            self._settled(need.path)
        out += adopted
        if need.action not in (mirror.ADOPT,):
            out.append(Emit(FileUpdated(wall, need.path, origin)))
        return out

    @staticmethod
    def _placed_row(need: mirror.Need, st: DiskStat) -> VersionRow | None:
        """The row of a file written for a current need (its record is the map's winner) when
        the disk holds exactly that version: the VersionRow `_compact` would find, without
        making an IndexEntry and comparing its every field with the map's versions."""
        rec = need.record
        if (need.action == mirror.WRITE_FILE and not rec.deleted and need.disk_vv == rec.vv
                and st.size == rec.size and st.mtime_ns == rec.mtime_ns):
            return VersionRow(rec, st.inode)
        return None

    def _settled(self, path: str) -> None:
        """A current need was carried out and nothing else moved at the path: its row now holds
        the version the need was for, so the path needs nothing (what `_need` would say, without
        asking the map again)."""
        self._set_need(path, None)
        self._dirty.discard(path)

    def done_many(self, done: list[tuple[mirror.Need, DiskStat | None]], wall: float) -> list:
        """Several needs on disk at once (a batch of small files): `done` of each, their index
        writes merged into one, ahead of the other effects (one write for the index saver and
        the block index, not one a file)."""
        puts: list[IndexEntry] = []
        drops: list[str] = []
        rest = []
        for need, st in done:
            for effect in self.done(need, st, wall):
                if isinstance(effect, IndexWrite):
                    puts += effect.puts
                    drops += effect.drops
                else:
                    rest.append(effect)
        return ([IndexWrite(tuple(puts), tuple(drops))] if puts or drops else []) + rest

    def abandoned(self, need: mirror.Need) -> None:
        """`need` was dropped unfinished (superseded, or its download cancelled)."""
        self._release(need)

    def folder_kept(self, need: mirror.Need, wall: float) -> list:
        """A folder to delete still holds entries. When the map keeps a path inside it (a file
        added there while another node deleted the folder, or others' files in a folder whose
        only version a revocation voided), the folder stays for good: we publish it as ours,
        superseding the deletion, so every disk and the map agree again. Otherwise (what is
        inside is being deleted too, or is local only: ignored or unpublished files) the
        deletion is asked again on a later round."""
        self._release(need)
        entry = self.index.get(need.path)
        if (entry is None or entry.kind != DIR or self._role != READ_WRITE
                or not mirror.keeps_under(self.metamap, need.path)):
            return []
        record = mirror.kept_folder(self.metamap, self.me, as_record(entry, self.me), entry.vv)
        return self._write_index([changed(entry, vv=record.vv)], []) + [
            Publish((record,), user=False), Emit(FileChanged(wall, need.path, False))]

    def changed_under_us(self, need: mirror.Need) -> list:
        """The path no longer holds what the index says: the user's change comes first. Its
        row is marked so that the rescan hashes the file again even when its stat looks the
        same (a rewrite within one tick of the file system's clock, same size: "racy" files)."""
        self._release(need)
        entry = self.index.get(need.path)
        if entry is not None:
            self.index[need.path] = changed(entry, inode=-1)
        return [Rescan((need.path,), 0.0)]

    def failed_work(self, need: mirror.Need, reason: str, now: float, wall: float, *,
                    forever: bool = False, no_space: bool = False) -> list:
        """A disk error or a refusal: say so, try again later (refusals: not for this version).
        `no_space`: the disk is full; all pulling pauses, tried again every few seconds, and
        resumes by itself once a write fits (no file was touched: temp files are removed)."""
        if no_space:
            self._release(need)
            self._disk_retry = now + DISK_FULL_RETRY
            if self.disk_full is None:
                self.disk_full = f"{reason}: free some space; pulling resumes by itself"
                return [Emit(DiskFull(wall, self.disk_full))]
            return []
        self._release(need)
        self.failed[need.path] = (need.disk_vv, FOREVER if forever else now + self.retry_after)
        return [Emit(Refused(wall, need.path, reason, str(NodeId(need.record.origin))))]

    def content_unavailable(self, need: mirror.Need, now: float, wall: float) -> list:
        """No connected peer holds `need`'s content. Asked again soon (0.25 s, doubling): while
        a version spreads the neighbours may not have it yet. After `UNAVAILABLE_AFTER` seconds of that it is
        listed as unavailable and stops counting as pending (SPEC: unavailable versions never
        block the mesh); it is still asked for again when a peer connects, the map moves, or
        after a back-off (a peer may have fetched it since)."""
        self._release(need)
        old = self.stalled.get(need.path)
        since = now if old is None else old.since
        listed = now - since >= UNAVAILABLE_AFTER
        if old is None:
            backoff = STALL_RETRY
        else:  # doubling: a neighbour fetching it now is asked again soon, a lost cause rarely
            backoff = min(UNAVAILABLE_MAX if listed else STALL_RETRY_MAX, 2 * old.backoff)
        self.stalled[need.path] = _Stall(since, now + backoff, backoff, listed)
        if (listed and need.record.origin == self.me and self.role() == READ_WRITE
                and conflict.original_of(need.path) is None):
            return self._settle_lost(need.path, need.record.vv, wall)
        return []

    def _settle_lost(self, path: str, unseen: VersionVector, wall: float) -> list:
        """A version of our own that our disk no longer has (a power loss took it back) has
        been unavailable for a while: nobody had fetched it, or its holders are away. Left so,
        every node would keep a different older content for good. What our disk kept becomes
        the version at the path, and the lost one (`unseen`: its vv) its conflict copy: listed
        as unavailable, and fetched from its holder the day one comes back (nothing is dropped;
        a copy is never settled again)."""
        self._rolled_back.pop(path, None)
        vv = mirror.fresh(self.metamap, path, unseen, self.me)
        entry = self.index.get(path)
        out = []
        if entry is None:  # the loss took the whole file: a deletion that supersedes it
            record = FileRecord(path=path, kind=FILE, vv=vv, origin=self.me,
                                mtime_ns=int(wall * 1e9), deleted=True)
        else:
            record = replace(as_record(entry, self.me), origin=self.me, vv=vv)
            out += self._write_index([changed(entry, vv=vv)], [])
        kept = self._keep_unseen(unseen, record)
        self.stalled.pop(path, None)
        self._mark([path])
        return out + [Publish((record, *kept), user=False), Emit(FileChanged(wall, path, record.deleted))] + [
            Emit(Conflict(wall, path, c.path)) for c in kept]

    @property
    def unavailable(self) -> list[str]:
        """Paths whose winning content no reachable node has had for a while."""
        return sorted(p for p, s in self.stalled.items() if s.listed and p in self._needs)

    def origin_of(self, entry: IndexEntry) -> bytes:
        """The node that made the content `entry` holds (for the revision archive)."""
        best = None
        for v in self.metamap.versions(entry.path):
            if v.hash == entry.hash:
                best = v.origin
        if best is None:
            counters = list(entry.vv.items())
            best = max(counters, key=lambda kv: kv[1])[0] if counters else self.me
        return best

    # -- live files (protocol/live.py) ---------------------------------------------------------
    def _live_wants(self, entry: ScanEntryLike) -> bool:
        return self.live is not None and entry.kind == FILE and self.live.wants(entry.path, entry.size)

    def _live_takes(self, entry: ScanEntryLike, wall: float, out: list) -> bool:
        """Is this changed file live (merged into its document)? A file too large to be live
        gets its event (into `out`) and is mirrored as a plain file."""
        if self.live is None or entry.kind != FILE:
            return False
        out += self.live.too_big(entry.path, entry.size, wall)
        return self._live_wants(entry)

    def _live_scanned(self, entry: ScanEntryLike, role: str,
                      wall: float) -> tuple[FileRecord | None, VersionVector, list]:
        """A live path changed on disk: its bytes are read and merged into the document. It is
        a file version only when one is due (new to the mesh, or after minutes of editing); the
        version then supersedes every version the map holds of it."""
        path = entry.path
        out: list = []
        if self.live.is_own_write(path, entry.hash):
            self.live.recheck(path)  # our text is there: a newer one may still be due
        elif path not in self.live.reading:
            self.live.reading.add(path)
            out.append(ReadText(path))
        old = self.index.get(path)
        if role == READ_WRITE and self.live.version_due(path, wall):
            merged = VersionVector()
            for v in self.metamap.versions(path):
                merged = merged.merge(v.vv)
            base = index_entry(entry, merged) if merged else old
            record = mirror.local_version(self.metamap, self.me, path, base, as_record(entry, self.me))
            if record is not None:
                self.live.versioned(path)
                return record, record.vv, out
        vv = old.vv if old is not None and old.vv else mirror.disk_version(self.metamap, path)
        return None, vv, out

    def _live_adopt(self, paths: Iterable[str], wall: float) -> list:
        """Files that should be live and have no document yet: read them to seed it, when the
        disk holds the mesh's version (or a file the mesh does not know yet)."""
        if self.live is None or not self.scanned or not self.metamap.live_globs():
            return []
        out = []
        for path in paths:
            entry = self.index.get(path)
            if entry is None or path in self.live.docs or path in self.live.reading:
                continue
            if not self._live_wants(entry):
                if entry.kind == FILE:
                    out += self.live.too_big(path, entry.size, wall)
                continue
            winner = self.metamap.winner(path)
            if winner is not None and (winner.deleted or winner.hash != entry.hash):
                continue  # behind the mesh: the puller or the document brings it
            self.live.reading.add(path)
            out.append(ReadText(path))
        return out

    def live_text(self, path: str, data: bytes | None, now: float, wall: float) -> list:
        """The bytes `ReadText` asked for (None: the file was gone or unreadable)."""
        if self.live is None:
            return []
        if data is None:
            self.live.reading.discard(path)
            return []
        out = self.live.text(path, data, now, wall, writer=self.role() == READ_WRITE)
        if path in self.live.fallback:  # mirrored as a plain file: its change is a version now
            entry = self.index.get(path)
            if entry is not None:
                self.index[path] = changed(entry, inode=-1)
            out.append(Rescan((path,), 0.0))
        return out

    def live_remote(self, updates: list, now: float, wall: float) -> list:
        """LiveEdits from peers were stored."""
        if self.live is None:
            return []
        out = self.live.remote(updates, now, wall)
        self._mark({u.payload.path for u in updates})  # their needs: now the document's
        return out

    def live_tick(self, now: float, wall: float) -> list:
        """Due file writes and snapshots; live files edited for minutes are scanned again
        (their row marked unseen) so that the scan makes their next file version."""
        if self.live is None or not self.scanned or self.paused:
            return []
        out = []
        for effect in self.live.tick(now, writer=self.role() == READ_WRITE):
            if isinstance(effect, WriteText):  # over what the index says is there, only
                row = self.index.get(effect.path)
                effect = replace(effect, expect=None if row is None else (
                    row.size, row.mtime_ns, row.inode, row.kind), archive=row is not None and any(
                    v.hash == row.hash for v in self.metamap.versions(effect.path)))
            out.append(effect)
        due = [p for p in self.live.checkpoints_due(wall) if p in self.index]
        for path in due:  # an mtime no file has: the scan sees a change and hashes it again
            self.index[path] = changed(self.index[path], inode=-1, mtime_ns=-1)
        if due:
            out.append(Rescan(tuple(due), 0.0))
        return out

    def live_written(self, path: str, base: bytes, digest: bytes | None = None) -> list:
        """A `WriteText` is on disk (`base`: the update it carried; `digest`: the file's hash)."""
        return [] if self.live is None else self.live.written(path, base, digest)

    def live_client(self, path: str, update: bytes, now: float, wall: float) -> list:
        """An update from an editor of this node (the websocket); dropped on a read-only node."""
        if self.live is None or self.role() != READ_WRITE:
            return []
        return self.live.client_update(path, update, now, wall)

    # -- the index ------------------------------------------------------------------------------
    def _write_index(self, puts: list[Row], drops: list[str]) -> list:
        """Rows to put and paths to drop, in the index and in the store. A row holding exactly
        a map version's content is kept as that version plus its inode (core/indexrow.py)."""
        if not puts and not drops:
            return []
        puts = [self._compact(e) for e in puts]
        self._totals = None
        for e in puts:
            self.index[e.path] = e
        for p in drops:
            self.index.pop(p, None)
        self._mark([e.path for e in puts])
        self._mark(drops)
        return [IndexWrite(tuple(puts), tuple(drops))]

    def _compact(self, row: Row) -> Row:
        if isinstance(row, VersionRow):
            return row
        for version in self.metamap.versions(row.path):
            compacted = indexrow.compact(row, version)
            if compacted is not row:
                return compacted
        return row

    # -- views -----------------------------------------------------------------------------------
    def pending(self) -> list[mirror.Need]:
        listed = {p for p, s in self.stalled.items() if s.listed}
        return [n for n in self._needs.values() if n.path not in listed]

    def unpublished(self) -> bool:
        return self._role == PENDING and any(not e.vv for e in self.index.values())

    def in_sync(self) -> bool:
        return (self.scanned and not self.paused and not self.disk_full and not self.busy
                and not self._signing and not self.pending() and not self.unpublished())

    def in_sync_event(self, wall: float) -> list:
        """An `InSync` event when the folder just became in sync."""
        now = self.in_sync()
        was, self._was_in_sync = self._was_in_sync, now
        if now and not was:
            files, size, _ = self._file_totals()
            return [Emit(InSync(wall, files, size))]
        return []

    def _file_totals(self) -> tuple[int, int, list[str]]:
        if self._totals is None:
            self._totals = mirror.file_totals(self.index)
        return self._totals

    def counts(self) -> dict:
        """Asked many times a second while a GUI or a script waits for a sync (a benchmark asks
        each time an event arrives): the index is walked again only once a row was put or
        dropped, ~30 times a second while 2,000 small files arrive. The walk was half of a
        status's ~1 ms on the loop."""
        pending = self.pending()
        files, size, conflicts = self._file_totals()
        return {
            "files": files,
            "bytes": size,
            "in_sync": self.in_sync(),
            "pending_files": sum(1 for n in pending if n.action == mirror.WRITE_FILE),
            "pending_bytes": sum(n.bytes for n in pending),
            "conflicts": list(conflicts),
            "unavailable": self.unavailable,
            **({"disk_full": self.disk_full} if self.disk_full else {}),
        }


__all__ = ["FolderMachine", "DiskStat", "index_entry", "as_record", "PENDING", "READ_WRITE",
           "READ_ONLY", "SETTLE"]
