"""A node's root goes away for a while: it vanishes (an unmounted disk, `mode=vanish`) or shows an
empty mount point (`mode=empty`), the watcher reports it, other nodes keep writing; then the root
comes back as it was. SPEC "Missing root": never mirrored as a mass deletion. Invariants: the
usual ones, and `no_deletion_spread` (no tree file, which no user deleted, was deleted on any
other node, even for a while)."""

from __future__ import annotations

from simulations import Plan

DEFAULTS = {"nodes": 4, "topology": "random:3", "files": 6, "mode": "random", "away": 8.0,
            "writes": 3}


def plan(sim, options: dict) -> Plan:
    rng = sim.rng
    writers = [n.index for n in sim.nodes if not n.read_only]
    tree = [f"tree/f{k}.txt" for k in range(int(options["files"]))]
    for path in tree:
        sim.at(rng.uniform(0.5, 1.5), sim.write, rng.choice(writers), path,
               size=rng.randrange(1, 10000))
    victim = rng.choice(range(len(sim.nodes)))
    mode = options["mode"] if options["mode"] != "random" else rng.choice(("vanish", "empty"))
    gone, back = 6.0, 6.0 + rng.uniform(1.0, float(options["away"]))
    inodes: dict[tuple[int, str], int] = {}

    def away() -> None:
        for n in sim.nodes:
            if n.index != victim:
                inodes.update({(n.index, p): n.disk.lstat(p).inode for p in tree
                               if n.disk.exists(p)})
        (sim.vanish_root if mode == "vanish" else sim.empty_root)(victim)

    sim.at(gone, away)
    for k in range(int(options["writes"])):
        others = [i for i in writers if i != victim] or writers
        sim.at(rng.uniform(gone, back), sim.write, rng.choice(others), f"during/w{k}.txt",
               size=rng.randrange(1, 10000))
    sim.at(back, sim.restore_root, victim)

    def no_deletion_spread() -> bool:
        """No tree file was ever deleted on another node: each still has the inode it had when
        the root went away (a deletion later undone would have brought a new one)."""
        if any(v.deleted for n in sim.nodes if n.alive and n.index not in sim.evil
               for p in tree for v in n.metamap.files.get(p, ())):
            return False
        return all(sim.nodes[i].disk.lstat(p) is not None
                   and sim.nodes[i].disk.lstat(p).inode == inode
                   for (i, p), inode in inodes.items())

    return Plan(until=back + 1.0, settle=120.0, since=back,
                checks={"no_deletion_spread": no_deletion_spread},
                info={"victim": victim, "mode": mode})
