"""The node's peer links: one live Link (runtime/link.py) per peer, whichever side dialed.

Theory of operation. `serve` runs one session over any trio stream (TCP, a memory stream in
tests, a websocket): the handshake (protocol/peer.py), our Hello, then the peer's first message,
which the gate judges (runtime/admission.py, on protocol/session.py's rules): an invite claim, a
refusal, or a Hello that makes the link *the* link to its peer. Of two links to one peer (both
sides dialed at once) the one the greater key dialed stays (`session.keep_old`). From then on the
peer's messages, and its arrival and departure, go to the owner (the node, which hands them to
the replica, the folder and history); this module keeps only the table, the bytes moved and when
each peer was last seen, and emits PeerConnected / PeerDisconnected / PeerRefused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Protocol

import trio

from gossip_backer.core.ids import NodeId
from gossip_backer.crypto.identity import Identity
from gossip_backer.errors import RemoteError
from gossip_backer.events import Event, PeerConnected, PeerDisconnected, PeerRefused
from gossip_backer.protocol import session
from gossip_backer.protocol.peer import PeerConnection, Received
from gossip_backer.runtime.clock import Clock
from gossip_backer.runtime.link import Link
from gossip_backer.wire.messages import InviteClaim

OnEvent = Callable[[Link, object], Awaitable[None]]


class Gate(Protocol):
    """Who may connect and what they are told (runtime/admission.py)."""

    def authorize(self, key: bytes) -> bool: ...

    def admission(self) -> session.Admission: ...

    async def grant_invite(self, link: Link, claim: InviteClaim) -> None: ...


class LinkOwner(Protocol):
    """What becomes of admitted links (runtime/node.py)."""

    def attached(self, link: Link, replaced: bool) -> None: ...

    def detached(self, link: Link) -> None: ...

    async def received(self, link: Link, message: object) -> None: ...


class PeerLinks(Mapping[bytes, Link]):
    """Peer key -> its admitted link (see the module docstring)."""

    def __init__(self, identity: Identity, mesh_secret: bytes, clock: Clock,
                 emit: Callable[[Event], None], gate: Gate, owner: LinkOwner) -> None:
        self._identity = identity
        self._mesh_secret = mesh_secret
        self._clock = clock
        self._emit = emit
        self._gate = gate
        self._owner = owner
        self._links: dict[bytes, Link] = {}
        self._running: set[Link] = set()  # every session, admitted or not yet
        self._closed_bytes = [0, 0]  # bytes in/out of links that have ended
        self.last_seen: dict[bytes, float] = {}

    def __getitem__(self, peer: bytes) -> Link:
        return self._links[peer]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._links)

    def __len__(self) -> int:
        return len(self._links)

    # -- sessions --------------------------------------------------------------------------
    async def serve(self, stream: trio.abc.Stream, *, initiator: bool | None = None,
                    address: str | None = None, identity: Identity | None = None,
                    on_event: OnEvent | None = None) -> str:
        """Run one session over `stream` until it ends; returns why it ended. `identity`
        replaces ours (a joining node's invite key); `on_event` then takes the link's events."""
        conn = PeerConnection(identity or self._identity, self._mesh_secret,
                              self._gate.authorize, initiator=initiator)
        link = Link(stream, conn, address, initiator)
        self._running.add(link)
        try:
            await link.run(on_event or self._on_event)
        finally:
            self._running.discard(link)
            self._closed_bytes[0] += conn.bytes_in
            self._closed_bytes[1] += conn.bytes_out
            self._detach(link)
            if link.peer is None and link.close_reason:
                self._emit(PeerRefused(self._clock.wall(), address, link.close_reason))
        return link.close_reason

    async def _on_event(self, link: Link, event: object) -> None:
        if link.peer is not None and link.hello is None and not isinstance(event, Received):
            link.send(self._gate.admission().hello())  # authenticated: our Hello first
            return
        if not isinstance(event, Received):
            return
        if link.hello is None:
            await self._first_message(link, event.message)
            return
        if self._links.get(link.peer) is not link:
            return  # replaced meanwhile
        self.last_seen[link.peer] = self._clock.wall()
        await self._owner.received(link, event.message)

    async def _first_message(self, link: Link, message: object) -> None:
        verdict = self._gate.admission().first(link.peer, message)
        if isinstance(verdict, session.ClaimGrant):
            await self._gate.grant_invite(link, verdict.claim)
            return
        if isinstance(verdict, session.Reject):
            if verdict.reply is not None:
                link.send(verdict.reply)
                link.abort(verdict.reason)
            raise RemoteError(verdict.reason)
        link.hello = verdict.hello
        self._attach(link)

    def _attach(self, link: Link) -> None:
        """Make `link` the connection to its peer; of two, keep the one the greater key dialed."""
        peer = link.peer
        old = self._links.get(peer)
        replaced = old is not None and not old.closed.is_set()
        if replaced:
            if session.keep_old(old.dialed, link.dialed, self._identity.public, peer):
                link.abort("duplicate connection")
                return
            old.abort("replaced by a newer connection")
        self._links[peer] = link
        self.last_seen[peer] = self._clock.wall()
        self._owner.attached(link, replaced)
        name = link.hello.name if link.hello else ""
        self._emit(PeerConnected(self._clock.wall(), str(NodeId(peer)), name, link.address))

    def _detach(self, link: Link) -> None:
        peer = link.peer
        if peer is None or self._links.get(peer) is not link:
            return
        del self._links[peer]
        self.last_seen[peer] = self._clock.wall()
        self._owner.detached(link)
        self._emit(PeerDisconnected(self._clock.wall(), str(NodeId(peer)),
                                    link.close_reason or "closed"))

    # -- using the links -------------------------------------------------------------------
    def send_to(self, peer: bytes, message: object) -> None:
        link = self._links.get(peer)
        if link is not None:
            link.send(message)

    def abort(self, peer: bytes, reason: str) -> None:
        link = self._links.get(peer)
        if link is not None:
            link.abort(reason)

    def abort_all(self, reason: str) -> None:
        """Every session, admitted or still in its handshake (the node is stopping)."""
        for link in list(self._running):
            link.abort(reason)

    def peers(self) -> list[bytes]:
        return list(self._links)

    # -- views -----------------------------------------------------------------------------
    def net(self) -> dict:
        bytes_in = self._closed_bytes[0] + sum(l.conn.bytes_in for l in self._running)
        bytes_out = self._closed_bytes[1] + sum(l.conn.bytes_out for l in self._running)
        return {"bytes_in": bytes_in, "bytes_out": bytes_out}

    def address_of(self, peer: bytes, advertised: tuple[str, ...]) -> str | None:
        """Where a connected peer can be reached: the address we dialed, or for a peer that
        dialed us, its host with the port it listens on (not its outgoing ephemeral port)."""
        link = self._links.get(peer)
        if link is None or link.address is None or link.dialed is not False:
            return link.address if link is not None else None
        listen = tuple(link.hello.listen) if link.hello is not None else ()
        host = link.address.rpartition(":")[0]
        ports = [a.rpartition(":")[2] for a in listen + tuple(advertised)]
        same_host = [a for a in listen + tuple(advertised) if a.rpartition(":")[0] == host]
        if same_host:
            return same_host[0]
        return f"{host}:{ports[0]}" if ports else link.address
