"""The folder of a simulated node: carries out the folder machine's decisions (protocol/folder.py)
on a MemRoot, on the simulator's clock. It is to the simulator what runtime/folder.py,
runtime/puller.py and runtime/blockserver.py are to the daemon, and decides nothing itself.

Theory of operation
-------------------
- The watcher: a path the user touched is scanned after a seeded delay (`cfg.watch_delay`); a
  (re)started node scans its whole root after a seeded delay too (`cfg.boot_scan`), so gossip
  may reach it before its first scan, as in the daemon. Scans use `memscan`, the same rules as
  `disk.scan` on an in-memory tree; the machine judges their results.
- The machine's effects: `Publish` goes to the node (sign, apply, store, spread), then the
  machine hears of the map change; `IndexWrite` goes to the node's store (the persisted index);
  `Rescan` sets a timer; `Emit` goes to the node's event list.
- Disk work: after any change, `work()` runs once (coalesced) and carries out what
  `machine.next_work` hands out, with memdisk's safe operations, each checking that the disk
  is still what the index says. A file is assembled in a temp file by the daemon's reuse plan
  (protocol/reuse.py: a partial download, the archive, a local file with the same content,
  blocks found on this disk, a rolling match of the old content), then from peers through the
  real `transfer.Scheduler`, each block as a delta against the old bytes where the file had
  content; when no connected peer holds it the machine marks it unavailable. Block requests of
  peers are answered by the daemon's rules too (protocol/serving.py). As
  in the daemon, no disk work starts before the first full scan.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from gossip_backer.core import blocks as coreblocks
from gossip_backer.core.record import FILE, IndexEntry
from gossip_backer.disk.ignore import IgnoreMatcher
from gossip_backer.disk.scan import RootUnavailable
from gossip_backer.errors import IntegrityError, LocalError
from gossip_backer.protocol import mirror
from gossip_backer.protocol.effects import Emit, IndexWrite, Publish, Rescan
from gossip_backer.protocol import reuse, serving, transfer
from gossip_backer.protocol.folder import DiskStat, FolderMachine
from gossip_backer.protocol.transfer import Base, Scheduler
from gossip_backer.testing import memdisk, memscan
from gossip_backer.testing.memdisk import MemRoot, TempFile
from gossip_backer.wire.messages import (BlockBatch, BlockBatchData, BlockData, BlockMissing,
                                         BlockRequest, DeltaData, DeltaRequest, Message)

if TYPE_CHECKING:
    from gossip_backer.testing.cluster import ClusterConfig
    from gossip_backer.testing.loop import EventLoop

__all__ = ["SimFolder"]


@dataclass
class _Pull:
    need: mirror.Need
    temp: TempFile


class _NotYet(Exception):
    """A folder to delete still holds files."""


def _expect(e: IndexEntry | None) -> memdisk.Stat | None:
    return None if e is None else memdisk.Stat(e.size, e.mtime_ns, e.inode, e.kind)


class SimFolder:
    """The disk side of one incarnation of a SimNode (see the module docstring). `host` is the
    node: it publishes payloads, sends messages, lists connected peers and keeps events."""

    def __init__(self, host, machine: FolderMachine, disk: MemRoot, index_store: dict,
                 *, loop: "EventLoop", cfg: "ClusterConfig", rng, clock_ns: Callable[[], int],
                 ignore: IgnoreMatcher) -> None:
        self.host = host
        self.machine = machine
        self.disk = disk
        self.index_store = index_store  # the persisted index (SimStore.index)
        self.loop, self.cfg, self.rng, self.clock_ns = loop, cfg, rng, clock_ns
        self.ignore = ignore
        self.scheduler = Scheduler(coreblocks.strong_hash, **cfg.scheduler)
        self.pulls: dict[str, _Pull] = {}
        self.fetches: dict[str, tuple[TempFile, Callable[[bool], None]]] = {}  # restores
        self.running = True
        self._scan_todo: set[str] = set()
        self._scan_timer = None
        self._work_timer = None
        self.local = reuse.LocalBlocks(machine.index)  # which local file holds a block
        from gossip_backer.testing.simlive import SimLive

        self.live = SimLive(self)

    @property
    def now(self) -> float:
        return self.loop.now

    def wall(self) -> float:
        return self.clock_ns() / 1e9

    def stop(self) -> None:
        """The process died: timers of this incarnation do nothing from now on."""
        self.running = False
        for pull in self.pulls.values():
            pull.temp.close()
        self.pulls.clear()
        for temp, _ in self.fetches.values():
            temp.close()
        self.fetches.clear()

    # -- the watcher and the scans -----------------------------------------------------------
    def boot(self, delay: float | None = None) -> None:
        """First look at the whole root, after the start-up delay (seeded unless given)."""
        if delay is None:
            delay = self.rng.uniform(*self.cfg.boot_scan)
        self._scan_todo.add("")
        self._scan_timer = self.loop.call_later(delay, self._scan)

    def user_changed(self, path: str, delay: float | None = None) -> None:
        """The watcher saw `path` change; it is scanned after the watcher's debounce."""
        self._scan_todo.add(path)
        if self._scan_timer is None:
            if delay is None:
                delay = self.rng.uniform(*self.cfg.watch_delay)
            self._scan_timer = self.loop.call_later(delay, self._scan)

    def _scan(self) -> None:
        if not self.running:
            return
        self._scan_timer = None
        todo, self._scan_todo = sorted(self._scan_todo), set()
        full = "" in todo or self.machine.paused is not None
        wall = self.wall()
        try:
            if full:
                result = memscan.scan(self.disk, self.machine.index, self.ignore)
            else:
                result = memscan.scan_paths(self.disk, todo, self.machine.index, self.ignore)
                if self.machine.all_gone(result.deleted):
                    result, full = memscan.scan(self.disk, self.machine.index, self.ignore), True
        except RootUnavailable as exc:
            self.execute(self.machine.root_unavailable(str(exc), wall))
            self.user_changed("", delay=2.0)  # look again, as the daemon's root check does
            return
        self.execute(self.machine.scanned_root(result, wall, full=full))
        self.schedule_work()  # the first scan lets disk work start, whatever it found
        if self.machine.paused:
            self.user_changed("", delay=2.0)

    # -- the machine's effects ---------------------------------------------------------------
    def execute(self, effects: list) -> None:
        for effect in effects:
            if isinstance(effect, IndexWrite):
                for e in effect.puts:
                    self.index_store[e.path] = e
                for p in effect.drops:
                    self.index_store.pop(p, None)
                self.local.forget()
            elif isinstance(effect, Publish):
                for record in effect.records:
                    self.host.publish(record, user=effect.user)
                self.map_changed([r.path for r in effect.records])
            elif isinstance(effect, Rescan):
                for path in effect.paths:
                    self.user_changed(path, delay=max(effect.delay, 0.001))
            elif isinstance(effect, Emit):
                self.host.events.append(effect.event)
            elif isinstance(effect, self.live.EFFECTS):
                self.live.execute(effect)
        if effects:
            self.schedule_work()

    def map_changed(self, paths: list[str] | None) -> None:
        """The map moved (a peer's updates, or ours): the machine decides conflict copies."""
        self.execute(self.machine.map_changed(paths, self.holds, self.wall()))
        self.scheduler.forget_lacking()
        self.schedule_work()

    def peers_changed(self) -> None:
        self.machine.peers_changed()
        self.scheduler.forget_lacking()
        self.schedule_work()

    def holds(self, content_hash: bytes) -> bool:
        """Is this content on our disk right now (not merely in the index) or archived?"""
        for e in self.machine.index.values():
            if e.kind == FILE and e.hash == content_hash:
                st = memdisk.stat_of(self.disk, e.path)
                if st == _expect(e):
                    return True
        return memdisk.has_version(self.disk, content_hash)

    # -- disk work -----------------------------------------------------------------------------
    def schedule_work(self) -> None:
        if self._work_timer is None and self.running:
            self._work_timer = self.loop.call_later(self.cfg.settle_delay, self.work)

    def work(self) -> None:
        if not self.running:
            return
        self._work_timer = None
        for path in [p for p, pull in self.pulls.items() if self.machine.superseded(pull.need)]:
            self._cancel(path)
        if self.machine.scanned:
            for need in self.machine.next_work(self.now):
                self._start(need)
        self.request_blocks()
        self.execute(self.machine.in_sync_event(self.wall()))
        self.host.changed()

    def _start(self, need: mirror.Need) -> None:
        try:
            if need.action == mirror.WRITE_FILE:
                self._pull(need)
                return
            self._done(need, self._simple(need))
        except _NotYet:
            self.machine.abandoned(need)  # the machine hands it out again on a later round
        except memdisk.LocalChanged:
            self.execute(self.machine.changed_under_us(need))
        except LocalError as exc:  # DiskError, a folder in the way...: try again later
            self._failed(need, exc)

    def _failed(self, need: mirror.Need, exc: Exception, temp: TempFile | None = None) -> None:
        no_space = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
        if no_space and temp is not None:
            temp.abort()  # give the room back (runtime/puller.py does the same)
        self.execute(self.machine.failed_work(need, str(exc), self.now, self.wall(),
                                              no_space=no_space))

    def _done(self, need: mirror.Need, st: memdisk.Stat | None) -> None:
        disk = None if st is None else DiskStat(st.size, st.mtime_ns, st.inode)
        self.execute(self.machine.done(need, disk, self.wall()))

    def _simple(self, need: mirror.Need) -> memdisk.Stat | None:
        path, rec = need.path, need.record
        entry = self.machine.index.get(path)
        if need.action == mirror.ADOPT:
            return None  # nothing to do on disk: the machine moves the row's version
        if need.action == mirror.CREATE_DIR:
            memdisk.make_dir(self.disk, path, rec.mode, rec.mtime_ns)
        elif need.action == mirror.META:
            memdisk.set_meta(self.disk, path, rec.mode, rec.mtime_ns, expect=_expect(entry))
        elif need.action == mirror.WRITE_LINK:
            memdisk.make_symlink(self.disk, path, rec.target or "", _expect(entry),
                                 archive=self._archiver(entry))
        elif need.action == mirror.DELETE:
            if entry is not None and not memdisk.remove(self.disk, path, _expect(entry),
                                                        archive=self._archiver(entry)):
                raise _NotYet()  # a folder still holds files (runtime/puller.py does the same)
            return None
        return memdisk.stat_of(self.disk, path)

    def archiver(self, entry: IndexEntry | None):
        """The callback that keeps replaced content in the archive (SimLive's writes too)."""
        return self._archiver(entry)

    def _archiver(self, entry: IndexEntry | None):
        def archive(where: memdisk.MemPath) -> None:
            if entry is None or entry.kind != FILE or entry.hash is None:
                return
            try:
                memdisk.archive(self.disk, where, entry.hash, hasher_factory=coreblocks.FileHasher)
            except memdisk.ArchiveMismatch:
                raise memdisk.LocalChanged(where, "changed since it was scanned")
            self.host.record_archived(entry.path, (entry.hash, entry.size, entry.mtime_ns,
                                                   self.machine.origin_of(entry)))
        return archive

    # -- files -------------------------------------------------------------------------------
    def _pull(self, need: mirror.Need) -> None:
        rec = need.record
        entry = self.machine.index.get(need.path)
        partial = memdisk.find_partial(self.disk, need.path)
        if partial is not None:
            temp = TempFile.open_existing(partial, target=memdisk.MemPath(self.disk, need.path),
                                          hasher_factory=coreblocks.FileHasher)
        else:
            temp = TempFile.create(self.disk, need.path, hasher_factory=coreblocks.FileHasher)
        plan = reuse.Plan(rec, entry, resumed=partial is not None,
                          same=self.local.find_file(rec.hash) if rec.hash else None,
                          find_block=self.local.find_block)
        try:
            while (step := plan.next_step()) is not None:
                plan.got(self._carry(step, temp, rec))
        except LocalError:
            temp.abort()  # a full disk: give the room back
            raise
        self.pulls[need.path] = _Pull(need, temp)
        todo = [(i, rec.blocks[i]) for i in plan.missing()]
        if todo:
            self.scheduler.forget_lacking(rec.hash)  # asked again: peers may have it by now
            self.scheduler.add(need.path, rec.hash, rec.block_size, rec.size, todo,
                               self._bases(rec.path, plan.delta_bases(entry)))
        else:
            self._finish(need.path)

    def _carry(self, step: reuse.Step, temp: TempFile, rec) -> set[int]:
        """One step of the reuse plan (protocol/reuse.py) on the memdisk; the blocks it wrote."""
        if isinstance(step, reuse.Truncate):
            temp.truncate(step.size)
            return set()
        if isinstance(step, reuse.Verify):
            return {i for i in step.indices if reuse.is_block(
                rec, i, temp.read_at(i * rec.block_size, reuse.block_length(rec, i)),
                coreblocks.strong_hash)}
        if isinstance(step, reuse.Rolling):
            old = self.disk.read(step.path) or b""
            found = coreblocks.RollingMatcher(rec.blocks, rec.block_size, rec.size).scan(old)
            wanted = set(step.indices)
            step = reuse.Copy(step.path, None, {i: o for i, o in found.items() if i in wanted})
        if step.source is reuse.ARCHIVE:
            data = memdisk.read_version(self.disk, step.content_hash)
        else:
            data = self.disk.read(step.source)
        got = set()
        for i, off, size in reuse.reads(step, rec) if data is not None else ():
            chunk = data[off:off + size]
            if reuse.is_block(rec, i, chunk, coreblocks.strong_hash):
                temp.write_at(i * rec.block_size, chunk)
                got.add(i)
        return got

    def _bases(self, path: str, wanted: dict[int, tuple[int, int]]) -> dict[int, Base]:
        """Signatures of the old bytes at `path` the missing blocks come as deltas against."""
        old = (self.disk.read(path) or b"") if wanted else b""
        bases = {i: transfer.base_of(off, old[off:off + size]) for i, (off, size) in wanted.items()}
        return {i: b for i, b in bases.items() if b is not None}

    def _cancel(self, path: str) -> None:
        pull = self.pulls.pop(path, None)
        if pull is not None:
            self.scheduler.cancel(path)
            pull.temp.abort()  # superseded: of no further use (runtime/puller.py does the same)
            self.machine.abandoned(pull.need)

    def _finish(self, path: str) -> None:
        pull = self.pulls.pop(path)
        self.scheduler.cancel(path)
        need, rec = pull.need, pull.need.record
        if self.machine.superseded(need):
            pull.temp.abort()  # the map moved on meanwhile: the machine decides again
            self.machine.abandoned(need)
            self.schedule_work()
            return
        entry = self.machine.index.get(path)
        try:
            pull.temp.finish(None, rec.hash, rec.mode, rec.mtime_ns, _expect(entry),
                             archive=self._archiver(entry))
        except memdisk.LocalChanged:
            pull.temp.abort()
            self.execute(self.machine.changed_under_us(need))  # the user's change wins the race
            return
        except (IntegrityError, LocalError) as exc:
            self._failed(need, exc, pull.temp)
            return
        self._done(need, memdisk.stat_of(self.disk, path))

    def busy(self, path: str) -> bool:
        """A download of `path` is under way (a restore waits: runtime/folder.py's busy)."""
        return path in self.pulls

    def fetch_into(self, key: str, temp: TempFile, file_hash: bytes, piece: int, size: int,
                   pieces: list, done: Callable[[bool], None]) -> None:
        """Content `file_hash` from peers into `temp` (a restore; runtime/puller.py's
        fetch_into): `done(True)` once every piece arrived, `done(False)` when no peer has it."""
        if not pieces:
            done(True)
            return
        self.fetches[key] = (temp, done)
        self.scheduler.add(key, file_hash, piece, size, pieces)
        self.request_blocks()

    # -- blocks over the network -------------------------------------------------------------
    def request_blocks(self) -> None:
        if not (self.pulls or self.fetches) or not self.running:
            return
        peers = self.host.peers()
        for key, message in self.scheduler.messages(peers, self.now):
            self.host.send_to(key, message)
        for key in [k for k in self.fetches if self.scheduler.stalled(k, peers)]:
            self._fetched(key, False)
        stalled = [p for p in self.pulls if self.scheduler.stalled(p, peers)]
        if stalled and peers:
            for path in stalled:
                pull = self.pulls.pop(path)
                self.scheduler.cancel(path)
                pull.temp.close()
                self.execute(self.machine.content_unavailable(pull.need, self.now, self.wall()))
            self.schedule_work()

    def tick(self) -> None:
        """The node's tick: request timeouts move on, unavailable content comes due again."""
        if self.pulls or self.fetches:
            self.scheduler.tick(self.now)
            self.request_blocks()
        self.live.tick()
        if self.machine.stalled or self.machine.disk_full or self.machine.refresh_due(self.now):
            self.schedule_work()  # retries come due on the clock, and the safety-net refresh  # retries come due on the clock

    def on_block_message(self, peer: bytes,
                         message: BlockData | BlockMissing | DeltaData | BlockBatchData) -> None:
        """An answer from `peer` to one of our block requests (or to a batch of them)."""
        if isinstance(message, BlockBatchData):
            for request_id in message.missing:
                self.scheduler.on_missing(peer, request_id)
            for block in message.blocks:
                self._arrived(self.scheduler.on_data(peer, block.request_id, block.data))
            for d in message.deltas:
                self._on_delta(peer, d)
        elif isinstance(message, BlockMissing):
            self.scheduler.on_missing(peer, message.request_id)
        elif isinstance(message, DeltaData):
            self._on_delta(peer, message)
        else:
            self._arrived(self.scheduler.on_data(peer, message.request_id, message.data))
        self.request_blocks()

    def _on_delta(self, peer: bytes, message: DeltaData) -> None:
        wanted = self.scheduler.delta_of(message.request_id)
        data = None if wanted is None else self._rebuild(*wanted, message.delta)
        self._arrived(self.scheduler.on_delta(peer, message.request_id, data))

    def _rebuild(self, path: str, base: Base, block_hash: bytes, size: int,
                 encoded: bytes) -> bytes | None:
        old = (self.disk.read(path) or b"")[base.offset:base.offset + base.size]
        return transfer.rebuild(base, old, encoded, size, block_hash, coreblocks.strong_hash)

    def _fetched(self, key: str, ok: bool) -> None:
        temp, done = self.fetches.pop(key)
        self.scheduler.cancel(key)
        done(ok)

    def _arrived(self, arrived: transfer.Arrived | None) -> None:
        """A verified block: written to its temp file; the file finished once complete."""
        if arrived is not None and arrived.path in self.fetches:
            try:
                self.fetches[arrived.path][0].write_at(arrived.offset, arrived.data)
            except LocalError:  # a full disk: the restore says it could not
                self._fetched(arrived.path, False)
                return
            if self.scheduler.remaining(arrived.path) == 0:
                self._fetched(arrived.path, True)
            return
        pull = None if arrived is None else self.pulls.get(arrived.path)
        if pull is None:
            return
        try:
            pull.temp.write_at(arrived.offset, arrived.data)
        except LocalError as exc:  # our disk's trouble (full), not the peer's
            del self.pulls[arrived.path]
            self.scheduler.cancel(arrived.path)
            self._failed(pull.need, exc, pull.temp)
            return
        if self.scheduler.remaining(arrived.path) == 0:
            self._finish(arrived.path)

    def peer_gone(self, peer: bytes) -> None:
        self.scheduler.peer_gone(peer)
        self.peers_changed()

    def serve_block(self, req: BlockRequest | DeltaRequest | BlockBatch) -> Message:
        """A peer's block request, answered as runtime/blockserver.py does (protocol/serving.py);
        a batch is answered block by block in one message."""
        if isinstance(req, BlockBatch):
            serving.check_batch(req)
            return serving.answer_batch(req, [self._first(r)
                                              for r in serving.batch_requests(req)])
        if not serving.request_ok(req):
            return BlockMissing(req.request_id)
        sources = serving.serve_sources(req, self.local.find_file, self.local.find_block)
        return serving.serve(req, sources, lambda src: self._read(src, req),
                              coreblocks.strong_hash)

    def _first(self, req: BlockRequest) -> bytes | None:
        sources = serving.serve_sources(req, self.local.find_file, self.local.find_block)
        return serving.first_served(req, sources, lambda src: self._read(src, req),
                                    coreblocks.strong_hash)

    def _read(self, src: serving.Source, req: BlockRequest) -> bytes | None:
        """The bytes at a source; None if its file changed since it was scanned."""
        if src.path is None:
            data = memdisk.read_version(self.disk, req.file_hash)
        elif memdisk.stat_of(self.disk, src.path) != _expect(self.machine.index.get(src.path)):
            return None
        else:
            data = self.disk.read(src.path)
        return None if data is None else data[src.offset:src.offset + req.size]

    # -- observation -------------------------------------------------------------------------
    def idle(self) -> bool:
        """Nothing left to do: no download, no pending scan, the disk holds what the map says
        (but for unavailable content: SPEC says it never blocks the mesh, so neither its timed
        retries nor a retry under way count; a pending need keeps `in_sync` false)."""
        listed = set(self.machine.unavailable)
        if (self._scan_todo or self.fetches or any(p not in listed for p in self.pulls)
                or not self.live.idle()):
            return False
        self.machine.refresh(self.now)
        return self.machine.in_sync()
