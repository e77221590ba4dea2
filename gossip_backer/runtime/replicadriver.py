"""Drives the node's sans-IO replica (protocol/replica.py) with trio: feeds it peers' messages,
link changes, our own new updates and a tick every TICK seconds, and carries out the effects it
returns (send, disconnect, store and hand over received updates, emit).

The replica works on trio's monotonic clock; events leave with the node's wall clock (Unix
time). After every batch of effects the node's name and listen addresses are announced as a
signed MemberInfo, if they changed and we are a member.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import trio

from gossip_backer.core.record import SignedUpdate
from gossip_backer.crypto.identity import verify_wire
from gossip_backer.events import Event
from gossip_backer.protocol.effects import Disconnect, Effect, Emit, Persist, Send
from gossip_backer.protocol.replica import Replica
from gossip_backer.runtime.clock import Clock
from gossip_backer.runtime.link import Link
from gossip_backer.runtime.peerlinks import PeerLinks
from gossip_backer.runtime.state import NodeState
from gossip_backer.wire.messages import Delta

TICK = 0.25  # seconds: one gossip interval
CHECK_OFF_LOOP = 64  # updates: a Delta this large has its signatures checked in a worker thread


class ReplicaDriver:
    """The trio side of one Replica (see the module docstring)."""

    def __init__(self, state: NodeState, links: PeerLinks, clock: Clock,
                 emit: Callable[[Event], None],
                 received: Callable[[list[SignedUpdate]], None],
                 addresses: Callable[[], list[str]]) -> None:
        self._state = state
        self._links = links
        self._clock = clock
        self._emit = emit
        self._received = received  # peers' updates, once stored
        self._addresses = addresses
        self._replica = Replica(state.metamap, state.identity.public)
        self._last: dict[Link, trio.Event] = {}  # a link's last message not yet delivered

    async def receive(self, link: Link, message: object) -> None:
        """A peer's message to the replica, in the order its link brought them.

        A Delta's signatures are checked first, in a worker thread, on the bytes that came
        (libsodium runs beside the loop: checked in the map, ~60 us an update held the loop),
        and the replica trusts exactly those. The check runs beside the link's receive loop
        (link.spawn): awaited in it, it held up the block data behind the Delta for as long as
        the thread waited for the GIL between signatures (~5x its CPU time on a busy loop).
        Messages behind the Delta wait their turn; with none pending they go in at once, as
        does a Delta of fewer than CHECK_OFF_LOOP updates (one local change, a member's info:
        checked in the map, sooner than a thread hop and its wait for the GIL)."""
        before = self._last.get(link)
        if before is None and not _checked_off_loop(message):
            self._deliver(link.peer, message, frozenset())
            return
        done = trio.Event()
        self._last[link] = done
        try:
            await link.spawn(self._in_turn, link, message, before, done)
        except BaseException:  # not spawned (the link is ending): nothing waits for it
            self._done(link, done)
            raise

    async def _in_turn(self, link: Link, message: object, before: trio.Event | None,
                       done: trio.Event) -> None:
        try:
            verified: frozenset[tuple] = frozenset()
            if _checked_off_loop(message):
                verified = await trio.to_thread.run_sync(verify_wire, self._state.mesh_id,
                                                         message.updates)
            if before is not None:
                await before.wait()
            if self._links.get(link.peer) is link:  # (not replaced by a newer link meanwhile)
                self._deliver(link.peer, message, verified)  # a forgery: RemoteError, dropped
        finally:
            self._done(link, done)

    def _done(self, link: Link, done: trio.Event) -> None:
        done.set()
        if self._last.get(link) is done:
            del self._last[link]

    def _deliver(self, peer: bytes, message: object, verified: frozenset[tuple]) -> None:
        try:
            effects = self._replica.receive(peer, message, trio.current_time(), verified)
        finally:
            self._run(self._replica.take_pending())
        self._run(effects)

    def connect(self, peer: bytes) -> None:
        self._run(self._replica.connect(peer, trio.current_time()))

    def disconnect(self, peer: bytes) -> None:
        self._replica.disconnect(peer)

    def local(self, updates: list[SignedUpdate]) -> None:
        """Updates this node made (applied and stored): spread them."""
        self._run(self._replica.local(updates, trio.current_time()))

    async def run(self) -> None:
        while True:
            await trio.sleep(TICK)
            self._run(self._replica.tick(self._clock.now()))

    def in_sync(self) -> bool:
        """Our digest matches every connected peer's and nothing is left to send."""
        ours = {o: q for o, q in self._state.metamap.digest().items() if q}
        return all({o: q for o, q in s.peer_has.items() if q} == ours and not s.pending
                   for s in self._replica.sessions.values())

    def _run(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._links.send_to(effect.peer, effect.message)
            elif isinstance(effect, Persist):
                self._state.save_received(list(effect.updates), list(effect.dropped))
                self._received(list(effect.updates))
            elif isinstance(effect, Disconnect):
                self._links.abort(effect.peer, effect.reason)
            elif isinstance(effect, Emit):  # the sans-IO clock is monotonic: events carry Unix time
                self._emit(dataclasses.replace(effect.event, time=self._clock.wall()))
        self._announce()

    def _announce(self) -> None:
        """Announce our name and addresses once we are a member and they changed."""
        addresses = self._addresses()
        if self._state.is_member() and addresses:
            update = self._state.info_update(addresses)
            if update is not None:
                self.local([update])


def _checked_off_loop(message: object) -> bool:
    return isinstance(message, Delta) and len(message.updates) >= CHECK_OFF_LOOP
