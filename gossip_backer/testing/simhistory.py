"""History requests of a simulated node: what runtime/history.py's HistoryService is to the
daemon, on the simulator's clock and network. protocol/history.py decides whom to ask, until
when, what a reply holds and how the replies merge; this module only sends, answers and waits.

`host` is the SimNode: it lists connected peers, sends messages, holds the map and the
persisted revision rows (the versions its disk work archived, SimStore.revisions)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gossip_backer.core.blocks import FileHasher
from gossip_backer.core.record import FILE
from gossip_backer.errors import IntegrityError, LocalError, UserError
from gossip_backer.protocol import history
from gossip_backer.protocol.history import Version
from gossip_backer.testing import memdisk
from gossip_backer.wire.messages import HistoryReply, HistoryRequest

if TYPE_CHECKING:
    from gossip_backer.testing.node import SimNode

__all__ = ["Restored", "SimHistory"]

POLL = 0.05  # seconds between looks at a request in flight (runtime/history.py's sleep)


class SimHistory:
    def __init__(self, host: "SimNode", started: float) -> None:
        self.host = host
        self.started = started  # when this incarnation booted (a young node waits for members)
        self._next = 1
        self._asks: dict[int, history.Ask] = {}
        self._restoring: set[str] = set()  # paths with a restore under way

    @property
    def busy(self) -> bool:
        """A history request or a restore is under way: a user is waiting for its answer, so
        a run is not over (a young node's request waits up to CONNECT_GRACE for members)."""
        return bool(self._asks or self._restoring)

    def archive_rows(self, path: str) -> list[history.Row]:
        """The versions of `path` this node keeps, whose bytes are still in the archive."""
        return [row for row in self.host.store.revisions.get(path, ())
                if memdisk.has_version(self.host.disk, row[0])]

    def answer(self, req: HistoryRequest) -> HistoryReply:
        path = history.requested_path(req)
        return history.reply(req, [] if path is None else self.archive_rows(path))

    def on_reply(self, peer: bytes, reply: HistoryReply) -> None:
        ask = self._asks.get(reply.request_id)
        if ask is not None:
            ask.on_reply(peer, reply)

    def ask(self, path: str,
            done: Callable[[list[Version], dict[str, set[bytes]]], None]) -> None:
        """`backer history PATH` on this node: `done(listing, holders)` once the mesh answered
        (holders: which peers reported keeping each version)."""
        rid, self._next = self._next, self._next + 1
        self._asks[rid] = history.Ask(rid, path, self.host.now, self.started)
        self._look(rid, done)

    def _look(self, rid: int, done) -> None:
        ask = self._asks.get(rid)
        if ask is None or not self.host.alive:
            return  # the node stopped meanwhile: the request died with it
        for peer in ask.to_ask(self.host.peers()):
            self.host.send_to(peer, ask.request)
        now = self.host.now
        members = history.members_to_wait_for(self.host.metamap, self.host.key)
        if not ask.complete(now, members) and now < ask.deadline:
            self.host.cluster.loop.call_later(POLL, self._look, rid, done)
            return
        del self._asks[rid]
        local = history.local(ask.path, self.archive_rows(ask.path), self.host.metamap)
        done(*ask.listing(local, history.from_map(self.host.metamap, ask.path)))

    def restore(self, path: str, version_id: str | None,
                done: Callable[[str | None, Restored | None], None]) -> None:
        """`backer restore PATH [--version V]` on this node, as runtime/history.py's
        HistoryService.restore: the mesh is asked for the versions, protocol/history.py chooses
        the version and where its bytes come from, and the file is replaced (what it held goes
        to the archive). `done(None, restored)` once restored, `done(error, None)` if not."""
        folder = self.host.folder
        try:
            history.refuse_restore(self.host.read_only, folder.busy(path), path,
                                   path in self._restoring)
        except UserError as exc:
            done(str(exc), None)
            return
        self._restoring.add(path)

        def ended(error: str | None, restored: Restored | None) -> None:
            self._restoring.discard(path)
            done(error, restored)
        self.ask(path, lambda listing, holders: self._restore(path, version_id, listing,
                                                              holders, ended))

    def _restore(self, path: str, version_id: str | None, listing: list[Version],
                 holders: dict[str, set[bytes]], done) -> None:
        folder, disk = self.host.folder, self.host.disk
        try:
            v = history.choose(listing, version_id, path)
            kind, source = history.restore_source(v, memdisk.has_version(disk, v.hash),
                                                  folder.machine.index, holders.get(v.id, set()))
        except UserError as exc:
            done(str(exc), None)
            return
        try:
            temp = memdisk.TempFile.create(disk, path, hasher_factory=FileHasher)
            if kind != history.PEERS:
                data = (memdisk.read_version(disk, v.hash) if kind == history.ARCHIVE
                        else disk.read(source)) or b""
                temp.write_at(0, data)
        except LocalError as exc:  # a full disk: said to the user, as the daemon does
            done(str(exc), None)
            return
        if kind != history.PEERS:
            self._finish(path, v, temp, kind, done)
            return

        def fetched(ok: bool) -> None:
            if not self.host.alive:
                return
            if ok:
                self._finish(path, v, temp, kind, done)
            else:
                temp.abort()
                done("could not fetch that version from the nodes that keep it", None)
        folder.fetch_into("\0restore:" + path, temp, v.hash, history.RESTORE_PIECE, v.size,
                          history.restore_pieces(v.size), fetched)

    def _finish(self, path: str, v: Version, temp, source: str, done) -> None:
        """Into place as a fresh change (mtime now), over what the index says is there."""
        folder, disk = self.host.folder, self.host.disk
        entry = folder.machine.index.get(path)
        expect = None if entry is None else memdisk.Stat(entry.size, entry.mtime_ns, entry.inode,
                                                         entry.kind)
        mode = entry.mode if entry is not None and entry.kind == FILE else 0o644
        previous, mtime = disk.read(path), folder.clock_ns()
        try:
            temp.finish(None, v.hash, mode, mtime, expect, archive=folder.archiver(entry))
        except (IntegrityError, LocalError) as exc:
            temp.abort()
            done(str(exc), None)
            return
        done(None, Restored(path, v, source, disk.read(path) or b"", mtime, previous))


@dataclass(frozen=True)
class Restored:
    """A restore that landed: where its bytes came from (protocol/history.py's ARCHIVE,
    CURRENT or PEERS), the bytes now at `path`, their mtime, and what they replaced."""
    path: str
    version: Version
    source: str
    data: bytes
    mtime_ns: int
    previous: bytes | None
