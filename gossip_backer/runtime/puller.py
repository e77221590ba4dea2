"""The puller: brings every winning version onto this node's disk, moving as little as possible.

For a file it builds the new content in a temporary file next to the target, from, in order:
  1. verified blocks of a temporary file a crash or restart left behind;
  2. the whole content from the revision archive (restores, conflict copies, undone deletions)
     or from a local file with the same content hash (a rename or copy, even where the two
     were cut into blocks of different sizes: a file's block size depends on its history);
  3. blocks already present in any local file (a block index by strong hash: renames, copies,
     duplicated blocks cost nothing on the wire);
  4. a zsync-style rolling match of the file's old content, so data shifted by an insertion is
     reused;
and only then fetches the remaining blocks from peers (protocol/transfer.py decides whom to ask).
The file is moved into place only after its whole hash checks out, and only if the file on disk
is still the one last scanned: a change the user made meanwhile is never overwritten, it becomes
a version of its own and the conflict rule decides. All disk work runs in worker threads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio
from sortedcontainers import SortedDict

from gossip_backer.core.blocks import RollingMatcher, strong_hash
from gossip_backer.core.ids import NodeId
from gossip_backer.core.paths import BadPath
from gossip_backer.core.record import DIR, FILE, SYMLINK, FileRecord
from gossip_backer.disk import apply, versions
from gossip_backer.disk.apply import DiskError, LocalChanged, Stat, TempFile
from gossip_backer.disk.safepath import CaseCollision, resolve
from gossip_backer.errors import IntegrityError, LocalError
from gossip_backer.events import FileDeleted, FileUpdated, Refused, TransferProgress
from gossip_backer.protocol import mirror
from gossip_backer.protocol.transfer import Scheduler
from gossip_backer.store.repo import IndexEntry
from gossip_backer.wire.messages import BlockData, BlockMissing

log = logging.getLogger(__name__)
MAX_FILES = 16  # files assembled at once
FULL_REFRESH = 30.0  # seconds between full recomputations of what the disk lacks
RETRY_AFTER = 10.0
READ_CHUNK = 4 << 20
PROGRESS_EVERY = 0.5  # seconds between transfer_progress events of one file
INLINE_HASH = 64 << 10  # blocks up to this size are verified on the loop
BUFFER_FILE = 1 << 20  # files up to this size keep fetched blocks in memory until `finish`
DISK_THREADS = 4  # worker threads the puller's disk work uses at once (more only fight for the GIL)


@dataclass
class _Job:
    """A file being assembled: for a need of the mesh, or for a restore (need is None)."""

    need: mirror.Need | None
    path: str
    size: int
    tmp: TempFile | None = None
    done: trio.Event = field(default_factory=trio.Event)
    reused: int = 0
    fetched: int = 0
    reported: float = 0.0
    writing: int = 0  # verified blocks handed to a worker thread, not yet written
    buffered: list = field(default_factory=list)  # (offset, data) of a small file, not written


def _stat(entry: IndexEntry | None) -> Stat | None:
    return None if entry is None else Stat(entry.size, entry.mtime_ns, entry.inode, entry.kind)


class Puller:
    def __init__(self, folder) -> None:
        self.folder = folder
        self.root: Path = folder.root
        self.scheduler = Scheduler(strong_hash)
        self._needs: dict[str, mirror.Need] = {}
        self._order: SortedDict = SortedDict()  # mirror.order(need) -> need: the work, in order
        self._dirty: set[str] | None = None  # paths to look at again; None: all of them
        self._full_at = 0.0
        self.busy: set[str] = set()
        self.jobs: dict[str, _Job] = {}
        self.failed: dict[str, tuple[object, float]] = {}  # path -> (vv, retry at)
        self._wake = trio.Event()
        self._pump = trio.Event()
        self.bytes_reused = 0
        self._disk_limiter = trio.CapacityLimiter(DISK_THREADS)

    async def _disk(self, fn, *args):
        """Run blocking disk work in a worker thread (a few at a time)."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self._disk_limiter)

    def wake(self) -> None:
        self._wake.set()
        self._pump.set()

    def mark(self, paths) -> None:
        """These paths changed in the map or on disk: their needs are looked at again."""
        if self._dirty is not None:
            self._dirty.update(paths)
        self.wake()

    def mark_all(self) -> None:
        self._dirty = None
        self.wake()

    @property
    def needs(self) -> list[mirror.Need]:
        return list(self._order.values())

    @property
    def pending(self) -> bool:
        return bool(self._needs)

    def _set_need(self, path: str, need: mirror.Need | None) -> None:
        old = self._needs.pop(path, None)
        if old is not None:
            del self._order[mirror.order(old)]
        if need is not None:
            self._needs[path] = need
            self._order[mirror.order(need)] = need

    def _refresh(self) -> None:
        """Recompute the needs of the changed paths (all of them now and then, a safety net)."""
        metamap, index = self.folder.state.metamap, self.folder.index
        now = time.monotonic()
        if self._dirty is None or now - self._full_at > FULL_REFRESH:
            needs = mirror.needed(metamap, index)
            self._needs = {n.path: n for n in needs}
            self._order = SortedDict((mirror.order(n), n) for n in needs)
            self._full_at = now
        else:
            for path in self._dirty:
                self._set_need(path, mirror.need_for(metamap, path, index.get(path)))
        self._dirty = set()

    # -- main loop -------------------------------------------------------------------------
    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._request_pump)
            while True:
                self._wake = trio.Event()
                if not self.folder.paused:
                    await self._round(nursery)
                self.folder.check_in_sync()
                with trio.move_on_after(1.0):
                    await self._wake.wait()

    async def _round(self, nursery: trio.Nursery) -> None:
        self._refresh()
        for need in self._next_work():
            if self.folder.paused:
                break
            if need.action == mirror.WRITE_FILE:
                if len(self.jobs) < MAX_FILES and need.path not in self.busy:
                    self.busy.add(need.path)
                    nursery.start_soon(self._pull_file, need)
                continue
            await self._guarded(need, self._simple(need))
        self._refresh()

    def _next_work(self) -> list[mirror.Need]:
        """What this round can start, in order: every folder and link due, files up to the free
        assembly slots, then deletions, but only once no file is being assembled: the old path
        of a renamed file must stay until the new one has copied its blocks from it. The walk
        stops at the first file it cannot start, so a round costs what it does, not the length
        of the queue."""
        out: list[mirror.Need] = []
        slots = MAX_FILES - len(self.jobs)
        assembling = bool(self.jobs)
        for key in self._order.irange(maximum=mirror.AFTER_FILES, inclusive=(True, False)):
            need = self._order[key]
            if need.path in self.busy or self._failed_recently(need):
                continue
            if need.action == mirror.WRITE_FILE:
                if slots <= 0:
                    break
                slots -= 1
                assembling = True
            out.append(need)
        if not assembling:
            out.extend(n for n in (self._order[k] for k in self._order.irange(minimum=mirror.AFTER_FILES))
                       if n.path not in self.busy and not self._failed_recently(n))
        return out

    def _failed_recently(self, need: mirror.Need) -> bool:
        failed = self.failed.get(need.path)
        return failed is not None and failed[0] == need.disk_vv and time.monotonic() < failed[1]

    async def _guarded(self, need: mirror.Need, work) -> None:
        """Run one need; turn every refusal or disk error into an event and a later retry."""
        try:
            await work
            self.failed.pop(need.path, None)
        except LocalChanged:
            await self.folder.scan_some({need.path})
        except (BadPath, CaseCollision) as exc:
            self._give_up(need, "refused", str(exc), forever=True)
        except (DiskError, IntegrityError, LocalError, OSError) as exc:
            self._give_up(need, "failed", str(exc), forever=False)

    def _give_up(self, need: mirror.Need, what: str, reason: str, forever: bool) -> None:
        log.warning("%s %s: %s", what, need.path, reason)
        self.folder.node._emit(Refused(time.time(), need.path, reason, str(NodeId(need.record.origin))))
        delay = 10 ** 9 if forever else RETRY_AFTER
        self.failed[need.path] = (need.disk_vv, time.monotonic() + delay)

    # -- folders, links, deletions, adoptions ----------------------------------------------
    async def _simple(self, need: mirror.Need) -> None:
        rec, path = need.record, need.path
        entry = self.folder.index.get(path)
        archived: list[tuple[IndexEntry, bool]] = []
        archive = self._archiver(entry, archived)
        if need.action == mirror.ADOPT:
            pass
        elif need.action == mirror.CREATE_DIR:
            await self._disk(apply.make_dir, self.root, path, rec.mode, rec.mtime_ns)
        elif need.action == mirror.WRITE_LINK:
            await self._disk(lambda: apply.make_symlink(
                self.root, path, rec.target or "", _stat(entry), archive=archive))
        elif need.action == mirror.DELETE:
            removed = entry is None or await self._disk(
                lambda: apply.remove(self.root, path, _stat(entry), archive=archive))
            self._record_archived(archived)
            if removed:
                self.folder._index_delete([path])
                self.folder.node._emit(FileDeleted(time.time(), path, str(NodeId(rec.origin))))
            return
        self._record_archived(archived)
        await self._index_now(need)
        if need.action != mirror.ADOPT:
            self.folder.node._emit(FileUpdated(time.time(), path, str(NodeId(rec.origin))))

    async def _index_now(self, need: mirror.Need, st: Stat | None = None) -> None:
        """Record in the index what is now on disk at the path (`st`, else stat'ed now), as
        version `need.disk_vv`."""
        rec = need.record
        if st is None:
            st = await self._disk(apply.stat_of, self.root, need.path)
        if st is None:
            return
        mode = rec.mode if rec.kind != SYMLINK else 0o777
        entry = IndexEntry(need.path, st.size, st.mtime_ns, st.inode, mode, rec.kind, rec.hash,
                           rec.block_size, rec.blocks, rec.target, need.disk_vv)
        if rec.kind == DIR:
            entry = IndexEntry(need.path, 0, st.mtime_ns, st.inode, rec.mode, DIR, vv=need.disk_vv)
        self.folder._index_put([entry])

    def _archiver(self, entry: IndexEntry | None, archived: list):
        """The callback that keeps the replaced or deleted content under .backer/versions/."""
        def archive(path_on_disk: Path) -> None:
            if entry is None or entry.kind != FILE or entry.hash is None:
                return
            try:
                versions.archive(self.root, path_on_disk, entry.hash)
                archived.append((entry, True))
            except versions.ArchiveMismatch:
                raise LocalChanged(path_on_disk, "changed since it was scanned")
        return archive

    def _record_archived(self, archived: list) -> None:
        for entry, _ok in archived:
            origin = self._origin_of(entry)
            self.folder.state.repo.add_revision(entry.path, entry.hash, entry.size,
                                                entry.mtime_ns, origin, time.time())

    def _origin_of(self, entry: IndexEntry) -> bytes:
        best = None
        for v in self.folder.state.metamap.versions(entry.path):
            if v.hash == entry.hash:
                best = v.origin
        if best is None:
            counters = list(entry.vv.items())
            best = max(counters, key=lambda kv: kv[1])[0] if counters else self.folder.me
        return best

    # -- files -----------------------------------------------------------------------------
    async def _pull_file(self, need: mirror.Need) -> None:
        job = self.jobs[need.path] = _Job(need, need.path, need.record.size)
        try:
            await self._guarded(need, self._assemble(job))
        finally:
            self.scheduler.cancel(need.path)
            self.jobs.pop(need.path, None)
            self.busy.discard(need.path)
            if job.tmp is not None:
                job.tmp.close()
            self.wake()

    async def _assemble(self, job: _Job) -> None:
        need, rec = job.need, job.need.record
        entry = self.folder.index.get(need.path)
        self.folder.server.ready()
        same = self.folder.server.find_file(rec.hash) if rec.hash else None
        job.tmp, have = await self._disk(self._prepare, need, entry, self.folder.server.find_block,
                                         same)
        job.reused = sum(self._len(rec, i) for i in have)
        self.bytes_reused += job.reused
        missing = [(i, b) for i, b in enumerate(rec.blocks) if i not in have]
        if missing:
            self.scheduler.add(need.path, rec.hash, rec.block_size, rec.size, missing)
            self._pump.set()
            while self.scheduler.remaining(need.path) or job.writing:
                if self._superseded(need):
                    return
                with trio.move_on_after(1.0):
                    await job.done.wait()
                job.done = trio.Event()
        archived: list = []
        tmp, buffered = job.tmp, job.buffered

        def finish() -> Stat | None:
            for offset, data in buffered:
                tmp.write_at(offset, data)
            tmp.finish(None, rec.hash, rec.mode, rec.mtime_ns, _stat(entry),
                       archive=self._archiver(entry, archived))
            return apply.stat_of(self.root, need.path)
        st = await self._disk(finish)
        job.tmp = None
        self._record_archived(archived)
        await self._index_now(need, st)
        self.folder.node._emit(FileUpdated(time.time(), need.path, str(NodeId(rec.origin))))

    def _superseded(self, need: mirror.Need) -> bool:
        current = mirror.need_for(self.folder.state.metamap, need.path, self.folder.index.get(need.path))
        return current is None or current.record != need.record

    @staticmethod
    def _len(rec: FileRecord, i: int) -> int:
        return min(rec.block_size, rec.size - i * rec.block_size)

    def _prepare(self, need: mirror.Need, entry: IndexEntry | None, find_block,
                 same: str | None):
        """(worker thread) Open the temporary file and fill in every block we already have."""
        rec = need.record
        partial = apply.find_partial(self.root, need.path)
        if partial is not None:
            tmp = TempFile.open_existing(partial, target=resolve(self.root, need.path))
        else:
            tmp = TempFile.create(self.root, need.path)
        try:
            have = self._reuse(tmp, rec, entry, find_block, same, resumed=partial is not None)
        except BaseException:
            tmp.close()
            raise
        return tmp, have

    def _reuse(self, tmp: TempFile, rec: FileRecord, entry, find_block, same: str | None,
               resumed: bool) -> set[int]:
        have: set[int] = set()
        if resumed:
            have |= self._verified_in(tmp, rec, set(range(len(rec.blocks))))
        tmp.truncate(rec.size)
        archived = versions.open_version(self.root, rec.hash) if rec.hash else None
        whole = archived if archived is not None else (self.root / same if same else None)
        if whole is not None:  # the same content, archived or at another path (a rename or copy,
            have |= self._copy_from(whole, tmp, rec, {  # maybe cut in other blocks there)
                i: i * rec.block_size for i in range(len(rec.blocks)) if i not in have})
        wanted = {i: b for i, b in enumerate(rec.blocks) if i not in have}
        by_source: dict[str, dict[int, int]] = {}
        for i, b in wanted.items():
            src = find_block(b.hash)
            if src is not None:
                by_source.setdefault(src[0], {})[i] = src[1]
        for src_path, offsets in by_source.items():
            have |= self._copy_from(self.root / src_path, tmp, rec, offsets)
        if archived is None and len(have) < len(rec.blocks) and rec.hash:
            archived = versions.open_version(self.root, rec.hash)  # archived meanwhile (a
            if archived is not None:  # source deleted while we read it)
                have |= self._copy_from(archived, tmp, rec, {
                    i: i * rec.block_size for i in range(len(rec.blocks)) if i not in have})
        if entry is not None and entry.kind == FILE and len(have) < len(rec.blocks):
            have |= self._rolling(tmp, rec, have)
        return have

    def _verified_in(self, tmp: TempFile, rec: FileRecord, indices: set[int]) -> set[int]:
        ok = set()
        for i in indices:
            size = self._len(rec, i)
            if i * rec.block_size + size <= tmp.size and strong_hash(tmp.read_at(i * rec.block_size, size)) == rec.blocks[i].hash:
                ok.add(i)
        return ok

    def _copy_from(self, source: Path, tmp: TempFile, rec: FileRecord, offsets: dict[int, int]) -> set[int]:
        """Copy blocks found at `offsets` (index -> source offset) of `source`, verified."""
        got = set()
        try:
            with open(source, "rb", buffering=0) as f:
                for i, off in sorted(offsets.items(), key=lambda kv: kv[1]):
                    size = self._len(rec, i)
                    f.seek(off)
                    data = f.read(size)
                    if len(data) == size and strong_hash(data) == rec.blocks[i].hash:
                        tmp.write_at(i * rec.block_size, data)
                        got.add(i)
        except OSError:
            pass
        return got

    def _rolling(self, tmp: TempFile, rec: FileRecord, have: set[int]) -> set[int]:
        """zsync-style: find the missing blocks anywhere in the old file at this path."""
        old = self.root / rec.path
        matcher = RollingMatcher(rec.blocks, rec.block_size, rec.size)
        try:
            with open(old, "rb", buffering=0) as f:
                def chunks():
                    offset = 0
                    while True:
                        data = f.read(READ_CHUNK)
                        if not data:
                            return
                        yield offset, data
                        offset += len(data)
                found = matcher.scan_chunks(chunks())
        except OSError:
            return set()
        found = {i: off for i, off in found.items() if i not in have}
        return self._copy_from(old, tmp, rec, found)

    # -- blocks from peers -----------------------------------------------------------------
    async def _request_pump(self) -> None:
        while True:
            self._pump = trio.Event()
            peers = [p for p, link in self.folder.node.links.items()]
            now = trio.current_time()
            self.scheduler.tick(now)
            for peer, req in self.scheduler.requests(peers, now):
                self.folder.node.send_to(peer, req)
            with trio.move_on_after(1.0):
                await self._pump.wait()

    async def on_block(self, peer: bytes, msg: BlockData | BlockMissing) -> None:
        """An answer from a peer (raises IntegrityError for bad data: the caller drops it)."""
        if isinstance(msg, BlockMissing):
            self.scheduler.on_missing(peer, msg.request_id)
            self._pump.set()
            return
        expected = self.scheduler.expected(msg.request_id)
        ok = None
        if expected == b"":  # a piece of a whole version: `finish` checks the whole hash
            ok = True
        elif expected is not None and len(msg.data) <= INLINE_HASH:
            ok = strong_hash(msg.data) == expected  # microseconds: cheaper than a thread hop
        elif expected is not None:
            ok = await trio.to_thread.run_sync(lambda: strong_hash(msg.data) == expected)
        arrived = self.scheduler.on_data(peer, msg.request_id, msg.data, verified=ok)
        self._pump.set()
        if arrived is None:
            return
        job = self.jobs.get(arrived.path)
        if job is None or job.tmp is None:
            return
        if job.need is not None and job.size <= BUFFER_FILE:
            job.buffered.append((arrived.offset, arrived.data))  # written by `finish`
        else:
            job.writing += 1  # the file is not complete until this write is
            try:
                await self._disk(job.tmp.write_at, arrived.offset, arrived.data)
            finally:
                job.writing -= 1
                job.done.set()
        job.fetched += len(arrived.data)
        now = time.monotonic()
        if now - job.reported >= PROGRESS_EVERY or job.reused + job.fetched >= job.size:
            job.reported = now
            self.folder.node._emit(TransferProgress(time.time(), job.path,
                                                    job.reused + job.fetched, job.size))
        job.done.set()

    async def fetch_into(self, key: str, tmp: TempFile, file_hash: bytes, piece: int, size: int,
                         blocks: list, patience: float = 30.0) -> bool:
        """Fetch `blocks` of content `file_hash` from peers into `tmp` (used by restore);
        False when no peer delivered anything for `patience` seconds."""
        job = self.jobs[key] = _Job(None, key, size, tmp)
        self.scheduler.add(key, file_hash, piece, size, blocks)
        self._pump.set()
        try:
            last, progress = trio.current_time(), -1
            while self.scheduler.remaining(key) or job.writing:
                if job.fetched != progress:
                    last, progress = trio.current_time(), job.fetched
                elif trio.current_time() - last > patience:
                    return False
                with trio.move_on_after(1.0):
                    await job.done.wait()
                job.done = trio.Event()
            return True
        finally:
            self.scheduler.cancel(key)
            self.jobs.pop(key, None)

    def peer_gone(self, peer: bytes) -> None:
        self.scheduler.peer_gone(peer)
        self._pump.set()
