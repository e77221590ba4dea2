"""The mirrored folder of a running node: sees local changes, publishes them as versions, and
drives the puller (runtime/puller.py) and the block server (runtime/blockserver.py).

Local changes arrive through the OS watcher (debounced, then re-scanned only where they happened)
and through a periodic full rescan, the safety net. A root that vanishes, turns into something
else or suddenly empties is never mirrored as a mass deletion: the folder pauses, says why (status
and a `root_paused` event), and resumes when the root is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import trio

from gossip_backer.core.ids import NodeId
from gossip_backer.core.record import FILE, FileRecord, SignedUpdate
from gossip_backer.core.retention import Policy, keep
from gossip_backer.disk import versions
from gossip_backer.disk.ignore import IgnoreMatcher
from gossip_backer.disk.scan import RootUnavailable, ScanEntry, ScanResult, root_state, scan, scan_paths
from gossip_backer.errors import StoreError
from gossip_backer.events import Conflict, FileChanged, InSync, RootPaused, RootResumed
from gossip_backer.protocol import mirror
from gossip_backer.store.repo import IndexEntry

log = logging.getLogger(__name__)
RESCAN_INTERVAL = 3600.0
RETENTION_INTERVAL = 3600.0
EMPTIED_MIN_FILES = 2
ROOT_CHECK = 2.0  # seconds between looks at whether the root is still there
SETTLE = 0.2  # seconds a changed file must stay still before it is announced
SETTLE_NS = int(SETTLE * 1e9)
INDEX_SAVE_DELAY = 0.05  # seconds index rows wait to be saved together
INDEX_RETRY = 5.0


def to_scan_entry(e: IndexEntry) -> ScanEntry:
    return ScanEntry(e.path, e.size, e.mtime_ns, e.inode, e.mode, e.kind, e.hash, e.block_size,
                     e.blocks, e.target)


class ScanPrevious(Mapping):
    """The index as a scan's `previous`, converted one entry at a time as the scan asks (a watcher
    batch of a few paths must not cost a pass over the whole index). It reads a snapshot (a
    plain dict copy) so that the scan in its worker thread never sees the index move."""

    def __init__(self, index: dict[str, IndexEntry]) -> None:
        self._index = dict(index)
        self._seen: dict[str, ScanEntry] = {}

    def __getitem__(self, path: str) -> ScanEntry:
        got = self._seen.get(path)
        if got is None:
            got = self._seen[path] = to_scan_entry(self._index[path])
        return got

    def __contains__(self, path: object) -> bool:
        return path in self._index

    def __iter__(self):
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def to_index(s: ScanEntry, vv) -> IndexEntry:
    return IndexEntry(s.path, s.size, s.mtime_ns, s.inode, s.mode, s.kind, s.hash, s.block_size,
                      s.blocks, s.target, vv)


class Folder:
    """Local side of mirroring for one node (see the module docstring)."""

    def __init__(self, node, *, rescan_interval: float = RESCAN_INTERVAL, watch: bool = True) -> None:
        from gossip_backer.runtime.blockserver import BlockServer
        from gossip_backer.runtime.puller import Puller

        self.node = node
        self.state = node.state
        self.root: Path = node.state.root
        self.index: dict[str, IndexEntry] = {e.path: e for e in self.state.repo.index_all()}
        self.ignore = IgnoreMatcher.load(self.root)
        self.rescan_interval = rescan_interval
        self.retention = Policy()
        self.watch = watch
        self.paused: str | None = None
        self._ignore_gen = self.ignore.generation
        self._nursery: trio.Nursery | None = None
        self.scanned = trio.Event()  # the first full scan is done
        self.puller = Puller(self)
        self.server = BlockServer(self)
        self._was_in_sync = False
        self._unsaved: dict[str, IndexEntry | None] = {}  # index rows not yet in the store
        self._unsaved_wake = trio.Event()

    @property
    def me(self) -> bytes:
        return self.state.identity.public

    # -- tasks -----------------------------------------------------------------------------
    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self.full_scan()
            self.scanned.set()
            nursery.start_soon(self._index_saver)
            nursery.start_soon(self._rescan_loop)
            nursery.start_soon(self._retention_loop)
            if self.watch:
                nursery.start_soon(self._watch_loop)
            nursery.start_soon(self.puller.run)

    async def _retention_loop(self) -> None:
        """Apply the retention policy to the revision archive, at start and then hourly."""
        while True:
            dropped = self.apply_retention(time.time())
            if dropped:
                log.info("retention: dropped %d archived versions", dropped)
            await trio.sleep(RETENTION_INTERVAL)

    def apply_retention(self, now: float) -> int:
        """Drop the revisions the policy does not keep, and their bytes once no row needs them."""
        repo, dropped, freed = self.state.repo, 0, set()
        for path in repo.revision_paths():
            rows = repo.revisions(path)
            kept = keep([r.archived_at for r in rows], now, self.retention)
            for i, row in enumerate(rows):
                if i not in kept:
                    repo.delete_revision(row.id)
                    freed.add(row.hash)
                    dropped += 1
        for h in freed:
            if not repo.revision_hash_used(h):
                versions.remove_version(self.root, h)
        return dropped

    async def _rescan_loop(self) -> None:
        """The safety-net full rescan, plus a cheap look at the root every few seconds so that
        a vanished or replaced root pauses the folder at once (and a returning one resumes it)."""
        next_full = trio.current_time() + self.rescan_interval
        while True:
            await trio.sleep(ROOT_CHECK)
            gone = await trio.to_thread.run_sync(root_state, self.root)
            if self.paused or gone is not None or trio.current_time() >= next_full:
                await self.full_scan()
                next_full = trio.current_time() + self.rescan_interval

    async def _watch_loop(self) -> None:
        """Follow the OS watcher; start a new one when the root itself went away and came back."""
        from gossip_backer.disk.watch import Watcher

        while True:
            watcher = Watcher(self.root, self.ignore)
            try:
                async for paths in watcher.changes():
                    await trio.sleep(SETTLE)  # let writers finish; the scan skips moving files
                    generation = self.ignore.generation
                    await self.scan_some(paths, rules_changed=generation != self._ignore_gen)
            finally:
                watcher.close()
            await self.full_scan()  # the root vanished (watch lost): pause, then poll for it
            while self.paused:
                await trio.sleep(2.0)
                await self.full_scan()

    # -- scanning --------------------------------------------------------------------------
    async def full_scan(self) -> None:
        previous = ScanPrevious(self.index)
        self.ignore.reload_if_changed()
        self._ignore_gen = self.ignore.generation
        try:
            result = await trio.to_thread.run_sync(scan, self.root, previous, self.ignore)
        except RootUnavailable as exc:
            self._pause(str(exc))
            return
        if self._emptied(result):
            self._pause(f"the root {self.root} is suddenly empty (an unmounted disk?): "
                        "not mirroring that as a deletion")
            return
        self._resume()
        self._publish(result)

    async def scan_some(self, paths: set[str], rules_changed: bool = False,
                        settle: bool = True) -> None:
        """Re-examine `paths`; `settle=False` for files we wrote ourselves (restore)."""
        if self.paused or rules_changed:  # new ignore rules change what the whole tree means
            await self.full_scan()
            return
        if root_state(self.root) is not None:
            await self.full_scan()
            return
        previous = ScanPrevious(self.index)
        if ".backerignore" in paths:
            self.ignore.reload_if_changed()
        try:
            result = await trio.to_thread.run_sync(scan_paths, self.root, paths, previous, self.ignore)
        except RootUnavailable as exc:
            self._pause(str(exc))
            return
        if self.index and set(result.deleted) >= self.index.keys():
            await self.full_scan()  # everything vanished at once: judge the root as a whole
            return
        self._publish(result, settle)

    def _emptied(self, result: ScanResult) -> bool:
        """Every path gone at once from a root that held several files: an unmounted disk looks
        like that. (Deleting the one file a root holds is an ordinary deletion.)"""
        files = sum(1 for e in self.index.values() if e.kind == FILE)
        return not result.entries and files >= EMPTIED_MIN_FILES

    def _pause(self, reason: str) -> None:
        if self.paused != reason:
            self.paused = reason
            log.warning("paused: %s", reason)
            self.node._emit(RootPaused(time.time(), reason))

    def _resume(self) -> None:
        if self.paused:
            self.paused = None
            self.node._emit(RootResumed(time.time()))
            self.puller.wake()

    # -- publishing local changes ----------------------------------------------------------
    def _settling(self, result: ScanResult) -> set[str]:
        """Files modified in the last instant, or that moved while hashed: maybe still being
        written. They are looked at again shortly instead of being announced half-written."""
        now = time.time_ns()
        young = {p for p in result.changed
                 if result.entries[p].kind == FILE and 0 <= now - result.entries[p].mtime_ns < SETTLE_NS}
        return young | set(result.unstable)

    def _recheck_later(self, paths: set[str]) -> None:
        if paths and self._nursery is not None:
            async def later() -> None:
                await trio.sleep(SETTLE)
                await self.scan_some(paths)
            self._nursery.start_soon(later)

    def _publish(self, result: ScanResult, settle: bool = True) -> None:
        """Turn what the scan found into versions (signed, stored, spread) and index rows."""
        records: list[FileRecord] = []
        puts: list[IndexEntry] = []
        read_only = self.state.is_read_only()
        settling = self._settling(result) if settle else set(result.unstable)
        self._recheck_later(settling)
        for path in result.changed:
            if path in settling:
                continue
            entry = result.entries[path]
            record, vv = self._version_of(entry, read_only)
            if record is not None:
                records.append(record)
            puts.append(to_index(entry, vv))
        for path in result.refreshed:  # inode or folder mtime moved: no new version
            old = self.index.get(path)
            if old is not None and path not in result.changed:
                puts.append(to_index(result.entries[path], old.vv))
        gone = [p for p in result.deleted if p in self.index]
        for path in sorted(gone, key=lambda p: -p.count("/")):
            rec = None if read_only else mirror.deletion(self.state.metamap, self.me, path,
                                                         self.index[path], time.time_ns())
            if rec is not None:
                records.append(rec)
        updates = self.state.make_many(records)
        self._index_put(puts)
        self._index_delete(gone)
        if updates:
            self.node.local_changes(updates)
            for u in updates:
                self.node._emit(FileChanged(time.time(), u.payload.path, u.payload.deleted))
        if updates:
            self.puller.mark(u.payload.path for u in updates)

    def _version_of(self, entry: ScanEntry, read_only: bool):
        """The version to publish for a changed path (None when the mesh already has it) and
        the vv the index records for the disk."""
        metamap = self.state.metamap
        now_record = FileRecord(path=entry.path, kind=entry.kind, vv=mirror.VersionVector(),
                                origin=self.me, size=entry.size if entry.kind == FILE else 0,
                                mtime_ns=entry.mtime_ns, mode=entry.mode, hash=entry.hash,
                                block_size=entry.block_size, blocks=entry.blocks,
                                target=entry.target)
        old = self.index.get(entry.path)
        record = mirror.local_version(metamap, self.me, entry.path, old, now_record)
        if record is None:
            return None, mirror.disk_version(metamap, entry.path)
        if read_only:  # a read-only member's changes stay local (and are never overwritten
            return None, old.vv if old else mirror.VersionVector()  # until the mesh changes them)
        return record, record.vv

    def _index_put(self, entries: list[IndexEntry]) -> None:
        if entries:
            for e in entries:
                self.index[e.path] = e
                self._unsaved[e.path] = e
            self._save_soon()
            self.server.note_put(entries)
            self.puller.mark(e.path for e in entries)

    def _index_delete(self, paths: list[str]) -> None:
        if paths:
            for p in paths:
                self.index.pop(p, None)
                self._unsaved[p] = None
            self._save_soon()
            self.puller.mark(paths)

    # -- saving the index: write-behind, in batches, off the trio loop ------------------------
    # The index only caches what the disk holds, so a row lost in a crash costs a re-hash of
    # that file at the next start (its content then matches the winner: no new version), never
    # data. One commit per written file would put an fsync on the loop for every tiny file.
    def _save_soon(self) -> None:
        self._unsaved_wake.set()

    async def _index_saver(self) -> None:
        while True:
            await self._unsaved_wake.wait()
            self._unsaved_wake = trio.Event()
            await trio.sleep(INDEX_SAVE_DELAY)  # gather what the next moments write
            batch, self._unsaved = self._unsaved, {}
            try:
                with trio.CancelScope(shield=True):  # a batch taken is a batch written
                    await trio.to_thread.run_sync(self._save, batch)
            except StoreError as exc:
                log.warning("saving the index failed (%s); retrying", exc)
                for path, row in batch.items():
                    self._unsaved.setdefault(path, row)
                await trio.sleep(INDEX_RETRY)
                self._save_soon()

    def _save(self, batch: dict[str, IndexEntry | None]) -> None:
        self.state.repo.index_write([e for e in batch.values() if e is not None],
                                    [p for p, e in batch.items() if e is None])

    def save_index_now(self) -> None:
        """(at shutdown) Write what the saver has not written yet."""
        batch, self._unsaved = self._unsaved, {}
        if batch:
            self._save(batch)

    # -- remote changes --------------------------------------------------------------------
    def on_remote(self, updates: list[SignedUpdate]) -> None:
        """Updates from peers were stored: publish conflict copies, wake the puller."""
        paths = {u.payload.path for u in updates if isinstance(u.payload, FileRecord)}
        if len(paths) < len(updates):  # membership moved: validity, hence any path, may change
            self.puller.mark_all()
        if not paths:
            return
        if not self.state.is_read_only():
            copies = []
            for path in sorted(paths):
                for copy in mirror.conflict_copies(self.state.metamap, path, self.holds):
                    copies.append(copy)
                    self.node._emit(Conflict(time.time(), path, copy.path))
            if copies:
                self.node.local_changes(self.state.make_many(copies))
                paths |= {c.path for c in copies}
        self.puller.scheduler.forget_lacking()
        self.puller.mark(paths)

    def holds(self, content_hash: bytes) -> bool:
        """Is this content on our disk or in our revision archive?"""
        return (self.server.find_file(content_hash) is not None
                or versions.open_version(self.root, content_hash) is not None)

    # -- views -----------------------------------------------------------------------------
    def counts(self) -> dict:
        needs = self.puller._needs.values()
        pending_files = sum(1 for n in needs if n.action == mirror.WRITE_FILE)
        pending_bytes = sum(n.bytes for n in needs)
        files = sum(1 for e in self.index.values() if e.kind == FILE)
        size = sum(e.size for e in self.index.values() if e.kind == FILE)
        return {
            "files": files,
            "bytes": size,
            "in_sync": self.in_sync(),
            "pending_files": pending_files,
            "pending_bytes": pending_bytes,
            "conflicts": mirror.conflicts_present(self.state.metamap, self.index),
            "transfers": [{"path": j.path, "done_bytes": j.reused + j.fetched, "total_bytes": j.size}
                          for j in self.puller.jobs.values() if j.need is not None],
        }

    def in_sync(self) -> bool:
        return (self.scanned.is_set() and not self.paused and not self.puller.pending
                and not self.puller.busy)

    def check_in_sync(self) -> None:
        now = self.in_sync()
        if now and not self._was_in_sync:
            c = self.counts()
            self.node._emit(InSync(time.time(), c["files"], c["bytes"]))
        self._was_in_sync = now


__all__ = ["Folder", "NodeId", "replace"]
