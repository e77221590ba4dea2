"""The cluster drives the real replicas: a write spreads, state survives crashes, read-only
members publish nothing, and the shortcuts it takes (cloned maps) equal the real path."""

from __future__ import annotations

from gossip_backer.core.metamap import MetaMap
from gossip_backer.crypto.identity import Verifier
from gossip_backer.testing.cluster import Cluster, ClusterConfig, clone_map, topology_edges
from gossip_backer.testing.oracle import content_id
from simulations import invariants


def cluster(**kw) -> Cluster:
    sim = Cluster(ClusterConfig(**{"nodes": 6, "seed": 1, **kw}))
    sim.start()
    sim.run_until(1.0)
    return sim


def settle(sim: Cluster, limit: float = 120.0) -> None:
    assert sim.run_until(sim.loop.now + limit, stop_when_settled=True), "did not settle"
    result, lost = invariants.check(sim)
    assert all(result.values()) and not lost, result


def test_tick_is_the_daemons() -> None:
    from gossip_backer.runtime.node import TICK

    assert ClusterConfig().tick == TICK


def test_topologies_are_connected_and_as_named() -> None:
    import random

    assert topology_edges(4, "ring", random.Random(0)) == [(0, 1), (0, 3), (1, 2), (2, 3)]
    assert topology_edges(4, "star", random.Random(0)) == [(0, 1), (0, 2), (0, 3)]
    assert len(topology_edges(5, "full", random.Random(0))) == 10
    edges = topology_edges(200, "random:2", random.Random(3))
    seen, todo = {0}, [0]
    while todo:
        x = todo.pop()
        for a, b in edges:
            for y in ((b,) if a == x else (a,) if b == x else ()):
                if y not in seen:
                    seen.add(y)
                    todo.append(y)
    assert len(seen) == 200


def test_cloned_map_equals_a_loaded_one_and_is_independent() -> None:
    sim = Cluster(ClusterConfig(nodes=5, seed=2, read_only=1))
    loaded = MetaMap(sim.founder, Verifier(sim.mesh_id))
    loaded.apply_all(sim.nodes[0].store.load())
    clone = clone_map(sim._template, Verifier(sim.mesh_id))
    assert clone.digest() == loaded.digest() and clone.files == loaded.files
    assert clone.membership.members == loaded.membership.members
    assert list(clone.updates()) == list(loaded.updates())
    sim.start()
    sim.run_until(1.0)
    sim.write(1, "a.txt")
    sim.run_until(5.0)
    assert sim.nodes[3].metamap.files and not sim._template.files
    assert sim.nodes[3].metamap._logs is not sim.nodes[4].metamap._logs


def test_a_write_reaches_every_node_as_bytes() -> None:
    sim = cluster(topology="ring")
    w = sim.write(2, "docs/report.txt", size=300_000)  # three blocks
    settle(sim)
    data = sim.nodes[2].disk.read("docs/report.txt")
    assert all(n.disk.read("docs/report.txt") == data for n in sim.nodes)
    assert all(n.disk.kind("docs") == "dir" for n in sim.nodes)
    block_bytes = sim.net.kind_bytes.get("BlockData", 0) + sim.net.kind_bytes.get("BlockBatchData", 0)
    assert w.updates and block_bytes > 5 * 300_000  # (small blocks travel in batches)


def test_crash_keeps_the_store_and_edits_made_while_down_spread() -> None:
    sim = cluster()
    sim.write(1, "a.txt")
    settle(sim)
    before = sim.nodes[1].metamap.digest()
    sim.nodes[1].disk.sync()  # the kernel wrote a.txt back (see the power-cut tests below)
    sim.crash(1, machine=True)
    sim.write(1, "offline.txt")  # the user works while the daemon is down
    sim.run_until(sim.loop.now + 5)
    assert not sim.nodes[0].disk.exists("offline.txt")
    sim.restart(1)
    after = sim.nodes[1].metamap.digest()  # reloaded from the store (plus the offline edit)
    assert all(after.get(origin, 0) >= seq for origin, seq in before.items())
    settle(sim)
    assert sim.nodes[0].disk.exists("offline.txt")


def test_read_only_members_publish_nothing() -> None:
    sim = cluster(read_only=2)
    ro = [n.index for n in sim.nodes if n.read_only]
    sim.write(ro[0], "mine.txt")
    sim.write(0, "theirs.txt")
    sim.run_until(sim.loop.now + 30)
    assert not sim.nodes[0].disk.exists("mine.txt")
    assert all(n.disk.exists("theirs.txt") for n in sim.nodes)
    assert not invariants.identical_contents([sim.nodes[i] for i in sim.tracked()])


def test_join_and_leave() -> None:
    sim = cluster(nodes=5)
    new = sim.join(0)
    sim.run_until(sim.loop.now + 10)
    assert sim.nodes[new].can_write()
    sim.write(new, "from-the-new-one.txt")
    sim.leave(3, remover=0)
    settle(sim)
    assert sim.nodes[0].disk.exists("from-the-new-one.txt")
    assert sim.nodes[0].metamap.membership.members[sim.nodes[3].key].revoked


def test_a_power_cut_takes_only_unsynced_bytes_and_the_oracle_tells_whose_loss_it_was() -> None:
    sim = cluster(power_keep=0.0)  # every unsynced change is lost
    shared = sim.write(1, "shared.txt")
    settle(sim)  # published, and every node holds it
    sim.nodes[1].disk.sync("shared.txt")
    mesh_held = sim.write(1, "shared.txt")  # replaces it; published and fetched, never synced
    settle(sim)
    unpublished = sim.write(1, "fresh.txt")  # the machine dies before the watcher's scan
    sim.crash(1, machine=True)
    node = sim.nodes[1]
    assert node.disk.read("fresh.txt") is None and sim.power_cuts == 1
    assert unpublished.power_lost  # the user's unsynced bytes: the machine's loss
    assert not mesh_held.power_lost  # the mesh held it: it must survive
    assert content_id(node.disk.read("shared.txt")) == shared.content  # back to the synced one
    assert all(content_id(sim.nodes[i].disk.read("shared.txt")) == mesh_held.content
               for i in (0, 2, 3))


def test_a_process_crash_keeps_unsynced_bytes() -> None:
    sim = cluster(power_keep=0.0)
    w = sim.write(1, "a.txt")
    sim.crash(1)
    assert content_id(sim.nodes[1].disk.read("a.txt")) == w.content and not w.power_lost


def test_offline_edits_are_seen_after_the_rescan_delay() -> None:
    sim = cluster(rescan_delay=(5.0, 5.0))
    settle(sim)
    sim.crash(2)
    sim.write(2, "offline.txt")
    sim.write(0, "online.txt")
    sim.run_until(sim.loop.now + 3)
    sim.restart(2)
    assert sim.nodes[2].disk.exists("offline.txt")  # on the disk all along
    sim.run_until(sim.loop.now + 4)
    assert sim.nodes[2].metamap.winner("online.txt") is not None  # the mesh's news came first
    assert not sim.nodes[2].disk.exists("online.txt")  # no disk work before the first scan
    assert not sim.nodes[0].disk.exists("offline.txt")  # not scanned yet
    settle(sim)
    assert sim.nodes[0].disk.exists("offline.txt")


def test_a_full_disk_refuses_the_users_write() -> None:
    sim = cluster()
    sim.set_quota(3, sim.nodes[3].disk.used() + 1000)
    assert sim.write(3, "big.bin", size=5000) is None and sim.disk_full == 1
    assert not sim.nodes[3].disk.exists("big.bin") and not sim.oracle.writes


def test_sessions_start_only_after_the_daemon_s_admission_of_each_hello() -> None:
    """The simulator runs the daemon's admission (protocol/session.py): each end's Hello crosses
    the network first, and a node in another protocol version is refused by every peer, told why,
    and never gets a session."""
    from gossip_backer.protocol import session
    from gossip_backer.testing.node import SimNode

    class Newer(SimNode):
        def admission(self) -> session.Admission:
            return session.Admission(f"n{self.index}", (), False, self.trusts,
                                     version=session.PROTOCOL_VERSION + 1)

    sim = Cluster(ClusterConfig(nodes=6, seed=1, topology="full"))
    sim.make_evil(2, Newer)
    sim.start()
    sim.run_until(1.0)
    sim.write(0, "a.txt")
    sim.run_until(10.0)
    assert sim.net.kind_bytes["Hello"] > 0 and sim.net.kind_bytes["Refuse"] > 0
    assert not sim.nodes[2].conns and all(2 not in n.conns for n in sim.nodes)
    assert all(n.disk.read("a.txt") for i, n in enumerate(sim.nodes) if i != 2)
    assert not sim.nodes[2].disk.exists("a.txt")


def test_both_ends_dial_and_crossing_dials_leave_one_working_connection() -> None:
    """As in the daemon, both ends of a link dial. When they dial at the same instant, two
    connections open at once; each node must admit both Hellos and keep the same one
    (session.keep_old), or one end talks into a connection the other ignores until the dead
    timer (what partition_heal seed 0 showed: settling took 60 s instead of half a second)."""
    sim = cluster(nodes=2, topology="full")
    a, b = sim.nodes
    assert 1 in a.conns and 0 in b.conns
    a.drop(1, "test: cut")
    sim.run_until(sim.loop.now + 0.3)  # b hears of it; both redials are due in 0.5 s or more
    assert not a.conns and not b.conns
    sim.dial((0, 1))
    sim.dial((1, 0))  # the same instant: the two connections cross
    sim.run_until(sim.loop.now + 0.5)
    assert a.conns[1] is b.conns[0]
    sim.write(0, "after.txt")
    sim.run_until(sim.loop.now + 2.0)
    assert b.disk.kind("after.txt") == "file"
    assert sim.sessions >= 3


def test_a_restarted_node_is_dialed_by_the_other_end_too() -> None:
    """The lesser key waits `session.first_dial_delay` before its first dial, so when it
    restarts, the greater end's own redial brings the link back (both ends dial)."""
    sim = cluster(nodes=2, topology="full")
    lesser = min((0, 1), key=lambda i: sim.nodes[i].key)
    sim.crash(lesser)
    sim.run_until(sim.loop.now + 0.2)
    sim.restart(lesser)
    t0 = sim.loop.now
    sim.run_until(t0 + 1.5)
    assert 1 - lesser in sim.nodes[lesser].conns
