"""The node's brain (protocol.replica.Replica), wired back to back with no I/O.

Every Send effect's message crosses an encode/decode round trip before the other replica's
`receive()`; Persist, Disconnect and Emit effects are collected per replica.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from gossip_backer.core.ids import NodeId
from gossip_backer.core.record import Revoke
from gossip_backer.events import MemberAdded, MemberRemoved
from gossip_backer.protocol.effects import Disconnect, Emit, Persist, Send
from gossip_backer.protocol.replica import DEAD_AFTER, KEEPALIVE, Replica
from gossip_backer.wire.messages import BlockRequest, Digest, Ping, Pong, Summary, decode, encode
import helpers


class Wire:
    """Replicas keyed by node id; effects are routed until nothing moves."""

    def __init__(self, *nodes: helpers.Replica) -> None:
        self.nodes = {n.id: n for n in nodes}
        self.brains = {n.id: Replica(n.map, n.id) for n in nodes}
        for n in nodes:
            n.map.drain_dropped()  # the setup's own supersessions were persisted by the setup
        self.now = 0.0
        self.queue: list[tuple[bytes, bytes, bytes]] = []  # (src, dst, encoded message)
        self.effects: dict[bytes, list] = defaultdict(list)  # every non-Send effect, per node
        self.sent: list[tuple[bytes, bytes, object]] = []

    def absorb(self, src: bytes, effects: list) -> None:
        for e in effects:
            if isinstance(e, Send):
                self.queue.append((src, e.peer, encode(e.message)))
                self.sent.append((src, e.peer, e.message))
            else:
                self.effects[src].append(e)

    def connect(self, a: bytes, b: bytes) -> None:
        self.absorb(a, self.brains[a].connect(b, self.now))
        self.absorb(b, self.brains[b].connect(a, self.now))

    def run(self, limit: int = 10_000) -> int:
        delivered = 0
        while True:
            while self.queue:
                src, dst, raw = self.queue.pop(0)
                self.absorb(dst, self.brains[dst].receive(src, decode(raw), self.now))
                delivered += 1
                assert delivered < limit, "no quiescence"
            if not any(s.pending for b in self.brains.values() for s in b.sessions.values()):
                return delivered
            self.now += 0.1
            for node, brain in self.brains.items():
                self.absorb(node, brain.tick(self.now))

    def persisted(self, node: bytes) -> list[Persist]:
        return [e for e in self.effects[node] if isinstance(e, Persist)]


def digest_and_files(n: helpers.Replica):
    return n.map.digest(), dict(n.map.files)


def test_two_replicas_converge() -> None:
    r0, r1 = helpers.make_mesh(2)
    for i in range(5):
        r0.write(f"docs/a{i}.txt", b"from r0 %d" % i)
        r1.write(f"docs/b{i}.txt", b"from r1 %d" % i)
    r0.write("shared.txt", b"r0 wrote", mtime_ns=10)
    r1.write("shared.txt", b"r1 wrote", mtime_ns=20)  # concurrent: both versions kept
    before = {n.id: {(u.origin, u.seq) for u in n.map.updates()} for n in (r0, r1)}
    w = Wire(r0, r1)
    w.connect(r0.id, r1.id)
    w.run()
    assert digest_and_files(r0) == digest_and_files(r1)
    assert len(r0.map.versions("shared.txt")) == 2
    assert len(r0.map.files) == 11
    # Persist effects carry exactly what each side stored from the other
    for node, other in ((r0, r1), (r1, r0)):
        stored = {(u.origin, u.seq) for p in w.persisted(node.id) for u in p.updates}
        assert stored == {(u.origin, u.seq) for u in node.map.updates()} - before[node.id]
        assert stored == before[other.id] - before[node.id]
        for p in w.persisted(node.id):
            assert isinstance(p.updates, tuple) and isinstance(p.dropped, tuple)
            held = {(u.origin, u.seq): u for u in node.map.updates()}
            for u in p.updates:
                assert held[(u.origin, u.seq)].sig == u.sig and held[(u.origin, u.seq)].body == u.body


def test_converge_after_later_edits_and_persist_reports_dropped_entries() -> None:
    r0, r1 = helpers.make_mesh(2)
    first = r0.write("f.txt", b"v1")
    w = Wire(r0, r1)
    w.connect(r0.id, r1.id)
    w.run()
    assert r1.map.winner("f.txt").hash == r0.map.winner("f.txt").hash
    second = r0.write("f.txt", b"v2")  # supersedes `first` in every log
    r0.map.drain_dropped()
    w.absorb(r0.id, w.brains[r0.id].local([second], w.now))
    w.run()
    assert digest_and_files(r0) == digest_and_files(r1)
    last = w.persisted(r1.id)[-1]
    assert [(u.origin, u.seq) for u in last.updates] == [(second.origin, second.seq)]
    assert (first.origin, first.seq) in last.dropped


def test_three_replicas_relay_to_converge() -> None:
    r0, r1, r2 = helpers.make_mesh(3)
    r0.write("only-on-r0", b"0")
    r2.write("only-on-r2", b"2")
    w = Wire(r0, r1, r2)
    w.connect(r0.id, r1.id)
    w.connect(r1.id, r2.id)  # r0 and r2 never talk directly
    w.run()
    assert digest_and_files(r0) == digest_and_files(r1) == digest_and_files(r2)
    assert set(r2.map.files) == {"only-on-r0", "only-on-r2"}


def test_local_update_is_pushed_to_connected_peers() -> None:
    r0, r1 = helpers.make_mesh(2)
    w = Wire(r0, r1)
    w.connect(r0.id, r1.id)
    w.run()
    update = r0.write("new.txt", b"hi")
    effects = w.brains[r0.id].local([update], w.now)
    assert any(isinstance(e, Send) and e.peer == r1.id for e in effects)
    assert not any(isinstance(e, Persist) for e in effects)  # the caller persisted it already
    w.absorb(r0.id, effects)
    w.run()
    assert r1.map.winner("new.txt") == r0.map.winner("new.txt")


# --- ping, pong, keepalive, dead peers ---------------------------------------------------------


def test_ping_gets_a_pong_and_a_stranger_gets_nothing() -> None:
    r0, r1 = helpers.make_mesh(2)
    brain = Replica(r0.map, r0.id)
    assert brain.receive(r1.id, Ping(5), 0.0) == []  # not connected
    brain.connect(r1.id, 0.0)
    assert brain.receive(r1.id, Ping(5), 1.0) == [Send(r1.id, Pong(5))]
    assert brain.receive(r1.id, Pong(5), 1.0) == []
    assert brain.receive(r1.id, BlockRequest(1, b"h", b"f", 0, 1), 1.0) == []  # not mesh business


def _pings(effects) -> list:
    return [e for e in effects if isinstance(e, Send) and isinstance(e.message, Ping)]


def _gossip_quiet(brain: Replica, peer: bytes) -> None:
    """Make the session believe it knows the peer's digest (so ticks send only timers)."""
    brain.receive(peer, Digest(brain.metamap.digest(), True), 0.0)


def test_tick_sends_ping_after_keepalive() -> None:
    r0, r1 = helpers.make_mesh(2)
    brain = Replica(r0.map, r0.id)
    brain.connect(r1.id, 0.0)
    _gossip_quiet(brain, r1.id)
    assert _pings(brain.tick(KEEPALIVE - 0.1)) == []
    pings = _pings(brain.tick(KEEPALIVE))
    assert len(pings) == 1 and pings[0].peer == r1.id
    assert _pings(brain.tick(KEEPALIVE + 1)) == []  # the next one a KEEPALIVE later
    assert len(_pings(brain.tick(2 * KEEPALIVE))) == 1
    assert not any(isinstance(e, Disconnect) for e in brain.tick(2 * KEEPALIVE))


def test_tick_disconnects_after_dead_after_of_silence() -> None:
    r0, r1 = helpers.make_mesh(2)
    brain = Replica(r0.map, r0.id)
    brain.connect(r1.id, 0.0)
    _gossip_quiet(brain, r1.id)
    assert not any(isinstance(e, Disconnect) for e in brain.tick(DEAD_AFTER))
    effects = brain.tick(DEAD_AFTER + 0.5)
    assert [e.peer for e in effects if isinstance(e, Disconnect)] == [r1.id]
    assert not any(isinstance(e, Send) for e in effects)  # nothing more to a dead peer
    brain.disconnect(r1.id)
    assert brain.tick(DEAD_AFTER + 100) == []


def test_any_message_resets_the_silence() -> None:
    r0, r1 = helpers.make_mesh(2)
    brain = Replica(r0.map, r0.id)
    brain.connect(r1.id, 0.0)
    _gossip_quiet(brain, r1.id)
    brain.receive(r1.id, Pong(1), 50.0)
    assert not any(isinstance(e, Disconnect) for e in brain.tick(100.0))
    assert any(isinstance(e, Disconnect) for e in brain.tick(110.5))


def test_summary_is_answered_only_when_digests_differ() -> None:
    r0, r1 = helpers.make_mesh(2)
    w = Wire(r0, r1)
    w.connect(r0.id, r1.id)
    w.run()
    w.now += 11.0
    effects = w.brains[r0.id].tick(w.now)
    summaries = [e for e in effects if isinstance(e, Send) and isinstance(e.message, Summary)]
    assert len(summaries) == 1
    answer = w.brains[r1.id].receive(r0.id, decode(encode(summaries[0].message)), w.now)
    assert answer == []  # same digest: nothing to repair


# --- membership -------------------------------------------------------------------------------


def test_revoking_a_connected_peer_emits_member_removed_and_disconnects_it() -> None:
    r0, r1, r2 = helpers.make_mesh(3)
    w = Wire(r0, r1, r2)
    w.connect(r0.id, r1.id)
    w.connect(r0.id, r2.id)
    w.connect(r1.id, r2.id)
    w.run()
    revoke = r0.commit(Revoke(r1.id, r0.map.seq_of(r1.id), r0.map.clock + 1))
    r0.map.drain_dropped()
    w.now = 5.0
    effects = w.brains[r0.id].local([revoke], w.now)
    assert Emit(MemberRemoved(5.0, str(NodeId(r1.id)))) in effects
    assert Disconnect(r1.id, "revoked") in effects
    assert not w.brains[r0.id].peer_allowed(r1.id)
    # r2 learns it from r0 and drops r1 too
    w.absorb(r0.id, [e for e in effects if isinstance(e, Send) and e.peer == r2.id])
    while w.queue:
        src, dst, raw = w.queue.pop(0)
        if dst == r1.id or src == r1.id:
            continue
        w.absorb(dst, w.brains[dst].receive(src, decode(raw), w.now))
    r2_effects = w.effects[r2.id]
    assert Emit(MemberRemoved(5.0, str(NodeId(r1.id)))) in r2_effects
    assert Disconnect(r1.id, "revoked") in r2_effects
    assert any(isinstance(e, Persist) and revoke.seq in [u.seq for u in e.updates
                                                          if u.origin == r0.id]
               for e in r2_effects)
    assert not w.brains[r2.id].peer_allowed(r1.id)


def test_revoking_an_unconnected_member_does_not_disconnect() -> None:
    r0, r1, r2 = helpers.make_mesh(3)
    brain = Replica(r0.map, r0.id)
    brain.connect(r2.id, 0.0)
    revoke = r0.commit(Revoke(r1.id, 0, r0.map.clock + 1))
    effects = brain.local([revoke], 1.0)
    assert Emit(MemberRemoved(1.0, str(NodeId(r1.id)))) in effects
    assert not any(isinstance(e, Disconnect) for e in effects)


def test_grant_emits_member_added() -> None:
    r0, r1 = helpers.make_mesh(2)
    newcomer = helpers.identity(77).public
    w = Wire(r0, r1)
    w.connect(r0.id, r1.id)
    w.run()
    grant = r0.grant(newcomer, read_only=True)
    effects = w.brains[r0.id].local([grant], 2.0)
    added = [e.event for e in effects if isinstance(e, Emit) and isinstance(e.event, MemberAdded)]
    assert added == [MemberAdded(2.0, str(NodeId(newcomer)), f"node-{newcomer[:2].hex()}", True)]
    w.absorb(r0.id, effects)
    w.run()
    assert any(isinstance(e, Emit) and isinstance(e.event, MemberAdded)
               and e.event.node_id == str(NodeId(newcomer)) for e in w.effects[r1.id])
    assert w.brains[r1.id].peer_allowed(newcomer)


@pytest.mark.parametrize("who", ["stranger", "member"])
def test_peer_allowed(who: str) -> None:
    r0, r1 = helpers.make_mesh(2)
    brain = Replica(r0.map, r0.id)
    key = helpers.identity(55).public if who == "stranger" else r1.id
    assert brain.peer_allowed(key) is (who == "member")
