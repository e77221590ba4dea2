"""History requests of a simulated node: what runtime/history.py's HistoryService is to the
daemon, on the simulator's clock and network. protocol/history.py decides whom to ask, until
when, what a reply holds and how the replies merge; this module only sends, answers and waits.

`host` is the SimNode: it lists connected peers, sends messages, holds the map and the
persisted revision rows (the versions its disk work archived, SimStore.revisions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gossip_backer.protocol import history
from gossip_backer.protocol.history import Version
from gossip_backer.testing import memdisk
from gossip_backer.wire.messages import HistoryReply, HistoryRequest

if TYPE_CHECKING:
    from gossip_backer.testing.node import SimNode

__all__ = ["SimHistory"]

POLL = 0.05  # seconds between looks at a request in flight (runtime/history.py's sleep)


class SimHistory:
    def __init__(self, host: "SimNode", started: float) -> None:
        self.host = host
        self.started = started  # when this incarnation booted (a young node waits for members)
        self._next = 1
        self._asks: dict[int, history.Ask] = {}

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

    def ask(self, path: str, done: Callable[[list[Version], history.Ask], None]) -> None:
        """`backer history PATH` on this node: `done(listing, ask)` once the mesh answered."""
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
        done(ask.listing(local, history.from_map(self.host.metamap, ask.path))[0], ask)
