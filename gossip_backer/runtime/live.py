"""Live files of a running node: carries out the live-document machine's effects
(protocol/live.py, reached through the folder machine) on the real disk, and keeps its timers.

Reads and writes of live files run one at a time, in order, in a worker thread: a write is the
document's text put in place atomically over what the index says is there; a refused write (the
user saved meanwhile) makes the path be scanned, so the user's save is merged first. Every write
is followed by a scan of that path, so the index holds the new content and the scanner never
takes our own write for a user's change.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

import trio

from gossip_backer.disk.apply import DiskError, LocalChanged, Stat
from gossip_backer.disk.textfile import read_text, write_text
from gossip_backer.live.textdoc import LIVE_MAX, TextDocs
from gossip_backer.protocol.effects import PublishLive, ReadText, WriteText
from gossip_backer.protocol.live import LiveMachine

if TYPE_CHECKING:
    from gossip_backer.runtime.folder import Folder

log = logging.getLogger(__name__)
TICK = 0.25  # seconds between looks at snapshots and checkpoints when no write is due
RETRY = 2.0  # seconds before a write the disk refused is tried again


def live_machine(metamap, me: bytes) -> LiveMachine:
    """The live machine of a node, with a fresh Yjs client id for this run."""
    return LiveMachine(metamap, me, TextDocs(), secrets.randbits(31) | 1)


class LiveDisk:
    """The live effects of one folder, in order (see the module docstring)."""

    EFFECTS = (PublishLive, ReadText, WriteText)

    def __init__(self, folder: "Folder") -> None:
        self.folder = folder
        self.clock = folder.clock  # the node's one clock (runtime/clock.py)
        self.machine = folder.machine
        self._send, self._receive = trio.open_memory_channel(float("inf"))
        self._wake = trio.Event()

    def execute(self, effect) -> None:
        if isinstance(effect, PublishLive):
            updates = self.folder.state.make_many(list(effect.edits))
            if updates:
                self.folder.spread(updates)
        else:
            self._send.send_nowait(effect)

    def wake(self) -> None:
        """A document changed: a file write may be due sooner than the next tick."""
        self._wake.set()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._worker)
            while True:
                self.folder.execute(self.machine.live_tick(self.clock.now(), self.clock.wall()))
                due = self.machine.live.next_due()
                delay = TICK if due is None else max(0.0, min(TICK, due - self.clock.now()))
                with trio.move_on_after(delay):
                    await self._wake.wait()
                self._wake = trio.Event()

    async def _worker(self) -> None:
        async for effect in self._receive:
            try:
                if isinstance(effect, ReadText):
                    await self._read(effect.path)
                else:
                    await self._write(effect)
            except Exception:  # our bug: say it, keep the node and the other files going
                log.exception("live file %s: %s failed", effect.path, type(effect).__name__)

    async def _read(self, path: str) -> None:
        root = self.folder.root
        data = await trio.to_thread.run_sync(read_text, root, path, LIVE_MAX)
        self.folder.execute(self.machine.live_text(path, data, self.clock.now(), self.clock.wall()))

    async def _write(self, effect: WriteText) -> None:
        path, data = effect.path, effect.data
        row = self.folder.index.get(path)
        expect = None if effect.expect is None else Stat(*effect.expect)
        mode = 0o644 if row is None else row.mode & 0o777
        archived: list = []
        archive = self.folder.archiver(row, archived) if effect.archive else None
        try:
            digest = await trio.to_thread.run_sync(write_text, self.folder.root, path, data, mode,
                                                   expect, archive)
        except LocalChanged:
            log.debug("live file %s changed under us: merging it first", path)
        except DiskError as exc:  # tried again after a while (a full disk, a vanished folder)
            log.warning("live file %s not written: %s", path, exc)
            self.machine.live.recheck(path, self.clock.now() + RETRY)
            return
        else:
            self.machine.live_written(path, effect.base, digest)
            self.folder.record_archived(archived)  # a version replaced: history still has it
        await self.folder.scan_some([path], settle=False)


__all__ = ["LiveDisk", "live_machine"]
