"""A conflict copy of a removed node's version, made by an honest node before the removal
(churn seed 29128): void with that version when the remover had not seen it, kept when it had.
Node 1's write loses a conflict to node 2's; node 0 holds node 1's bytes and publishes the
copy; node 1 stops and is removed by node 3 (which saw nothing of node 1's write:
cutoff below it) or by node 0 (which saw it). The simulator's invariants judge both ends: no
voided content on any disk (`nothing_forbidden_applied`), no honest write lost."""

from __future__ import annotations

import pytest

from gossip_backer.core.conflict import conflict_name
from gossip_backer.testing.cluster import Cluster, ClusterConfig
from simulations import invariants


def _copy_then_leave(remover: int) -> tuple[Cluster, str]:
    sim = Cluster(ClusterConfig(nodes=4, seed=5, topology="full"))
    sim.start()
    sim.run_until(2.0)
    sim.partition({0: 0, 1: 0, 2: 1, 3: 2}, sim.loop.now, None)
    loser = sim.write(1, "p.txt")
    sim.run_until(sim.loop.now + 5.0)  # node 0 fetches node 1's version
    sim.write(2, "p.txt")  # concurrent, later: the winner
    sim.run_until(sim.loop.now + 2.0)
    sim.crash(1)
    sim.partition({0: 0, 2: 0, 3: 1}, sim.loop.now, None)
    sim.run_until(sim.loop.now + 10.0)  # node 0 holds the loser's bytes: it publishes the copy
    copy = conflict_name("p.txt", loser.mtime_ns, loser.author)
    assert all(sim.nodes[i].disk.read(copy) is not None for i in (0, 2))
    sim.leave(1, remover)
    sim.net.heal()
    sim.run_until(sim.loop.now + 30.0, stop_when_settled=True)
    assert sim.settled()
    return sim, copy


@pytest.mark.parametrize("remover,kept", [(3, False), (0, True)])
def test_a_copy_goes_with_the_version_a_removal_voids_and_stays_otherwise(remover, kept) -> None:
    sim, copy = _copy_then_leave(remover)
    results, lost = invariants.check(sim)
    assert all(results.values()), results
    assert not lost
    assert [sim.nodes[i].disk.read(copy) is not None for i in sim.tracked()] == [kept] * 3
