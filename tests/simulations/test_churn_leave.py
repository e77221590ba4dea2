"""churn's decommissioning rule (simulations/scenarios/churn.py `_leave`): a careful owner does
not remove a node while a node it invited still depends on it. An invite names the inviter
alone, and a revocation voids what the removed node signed beyond the remover's view of its log
(README, Membership), so removing the inviter too early cuts the invited node off for good: the
soak seeds churn 8 20183 and 20947 (simulations/seeds.txt) failed this way, each with a stranded
node that held none of the mesh's writes."""

from __future__ import annotations

from gossip_backer.testing.cluster import Cluster, ClusterConfig
from simulations.scenarios import churn


def _mesh() -> Cluster:
    sim = Cluster(ClusterConfig(nodes=4, seed=3, topology="full"))
    sim.start()
    sim.run_until(2.0)
    return sim


def _member_everywhere(sim: Cluster, j: int) -> bool:
    key = sim.nodes[j].key
    return all(key in sim.nodes[i].metamap.membership.members for i in sim.tracked())


def test_inviter_stays_while_the_invited_node_is_stopped_before_its_grant() -> None:
    """Node 4 joins through 1 and crashes at once, before its claim went out: on restart it
    trusts node 1 alone, so node 1 may leave only once node 4 holds its grant, however long
    that takes (here the owner's 30 s patience for syncing has already run out: seed 20581)."""
    sim = _mesh()
    j = sim.join(1)
    sim.crash(j, machine=True)
    churn._leave(sim, False, sim.loop.now, 1)
    sim.run_until(sim.loop.now + 5.0)
    assert not sim.nodes[1].gone  # the old rule saw no running node waiting and removed it
    sim.restart(j)
    sim.run_until(sim.loop.now + 30.0)
    assert sim.nodes[1].gone and sim.nodes[j].alive
    assert _member_everywhere(sim, j) and sim.settled()


def test_inviter_is_removed_from_a_node_that_knows_its_grants() -> None:
    """Node 4 joined through 1 while both were cut off from the rest: only 1 and 4 hold the
    grant. Removed then (by 4 itself, or by a node with cutoff 0 for node 1's log), node 4 would
    be void or unknown everywhere else; the owner waits until another node counts it."""
    sim = _mesh()
    sim.partition({0: 0, 2: 0, 3: 0, 1: 1, 4: 1}, sim.loop.now, None)
    j = sim.join(1)
    sim.run_until(sim.loop.now + 10.0)
    assert j == 4 and churn._got_in(sim.nodes[j])
    assert not any(churn._knows_invitees(sim, r, 1) for r in (0, 2, 3, j))
    churn._leave(sim, False, sim.loop.now + 30.0, 1)
    sim.run_until(sim.loop.now + 5.0)
    assert not sim.nodes[1].gone
    sim.net.heal()
    sim.run_until(sim.loop.now + 30.0)
    assert sim.nodes[1].gone
    assert _member_everywhere(sim, j) and sim.settled()
