"""Edits made on a stopped node (issue 10's lost write). The mesh holds a small tree; one node at
a time stops (its process, or its machine: a power cut), and while it is down its user edits
tree files, adds a file and sometimes deletes one; the other nodes edit the same files and others,
before the stop, while it is down (before and after its user's edits) and after it restarts.

The restarted node's scan reaches the offline edits a seeded delay after boot (up to `rescan`
seconds: the daemon's first scan of a large tree; at boot with probability `quick_scan`), while its connections come up with the dialer's seeded
back-off: so the mesh's newer version of a file may arrive BEFORE the scan publishes the offline
edit of that file (the ordering that loses the edit in the daemon), or after. Invariants: no lost
write (every user edit is the winner or its conflict copy on every node) and the mesh settles.
A stop is the process (`backer` stopped) unless `machine` (a probability) makes it a power cut;
power cuts are crash_restart's subject. `mesh_first` in the report counts the restarts at which the mesh's version of an offline-edited
path had arrived before the scan reached it."""

from __future__ import annotations

from gossip_backer.testing.cluster import EPOCH_NS
from simulations import Plan

DEFAULTS = {"nodes": 5, "topology": "random:3", "files": 8, "rounds": 2, "down": 10.0,
            "rescan": 4.0, "quick_scan": 0.3, "offline_edits": 3, "online_edits": 4, "machine": 0.0,
            "size": 20000, "small": 0.5}


def configure(cfg, options: dict) -> None:
    cfg.rescan_delay = (0.0, float(options["rescan"]))


def _tree_path(sim, options: dict) -> str:
    return f"tree/f{sim.rng.randrange(int(options['files']))}.txt"


def _change(sim, i: int, path: str, options: dict) -> None:
    """Node `i`'s user rewrites `path`, or (with probability `small`) edits a few bytes of it:
    those edits cross the wire as deltas."""
    size = sim.rng.randrange(1, int(options["size"]))
    if sim.rng.random() < float(options["small"]):
        sim.edit(i, path, size=size)
    else:
        sim.write(i, path, size=size)


def _edit_elsewhere(sim, victim: int, path: str, options: dict) -> None:
    """Some other running read-write node's user edits `path`."""
    others = [n.index for n in sim.nodes
              if n.alive and not n.gone and not n.read_only and n.index != victim]
    if others:
        _change(sim, sim.rng.choice(others), path, options)


def _offline_edit(sim, victim: int, path: str, options: dict, delete: bool) -> None:
    if sim.nodes[victim].alive:
        return
    if delete:
        sim.delete(victim, path)
    else:
        _change(sim, victim, path, options)


def _round(sim, r: int, start: float, options: dict, stats: dict) -> float:
    """One stop, offline edits and restart from `start`; returns when the round's activity ends."""
    rng = sim.rng
    writers = [n.index for n in sim.nodes if not n.read_only]
    victim = rng.choice(writers)
    down = rng.uniform(2.0, float(options["down"]))
    stop, back = start, start + down
    for _ in range(rng.randrange(0, 3)):  # before the stop (may or may not reach the victim)
        sim.at(rng.uniform(stop - 2.0, stop), _edit_elsewhere, sim, victim,
               _tree_path(sim, options), options)
    seen: dict[str, object] = {}

    def stop_it() -> None:
        node = sim.nodes[victim]
        if node.alive:
            seen.clear()
            seen.update({p: node.metamap.winner(p) for p in node.metamap.files})
            sim.crash(victim, machine=rng.random() < float(options["machine"]))

    sim.at(stop, stop_it)
    edited: list[str] = []
    for k in range(int(options["offline_edits"])):
        t = rng.uniform(stop + 0.1, back - 0.1)
        if k == 0:
            path = f"n{victim}/offline{r}.txt"  # a new file
        else:
            path = _tree_path(sim, options)
        edited.append(path)
        sim.at(t, _offline_edit, sim, victim, path, options, k > 1 and rng.random() < 0.2)
        # the same file elsewhere: before or after the offline edit (the case: after)
        if k and rng.random() < 0.8:
            sim.at(rng.uniform(stop + 0.05, back), _edit_elsewhere, sim, victim, path, options)
    for _ in range(int(options["online_edits"])):  # other files, while it is down
        sim.at(rng.uniform(stop, back), _edit_elsewhere, sim, victim,
               _tree_path(sim, options), options)

    def restart() -> None:
        # a small tree is scanned at boot, before any connection is up; a large one takes a while
        quick = rng.random() < float(options["quick_scan"])
        sim.cfg.rescan_delay = (0.0, 0.0 if quick else float(options["rescan"]))
        sim.restart(victim)
        due = sim.scan_due.get(victim)
        if due is not None:
            sim.at(due, probe)

    def probe() -> None:
        """Just before the scan reaches the offline edits: did the mesh's versions come first?"""
        node = sim.nodes[victim]
        if node.alive and any(node.metamap.winner(p) != seen.get(p) for p in edited):
            stats["mesh_first"] += 1

    sim.at(back, restart)
    stats["_downs"].append((victim, stop, back))
    for _ in range(rng.randrange(1, 3)):  # after the restart
        sim.at(rng.uniform(back, back + 3.0), _edit_elsewhere, sim, victim,
               rng.choice(edited) if rng.random() < 0.5 else _tree_path(sim, options), options)
    return back + 3.0


def plan(sim, options: dict) -> Plan:
    rng = sim.rng
    writers = [n.index for n in sim.nodes if not n.read_only]
    for k in range(int(options["files"])):
        sim.at(rng.uniform(0.5, 1.5), sim.write, rng.choice(writers), f"tree/f{k}.txt",
               size=rng.randrange(1, int(options["size"])))
    stats = {"mesh_first": 0, "_downs": []}
    t = 8.0
    for r in range(int(options["rounds"])):
        t = _round(sim, r, t, options, stats) + 5.0
    downs = stats.pop("_downs")
    return Plan(until=t, settle=300.0, since=t, info=stats,
                checks={"history_lists_versions_made_while_down":
                        lambda: _history_check(sim, downs, stats)})


def _history_check(sim, downs: list, stats: dict) -> bool:
    """The issue's history bug: a node stopped while another node made a version and then
    replaced it (and archived it) lists that version in `history` once back. Each stopped node
    asks its connected peers over the simulated wire (HistoryRequest / HistoryReply); every
    version a peer archived that was made while it was down must be in its listing."""
    from gossip_backer.protocol import history

    expected: dict[tuple[int, str], set[str]] = {}
    for victim, stop, back in downs:
        node = sim.nodes[victim]
        if not node.alive:
            continue
        for peer in node.conns:
            other = sim.nodes[peer]
            for path in sorted(other.store.revisions):
                made = [row for row in other.history.archive_rows(path)
                        if stop * 1e9 <= row[2] - EPOCH_NS <= back * 1e9]
                if made:
                    ids = {v.id for v in history.from_archive(path, made)}
                    expected.setdefault((victim, path), set()).update(ids)
    listed: dict[tuple[int, str], set[str]] = {}
    for victim, path in sorted(expected):
        sim.nodes[victim].history.ask(
            path, lambda listing, holders, key=(victim, path): listed.__setitem__(
                key, {v.id for v in listing}))
    sim.run_until(sim.loop.now + history.CONNECT_GRACE + 1.0)
    stats["history_checked"] = sum(len(ids) for ids in expected.values())
    missing = {key: ids - listed.get(key, set()) for key, ids in expected.items()}
    stats["history_missing"] = sum(len(ids) for ids in missing.values())
    return stats["history_missing"] == 0
