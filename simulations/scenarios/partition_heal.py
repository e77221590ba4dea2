"""Half the mesh cut off for a while (60 s by default), writes on both sides, some to the same
paths (conflicts across the cut); after the heal every node must hold every write, once, with
the same winner and the losers' conflict copies everywhere."""

from __future__ import annotations

from simulations import Plan

DEFAULTS = {"nodes": 10, "topology": "random:3", "cut": 60.0, "writes": 4, "shared": 2}


def plan(sim, options: dict) -> Plan:
    rng = sim.rng
    n = sim.cfg.nodes
    order = list(range(n))
    rng.shuffle(order)
    sides = {i: (0 if k < n // 2 else 1) for k, i in enumerate(order)}
    start, cut = 1.0, float(options["cut"])
    heal = start + cut
    sim.partition(sides, start, heal)
    for side in (0, 1):
        writers = [i for i in order if sides[i] == side and not sim.nodes[i].read_only]
        if not writers:
            continue
        for k in range(int(options["writes"])):
            t = rng.uniform(start + 0.5, heal - 0.5)
            if k < int(options["shared"]):
                path = f"shared/doc{k}.txt"  # written on both sides: a conflict at the heal
            else:
                path = f"side{side}/file{k}.bin"
            sim.at(t, sim.write, rng.choice(writers), path,
                   size=rng.randrange(1, 8192))
    return Plan(until=heal, settle=300.0, since=heal, info={"heal_at": heal})
