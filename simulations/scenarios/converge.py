"""Writes spread over a random mesh: a few writers, fresh paths, no faults.

The sweep's scenario (`writes=1`): how long one change takes to reach every node, and what the
metadata gossip costs each node, as the mesh grows."""

from __future__ import annotations

from simulations import Plan

DEFAULTS = {"nodes": 10, "topology": "random:3", "writes": 3, "size": 16384, "start": 2.0}


def plan(sim, options: dict) -> Plan:
    rng = sim.rng
    writers = [n.index for n in sim.nodes if not n.read_only]
    t = float(options["start"])
    for k in range(int(options["writes"])):
        if k:
            t += rng.uniform(0.0, 1.0)
        i = rng.choice(writers)
        path = f"dir{rng.randrange(3)}/file{k}.bin"
        size = rng.randrange(1, int(options["size"]) + 1)
        sim.at(t, sim.write, i, path, size=size)
    return Plan(until=t + 0.001, settle=120.0)
