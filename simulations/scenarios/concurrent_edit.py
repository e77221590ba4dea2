"""Many writers on the same few paths: every read-write node edits (and sometimes deletes) shared
files at random moments, on links slow enough that edits cross each other and race downloads
in flight. Every node must end with the same winner at each path, every concurrent loser as its
conflict copy, and no edit lost that its author did not knowingly replace."""

from __future__ import annotations

from simulations import Plan

DEFAULTS = {"nodes": 8, "topology": "random:3", "duration": 20.0, "paths": 3, "rate": 0.3,
            "deletes": 0.1, "size": 300000, "small": 0.3}


def configure(cfg, options: dict) -> None:
    cfg.latency = (0.05, 0.25)
    cfg.bandwidth = (0.5e6, 4e6)


def _edit(sim, i: int, options: dict) -> None:
    rng = sim.rng
    path = f"shared/doc{rng.randrange(int(options['paths']))}.txt"
    if rng.random() < float(options["deletes"]):
        sim.delete(i, path)
    elif rng.random() < float(options["small"]):  # a few bytes changed: sent as deltas
        sim.edit(i, path, size=rng.randrange(1, int(options["size"])))
    else:
        sim.write(i, path, size=rng.randrange(1, int(options["size"])))


def plan(sim, options: dict) -> Plan:
    rng = sim.rng
    duration = float(options["duration"])
    for node in sim.nodes:
        if node.read_only:
            continue
        t = 1.0
        while True:
            t += rng.expovariate(float(options["rate"]))
            if t >= duration:
                break
            sim.at(t, _edit, sim, node.index, options)
    return Plan(until=duration, settle=300.0, since=duration)
