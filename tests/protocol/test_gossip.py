"""GossipSession: scuttlebutt reconciliation with one peer, driven in pairs with no I/O.

Every message crosses `helpers.Network`, which encodes and decodes it (the wire format is part of
each test), and every update carries a real Ed25519 signature that each replica verifies.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossip_backer.core.metamap import Outcome
from gossip_backer.core.record import MemberInfo, SignedUpdate
from gossip_backer.core.vv import VersionVector
from gossip_backer.crypto.identity import update_to_wire, verify_wire
from gossip_backer.errors import IntegrityError, LocalError, RemoteError
from gossip_backer.protocol.gossip import GossipSession, digest_hash
from gossip_backer.wire.codec import encode_payload
from gossip_backer.wire.messages import Delta, DeltaAck, Digest, Ping, Summary, decode, encode
from helpers import (
    MESH_ID, Network, Replica, empty_replica, file_record, identity, make_mesh, state, sync,
)

KIB = 1024


def deltas(net: Network, src: str | None = None) -> list[Delta]:
    return [m for s, _d, m in net.log if isinstance(m, Delta) and (src is None or s == src)]


def sent_updates(net: Network) -> list[tuple[bytes, int]]:
    return [(item[0], item[1]) for d in deltas(net) for item in d.updates]


def writes(writer: Replica, count: int, prefix: str = "docs") -> list[SignedUpdate]:
    """`count` signed creations of distinct ~30-character paths (not applied anywhere)."""
    return [
        writer.sign(file_record(f"{prefix}/{writer.name}/file-{i:05d}.txt",
                                VersionVector({writer.id: 1}), writer.id, b"%d" % i))
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def history():
    """Membership + 10,000 file updates from 3 writers, signed once for the module."""
    founder, w1, w2 = make_mesh(3)
    updates = list(founder.map.updates())
    for writer, count in ((founder, 3334), (w1, 3333), (w2, 3333)):
        updates += writes(writer, count)
    return founder.id, updates


def replica_with(founder: bytes, updates: list[SignedUpdate], n: int) -> Replica:
    replica = Replica(identity(n), founder, f"r{n}")
    for update in updates:
        replica.take(update)
    replica.seq = replica.map.seq_of(replica.id)  # a writer of `history` continues its log
    return replica


# -- catching up ------------------------------------------------------------------------------
def test_empty_replica_catches_up_to_10000_updates(history):
    founder, updates = history
    a = replica_with(founder, updates, 0)
    b = Replica(identity(50), founder, "b")
    net = sync(a, b)
    assert state(b) == state(a) and len(b.map) == len(updates)
    assert b.verifier.checked >= len(updates)  # B checked every signature itself
    # NOT_YET re-offers are the only duplicates: writers' updates that overtook their grant
    assert len(sent_updates(net)) < len(updates) * 1.05
    assert net.messages < 200


def test_two_replicas_differing_in_10_of_10000_resync_cheaply(history):
    founder, updates = history
    a = replica_with(founder, updates[:-10], 0)
    b = replica_with(founder, updates[:-10], 1)
    tail = updates[-10:]  # the last 10 of writer 2
    for update in tail[:5]:
        a.take(update)
    for update in tail:
        b.take(update)
    extra = [a.write("a/new.txt", b"a"), b.write("b/new.txt", b"b")]
    net = sync(a, b)
    assert state(a) == state(b)
    assert sorted(sent_updates(net)) == sorted([(u.origin, u.seq) for u in tail[5:] + extra])
    assert net.messages <= 10 and net.bytes < 8 * KIB


# -- relaying ---------------------------------------------------------------------------------
def test_updates_travel_a_to_b_to_c_with_the_origin_signature():
    a, b, c = make_mesh(3)
    made = [a.write(f"notes/{i}.txt", b"%d" % i) for i in range(20)]
    sync(a, b)
    c_checked = c.verifier.checked
    net = sync(b, c)
    assert state(c) == state(a)
    assert c.verifier.checked - c_checked >= len(made)  # C verified A's signatures itself
    held = {(u.origin, u.seq): u for u in c.map.updates()}
    assert all(held[(u.origin, u.seq)].sig == u.sig for u in made)
    assert not [(s, d) for s, d, _m in net.log if "r0" in (s, d)]


def test_live_relay_pushes_through_the_middle_node():
    a, b, c = make_mesh(3)
    net = Network()
    net.connect(a, b)
    net.connect(b, c)
    net.run()
    update = a.write("late.txt", b"late")
    net.offer("r0", update)
    net.run()
    assert state(c) == state(a)
    assert sent_updates(net).count((update.origin, update.seq)) == 2  # a->b, b->c, no more


def test_a_forged_update_raises_integrity_error():
    a, b = make_mesh(2)
    real = a.write("x.txt", b"x")
    forged = SignedUpdate(real.origin, real.seq, real.payload, real.body, bytes(64))
    session = GossipSession(b.map)
    with pytest.raises(IntegrityError) as caught:
        session.receive(Delta((update_to_wire(forged),)), now=0.0)
    assert caught.value.partial.applied == []
    assert b.map.seq_of(a.id) == a.seq - 1  # B has the grants, not the forgery


def test_a_malformed_update_or_digest_is_a_remote_error():
    a, b = make_mesh(2)
    session = GossipSession(b.map)
    with pytest.raises(RemoteError):
        session.receive(Delta(((a.id, 1, b"\xc1", bytes(64)),)), now=0.0)
    with pytest.raises(RemoteError):
        session.receive(Digest({b"short": 1}, full=True), now=0.0)
    with pytest.raises(RemoteError):
        session.receive(DeltaAck(received=10, absorbed=11), now=0.0)
    with pytest.raises(LocalError):
        session.receive(Ping(1), now=0.0)


def _founder_after_member():
    """A mesh whose member's id sorts before the founder's, so `since` serves it first."""
    for first in range(0, 400, 2):
        a, x = make_mesh(2, first=first)
        if x.id < a.id:
            return a, x
    raise AssertionError("no such pair of seeds")


def test_unknown_signer_waits_for_its_grant_then_is_offered_again():
    a, x = _founder_after_member()
    made = [x.write(f"x/{i}.txt", b"%d" % i) for i in range(5)]
    for update in made:
        a.take(update)
    b = empty_replica(a)  # knows who the founder is, holds no update at all
    net = Network()
    _sa, sb = net.connect(a, b)
    net.run()
    assert state(b) == state(a)
    assert sb.not_yet >= 1  # X's first update overtook its grant and was held back...
    first = deltas(net, "r0")[0]
    assert first.updates[0][0] == x.id  # ...as the first item of the first Delta
    assert sent_updates(net).count((x.id, made[0].seq)) == 2  # ...and offered once more


def test_not_yet_skips_the_rest_of_that_origin_in_the_delta():
    a, x = make_mesh(2)
    grant_x = list(a.map.updates())[-1]
    made = [x.write(f"x/{i}.txt") for i in range(3)]
    b = empty_replica(a)
    genesis = list(a.map.updates())[0]
    b.take(genesis)
    session = GossipSession(b.map)
    wire = tuple(update_to_wire(u) for u in [made[0], made[1], grant_x, made[2]])
    result = session.receive(Delta(wire), now=0.0)
    assert result.rejected == [(made[0], Outcome.NOT_YET)]
    assert result.applied == [grant_x]  # made[1] and made[2] skipped, though now valid
    digest, ack = result.send
    assert digest == Digest({x.id: 0, a.id: grant_x.seq}, full=False)
    assert ack.received == ack.absorbed == sum(u.size for u in made + [grant_x])


def test_read_only_members_file_update_is_void_everywhere():
    """A read-only member's file update is stored and relayed (so every digest agrees) but
    applied by no one (metamap.py: validity is judged when folding)."""
    a, b, ro = make_mesh(3, read_only=(2,))
    info = ro.commit(MemberInfo(ro.id, "reader", (), 9))  # a read-only member may describe itself
    bad = ro.sign(file_record("evil.txt", VersionVector({ro.id: 1}), ro.id))
    session = GossipSession(b.map)
    result = session.receive(Delta((update_to_wire(info), update_to_wire(bad))), now=0.0)
    assert result.applied == [info, bad]
    assert b.map.apply(bad) is Outcome.DUPLICATE
    assert "evil.txt" not in b.map.files
    net = sync(b, a)
    assert (ro.id, info.seq) in sent_updates(net)
    assert "evil.txt" not in a.map.files
    assert a.map.digest() == b.map.digest()


# -- budgets and fairness ---------------------------------------------------------------------
def test_each_delta_respects_the_byte_budget_except_one_oversized_update():
    a, b = make_mesh(2)
    for i in range(150):
        a.write(f"docs/report-{i:04d}-final.txt", b"%d" % i)
    big = a.write("huge/many-blocks.bin", b"big", blocks=200)
    assert big.size > 4 * KIB
    net = sync(a, b, budget_initial=4 * KIB, budget_min=4 * KIB, budget_max=4 * KIB)
    assert state(a) == state(b)
    sent = deltas(net, "r0")
    assert len(sent) > 5
    for delta in sent:
        sizes = [len(item[2]) + len(item[3]) + 48 for item in delta.updates]
        assert sum(sizes) <= 4 * KIB or len(sizes) == 1
    assert any(len(d.updates) == 1 and d.updates[0][1] == big.seq for d in sent)


def test_first_delta_serves_every_lagging_origin():
    a, w1, w2, b = make_mesh(4)
    for writer in (a, w1, w2):
        for update in writes(writer, 1000):
            a.take(update)
    net = Network()
    net.connect(a, b, budget_initial=8 * KIB, budget_min=8 * KIB)
    while not deltas(net, "r0"):
        net.step()
    first = deltas(net, "r0")[0]
    assert {item[0] for item in first.updates} == {a.id, w1.id, w2.id}
    assert sum(len(i[2]) + len(i[3]) + 48 for i in first.updates) <= 8 * KIB


def test_aimd_budget_shrinks_for_a_slow_receiver_and_grows_back():
    a, b = make_mesh(2)
    for update in writes(a, 3000):
        a.take(update)
    net = Network()
    sa, sb = net.connect(a, b)
    sb.absorb_rate = 20 * KIB
    start = sa.budget
    for _ in range(20_000):
        if sa.budget == sa.budget_min:
            break
        net.step() if net._queue else net.tick(net.tick_step)
    assert sa.budget == sa.budget_min < start
    assert 0 < b.map.seq_of(a.id) < a.map.seq_of(a.id)
    sb.absorb_rate = 256 * KIB * KIB
    peak = 0
    while net._queue or sa.pending:
        net.step() if net._queue else net.tick(net.tick_step)
        peak = max(peak, sa.budget)
    assert peak > start
    assert state(a) == state(b)


def test_a_delta_the_receiver_takes_nothing_of_pauses_the_sender():
    a, b = make_mesh(2)
    for update in writes(a, 50):
        a.take(update)
    sa = GossipSession(a.map, retry_delay=1.0)
    sa.receive(Digest(b.map.digest(), full=True), now=0.0)
    assert sa.pending
    assert sa.receive(DeltaAck(received=100, absorbed=0), now=0.1).send == []
    assert sa.tick(0.5) == [] and sa.pending
    assert [type(m) for m in sa.tick(1.2)] == [Delta]


# -- steady state, anti-entropy, timeouts -----------------------------------------------------
def test_summary_in_steady_state_costs_one_message_per_side():
    a, b = make_mesh(2)
    a.write("x.txt")
    net = sync(a, b)
    before = len(net.log)
    net.tick(10.0)
    net.run()
    after = [m for _s, _d, m in net.log[before:]]
    assert [type(m) for m in after] == [Summary, Summary]
    assert all(m.digest_hash == digest_hash(a.map.digest()) for m in after)


def test_summary_repairs_a_missed_push():
    a, b = make_mesh(2)
    net = sync(a, b)
    a.write("missed.txt")  # never offered to the session: only anti-entropy can find it
    net.run()
    assert "missed.txt" not in b.map.files
    net.tick(10.0)
    net.run()
    assert state(a) == state(b)


def test_an_unacked_delta_is_sent_again_after_the_timeout():
    a, b = make_mesh(2)
    a.write("x.txt")
    net = Network()
    sa, _sb = net.connect(a, b, delta_timeout=5.0)
    while not any(isinstance(decode(q[4]), Delta) for q in net._queue):
        net.step()
    net._queue = [q for q in net._queue if not isinstance(decode(q[4]), Delta)]  # lost
    lost_at = net.now
    net.run()  # ticks until the timeout fires and the Delta goes again
    assert state(a) == state(b)
    assert len(deltas(net, "r0")) == 1 and sa.updates_sent == 2  # the lost one, then again
    assert net.now - lost_at >= 5.0
    assert sa.budget < sa.budget_max


def test_a_digest_is_answered_only_with_news():
    a, b = make_mesh(2)
    a.take(b.write("b1.txt"))
    b.write("b2.txt")
    sa = GossipSession(a.map)  # has told the peer nothing yet
    peer = {b.id: b.map.seq_of(b.id)}
    first = sa.receive(Digest(peer, full=False), now=0.0).send
    assert first == [Digest({b.id: b.seq - 1}, full=False)]  # "I lack some of those"
    assert sa.receive(Digest(peer, full=False), now=0.0).send == []  # said once is enough


# -- local pushes -----------------------------------------------------------------------------
def test_local_update_pushes_once_and_never_to_a_peer_that_has_it():
    a, b = make_mesh(2)
    net = sync(a, b)
    sa = net.sessions[("r0", "r1")]
    update = a.write("new.txt")
    pushed = sa.local_update(update, net.now)
    assert [type(m) for m in pushed] == [Delta]
    assert sa.local_update(update, net.now) == []  # in flight: nothing more
    net.send("r0", "r1", pushed)
    net.run()
    assert state(a) == state(b)
    assert sa.local_update(update, net.now) == []  # the peer has it


def test_local_update_while_busy_announces_with_a_digest():
    a, b = make_mesh(2)
    net = sync(a, b)
    sa = net.sessions[("r0", "r1")]
    first = a.write("one.txt")
    assert [type(m) for m in sa.local_update(first, net.now)] == [Delta]
    second = a.write("two.txt")
    announce = sa.local_update(second, net.now)
    assert announce == [Digest({a.id: second.seq}, full=False)]
    assert sa.local_update(second, net.now) == []  # already told


def test_updates_the_peer_sent_are_never_pushed_back_to_it():
    a, b = make_mesh(2)
    update = a.write("from-a.txt")
    sb = GossipSession(b.map)
    assert sb.receive(Digest(b.map.digest(), full=True), now=0.0).send == []  # in step
    result = sb.receive(Delta((update_to_wire(update),)), now=0.0)
    assert result.applied == [update]
    assert sb.local_update(update, now=0.0) == []  # the peer sent it, so it holds it


def test_a_push_never_leaves_a_gap_in_the_peers_log():
    a, b = make_mesh(2)
    older = [a.write(f"old-{i}.txt") for i in range(3)]
    sa = GossipSession(a.map, retry_delay=1.0)
    sa.receive(Digest(b.map.digest(), full=True), now=0.0)
    sa.receive(DeltaAck(received=10, absorbed=0), now=0.0)  # the peer took nothing: back off
    newest = a.write("new.txt")
    (push,) = sa.local_update(newest, now=2.0)
    assert [item[1] for item in push.updates] == [u.seq for u in older + [newest]]


# -- idempotence ------------------------------------------------------------------------------
def test_the_same_delta_twice_changes_nothing():
    a, b = make_mesh(2)
    for i in range(30):
        a.write(f"f{i}.txt")
    net = sync(a, b)
    before = state(b)
    first = deltas(net, "r0")[0]
    result = net.sessions[("r1", "r0")].receive(decode(encode(first)), net.now)
    assert result.applied == [] and result.rejected == []
    assert state(b) == before
    assert [type(m) for m in result.send] == [Digest, DeltaAck]


def test_digest_hash_ignores_order_and_zero_entries():
    x, y = b"x" * 32, b"y" * 32
    assert digest_hash({x: 1, y: 2}) == digest_hash({y: 2, x: 1})
    assert digest_hash({x: 1, y: 2}) == digest_hash({x: 1, y: 2, b"z" * 32: 0})
    assert digest_hash({x: 1}) != digest_hash({x: 2})


# -- convergence (property) -------------------------------------------------------------------
paths = st.sampled_from(["a.txt", "b.txt", "dir/c.txt"])
writes_ = st.tuples(st.just("write"), st.integers(0, 2), paths, st.binary(min_size=1, max_size=3),
                    st.integers(0, 5))
syncs = st.tuples(st.just("sync"), st.integers(0, 2), st.integers(0, 2))
heavy = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow])


def _converge_all(replicas: list[Replica]) -> None:
    for i, j in ((0, 1), (1, 2), (0, 2)):
        sync(replicas[i], replicas[j])


@heavy
@given(st.lists(st.one_of(writes_, syncs), max_size=30))
def test_random_histories_and_pairwise_syncs_converge(ops):
    replicas = make_mesh(3)
    for op in ops:
        if op[0] == "write":
            _, r, path, content, mtime = op
            replicas[r].write(path, content, mtime_ns=mtime)
        elif op[1] != op[2]:
            sync(replicas[op[1]], replicas[op[2]], budget_initial=8 * KIB, budget_min=1 * KIB)
    _converge_all(replicas)
    assert state(replicas[0]) == state(replicas[1]) == state(replicas[2])


@heavy
@given(st.lists(st.one_of(writes_, st.tuples(st.just("run"), st.integers(1, 12))), max_size=30),
       st.sampled_from([0.001, 0.005, 0.02]))
def test_writes_while_connected_converge(ops, latency):
    replicas = make_mesh(3)
    net = Network(latency=latency)
    for i, j in ((0, 1), (1, 2), (0, 2)):
        net.connect(replicas[i], replicas[j], budget_initial=1 * KIB, budget_min=1 * KIB)
    for op in ops:
        if op[0] == "write":
            _, r, path, content, mtime = op
            update = replicas[r].write(path, content, mtime_ns=mtime)
            net.offer(f"r{r}", update)
        else:
            for _ in range(op[1]):
                if net._queue:
                    net.step()
    net.run()
    assert state(replicas[0]) == state(replicas[1]) == state(replicas[2])


def test_updates_checked_by_the_caller_are_not_checked_again():
    a, b = make_mesh(2)
    made = [a.write(f"p{i}.txt", b"%d" % i) for i in range(5)]
    items = tuple(update_to_wire(u) for u in made)
    verified = verify_wire(MESH_ID, items)
    assert verified == frozenset(items)
    before = b.verifier.checked
    result = GossipSession(b.map).receive(Delta(items), now=0.0, verified=verified)
    assert [(u.origin, u.seq) for u in result.applied] == [(u.origin, u.seq) for u in made]
    assert b.verifier.checked == before


def test_a_forgery_is_refused_though_its_origin_seq_and_sig_were_checked_on_other_bytes():
    a, b = make_mesh(2)
    real = a.write("x.txt", b"x")
    other = file_record("y.txt", VersionVector({a.id: 9}), a.id, b"y")
    forged = (real.origin, real.seq, encode_payload(other), real.sig)
    verified = verify_wire(MESH_ID, [update_to_wire(real), forged, (a.id, True, real.body, real.sig)])
    assert verified == {update_to_wire(real)}  # the forgery (and a bool seq) left out
    with pytest.raises(IntegrityError):  # the caller's check vouches for the real bytes only
        GossipSession(b.map).receive(Delta((forged,)), now=0.0, verified=verified)
    assert b.map.seq_of(a.id) == a.seq - 1


def test_a_bool_sequence_number_is_malformed():
    a, b = make_mesh(2)
    real = a.write("x.txt", b"x")
    item = (real.origin, True, real.body, real.sig)
    with pytest.raises(RemoteError, match="malformed update"):  # not stored as update 1
        GossipSession(b.map).receive(Delta((item,)), now=0.0,
                                     verified={update_to_wire(real)})
