"""The node's brain for the mesh: peers come and go, messages and local changes come in; out come
messages to send, batches to persist, peers to drop and events to show.

It holds the replicated map and one gossip session per connected peer. Every method takes `now`
and returns a list of effects; it never awaits, so the trio daemon, the tests and the simulator
drive the same object.
"""

from __future__ import annotations

from collections.abc import Container

from gossip_backer.core.ids import NodeId
from gossip_backer.core.metamap import MetaMap
from gossip_backer.core.record import Grant, Revoke, SignedUpdate
from gossip_backer.events import MemberAdded, MemberRemoved
from gossip_backer.protocol.effects import Disconnect, Effect, Emit, Persist, Send
from gossip_backer.protocol.gossip import ForgedUpdate, GossipSession
from gossip_backer.wire.messages import Delta, DeltaAck, Digest, Ping, Pong, Summary

GOSSIP_MESSAGES = (Digest, Summary, Delta, DeltaAck)
KEEPALIVE = 20.0  # seconds between pings on an idle link
DEAD_AFTER = 60.0  # a peer silent this long is dropped


class Replica:
    """The mesh side of one node: metadata map + gossip sessions with connected peers."""

    def __init__(self, metamap: MetaMap, me: bytes, *, summary_interval: float = 10.0) -> None:
        self.metamap = metamap
        self.me = me
        self.summary_interval = summary_interval
        self.sessions: dict[bytes, GossipSession] = {}
        self.last_heard: dict[bytes, float] = {}
        self.last_ping: dict[bytes, float] = {}
        self.pending_effects: list[Effect] = []  # effects owed after a receive() that raised

    # -- peers -----------------------------------------------------------------------------
    def connect(self, peer: bytes, now: float) -> list[Effect]:
        session = GossipSession(self.metamap, summary_interval=self.summary_interval)
        self.sessions[peer] = session
        self.last_heard[peer] = self.last_ping[peer] = now
        return [Send(peer, m) for m in session.start(now)]

    def disconnect(self, peer: bytes) -> None:
        self.sessions.pop(peer, None)
        self.last_heard.pop(peer, None)
        self.last_ping.pop(peer, None)

    def receive(self, peer: bytes, message: object, now: float,
                verified: Container[tuple] = ()) -> list[Effect]:
        """A message from a connected peer. Raises RemoteError for a misbehaving peer.
        `verified`: the update tuples of a Delta whose signatures the caller checked already
        (GossipSession.receive)."""
        session = self.sessions.get(peer)
        if session is None:
            return []
        self.last_heard[peer] = now
        if isinstance(message, Ping):
            return [Send(peer, Pong(message.nonce))]
        if isinstance(message, Pong):
            return []
        if not isinstance(message, GOSSIP_MESSAGES):
            return []
        try:
            result = session.receive(message, now, verified)
        except ForgedUpdate as exc:
            # The valid updates before the forgery are kept; the peer is dropped by the caller.
            if exc.partial.applied:
                self.pending_effects = self._spread(exc.partial.applied, now, source=peer)
            raise
        effects: list[Effect] = [Send(peer, m) for m in result.send]
        if result.applied:
            effects += self._spread(result.applied, now, source=peer)
        return effects

    # -- local changes ---------------------------------------------------------------------
    def local(self, updates: list[SignedUpdate], now: float) -> list[Effect]:
        """Updates this node made (already applied and persisted): push them to every peer."""
        effects: list[Effect] = []
        for update in updates:
            for peer, session in self.sessions.items():
                effects += [Send(peer, m) for m in session.local_update(update, now)]
        effects += self._membership_effects(updates, now)
        return effects

    def take_pending(self) -> list[Effect]:
        effects, self.pending_effects = self.pending_effects, []
        return effects

    def tick(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        for peer, session in list(self.sessions.items()):
            if now - self.last_heard.get(peer, now) > DEAD_AFTER:
                effects.append(Disconnect(peer, "no answer for 60 s"))
                continue
            effects += [Send(peer, m) for m in session.tick(now)]
            if now - self.last_ping.get(peer, now) >= KEEPALIVE:
                self.last_ping[peer] = now
                effects.append(Send(peer, Ping(int(now * 1000) & 0xFFFFFFFF)))
        return effects

    # -- internals -------------------------------------------------------------------------
    def _spread(self, applied: list[SignedUpdate], now: float, source: bytes) -> list[Effect]:
        effects: list[Effect] = [Persist(tuple(applied), tuple(self.metamap.drain_dropped()))]
        for update in applied:
            for peer, session in self.sessions.items():
                if peer != source:
                    effects += [Send(peer, m) for m in session.local_update(update, now)]
        effects += self._membership_effects(applied, now)
        return effects

    def _membership_effects(self, updates: list[SignedUpdate], now: float) -> list[Effect]:
        effects: list[Effect] = []
        members = self.metamap.membership.members
        for update in updates:
            payload = update.payload
            if isinstance(payload, Grant) and payload.node in members:
                m = members[payload.node]
                effects.append(Emit(MemberAdded(now, str(NodeId(m.node)), m.name, m.read_only)))
            elif isinstance(payload, Revoke) and members.get(payload.node, None) is not None:
                if members[payload.node].revoked:
                    effects.append(Emit(MemberRemoved(now, str(NodeId(payload.node)))))
                    if payload.node in self.sessions:
                        effects.append(Disconnect(payload.node, "revoked"))
        return effects

    def peer_allowed(self, peer: bytes) -> bool:
        """May this key connect as a member? (Known, not revoked.)"""
        m = self.metamap.membership.members.get(peer)
        return m is not None and not m.revoked
