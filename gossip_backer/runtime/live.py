"""Live files of a running node: carries out the live-document machine's effects
(protocol/live.py, reached through the folder machine) on the real disk, and keeps its timers.

Reads and writes of live files run one at a time, in order, in a worker thread: a write is the
document's text put in place atomically over what the index says is there; a refused write (the
user saved meanwhile) makes the path be scanned, so the user's save is merged first. Every write
is followed by a scan of that path, so the index holds the new content and the scanner never
takes our own write for a user's change. Each write's `base` is appended to the path's durable
base log (disk/livebase.py) before the file is replaced, and taken back if the write is refused;
`SaveLiveBase` effects go to that log in the same order.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import TYPE_CHECKING

import trio

from gossip_backer.disk.apply import DiskError, LocalChanged, Stat
from gossip_backer.disk.livebase import LiveBases
from gossip_backer.disk.textfile import read_text, write_text
from gossip_backer.live.textdoc import LIVE_MAX, TextDocs
from gossip_backer.protocol.effects import PublishLive, ReadText, SaveLiveBase, WriteText
from gossip_backer.protocol.live import LiveMachine

if TYPE_CHECKING:
    from gossip_backer.runtime.folder import Folder

log = logging.getLogger(__name__)
TICK = 0.25  # seconds between looks at snapshots and checkpoints when no write is due
RETRY = 2.0  # seconds before a write the disk refused is tried again
POLL = 0.005  # seconds between looks at a write that is due but waits for a read of its file
WRITE_DELAY_ENV = "BACKER_TEST_LIVE_WRITE_DELAY"  # tests only: seconds each live file write
# waits in the worker before it starts (to kill the node while a peer's edit is not on disk)


def live_machine(metamap, me: bytes) -> LiveMachine:
    """The live machine of a node, with a fresh Yjs client id for this run."""
    return LiveMachine(metamap, me, TextDocs(), secrets.randbits(31) | 1)


class LiveDisk:
    """The live effects of one folder, in order (see the module docstring)."""

    EFFECTS = (PublishLive, ReadText, WriteText, SaveLiveBase)

    def __init__(self, folder: "Folder", live) -> None:
        self.folder = folder
        self.clock = folder.clock  # the node's one clock (runtime/clock.py)
        self.machine = folder.machine
        self.live = live  # the folder machine's LiveMachine (protocol/live.py)
        self.bases = LiveBases(folder.state_dir)
        self.write_delay = float(os.environ.get(WRITE_DELAY_ENV) or 0)
        for path in live.load_bases(self.bases.load()):  # a few small files, once at the start
            self.bases.drop(path)
        self._send, self._receive = trio.open_memory_channel(float("inf"))
        self._wake = trio.Event()

    def execute(self, effect) -> None:
        if isinstance(effect, PublishLive):
            self.folder.publish_live(list(effect.edits))
        else:
            self._send.send_nowait(effect)

    def wake(self) -> None:
        """A document changed: a file write may be due sooner than the next tick."""
        self._wake.set()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._worker)
            while True:
                effects = self.machine.live_tick(self.clock.now(), self.clock.wall())
                self.folder.execute(effects)
                due = self.live.next_due()  # (past: held by a read; look again soon)
                delay = TICK if due is None else min(TICK, max(due - self.clock.now(),
                                                               0.0 if effects else POLL))
                with trio.move_on_after(delay):
                    await self._wake.wait()
                self._wake = trio.Event()

    async def _worker(self) -> None:
        async for effect in self._receive:
            try:
                if isinstance(effect, ReadText):
                    await self._read(effect.path)
                elif isinstance(effect, SaveLiveBase):
                    save = self.bases.replace if effect.replace else self.bases.append
                    await trio.to_thread.run_sync(save, effect.path, effect.update)
                else:
                    await self._write(effect)
            except Exception:  # our bug: say it, keep the node and the other files going
                log.exception("live file %s: %s failed", effect.path, type(effect).__name__)

    async def _read(self, path: str) -> None:
        root = self.folder.root
        data = await trio.to_thread.run_sync(read_text, root, path, LIVE_MAX)
        self.folder.execute(self.machine.live_text(path, data, self.clock.now(), self.clock.wall()))

    async def _write(self, effect: WriteText) -> None:
        if self.write_delay:
            await trio.sleep(self.write_delay)
        path = effect.path
        row = self.folder.index.get(path)
        expect = None if effect.expect is None else Stat(*effect.expect)
        mode = 0o644 if row is None else row.mode & 0o777
        archived: list = []
        archive = self.folder.archiver(row, archived) if effect.archive else None
        try:
            digest = await trio.to_thread.run_sync(self._write_with_base, effect, mode, expect,
                                                   archive)
        except LocalChanged:
            log.debug("live file %s changed under us: merging it first", path)
            await self.folder.scan_some([path], settle=False)  # (marks the save to be read)
            self.live.refused(path)
        except (DiskError, OSError) as exc:  # tried again after a while (a full disk, a vanished
            log.warning("live file %s not written: %s", path, exc)  # folder)
            self.live.refused(path, self.clock.now() + RETRY)
        else:
            self.folder.execute(self.machine.live_written(path, effect.base, digest))
            self.folder.record_archived(archived)  # a version replaced: history still has it
            await self.folder.scan_some([path], settle=False)
        self.wake()  # edits that came during the write go in the next one

    def _write_with_base(self, effect: WriteText, mode: int, expect, archive) -> bytes:
        """(worker thread) The base log first (its sync runs while the file is written, and is
        waited for before the rename), then the file; the log taken back on refusal."""
        length, synced = self.bases.append_soon(effect.path, effect.base)
        try:
            return write_text(self.folder.root, effect.path, effect.data, mode, expect, archive,
                              before_replace=synced.result)
        except BaseException:
            self.bases.take_back(effect.path, length)
            raise


__all__ = ["LiveDisk", "live_machine"]
