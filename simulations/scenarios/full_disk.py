"""A node's disk fills up: its quota leaves room for less than what the mesh writes next (file
bytes plus archived versions, memdisk's `quota`). Writes on it fail as ENOSPC (`DiskFull`), the
user's own too (those are not writes: nothing changed). Later its owner makes room (the quota is
lifted, no file event), and the mesh must settle with nothing lost: the node has to retry what
failed for want of space, and must never publish a half-written or missing file as a change."""

from __future__ import annotations

from simulations import Plan

DEFAULTS = {"nodes": 4, "topology": "random:3", "files": 4, "size": 200000, "room": 150000,
            "full_for": 10.0}


def plan(sim, options: dict) -> Plan:
    rng = sim.rng
    writers = [n.index for n in sim.nodes if not n.read_only]
    victim = rng.choice(range(len(sim.nodes)))
    others = [i for i in writers if i != victim] or writers
    sim.at(0.5, sim.write, rng.choice(writers), "small.txt", size=1000)

    def fill() -> None:
        sim.set_quota(victim, sim.nodes[victim].disk.used() + int(options["room"]))

    sim.at(3.0, fill)
    t = 4.0
    for k in range(int(options["files"])):
        t += rng.uniform(0.2, 1.5)
        sim.at(t, sim.write, rng.choice(others), f"big/b{k}.bin",
               size=rng.randrange(int(options["size"]) // 2, int(options["size"])))
    sim.at(t + 0.5, sim.write, victim, "mine.bin", size=int(options["room"]))  # fails or fills
    freed = t + float(options["full_for"])
    sim.at(freed, sim.set_quota, victim, None)
    return Plan(until=freed + 0.5, settle=120.0, since=freed, info={"victim": victim})
