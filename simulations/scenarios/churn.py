"""Nodes crash and restart with their persisted state (store, disk, local index), while users keep
writing (also on the disk of a stopped node); new nodes join through an invite, others leave and
are revoked (after waiting until nothing of theirs exists only on them and every node they
invited got in, by a node that knows those grants; `abrupt_leave=1`: at once). At the end every
crashed node comes back and the mesh must settle with nothing lost.

A crash is either the process (peers get a reset at once) or the machine (silence: peers find
out from their dead timer). What a leaving node had published before the revocation's cutoff
stays; what it made after is void everywhere.

Machine crashes here keep the disk whole (`power_cut=0`): the seeds recorded for churn predate the
durability model, and `crash_restart` is the scenario of power cuts (`--option power_cut=1` turns
them on here too)."""

from __future__ import annotations

from gossip_backer.core.record import Grant
from simulations import Plan

DEFAULTS = {"nodes": 12, "topology": "random:3", "duration": 60.0, "writes": 16, "crashes": 8,
            "joins": 2, "leaves": 1, "abrupt_leave": 0, "power_cut": 0}


def _writers(sim) -> list[int]:
    out = []
    for n in sim.nodes:
        if n.gone or n.read_only or n.index in sim.evil:
            continue
        if n.alive and n.can_write():
            out.append(n.index)
        elif not n.alive and n.index < sim.cfg.nodes:  # the user edits while the daemon is down
            out.append(n.index)
    return out


def _write(sim, k: int) -> None:
    writers = _writers(sim)
    if not writers:
        return
    i = sim.rng.choice(writers)
    if sim.rng.random() < 0.4:
        path = f"shared/f{sim.rng.randrange(4)}.txt"
    else:
        path = f"n{i}/w{k}.bin"
    sim.write(i, path, size=sim.rng.randrange(1, 40000))


def _crash(sim, restart_after: tuple[float, float]) -> None:
    rng = sim.rng
    live = [n.index for n in sim.nodes if n.alive and not n.gone]
    if len(live) <= max(2, len(sim.nodes) // 2):
        return
    i = rng.choice(live)
    sim.crash(i, machine=rng.random() < 0.5)
    sim.at(sim.loop.now + rng.uniform(*restart_after), sim.restart, i)


def _join(sim) -> None:
    granters = [n.index for n in sim.nodes if n.alive and not n.gone and n.can_write()]
    if granters:
        sim.join(sim.rng.choice(granters), links=3)


def _invitees(sim, i: int) -> list:
    """The nodes that joined through `i` and are still around (an invite names the inviter
    alone: until a joining node holds the map, `i` is the one peer it trusts)."""
    key = sim.nodes[i].key
    return [n for n in sim.nodes if key in n.bootstrap and not n.gone]


def _got_in(node) -> bool:
    """Does `node` hold its own grant: in its map if it runs, in its stored log if it is stopped
    (it loads that log when it starts again)?"""
    if node.alive:
        return node.key in node.metamap.membership.members
    return any(isinstance(u.payload, Grant) and u.payload.node == node.key
               for u in node.store.load())


def _stranded(sim, i: int) -> bool:
    """Does a node that joined through `i` still lack its own grant, running or stopped (a node
    that crashed before the map reached it comes back knowing `i` alone)? Then `i` is its only
    way into the mesh."""
    return any(not _got_in(n) for n in _invitees(sim, i))


def _knows_invitees(sim, r: int, i: int) -> bool:
    """Does node `r`, not one `i` invited, count every node `i` invited as a member? A revocation
    voids what `i` signed beyond the revoker's view of its log (README, Membership): revoked from
    a node that has not seen a grant `i` signed, the granted node is cut off everywhere; revoked
    by that granted node itself, its grant is known to it alone, and no other member lets it in."""
    invitees = _invitees(sim, i)
    members = sim.nodes[r].metamap.membership.members
    return all(n.key in members and n.index != r for n in invitees)


def _leave(sim, abrupt: bool, deadline: float | None = None, i: int | None = None) -> None:
    """A node is decommissioned. Unless `abrupt`, its owner first waits (up to 30 s) until no
    content of its own exists only there, as one waits for a machine to be in sync before wiping
    it; an abrupt leave may take unique content with it (not counted as lost). Unless `abrupt`,
    the owner also waits (without a limit: nothing else would let them in) until every node it
    invited got in, and removes it from a node that already counts those as members."""
    rng = sim.rng
    if i is None:
        candidates = [n.index for n in sim.nodes if not n.gone and n.index != 0]
        if not candidates:
            return
        i = rng.choice(candidates)
        deadline = sim.loop.now + 30.0
    node = sim.nodes[i]
    if node.gone:
        return
    removers = [n.index for n in sim.nodes
                if n.alive and not n.gone and n.can_write() and n.index != i]
    if not abrupt:
        informed = [r for r in removers if _knows_invitees(sim, r, i)]
        if (_stranded(sim, i) or (removers and not informed)
                or (sim.loop.now < deadline and (not node.alive or sim.unique_writes(i)))):
            sim.at(sim.loop.now + 1.0, _leave, sim, abrupt, deadline, i)
            return
        removers = informed
    if removers:
        sim.leave(i, rng.choice(removers))


def plan(sim, options: dict) -> Plan:
    rng = sim.rng
    duration = float(options["duration"])
    for k in range(int(options["writes"])):
        sim.at(rng.uniform(1.0, duration), _write, sim, k)
    for _ in range(int(options["crashes"])):
        sim.at(rng.uniform(1.0, duration - 5.0), _crash, sim, (2.0, 20.0))
    for _ in range(int(options["joins"])):
        sim.at(rng.uniform(1.0, duration - 5.0), _join, sim)
    for _ in range(int(options["leaves"])):
        sim.at(rng.uniform(1.0, duration - 5.0), _leave, sim, bool(options["abrupt_leave"]))
    return Plan(until=duration, settle=300.0, since=duration)
