"""The mirrored folder of a running node: carries out the folder machine's decisions
(protocol/folder.py) on the real disk, and feeds it what the disk and the mesh do.

Local changes arrive through the OS watcher (debounced, then re-scanned only where they happened)
and through a periodic full rescan, the safety net; a cheap look at the root every few seconds
catches a vanished root at once. Scans run in worker threads; the machine judges their results
and says what to publish, what to store and what to look at again. The puller
(runtime/puller.py) does the disk work the machine hands out; the block server
(runtime/blockserver.py) answers peers' block requests; the index saver (runtime/indexsaver.py)
stores the index behind, and retention (runtime/retention.py) trims the revision archive.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from pathlib import Path

import trio

from gossip_backer.core.record import FileRecord, IndexEntry, LiveEdit, SignedUpdate
from gossip_backer.disk import alive, apply, versions
from gossip_backer.disk.ignore import IgnoreMatcher
from gossip_backer.disk.scan import RootUnavailable, ScanResult, root_state, scan, scan_paths
from gossip_backer.protocol.effects import Emit, IndexWrite, Publish, Rescan
from gossip_backer.protocol.folder import FolderMachine, settle_wait
from gossip_backer.runtime.clock import Clock
from gossip_backer.runtime.eventbus import EventBus
from gossip_backer.runtime.heap import trim_now
from gossip_backer.runtime.indexsaver import IndexSaver
from gossip_backer.runtime.peerlinks import PeerLinks
from gossip_backer.runtime.problems import LocalProblems
from gossip_backer.runtime.retention import ArchiveRetention
from gossip_backer.runtime.state import NodeState, state_dir

log = logging.getLogger(__name__)
RESCAN_INTERVAL = 3600.0
ROOT_CHECK = 2.0  # seconds between looks at whether the root is still there
WATCH_SETTLE = 0.5  # seconds after start when the OS watcher is surely watching
ALIVE_EVERY = 5.0  # seconds between signs of life on disk (disk/alive.py)
SETTLE_LOOKS = 256  # paths of a watcher batch whose ages are read before it is scanned
PUBLISH_BATCH = 1024  # own updates signed, stored and spread at once (see Folder._publishing)


class Folder:
    """Local side of mirroring for one node (see the module docstring). `links` and `bus` are
    the node's peers and events; `spread` publishes updates we made (signed and stored)."""

    def __init__(self, state: NodeState, links: PeerLinks, bus: EventBus,
                 spread: Callable[[list[SignedUpdate]], None], *,
                 rescan_interval: float = RESCAN_INTERVAL, watch: bool = True,
                 clock: Clock | None = None) -> None:
        from gossip_backer.runtime.blockserver import BlockServer
        from gossip_backer.runtime.puller import Puller

        self._links = links
        self._bus = bus
        self._spread = spread
        self.clock = clock or Clock()
        self.state = state
        self.root: Path = state.root
        self.problems = LocalProblems(str(self.root))  # what the scans and the disk refused
        self.state_dir = state_dir(self.root)
        self.machine = FolderMachine(self.state.metamap, self.state.identity.public,
                                     self.state.take_index_rows())
        self.ignore = IgnoreMatcher.load(self.root)
        self.rescan_interval = rescan_interval
        self.retention = ArchiveRetention(self.state, self.clock)
        self.watch = watch
        self._ignore_gen = self.ignore.generation
        self._nursery: trio.Nursery | None = None
        # Publishes (with the index writes decided beside them) waiting to be signed, in order
        self._to_publish, self._publishes = trio.open_memory_channel(math.inf)
        self._queued_publishes = 0
        self._all_published = trio.Event()  # nothing queued to publish (see full_scan)
        self._all_published.set()
        self.scanned = trio.Event()  # the first full scan is done, what it found published
        self.server = BlockServer(self.root, self.machine.index)
        self.puller = Puller(self.root, self.machine, self.server, self, self.clock)
        self.index_saver = IndexSaver(self.state)
        from gossip_backer.runtime.live import LiveDisk, live_machine

        self.machine.live = live_machine(self.state.metamap, self.state.identity.public)
        self.live = LiveDisk(self, self.machine.live)
        from gossip_backer.runtime.liveweb import LiveHub

        self.live_hub = LiveHub(self, self.machine.live)  # editors of live files (the web's websocket)

    @property
    def index(self) -> dict[str, IndexEntry]:
        return self.machine.index

    @property
    def paused(self) -> str | None:
        return self.machine.paused

    # -- tasks -----------------------------------------------------------------------------
    def remove_abandoned_temps(self) -> None:
        """(worker thread, at start-up, before `run`) Temp files no download will resume (a
        crash, a conflict's leftovers) go; those of versions still to fetch stay, with their
        verified blocks."""
        from gossip_backer.core.record import FILE

        metamap, wanted = self.state.metamap, []
        for path in metamap.files:
            rec = metamap.winner(path)
            if rec is not None and rec.kind == FILE and not rec.deleted:
                have = self.index.get(path)
                if have is None or have.hash != rec.hash:
                    wanted.append(path)
        removed = apply.remove_abandoned_temps(self.root, wanted)
        if removed:
            log.info("removed %d abandoned temp file(s), e.g. %s", len(removed), removed[0])

    async def run(self) -> None:
        lost = await trio.to_thread.run_sync(alive.power_lost_at, self.state_dir)
        if lost is not None:
            log.warning("the previous run ended with the machine losing power: what the disk "
                        "lost of its last writes is fetched again from the mesh")
            self.machine.after_power_loss(lost)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._publishing)
            await self.full_scan()
            if not self.paused:  # judged: from now on a crash is this run's (a killed process
                await trio.to_thread.run_sync(alive.beat, self.state_dir)  # before it still
                # finds the mark of the power loss)
            nursery.start_soon(self.index_saver.run)
            nursery.start_soon(self._rescan_loop)
            nursery.start_soon(self.retention.run)
            if self.watch:
                nursery.start_soon(self._watch_loop)
                nursery.start_soon(self._scan_once_watched)
            nursery.start_soon(self.puller.run)
            nursery.start_soon(self.live.run)
            nursery.start_soon(self.live_hub.run)
            await self._all_published.wait()  # (what the first scan found is signed meanwhile)
            self.scanned.set()

    async def _scan_once_watched(self) -> None:
        """One more full scan once the watcher is surely running: a file saved during the first
        scan, or before the OS watcher was set up, is seen now, not at the hourly rescan."""
        await trio.sleep(WATCH_SETTLE)
        await self.full_scan()

    async def _rescan_loop(self) -> None:
        """The safety-net full rescan, plus a cheap look at the root every few seconds so that
        a vanished or replaced root pauses the folder at once (and a returning one resumes it)."""
        next_full = trio.current_time() + self.rescan_interval
        next_beat = trio.current_time() + ALIVE_EVERY
        while True:
            await trio.sleep(ROOT_CHECK)
            if trio.current_time() >= next_beat and not self.paused:
                next_beat = trio.current_time() + ALIVE_EVERY
                try:
                    await trio.to_thread.run_sync(alive.beat, self.state_dir)
                except OSError as exc:  # the root went away meanwhile: the root check says so
                    log.debug("sign of life not written: %s", exc)
            gone = await trio.to_thread.run_sync(root_state, self.root)
            if self.paused or gone is not None or trio.current_time() >= next_full:
                await self.full_scan()
                next_full = trio.current_time() + self.rescan_interval

    async def _watch_loop(self) -> None:
        """Follow the OS watcher; start a new one when the root itself went away and came back."""
        from gossip_backer.disk.watch import Watcher

        while True:
            watcher = Watcher(self.root, self.ignore, own=self._own_write)
            try:
                async for paths in watcher.changes():
                    await trio.sleep(await self._settle_wait(paths))
                    generation = self.ignore.generation
                    await self.scan_some(paths, rules_changed=generation != self._ignore_gen)
            finally:
                watcher.close()
            await self.full_scan()  # the root vanished (watch lost): pause, then poll for it
            while self.paused:
                await trio.sleep(2.0)
                await self.full_scan()

    async def _settle_wait(self, paths: set[str]) -> float:
        """How long to let the writers of a watcher batch finish (protocol.folder.settle_wait):
        the ages of up to SETTLE_LOOKS paths are read in a worker thread; a larger batch, a
        busy writer's, waits the whole settle."""
        from gossip_backer.disk.watch import STEP_MS, mtimes

        found = None
        if len(paths) <= SETTLE_LOOKS:
            found = await trio.to_thread.run_sync(mtimes, self.root, sorted(paths))
        return settle_wait(self.clock.wall(), found, STEP_MS / 1000)

    def _own_write(self, path: str) -> tuple[int, int, int, int] | None:
        """(the watcher's filter) The stat of the file the puller just placed at `path`."""
        placed = self.machine.own_writes.take(path, self.clock.wall())
        return None if placed is None else (placed.size, placed.mtime_ns, placed.inode,
                                            placed.mode)

    # -- scanning: the disk's side of the story, judged by the machine ----------------------
    async def full_scan(self) -> None:
        """Scan the whole root and judge what it holds. Not while our versions are still being
        signed (a first scan's): the paths found changed there would only wait, and the scan's
        passing objects, made among the map's lasting ones, left its memory fragmented."""
        await self._all_published.wait()
        previous = dict(self.index)  # a snapshot: the scan's worker thread never sees it move
        self.ignore.reload_if_changed()
        self._ignore_gen = self.ignore.generation
        try:
            result = await trio.to_thread.run_sync(scan, self.root, previous, self.ignore)
        except RootUnavailable as exc:
            self.execute(self.machine.root_unavailable(str(exc), self.clock.wall()))
            return
        was_paused = self.paused
        self.problems.note(result)  # refused names, unreadable paths: in status
        self.execute(self.machine.scanned_root(result, self.clock.wall(), full=True))
        if was_paused and not self.paused:
            self.puller.wake()
        del result, previous  # the scan's entries, and what it read of the index, are garbage now
        await trio.to_thread.run_sync(trim_now)  # glibc: the scan's freed pages go back

    async def all_published(self) -> None:
        """Wait until every version the machine has decided so far is signed, in the map and
        spread (they are signed in the background: `_publishing`)."""
        await self._all_published.wait()

    async def scan_some(self, paths: Iterable[str], rules_changed: bool = False,
                        settle: bool = True) -> None:
        """Re-examine `paths`; `settle=False` for files we wrote ourselves (restore)."""
        if self.paused or rules_changed:  # new ignore rules change what the whole tree means
            await self.full_scan()
            return
        if root_state(self.root) is not None:
            await self.full_scan()
            return
        paths = set(paths)
        previous = dict(self.index)  # (index rows are what a scan's `previous` reads)
        if ".backerignore" in paths:
            self.ignore.reload_if_changed()

        def judge(found: ScanResult) -> None:
            if self.paused:  # the root went away meanwhile: its next full scan finds these
                return
            self.execute(self.machine.scanned_root(found, self.clock.wall(), full=False,
                                                   settle=settle))

        def progress(found: ScanResult) -> None:  # (worker thread) a large subtree's first files
            trio.from_thread.run_sync(judge, found)  # are published while the rest is hashed

        try:
            result = await trio.to_thread.run_sync(
                lambda: scan_paths(self.root, paths, previous, self.ignore, progress=progress))
        except RootUnavailable as exc:
            self.execute(self.machine.root_unavailable(str(exc), self.clock.wall()))
            return
        if self.machine.all_gone(result.deleted):
            await self.full_scan()  # everything vanished at once: judge the root as a whole
            return
        self.problems.note(result)  # refused names, unreadable paths: in status
        self.execute(self.machine.scanned_root(result, self.clock.wall(), full=False, settle=settle))

    # -- carrying out the machine's effects --------------------------------------------------
    def execute(self, effects: list) -> None:
        publishes = [e.records for e in effects if isinstance(e, Publish)]
        if publishes:  # signed in the background: the rows decided beside them are stored after
            writes = [e for e in effects if isinstance(e, IndexWrite)]
            for records in publishes:
                self.machine.signing(records)
            self._to_publish.send_nowait((publishes, writes))
            self._queued_publishes += 1
            if self._all_published.is_set():
                self._all_published = trio.Event()
        for effect in effects:
            if isinstance(effect, IndexWrite):
                self.server.note_put(effect.puts)
                if not publishes:
                    self.index_saver.write(effect)
            elif isinstance(effect, Rescan):
                self._rescan_later(effect.paths, effect.delay)
            elif isinstance(effect, Emit):
                self._bus.emit(effect.event)
            elif isinstance(effect, self.live.EFFECTS):
                self.live.execute(effect)
        if effects:
            self.puller.wake()

    def live_client(self, path: str, update: bytes) -> None:
        """An editor's update (runtime/liveweb.py): merged and published by the machine, then
        written to the file soon."""
        self.execute(self.machine.live_client(path, update, self.clock.now(), self.clock.wall()))
        self.live.wake()

    def publish_live(self, edits: list) -> None:
        """Sign, apply, store and spread our live-document edits (runtime/live.py)."""
        updates = self.state.make_many(edits)
        if updates:
            self.spread(updates)

    async def _publishing(self) -> None:
        """Sign, apply, store and spread our new versions, in the order the machine decided
        them, the signing in a worker thread (the loop serves peers meanwhile); then store the
        index rows decided beside them (a stop before that finds those files changed at the
        next start, and publishes them then: nothing is lost), and tell the machine, whose map
        moved (conflict copies of what we just published).

        A first scan publishes every file at once: signed PUBLISH_BATCH at a time, so that one
        batch's passing objects (updates, signatures, bodies) are freed before the next is made
        and the next reuses their memory. Made all at once, 100,000 of them were freed between
        the map's lasting objects and left ~12 MB of the heap's pages held for good."""
        async for publishes, writes in self._publishes:
            largest = await self._publish(publishes, writes)
            del publishes, writes  # not kept while waiting for the next (a tuple of 100,000)
            self._queued_publishes -= 1
            if not self._queued_publishes:
                self._all_published.set()
                if largest >= PUBLISH_BATCH:  # glibc: a large publish's freed pages go back
                    await trio.to_thread.run_sync(trim_now)

    async def _publish(self, publishes: list[tuple[FileRecord, ...]],
                       writes: list[IndexWrite]) -> int:
        """One scan's `Publish`es (see `_publishing`): how many records the largest held. Its
        own function so that no loop variable keeps the last effect's tuples alive after it."""
        for records in publishes:
            for start in range(0, len(records), PUBLISH_BATCH):
                await self.state.make_many_off_loop(list(records[start:start + PUBLISH_BATCH]),
                                                    self.spread)
        for write in writes:
            self.index_saver.write(write)
        for records in publishes:
            self.execute(self.machine.published(records, self.holds, self.clock.wall()))
        return max(map(len, publishes))

    def _rescan_later(self, paths: tuple[str, ...], delay: float) -> None:
        if paths and self._nursery is not None:
            async def later() -> None:
                await trio.sleep(delay)
                await self.scan_some(paths)
            self._nursery.start_soon(later)

    def save_index_now(self) -> None:
        """(at a clean stop) Save what the index saver has not saved yet; no sign of life left."""
        self.index_saver.save_later()
        alive.clear(self.state_dir)

    # -- remote changes --------------------------------------------------------------------
    def on_remote(self, updates: list[SignedUpdate]) -> None:
        """Updates from peers were stored: the machine publishes conflict copies and the
        puller looks at the paths again."""
        edits = [u for u in updates if isinstance(u.payload, LiveEdit)]
        if edits:  # live documents: merged, their files follow
            self.execute(self.machine.live_remote(edits, self.clock.now(), self.clock.wall()))
            self.live.wake()
            updates = [u for u in updates if not isinstance(u.payload, LiveEdit)]
            if not updates:
                return
        paths = {u.payload.path for u in updates if isinstance(u.payload, FileRecord)}
        moved = len(paths) < len(updates)  # membership moved: validity, hence any path, may change
        self.execute(self.machine.map_changed(None if moved else paths, self.holds, self.clock.wall()))
        self.puller.news()

    def peers_changed(self) -> None:
        self.machine.peers_changed()
        self.puller.news()

    def peer_gone(self, peer: bytes) -> None:
        self.puller.peer_gone(peer)
        self.live_hub.peer_gone(peer)
        self.peers_changed()

    # -- the peers, as the puller and the block server need them ---------------------------
    def peers(self) -> list[bytes]:
        return self._links.peers()

    def send_to(self, peer: bytes, message: object) -> None:
        self._links.send_to(peer, message)

    def emit(self, event) -> None:
        self._bus.emit(event)

    def spread(self, updates: list[SignedUpdate]) -> None:
        """Updates this folder made (signed, applied, stored): to the mesh."""
        self._spread(updates)

    async def answer(self, request):
        return await self.server.answer(request)

    async def on_block(self, peer: bytes, message) -> None:
        await self.puller.on_block(peer, message)

    async def fetch_into(self, *args, **kwargs) -> bool:
        return await self.puller.fetch_into(*args, **kwargs)

    def holds(self, content_hash: bytes) -> bool:
        """Is this content on our disk right now (the file still as scanned, not merely in the
        index: the user may have overwritten it, the watcher's scan pending) or archived?"""
        path = self.server.find_file(content_hash)
        if path is not None:
            e = self.index[path]
            if apply.stat_of(self.root, path) == apply.Stat(e.size, e.mtime_ns, e.inode, e.kind):
                return True
        return versions.open_version(self.root, content_hash) is not None

    # -- what restores need (runtime/history.py) -------------------------------------------
    def busy(self, path: str) -> bool:
        return path in self.machine.busy

    def archiver(self, entry: IndexEntry | None, archived: list):
        from gossip_backer.runtime.puller import archiver

        return archiver(self.root, entry, archived)

    def cannot_hold(self, path: str, why: str) -> None:
        """This disk cannot hold `path` (its name, or a case-twin): listed in status."""
        self.problems.not_held(path, why)

    def held(self, path: str) -> None:
        self.problems.held(path)

    def record_archived(self, archived: list[IndexEntry]) -> None:
        """Rows for content the disk work kept under .backer/versions/ before replacing it."""
        for entry in archived:
            self.state.store_later(self.state.repo.add_revision, entry.path, entry.hash, entry.size,
                                   entry.mtime_ns, self.machine.origin_of(entry), self.clock.wall())

    # -- views -----------------------------------------------------------------------------
    def counts(self) -> dict:
        out = self.machine.counts()
        out["transfers"] = self.puller.transfers()
        return out

    def in_sync(self) -> bool:
        return self.scanned.is_set() and self.machine.in_sync()

    def live_paths(self) -> list[str]:
        """The files that are live here."""
        return self.machine.live.live_paths()

    def live_connect(self, path: str, read_only: bool):
        """An editor's connection to the live document of `path` (runtime/liveweb.py)."""
        return self.live_hub.connect(path, read_only=read_only)

    def live_cursors_from(self, peer: bytes, message) -> None:
        """A peer's editors' cursors and names (LiveSync awareness) for our editors."""
        self.live_hub.from_peer(peer, message)

    def check_in_sync(self) -> None:
        self.execute(self.machine.in_sync_event(self.clock.wall()))


__all__ = ["Folder"]
