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
and only then fetches the remaining blocks from peers (protocol/transfer.py decides whom to ask),
each as a delta against the old bytes in its place where the file had content (core/delta.py:
an edited line of a source file costs about that line, not the file).
What to do is the folder machine's decision (protocol/folder.py), which sources in which order
and what counts as had is the reuse plan's (protocol/reuse.py): this module only carries them out.
The file is moved into place only after its whole hash checks out, and only if the file on disk
is still the one last scanned: a change the user made meanwhile is never overwritten, it becomes
a version of its own and the conflict rule decides. All disk work runs in worker threads.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from gossip_backer.core.blocks import FileHasher, RollingMatcher, strong_hash
from gossip_backer.core.paths import BadPath
from gossip_backer.core.record import FILE, FileRecord, IndexEntry
from gossip_backer.disk import apply, versions
from gossip_backer.disk.apply import DiskError, LocalChanged, Stat, TempFile
from gossip_backer.disk.safepath import CaseCollision
from gossip_backer.errors import IntegrityError, LocalError
from gossip_backer.events import TransferProgress
from gossip_backer.runtime.clock import Clock
from gossip_backer.protocol import mirror
from gossip_backer.protocol.folder import DiskStat, FolderMachine
from gossip_backer.protocol import reuse, transfer
from gossip_backer.protocol.transfer import Base, Scheduler
from gossip_backer.wire.messages import BlockBatchData, BlockData, BlockMissing, DeltaData

log = logging.getLogger(__name__)
READ_CHUNK = 4 << 20
PROGRESS_EVERY = 0.5  # seconds before the first and between transfer_progress events of a file
INLINE_HASH = 2 << 20  # bytes of blocks verified on the loop when none is written to a temp file
# there: BLAKE3 hashes ~6 GB/s here and lets go of the GIL, so a whole BlockBatchData (~2 MiB)
# costs ~0.35 ms, less than the worker hop's thread switches (2,000 small files: ~265 hops fewer)
BUFFER_FILE = 1 << 20  # files up to this size keep fetched blocks in memory until `finish`
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
PREPARE_BATCH = 64  # large files' temp files opened in one worker-thread hop, at most
PREPARE_HOPS = 3  # such hops at once
SMALL_BATCH = 64  # files up to BUFFER_FILE assembled by one task, prepared and finished in one
# worker-thread hop each (a task, two hops and their wake-ups per file cost more than the file's
# own disk work)
FINISH_GROUPS = 64  # small-file tasks' groups sealed in one hop, and placed in one round, at most
SEAL_HOPS = 2  # hops sealing small files at once (beside the round that syncs and places them)
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
    reported: float = field(default_factory=time.monotonic)  # last transfer_progress (or start)
    told: bool = False  # a transfer_progress was emitted for it
    writing: int = 0  # verified blocks handed to a worker thread, not yet written
    buffered: list = field(default_factory=list)  # (offset, data) of a small file, not written
    error: Exception | None = None  # a block write failed (the disk's fault)
    running: "_RunningHash | None" = None  # a large file's whole hash, computed as it is written
    digest: bytes | None = None  # the content's hash, when a whole copy computed it (all had)


class _RunningHash:
    """The whole-file hash of a large file computed while its blocks are written, so that
    `finish` need not read the whole file back: a block written at the frontier is hashed from
    memory; blocks written ahead of it (arrived out of order, or reused from local files) are
    read back from the temp file when the frontier reaches them. Written from worker threads."""

    def __init__(self, tmp: TempFile, ahead: dict[int, int]) -> None:
        self._tmp = tmp
        self._lock = threading.Lock()
        self._hasher = FileHasher()
        self._at = 0
        self._ahead = dict(ahead)  # offset -> length of bytes written but not yet hashed

    def wrote(self, offset: int, data: bytes) -> None:
        """(worker thread) `data` is now at `offset` of the temp file."""
        with self._lock:
            if offset != self._at:
                self._ahead[offset] = len(data)
                return
            self._hasher.update(data)
            self._at += len(data)
            self._catch_up()

    def _catch_up(self) -> None:
        while self._at in self._ahead:
            n = self._ahead.pop(self._at)
            self._hasher.update(self._tmp.read_at(self._at, n))
            self._at += n

    def digest(self, size: int) -> bytes:
        """(worker thread, once every block is written) The hash; whatever the frontier did not
        reach is read back now."""
        with self._lock:
            self._catch_up()
            while self._at < size:
                chunk = self._tmp.read_at(self._at, min(READ_CHUNK, size - self._at))
                if not chunk:
                    break
                self._hasher.update(chunk)
                self._at += len(chunk)
            return self._hasher.digest()


def _start_writeback(written: list[tuple[_Job, int, int]]) -> None:
    """(worker thread) Begin the writeback of the blocks one hop wrote (job, offset, length), one
    call per run of adjacent blocks of a file: a call per 256 KiB block cost 0.145 s of CPU per
    512 MiB written, one per seven 0.128 s, and the loop of writes 0.27 -> 0.24 s (each call
    submits its own I/O, a doorbell of the virtual disk here)."""
    runs: dict[int, list] = {}  # id(job) -> [job, start, end] of the run being extended
    for job, offset, length in written:
        run = runs.get(id(job))
        if run is not None and run[2] == offset:
            run[2] += length
            continue
        if run is not None:
            run[0].tmp.start_writeback(run[1], run[2] - run[1])
        runs[id(job)] = [job, offset, offset + length]
    for job, start, end in runs.values():
        job.tmp.start_writeback(start, end - start)


def _buffered_digest(buffered: list, size: int) -> bytes | None:
    """The whole hash of a small file whose buffered blocks cover it all (else None: blocks
    reused from local files are in the temp file only, which is then read back)."""
    hasher, at = FileHasher(), 0
    for offset, data in sorted(buffered, key=lambda b: b[0]):
        if offset != at:
            return None
        hasher.update(data)
        at += len(data)
    return hasher.digest() if at == size else None


def _stat(entry: IndexEntry | None) -> Stat | None:
    return None if entry is None else Stat(entry.size, entry.mtime_ns, entry.inode, entry.kind)


def _disk_stat(st: Stat | None) -> DiskStat | None:
    return None if st is None else DiskStat(st.size, st.mtime_ns, st.inode)


def archiver(root: Path, entry: IndexEntry | None, archived: list):
    """The callback that keeps the replaced or deleted content under .backer/versions/ (and
    notes it in `archived`, for the revision rows)."""
    def archive(path_on_disk: Path) -> None:
        if entry is None or entry.kind != FILE or entry.hash is None:
            return
        try:
            versions.archive(root, path_on_disk, entry.hash)
            archived.append(entry)
        except versions.ArchiveMismatch:
            raise LocalChanged(path_on_disk, "changed since it was scanned")
    return archive


@dataclass
class _Hop:
    """One file's (or one task's group's) share of a batched worker-thread hop."""

    work: object  # run in the worker thread (what it is depends on the batcher)
    done: trio.Event = field(default_factory=trio.Event)
    result: object = None
    error: BaseException | None = None


async def _queued(queue: list[_Hop], item: _Hop) -> None:
    """Queue `item` and wait for its hop. Cancelled before the hop took it, it is dropped;
    cancelled while under way in a thread, it is waited for, like any disk hop."""
    queue.append(item)
    try:
        await item.done.wait()
    except trio.Cancelled:
        if item in queue:
            queue.remove(item)
            raise
        with trio.CancelScope(shield=True):
            await item.done.wait()
        raise


class _Batcher:
    """Runs the disk work of many files in one worker-thread hop: a tree of small files costs a
    hop per batch, not per file (each hop is a GIL hand-off and a thread wake-up). A lone file
    waits for nothing: a batch is whatever queued while the previous one ran."""

    def __init__(self, disk, batch: int, hops: int) -> None:
        self._disk = disk
        self._batch = batch
        self._hops = hops
        self._queue: list[_Hop] = []
        self._ready = trio.Event()

    async def run(self, work):
        """`work()` run in a batch's worker thread; what it returns or raises."""
        item = _Hop(work)
        self._ready.set()
        await _queued(self._queue, item)
        if item.error is not None:
            raise item.error
        return item.result

    async def loop(self) -> None:
        """Batches run `hops` at a time; a batch is taken when a hop is free, so files queue
        up meanwhile."""
        slots = trio.Semaphore(self._hops)
        async with trio.open_nursery() as nursery:
            while True:
                await self._ready.wait()
                self._ready = trio.Event()
                await slots.acquire()
                batch, self._queue = self._queue[:self._batch], self._queue[self._batch:]
                if self._queue:
                    self._ready.set()
                if batch:
                    nursery.start_soon(self._hop, batch, slots)
                else:
                    slots.release()

    async def _hop(self, batch: list[_Hop], slots: trio.Semaphore) -> None:
        try:
            await self._disk(self.run_batch, batch)
        finally:
            slots.release()
            for item in batch:
                item.done.set()

    @staticmethod
    def run_batch(batch: list[_Hop]) -> None:
        """(worker thread) Each item's work, its result or error kept for its own task."""
        for item in batch:
            try:
                item.result = item.work()
            except BaseException as exc:  # handed to the file's own task
                item.error = exc


def _seal_all(sealings: list["_Sealing"]) -> None:
    """(worker thread) Each file written and verified into its sealed temp file, or its error
    kept."""
    for item in sealings:
        try:
            item.seal()
        except BaseException as exc:
            item.error = exc


def _finish_round(batch: list["_Sealing"], renamed: list["_Sealing"]) -> None:
    """(worker thread) One round of small files (see `_Finisher`): one `make_durable` makes the
    bytes of every sealed file of `batch` durable, and with them the renames of `renamed` (the
    round before), then each file is renamed into place (`place`). So a file is renamed only
    once its bytes are durable, and reported done only once its rename is, as alone."""
    sealed = [item for item in batch if item.error is None]
    renamed = [item for item in renamed if item.error is None and item.folder is not None]
    try:
        apply.make_durable([item.tmp for item in sealed], (item.folder for item in renamed))
    except BaseException as exc:
        for item in sealed + renamed:
            item.error = exc
        return
    for item in sealed:
        try:
            item.result, item.folder = item.place()
        except BaseException as exc:
            item.error = exc


def _sync_renames(renamed: list["_Sealing"]) -> None:
    """(worker thread) The renames of the last round made durable (nothing else is queued)."""
    renamed = [item for item in renamed if item.error is None and item.folder is not None]
    try:
        apply.sync_folders(item.folder for item in renamed)
    except BaseException as exc:
        for item in renamed:
            item.error = exc


class _Finisher:
    """Small files made durable and placed in rounds, one round at a time (a group commit, as a
    database commits many transactions with one flush). A task's files (its group) are first
    written and sealed (`seal`), in hops shared by the tasks (`_Batcher`, SEAL_HOPS at once);
    then (`place`) a round takes every sealed group queued meanwhile, makes their bytes durable
    together with the renames of the round before (whose groups are only then done), and
    renames them. When no group waits, its renames get a sync of their own at once, so a lone
    file waits for nothing. Under load that is one syncfs a round instead of two, and the
    rounds grow."""

    def __init__(self, disk, groups: int) -> None:
        self._disk = disk
        self._groups = groups
        self._sealer = _Batcher(disk, groups, SEAL_HOPS)
        self._queue: list[_Hop] = []
        self._ready = trio.Event()

    async def seal(self, sealings: list["_Sealing"]) -> None:
        """Write and seal `sealings` (an `error` each where that failed)."""
        await self._sealer.run(lambda: _seal_all(sealings))

    async def place(self, sealings: list["_Sealing"]) -> None:
        """Make sealed `sealings` durable and place them in a round: each ends with its
        `result` (the stat once placed) or `error`."""
        self._ready.set()
        await _queued(self._queue, _Hop(sealings))

    async def loop(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sealer.loop)
            await self._rounds()

    async def _rounds(self) -> None:
        renamed: list[_Hop] = []  # the last round's groups: renamed, not yet durable
        batch: list[_Hop] = []  # this round's
        try:
            while True:
                if not self._queue:
                    if renamed:
                        await self._disk(_sync_renames, _sealings(renamed))
                        _wake(renamed)
                        renamed = []
                    await self._ready.wait()
                self._ready = trio.Event()
                batch, self._queue = self._queue[:self._groups], self._queue[self._groups:]
                await self._disk(_finish_round, _sealings(batch), _sealings(renamed))
                _wake(renamed)
                renamed, batch = batch, []
        finally:
            with trio.CancelScope(shield=True):  # a stop: what was renamed is made durable
                pending = renamed + batch
                if pending:
                    await self._disk(_sync_renames, _sealings(pending))
                _wake(pending)


def _sealings(groups: list[_Hop]) -> list["_Sealing"]:
    return [sealing for group in groups for sealing in group.work]


def _wake(groups: list[_Hop]) -> None:
    """Wake the tasks of `groups`: their files are placed, or failed."""
    for group in groups:
        group.done.set()


class _Sealing:
    """A small file's share of the finishing (_Finisher): its buffered blocks written and its
    temp file sealed (`seal`), then, once its round is durable, moved into place (`place`).
    (A _Hop with two closures cost a trio.Event and three objects more per file.)"""

    __slots__ = ("root", "rec", "tmp", "buffered", "digest", "entry", "archived", "target",
                 "result", "error", "folder")

    def __init__(self, root: Path, job: _Job, entry: IndexEntry | None, archived: list) -> None:
        self.root, self.rec, self.tmp, self.buffered = root, job.need.record, job.tmp, job.buffered
        self.digest = job.digest
        self.entry, self.archived = entry, archived
        self.target: Path | None = None
        self.result: Stat | None = None
        self.error: BaseException | None = None
        self.folder: Path | None = None  # where it was renamed (its sync makes that durable)

    def seal(self) -> None:
        """(worker thread) The buffered blocks written, the whole checked, the temp file sealed."""
        rec, tmp = self.rec, self.tmp
        for offset, data in self.buffered:
            tmp.write_at(offset, data)
        self.target = tmp.seal(None, rec.hash, rec.mode, rec.mtime_ns,
                               digest=self.digest or _buffered_digest(self.buffered, rec.size))

    def place(self) -> tuple[Stat | None, Path]:
        entry = self.entry
        folder = self.tmp.place(self.target, _stat(entry),
                                archive=archiver(self.root, entry, self.archived))
        return self.tmp.placed, folder


def _attempt(fn, *args) -> tuple[object, Exception | None]:
    """(worker thread) fn(*args) as (result, None), or (None, the error) for its own file."""
    try:
        return fn(*args), None
    except Exception as exc:
        return None, exc


class _Superseded(Exception):
    """The map or the disk moved on while a file was assembled (or a folder to delete still
    holds files): drop it, the machine decides again."""


class _FolderNotEmpty(Exception):
    """A folder to delete still holds entries (FolderMachine.folder_kept decides)."""


class _Unavailable(Exception):
    """Every connected peer said it lacks the content."""


class Puller:
    """Carries out the machine's disk work (see the module docstring). `host` is the folder:
    it carries out the machine's effects, keeps revision rows and reaches the peers."""

    def __init__(self, root: Path, machine: FolderMachine, server, host, clock: Clock) -> None:
        self.clock = clock
        self.root = root
        self.machine = machine
        self.server = server
        self.host = host
        self.scheduler = Scheduler(strong_hash)
        self.jobs: dict[str, _Job] = {}
        self._wake = trio.Event()
        self._pump = trio.Event()
        self.bytes_reused = 0
        self._disk_limiter = trio.CapacityLimiter(DISK_THREADS)
        self._preparer = _Batcher(self._disk, PREPARE_BATCH, PREPARE_HOPS)
        self._finisher = _Finisher(self._disk, FINISH_GROUPS)

    async def _disk(self, fn, *args):
        """Run blocking disk work in a worker thread (a few at a time)."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self._disk_limiter)

    def wake(self) -> None:
        self._wake.set()
        self._pump.set()

    def news(self) -> None:
        """The map or the peers moved: peers that lacked content may have it now."""
        self.scheduler.forget_lacking()
        self.wake()

    def transfers(self) -> list[dict]:
        return [{"path": j.path, "done_bytes": j.reused + j.fetched, "total_bytes": j.size}
                for j in self.jobs.values() if j.need is not None]

    # -- main loop -------------------------------------------------------------------------
    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._request_pump)
            nursery.start_soon(self._preparer.loop)
            nursery.start_soon(self._finisher.loop)
            while True:
                self._wake = trio.Event()
                await self._round(nursery)
                self.host.check_in_sync()
                with trio.move_on_after(1.0):
                    await self._wake.wait()

    async def _round(self, nursery: trio.Nursery) -> None:
        small: list[mirror.Need] = []
        for need in self.machine.next_work(trio.current_time()):
            if need.action != mirror.WRITE_FILE:
                await self._guarded(need, self._simple(need))
            elif need.record.size <= BUFFER_FILE:
                small.append(need)
            else:
                nursery.start_soon(self._pull_file, need)
        for i in range(0, len(small), SMALL_BATCH):
            nursery.start_soon(self._pull_small, small[i:i + SMALL_BATCH])

    async def _guarded(self, need: mirror.Need, work) -> bool:
        """Run one need and tell the machine how it ended (see `_judge`)."""
        try:
            st = await work
        except Exception as exc:
            return self._judge(need, None, exc)
        except BaseException:
            self.machine.abandoned(need)
            raise
        return self._judge(need, st, None)

    def _judge(self, need: mirror.Need, st: Stat | None, exc: Exception | None) -> bool:
        """Tell the machine how `need` ended: done with stat `st`, or failed with `exc`. False
        when what it built is of no further use (superseded, the user's change came first, no
        room): its temp file goes."""
        now, wall = self.clock.now(), self.clock.wall()
        if exc is None:
            self.host.held(need.path)
            self.host.execute(self.machine.done(need, _disk_stat(st), wall))
            return True
        if isinstance(exc, _Superseded):
            self.machine.abandoned(need)
            return False
        if isinstance(exc, _FolderNotEmpty):
            self.host.execute(self.machine.folder_kept(need, wall))
            return False
        if isinstance(exc, _Unavailable):
            self.host.execute(self.machine.content_unavailable(need, now, wall))
            return True
        if isinstance(exc, LocalChanged):
            self.host.execute(self.machine.changed_under_us(need))
            return False
        if isinstance(exc, (BadPath, CaseCollision, apply.NameRefused)):
            log.warning("refused %s: %s", need.path, exc)
            if not isinstance(exc, BadPath):  # the mesh may hold it; this disk cannot: in status
                self.host.cannot_hold(need.path, str(exc))
            self.host.execute(self.machine.failed_work(need, str(exc), now, wall, forever=True))
            return False
        if isinstance(exc, (DiskError, IntegrityError, LocalError, OSError)):
            log.warning("failed %s: %s", need.path, exc)
            no_space = getattr(exc, "errno", None) in NO_SPACE
            self.host.execute(self.machine.failed_work(need, str(exc), now, wall,
                                                       no_space=no_space))
            return not no_space  # a full disk gets its room back; it is fetched again later
        self.machine.abandoned(need)  # our bug: it ends the puller, as it always did
        raise exc

    # -- folders, links, metadata, deletions, adoptions ------------------------------------
    async def _simple(self, need: mirror.Need) -> Stat | None:
        """Carry out a need that moves no file content; the stat of the path afterwards."""
        rec, path = need.record, need.path
        entry = self.machine.index.get(path)
        archived: list[IndexEntry] = []
        archive = archiver(self.root, entry, archived)
        if need.action == mirror.ADOPT:
            return None  # nothing to do on disk: the machine moves the row's version
        try:
            if need.action == mirror.CREATE_DIR:
                await self._disk(apply.make_dir, self.root, path, rec.mode, rec.mtime_ns)
            elif need.action == mirror.META:
                await self._disk(lambda: apply.set_meta(self.root, path, rec.mode, rec.mtime_ns,
                                                        expect=_stat(entry)))
            elif need.action == mirror.WRITE_LINK:
                await self._disk(lambda: apply.make_symlink(
                    self.root, path, rec.target or "", _stat(entry), archive=archive))
            elif need.action == mirror.DELETE:
                if entry is not None and not await self._disk(
                        lambda: apply.remove(self.root, path, _stat(entry), archive=archive)):
                    raise _FolderNotEmpty()  # the machine says whether it stays
                return None
        finally:
            self.host.record_archived(archived)
        return await self._disk(apply.stat_of, self.root, path)

    # -- files -----------------------------------------------------------------------------
    async def _pull_file(self, need: mirror.Need) -> None:
        job = self.jobs[need.path] = _Job(need, need.path, need.record.size)
        keep = True  # an interrupted download (a stop, no peer has it yet) resumes from its temp
        try:
            keep = await self._guarded(need, self._assemble(job))
        finally:
            self.scheduler.cancel(need.path)
            self.jobs.pop(need.path, None)
            if job.tmp is not None:
                if keep:
                    job.tmp.close()
                else:  # no .backer-tmp-* left in the user's folders
                    with trio.CancelScope(shield=True):
                        await self._disk(job.tmp.abort)
            self.wake()

    async def _assemble(self, job: _Job) -> Stat | None:
        need, rec = job.need, job.need.record
        entry = self.machine.index.get(need.path)
        self.server.ready()
        same = self.server.find_file(rec.hash) if rec.hash else None
        prepared = await self._preparer.run(
            lambda: self._prepare(need, entry, self.server.find_block, same))
        if self._started(job, *prepared):
            while self.scheduler.remaining(need.path) or job.writing:
                self._check(job, self.host.peers())
                with trio.move_on_after(1.0):
                    await job.done.wait()
                job.done = trio.Event()
        if self.machine.superseded(need):
            raise _Superseded()
        archived: list[IndexEntry] = []
        tmp, buffered = job.tmp, job.buffered

        def finish() -> Stat | None:
            for offset, data in buffered:
                tmp.write_at(offset, data)
            running = job.running.digest(rec.size) if job.running is not None else job.digest
            tmp.finish(None, rec.hash, rec.mode, rec.mtime_ns, _stat(entry),
                       archive=archiver(self.root, entry, archived), digest=running)
            return apply.stat_of(self.root, need.path)
        try:  # (a file up to BUFFER_FILE goes through `_pull_small`)
            st = await self._disk(finish)
        finally:
            self.host.record_archived(archived)
        job.tmp = None
        return st

    def _started(self, job: _Job, tmp: TempFile, have: set[int], bases: dict,
                 digest: bytes | None) -> bool:
        """The prepared temp file is the job's; its missing blocks are asked of the peers.
        False when nothing is missing. `digest`: its content's hash, when a whole copy made it."""
        rec = job.need.record
        job.tmp, job.digest = tmp, digest
        job.reused = sum(self._len(rec, i) for i in have)
        if job.size > BUFFER_FILE and digest is None:
            job.running = _RunningHash(job.tmp, {i * rec.block_size: self._len(rec, i)
                                                 for i in have})
        self.bytes_reused += job.reused
        missing = [(i, b) for i, b in enumerate(rec.blocks) if i not in have]
        if not missing:
            return False
        self.scheduler.forget_lacking(rec.hash)  # asked again: peers may have it by now
        self.scheduler.add(job.path, rec.hash, rec.block_size, rec.size, missing, bases)
        self._pump.set()
        return True

    def _check(self, job: _Job, peers: list[bytes], moved: bool = True) -> None:
        """Raise why an assembly under way must end: a disk error, the map moved on (looked at
        when `moved`), or no connected peer has the content."""
        if job.error is not None and not job.writing:
            raise job.error
        if moved and self.machine.superseded(job.need):
            raise _Superseded()
        if peers and not job.writing and self.scheduler.stalled(job.path, peers):
            raise _Unavailable()

    def _sealing(self, job: _Job, entry: IndexEntry | None, archived: list) -> "_Sealing":
        """A small file's share of a finishing round (_Finisher)."""
        return _Sealing(self.root, job, entry, archived)

    # -- small files, many to a task ---------------------------------------------------------
    async def _pull_small(self, needs: list[mirror.Need]) -> None:
        """Files up to BUFFER_FILE, assembled together: prepared in one worker hop, their
        blocks asked for at once, finished (sealed, made durable, placed) in one hop as they
        complete, each then judged on its own as `_guarded` would."""
        wake = trio.Event()
        jobs = []
        for need in needs:
            job = self.jobs[need.path] = _Job(need, need.path, need.record.size, done=wake)
            jobs.append(job)
        ended: dict[str, bool] = {}  # path -> keep its temp file (it was judged)
        try:
            await self._assemble_small(jobs, wake, ended)
        except BaseException:
            for job in jobs:
                if job.path not in ended:
                    self.machine.abandoned(job.need)
            raise
        finally:
            for job in jobs:
                self.scheduler.cancel(job.path)
                self.jobs.pop(job.path, None)
            drop = [job.tmp for job in jobs if job.tmp is not None and not ended.get(job.path, True)]
            for job in jobs:
                if job.tmp is not None and ended.get(job.path, True):
                    job.tmp.close()  # resumed later (a stop, no peer has it yet)
            if drop:  # no .backer-tmp-* left in the user's folders
                with trio.CancelScope(shield=True):
                    await self._disk(lambda: [tmp.abort() for tmp in drop])
            self.wake()

    async def _assemble_small(self, jobs: list[_Job], wake: trio.Event,
                              ended: dict[str, bool]) -> None:
        def end(job: _Job, st: Stat | None, exc: Exception | None) -> None:
            ended[job.path] = self._judge(job.need, st, exc)

        entries = {job.path: self.machine.index.get(job.path) for job in jobs}
        self.server.ready()
        find_file, find_block = self.server.find_file, self.server.find_block
        work = [(job.need, entries[job.path],
                 find_file(job.need.record.hash) if job.need.record.hash else None) for job in jobs]
        def prepare_all() -> list:
            folders = apply.BatchFolders(self.root)  # this hop's only: the disk may change
            archive_empty = versions.is_empty(self.root)  # no lookup per file when it is
            return [_attempt(self._prepare, need, entry, find_block, same, folders, archive_empty)
                    for need, entry, same in work]
        prepared = await self._disk(prepare_all)
        waiting, complete = [], []
        for job, (result, exc) in zip(jobs, prepared):
            if exc is not None:
                end(job, None, exc)
            elif self._started(job, *result):
                waiting.append(job)
            else:
                complete.append(job)
        while waiting or complete:
            if waiting:  # every waiting job's `done` is `wake`: a block for any of them
                with trio.move_on_after(1.0) as timer:
                    await wake.wait()
                wake = trio.Event()
                peers = self.host.peers()
                for job in waiting:
                    job.done = wake
                still = []
                for job in waiting:
                    if self.scheduler.remaining(job.path) or job.writing:
                        try:  # whether the map moved on: once a second, and before finishing
                            self._check(job, peers, moved=timer.cancelled_caught)
                            still.append(job)
                        except Exception as exc:
                            end(job, None, exc)
                    else:
                        complete.append(job)
                waiting = still
                if waiting and not timer.cancelled_caught and len(complete) < len(jobs) // 2:
                    continue  # finish the rest together (a straggler holds them 1 s at most)
            await self._finish_small(complete, entries, ended)
            complete = []

    async def _finish_small(self, jobs: list[_Job], entries: dict, ended: dict[str, bool]) -> None:
        """Seal, make durable and place `jobs` in one worker hop; then judge each (those
        placed together, with one index write)."""
        hops, archived = [], []
        for job in jobs:
            if self.machine.superseded(job.need):
                ended[job.path] = self._judge(job.need, None, _Superseded())
            else:
                hops.append((job, self._sealing(job, entries[job.path], archived)))
        if not hops:
            return
        try:
            await self._finisher.seal([hop for _, hop in hops])
            wall = self.clock.wall()
            for job, hop in hops:
                if hop.error is None:  # on disk: its blocks need not stay in memory
                    job.buffered = hop.buffered = []
                    self.machine.sealed(job.need, _disk_stat(hop.tmp.sealed), wall)
            self.wake()  # room for more small files while these are made durable
            await self._finisher.place([hop for _, hop in hops])
        finally:
            self.host.record_archived(archived)
        placed = []
        for job, hop in hops:
            if hop.error is None:
                job.tmp = None
                placed.append((job.need, _disk_stat(hop.result)))
                self.host.held(job.path)
                ended[job.path] = True
            else:
                ended[job.path] = self._judge(job.need, None, hop.error)
        if placed:
            self.host.execute(self.machine.done_many(placed, self.clock.wall()))

    @staticmethod
    def _len(rec: FileRecord, i: int) -> int:
        return reuse.block_length(rec, i)

    def _prepare(self, need: mirror.Need, entry: IndexEntry | None, find_block,
                 same: str | None, folders: apply.BatchFolders | None = None,
                 archive_empty: bool = False):
        """(worker thread) Open the temporary file and fill in every block we already have,
        carrying out the reuse plan (protocol/reuse.py). `folders`: the batch's folder checks;
        `archive_empty`: the revision archive held nothing when the batch began."""
        rec = need.record
        tmp, resumed = TempFile.create_or_resume(self.root, need.path, folders=folders)
        digest = None
        try:
            plan = reuse.Plan(rec, entry, resumed=resumed, same=same,
                              find_block=find_block, archive_empty=archive_empty)
            while (step := plan.next_step()) is not None:
                if isinstance(step, reuse.Copy) and step.whole:
                    digest = self._copy_whole(step, tmp, rec)
                    if digest is not None:
                        plan.got(range(len(rec.blocks)))
                        continue
                plan.got(self._carry(step, tmp, rec))
            bases = self._bases(rec.path, plan.delta_bases(entry))
        except BaseException:
            tmp.close()
            raise
        return tmp, plan.have, bases, digest

    def _carry(self, step: reuse.Step, tmp: TempFile, rec: FileRecord) -> set[int]:
        """(worker thread) One step of the reuse plan; the blocks it wrote."""
        if isinstance(step, reuse.Truncate):
            tmp.truncate(step.size)
            return set()
        if isinstance(step, reuse.Verify):
            return {i for i in step.indices
                    if reuse.is_block(rec, i, tmp.read_at(i * rec.block_size,
                                                          reuse.block_length(rec, i)), strong_hash)}
        if isinstance(step, reuse.Rolling):
            return self._rolling(tmp, rec, step)
        source = self._copy_source(step)
        return set() if source is None else self._copy_from(source, tmp, rec, step)

    def _copy_source(self, step: reuse.Copy) -> Path | None:
        if step.source is reuse.ARCHIVE:
            return versions.open_version(self.root, step.content_hash)
        return self.root / step.source

    def _copy_whole(self, step: reuse.Copy, tmp: TempFile, rec: FileRecord) -> bytes | None:
        """(worker thread) A source holding the whole content (`Copy.whole`) copied in one
        pass through one buffer, hashed on the way and its writeback begun per chunk: the
        content hash when it is the record's (every block is had), else None."""
        source = self._copy_source(step)
        if source is None:
            return None
        hasher, buf, at = FileHasher(), bytearray(min(READ_CHUNK, max(rec.size, 1))), 0
        view = memoryview(buf)
        try:
            with open(source, "rb", buffering=0) as f:
                while at < rec.size and (n := f.readinto(view[:rec.size - at])):
                    hasher.update(view[:n])
                    tmp.write_at(at, view[:n])
                    tmp.start_writeback(at, n)
                    at += n
        except OSError:  # the source's trouble (gone, unreadable): the blocks are copied one
            return None  # by one, or fetched; the temp file's own errors are LocalError
        digest = hasher.digest()
        return digest if at == rec.size and digest == rec.hash else None

    def _bases(self, path: str, wanted: dict[int, tuple[int, int]]) -> dict[int, Base]:
        """(worker thread) Signatures of the old bytes the missing blocks come as deltas against."""
        bases: dict[int, Base] = {}
        if not wanted:  # a new file (most of a first sync): nothing to open
            return bases
        try:
            with open(self.root / path, "rb", buffering=0) as f:
                for i, (offset, size) in wanted.items():
                    f.seek(offset)
                    base = transfer.base_of(offset, f.read(size))
                    if base is not None:
                        bases[i] = base
        except OSError:
            pass
        return bases

    def _rebuild(self, path: str, base: Base, block_hash: bytes, size: int,
                 encoded: bytes) -> bytes | None:
        """(worker thread) A DeltaData's block from the old bytes (transfer.rebuild)."""
        try:
            with open(self.root / path, "rb", buffering=0) as f:
                f.seek(base.offset)
                old = f.read(base.size)
        except OSError:
            return None
        return transfer.rebuild(base, old, encoded, size, block_hash, strong_hash)

    def _copy_from(self, source: Path, tmp: TempFile, rec: FileRecord, step: reuse.Copy) -> set[int]:
        """Copy the step's blocks from `source`, each verified."""
        got = set()
        try:
            with open(source, "rb", buffering=0) as f:
                for i, off, size in reuse.reads(step, rec):
                    f.seek(off)
                    data = f.read(size)
                    if reuse.is_block(rec, i, data, strong_hash):
                        tmp.write_at(i * rec.block_size, data)
                        got.add(i)
        except OSError:
            pass
        return got

    def _rolling(self, tmp: TempFile, rec: FileRecord, step: reuse.Rolling) -> set[int]:
        """zsync-style: find the missing blocks anywhere in the old file at this path."""
        old = self.root / step.path
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
        wanted = set(step.indices)
        return self._copy_from(old, tmp, rec, reuse.Copy(
            step.path, None, {i: off for i, off in found.items() if i in wanted}))

    # -- blocks from peers -----------------------------------------------------------------
    async def _request_pump(self) -> None:
        while True:
            self._pump = trio.Event()
            peers = self.host.peers()
            now = trio.current_time()
            self.scheduler.tick(now)
            for peer, msg in self.scheduler.messages(peers, now):
                self.host.send_to(peer, msg)
            if self.scheduler.any_stalled(peers):
                for job in self.jobs.values():
                    job.done.set()  # let stalled assemblies see it
            with trio.move_on_after(1.0):
                await self._pump.wait()

    async def on_block(self, peer: bytes,
                       msg: BlockData | BlockMissing | DeltaData | BlockBatchData) -> None:
        """An answer from a peer (raises IntegrityError for bad data: the caller drops it)."""
        if isinstance(msg, BlockBatchData):
            await self._on_batch(peer, msg)
            return
        if isinstance(msg, BlockMissing):
            self.scheduler.on_missing(peer, msg.request_id)
            self._pump.set()
            return
        if isinstance(msg, DeltaData):
            await self._on_deltas(peer, (msg,))
            return
        await self._on_blocks(peer, (msg,))

    async def _on_batch(self, peer: bytes, msg: BlockBatchData) -> None:
        for rid in msg.missing:
            self.scheduler.on_missing(peer, rid)
        self._pump.set()
        if msg.blocks:
            await self._on_blocks(peer, msg.blocks)
        if msg.deltas:
            await self._on_deltas(peer, msg.deltas)

    async def _on_deltas(self, peer: bytes, deltas) -> None:
        """DeltaData from a peer, rebuilt from the old bytes and checked in one worker hop."""
        wanted = [(d, self.scheduler.delta_of(d.request_id)) for d in deltas]
        rebuilt = await self._disk(lambda: [None if w is None else self._rebuild(*w, d.delta)
                                            for d, w in wanted])
        arrivals = [self.scheduler.on_delta(peer, d.request_id, data)
                    for d, data in zip(deltas, rebuilt)]
        self._pump.set()
        for arrived in arrivals:
            if arrived is not None:
                await self._arrived(arrived)

    async def _on_blocks(self, peer: bytes, blocks) -> None:
        """Blocks from a peer: each verified against its hash and, where it goes straight to a
        temp file, written there in the same worker-thread hop (a hop to hash and another to
        write cost a GIL hand-off each, per block); blocks of small files, kept in memory until
        `finish`, are verified on the loop (up to INLINE_HASH bytes: a whole batch).
        Then the scheduler takes them (IntegrityError for a bad one) and they are handed on."""
        work = []  # (block, expected hash, job it is written to in the hop or None, offset)
        for b in blocks:
            want = self.scheduler.expected(b.request_id)
            place = self.scheduler.destination(b.request_id) if want is not None else None
            job = self.jobs.get(place[0]) if place is not None else None
            if job is None or job.tmp is None or (job.need is not None and job.size <= BUFFER_FILE):
                job = None  # buffered for `finish`, or no longer wanted
            work.append((b, want, job, place[1] if place is not None else 0))
        inline = sum(len(b.data) for b, want, _, _ in work if want) <= INLINE_HASH
        if inline and not any(job for _, _, job, _ in work):
            verdicts = [self._verify(b.data, want) for b, want, _, _ in work]  # < 0.4 ms
        else:
            for _, _, job, _ in work:
                if job is not None:
                    job.writing += 1  # the file is not complete until this write is
            try:
                verdicts = await self._disk(self._verify_and_write, work)
            finally:
                for _, _, job, _ in work:
                    if job is not None:
                        job.writing -= 1
                        job.done.set()
        arrivals = []
        for (b, _, job, _), ok in zip(work, verdicts):
            arrived = self.scheduler.on_data(peer, b.request_id, b.data, verified=ok)
            if arrived is not None:
                arrivals.append((arrived, job is not None))
        self._pump.set()
        for arrived, written in arrivals:
            await self._arrived(arrived, written)

    @staticmethod
    def _verify(data: bytes, want: bytes | None) -> bool | None:
        """None: nobody waits for it; True for a piece of a whole version (`finish` checks the
        whole hash); else: does it hash to the block?"""
        return None if want is None else (want == b"" or strong_hash(data) == want)

    def _verify_and_write(self, work) -> list[bool | None]:
        """(worker thread) The blocks' verdicts; the good ones that name a job are written to
        its temp file (a disk error is kept as the job's, and ends its assembly), and their
        writeback begun once per run of adjacent blocks (`_start_writeback`)."""
        verdicts, written = [], []
        for b, want, job, offset in work:
            ok = self._verify(b.data, want)
            if ok and job is not None and job.error is None:
                try:
                    self._write(job, offset, b.data, writeback=False)
                    written.append((job, offset, len(b.data)))
                except (LocalError, OSError) as exc:  # our disk's trouble, never the peer's
                    job.error = exc
            verdicts.append(ok)
        _start_writeback(written)
        return verdicts

    async def _arrived(self, arrived, written: bool = False) -> None:
        """A verified block: into its file's buffer, or written to its temp file (unless the
        hop that verified it wrote it: `written`)."""
        job = self.jobs.get(arrived.path)
        if job is None or job.tmp is None:
            return
        if job.need is not None and job.size <= BUFFER_FILE:
            job.buffered.append((arrived.offset, arrived.data))  # written by `finish`
        elif not written:
            job.writing += 1  # the file is not complete until this write is
            try:
                await self._disk(self._write, job, arrived.offset, arrived.data)
            except (LocalError, OSError) as exc:  # our disk's trouble, never the peer's: the
                # assembly ends with the first one (TempFile tells every write after a full disk
                # dropped it the same "disk full", so the folder pauses and says why)
                job.error = job.error or exc
                return
            finally:
                job.writing -= 1
                job.done.set()
        elif job.error is not None:
            return
        job.fetched += len(arrived.data)
        now = time.monotonic()  # a file done within PROGRESS_EVERY (a small one) has only its
        # file_updated: an event per file, not two
        complete = job.reused + job.fetched >= job.size
        if now - job.reported >= PROGRESS_EVERY or (complete and job.told):
            job.reported, job.told = now, True
            self.host.emit(TransferProgress(self.clock.wall(), job.path, job.reused + job.fetched,
                                            job.size))
        job.done.set()

    @staticmethod
    def _write(job: _Job, offset: int, data: bytes, writeback: bool = True) -> None:
        """(worker thread) A verified block into the temp file (and the running hash), its
        writeback to disk begun at once unless the caller begins it for several blocks (the
        fsync of a large file otherwise waits for all of it)."""
        job.tmp.write_at(offset, data)
        if writeback:
            job.tmp.start_writeback(offset, len(data))
        if job.running is not None:
            job.running.wrote(offset, data)

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
