"""Nodes crash and restart at random moments while files are being transferred. A crash is the
process (peers get a reset; the disk keeps everything) or the machine (silence, and a power cut:
memdisk's durability model drops, as the seeded rng decides, every change not yet synced, the
user's recent writes and half-downloaded temp files included; what the node finished with fsync
survives). Users keep writing, sometimes to a node that is down (seen when it restarts, after a
seeded rescan delay). Every stopped node comes back at a random moment, and at the end.

Invariants: no lost write (a user's unsynced bytes that the power cut took before any other node
held them are the machine's loss, not the mesh's: testing/oracle.py), and the mesh settles."""

from __future__ import annotations

from simulations import Plan

DEFAULTS = {"nodes": 6, "topology": "random:3", "duration": 40.0, "writes": 20, "size": 300000,
            "crashes": 8, "machine": 0.5, "down": 8.0, "offline": 0.2, "rescan": 2.0}


def configure(cfg, options: dict) -> None:
    cfg.latency = (0.02, 0.1)
    cfg.bandwidth = (0.5e6, 4e6)  # a 300 kB file takes 0.1-0.6 s per hop: crashes hit transfers
    cfg.rescan_delay = (0.0, float(options["rescan"]))


def _write(sim, k: int, options: dict) -> None:
    rng = sim.rng
    writers = [n.index for n in sim.nodes if not n.gone and not n.read_only]
    down = [i for i in writers if not sim.nodes[i].alive]
    if down and rng.random() < float(options["offline"]):
        i = rng.choice(down)  # the user works while the daemon (or the machine) is down
    else:
        up = [i for i in writers if sim.nodes[i].alive]
        if not up:
            return
        i = rng.choice(up)
    if rng.random() < 0.4:
        path = f"shared/f{rng.randrange(4)}.bin"
    else:
        path = f"n{i}/w{k}.bin"
    sim.write(i, path, size=rng.randrange(1, int(options["size"])))


def _crash(sim, options: dict) -> None:
    rng = sim.rng
    live = [n.index for n in sim.nodes if n.alive and not n.gone]
    if len(live) <= max(2, len(sim.nodes) // 2):
        return
    i = rng.choice(live)
    sim.crash(i, machine=rng.random() < float(options["machine"]))
    sim.at(sim.loop.now + rng.uniform(0.5, float(options["down"])), sim.restart, i)


def plan(sim, options: dict) -> Plan:
    rng = sim.rng
    duration = float(options["duration"])
    times = sorted(rng.uniform(1.0, duration - 5.0) for _ in range(int(options["writes"])))
    for k, t in enumerate(times):
        sim.at(t, _write, sim, k, options)
    for _ in range(int(options["crashes"])):
        # shortly after a write: while its blocks are on the wire, or before it was even scanned
        t = rng.choice(times) + rng.uniform(0.05, 2.0)
        sim.at(min(t, duration - 1.0), _crash, sim, options)
    return Plan(until=duration, settle=300.0, since=duration)
