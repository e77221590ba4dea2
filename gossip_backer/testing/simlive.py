"""Live files of a simulated node: carries out the live-document machine's effects
(protocol/live.py, through the folder machine) on the in-memory disk, on the simulator's clock.
It is to the simulator what runtime/live.py is to the daemon, and decides nothing itself.

- `ReadText`: the file's bytes after `read_delay` seconds, handed to the machine.
- `WriteText`: the text put in place only if the disk still holds what the index says (else the
  path is scanned: the user's change is merged first), then the path is scanned, as the daemon
  does after its atomic write.
- `PublishLive`: signed, applied, stored and spread by the node.
- `SaveLiveBase` and each written `WriteText`'s base: the node's durable base logs
  (`SimStore.live_bases`), which a restarted node's machine loads, as the daemon's
  disk/livebase.py. A write here is one step, so a crash falls before it or after it.
- Timers: a write that is due, snapshots and checkpoints, through `machine.live_tick`.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from gossip_backer.live.textdoc import TextDocs
from gossip_backer.protocol.effects import PublishLive, ReadText, SaveLiveBase, WriteText
from gossip_backer.protocol.live import DEBOUNCE, LiveMachine
from gossip_backer.testing import memdisk

if TYPE_CHECKING:
    from gossip_backer.testing.simfolder import SimFolder

__all__ = ["SimLive", "live_machine"]
READ_DELAY = 0.002  # seconds a read of a live file takes (and a write)
POLL = 0.01  # seconds between looks at a write that is due but waits (a read, a write under way)


def live_machine(metamap, me: bytes, incarnation: int) -> LiveMachine:
    """A node's live machine with a client id of its own for each start (derived from the node
    and its incarnation: no draw from the seeded generator, so other scenarios replay as before)."""
    digest = hashlib.blake2b(me + incarnation.to_bytes(4, "big"), digest_size=4).digest()
    return LiveMachine(metamap, me, TextDocs(), (int.from_bytes(digest, "big") >> 1) | 1)


class SimLive:
    """The live effects of one SimFolder (see the module docstring)."""

    EFFECTS = (PublishLive, ReadText, WriteText, SaveLiveBase)

    def __init__(self, folder: "SimFolder") -> None:
        self.folder = folder
        self.machine = folder.machine
        self.bases: dict[str, list[bytes]] = folder.host.store.live_bases  # durable
        for path in self.machine.live.load_bases({p: list(log) for p, log in self.bases.items()}):
            del self.bases[path]
        self._timer = None
        self._at = 0.0  # when the timer fires
        self.busy = 0  # reads and writes under way
        folder.disk.own_mtime = self.machine.live.globbed  # each node writes them at its own time

    def execute(self, effect) -> None:
        f = self.folder
        if isinstance(effect, PublishLive):
            for edit in effect.edits:
                f.host.publish(edit)
        elif isinstance(effect, ReadText):
            self.busy += 1
            f.loop.call_later(READ_DELAY, self._read, effect.path)
        elif isinstance(effect, WriteText):
            self.busy += 1
            f.loop.call_later(READ_DELAY, self._write, effect)
        elif isinstance(effect, SaveLiveBase):
            log = self.bases.setdefault(effect.path, [])
            if effect.replace:
                log.clear()
            log.append(effect.update)

    def _read(self, path: str) -> None:
        self.busy -= 1
        f = self.folder
        if not f.running:
            return
        data = f.disk.read(path) if f.disk.kind(path) == "file" else None
        f.execute(self.machine.live_text(path, data, f.now, f.wall()))
        self.soon()

    def _write(self, effect: WriteText) -> None:
        self.busy -= 1
        f = self.folder
        if not f.running:
            return
        expect = None if effect.expect is None else memdisk.Stat(*effect.expect)
        if memdisk.stat_of(f.disk, effect.path) == expect:
            row = self.machine.index.get(effect.path)
            mode = 0o644 if row is None else row.mode & 0o777
            if effect.archive and row is not None:  # a mesh version replaced: history keeps it
                f.archiver(row)(memdisk.MemPath(f.disk, effect.path))
            self.bases.setdefault(effect.path, []).append(effect.base)
            f.disk.write(effect.path, effect.data, mode=mode, mtime_ns=f.clock_ns())
            for saved in self.machine.live_written(effect.path, effect.base):
                self.execute(saved)
            f.user_changed(effect.path, delay=READ_DELAY)
        else:
            f.user_changed(effect.path, delay=READ_DELAY)
            self.machine.live.refused(effect.path)
        self.soon()  # edits that came during the write go in the next one

    def remote(self, updates: list) -> None:
        """LiveEdits from peers were stored."""
        f = self.folder
        f.execute(self.machine.live_remote(updates, f.now, f.wall()))
        self.soon()

    def soon(self, delay: float = DEBOUNCE) -> None:
        """A document changed (or a write ended): its file is written after `delay`, or sooner
        if the timer was set for later."""
        f = self.folder
        if not f.running:
            return
        if self._timer is not None and self._at <= f.now + delay:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._at = f.now + delay
        self._timer = f.loop.call_later(delay, self.tick)

    def tick(self) -> None:
        self._timer = None
        f = self.folder
        if not f.running:
            return
        effects = self.machine.live_tick(f.now, f.wall())
        f.execute(effects)
        due = self.machine.live.next_due()
        if self.machine.scanned and due is not None:
            self.soon(max(due - f.now, 0.0 if effects else POLL))

    def idle(self) -> bool:
        live = self.machine.live
        return self.busy == 0 and self._timer is None and (live is None or (
            live.next_due() is None and not live.reading))
