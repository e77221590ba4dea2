"""`backer restore` in a busy mesh. A small tree is edited on several nodes; users restore files
now and then: the version before the current (the default) or an older one picked from
`backer history`, on the node that made it or on one that never held it. A node stops for a
while in each round, so the versions made while it was down are on the others' archives only: a
restore there fetches the version from a peer that keeps it (by content hash, in pieces checked
against the whole hash). Others edit the same files while restores are under way.

Invariants: no lost write (a restore is a user write over what the disk held: the file it
replaced goes to the archive, never away) and the mesh settles with every node holding the
same tree. `restores` counts the restores that landed, `restore_errors` those refused (a path
being synced, a version no connected node keeps...), which SPEC allows."""

from __future__ import annotations

from simulations import Plan

DEFAULTS = {"nodes": 5, "topology": "random:3", "files": 6, "rounds": 3, "edits": 6,
            "restores": 4, "down": 8.0, "size": 20000, "older": 0.5}


def _path(sim, options: dict) -> str:
    return f"tree/f{sim.rng.randrange(int(options['files']))}.txt"


def _running_writers(sim, but: int | None = None) -> list[int]:
    return [n.index for n in sim.nodes
            if n.alive and not n.gone and not n.read_only and n.index != but]


def _edit(sim, options: dict, but: int | None = None) -> None:
    nodes = _running_writers(sim, but)
    if nodes:
        i, path = sim.rng.choice(nodes), _path(sim, options)
        if sim.rng.random() < 0.5:
            sim.edit(i, path, size=sim.rng.randrange(1, int(options["size"])))
        else:
            sim.write(i, path, size=sim.rng.randrange(1, int(options["size"])))


def _restore(sim, options: dict, prefer: int | None) -> None:
    """A user restores a file: on `prefer` when it runs (the node back from a stop), else on any
    running read-write node; the default version, or (`older`) one picked from its history."""
    nodes = _running_writers(sim)
    if not nodes:
        return
    i = prefer if prefer in nodes else sim.rng.choice(nodes)
    path = _path(sim, options)
    if sim.rng.random() >= float(options["older"]):
        sim.restore(i, path)
        return

    def listed(listing, holders) -> None:
        older = [v for v in listing if not v.current and not v.deleted]
        if older and sim.nodes[i].alive:
            sim.restore(i, path, sim.rng.choice(older).id)
    sim.nodes[i].history.ask(path, listed)


def _round(sim, start: float, options: dict) -> float:
    rng = sim.rng
    victim = rng.choice(_running_writers(sim) or [0])
    back = start + rng.uniform(2.0, float(options["down"]))
    sim.at(start, sim.crash, victim)
    for _ in range(int(options["edits"])):  # versions made and replaced while it is down
        sim.at(rng.uniform(start, back), _edit, sim, options, victim)
    sim.at(back, sim.restart, victim)
    end = back + 6.0
    for _ in range(int(options["restores"])):
        sim.at(rng.uniform(back + 0.5, end), _restore, sim, options,
               victim if rng.random() < 0.5 else None)
        if rng.random() < 0.5:  # the same tree edited meanwhile
            sim.at(rng.uniform(back, end), _edit, sim, options)
    return end


def plan(sim, options: dict) -> Plan:
    rng = sim.rng
    writers = [n.index for n in sim.nodes if not n.read_only]
    for k in range(int(options["files"])):
        sim.at(rng.uniform(0.5, 1.5), sim.write, rng.choice(writers), f"tree/f{k}.txt",
               size=rng.randrange(1, int(options["size"])))
    t = 6.0
    for _ in range(int(options["edits"])):  # a history before the first stop
        sim.at(rng.uniform(2.0, t), _edit, sim, options)
    for _ in range(int(options["rounds"])):
        t = _round(sim, t + 2.0, options)
    stats: dict = {}
    return Plan(until=t, settle=300.0, since=t, info=stats,
                checks={"restores_land": lambda: _count(sim, stats)})


def _count(sim, stats: dict) -> bool:
    """Report what the restores did; some must land (else the scenario tests nothing)."""
    stats["restores"] = dict(sorted(sim.restores.items()))
    stats["restore_errors"] = dict(sorted(sim.restore_errors.items()))
    return sum(sim.restores.values()) > 0
