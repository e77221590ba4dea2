"""Deterministic simulations of the mesh: scenarios, invariants, sweeps (gossip_backer.testing).

A scenario module (`simulations/scenarios/NAME.py`) has `DEFAULTS` (nodes, topology and its own
options), an optional `configure(cfg, options)` that adjusts the `ClusterConfig`, and
`plan(sim, options) -> Plan`, which schedules the scenario's actions on the cluster's clock.
Options named in NETWORK_OPTIONS (loss, duplicate, reorder,
reliable...) set the `ClusterConfig` of any scenario. `run()` then plays it: the activity until `plan.until`; then every partition heals and every
crashed node restarts, and the mesh runs until it settles (every live node identical and idle)
or `plan.settle` more seconds pass; then the invariants are checked.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from gossip_backer.testing.cluster import BLOCK_KINDS, META_KINDS, Cluster, ClusterConfig

__all__ = ["Plan", "run", "SCENARIOS", "load", "command_line"]

NETWORK_OPTIONS = ("loss", "duplicate", "reorder", "reliable", "jitter", "tick", "power_cut", "power_keep",
                   "summary_interval")
SCENARIOS = ("converge", "partition_heal", "churn", "concurrent_edit", "offline_edit",
             "crash_restart", "evil_peer", "slow_link", "root_loss", "full_disk", "live_edit",
             "restore")


@dataclass
class Plan:
    until: float  # the scenario's last action is before this
    settle: float = 300.0  # how long after `until` the mesh may take to settle
    checks: dict[str, Callable[[], bool]] = field(default_factory=dict)  # scenario invariants
    since: float | None = None  # a reference instant (e.g. the heal) for `settle_s`
    info: dict[str, Any] = field(default_factory=dict)  # extra numbers for the report


def load(name: str):
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; one of: {', '.join(SCENARIOS)}")
    return importlib.import_module(f"simulations.scenarios.{name}")


def command_line(result: dict) -> str:
    """The command that replays a run."""
    extra = "".join(f" --option {k}={v}" for k, v in sorted(result.get("options", {}).items()))
    return (f"python -m simulations {result['scenario']} --nodes {result['nodes']} "
            f"--seed {result['seed']} --topology {result['topology']}{extra}")


def run(name: str, *, nodes: int | None = None, seed: int = 0, topology: str | None = None,
        options: dict[str, Any] | None = None, trace: IO[str] | None = None,
        keep: bool = False) -> dict[str, Any]:
    """Play scenario `name` once; returns the report (see __main__.py). `keep`: the report's
    "_sim" entry holds the Cluster (for plots and tests)."""
    from simulations import invariants

    mod = load(name)
    opts = {k: v for k, v in mod.DEFAULTS.items() if k not in ("nodes", "topology")}
    opts.update(options or {})
    cfg = ClusterConfig(nodes=nodes or mod.DEFAULTS["nodes"], seed=seed,
                        topology=topology or mod.DEFAULTS["topology"])
    if hasattr(mod, "configure"):
        mod.configure(cfg, opts)
    for key in NETWORK_OPTIONS:  # any scenario runs over a faulty network on request
        if key in opts:
            setattr(cfg, key, type(getattr(cfg, key))(opts.pop(key)))
    wall = time.perf_counter()
    sim = Cluster(cfg, trace=trace)
    sim.start()
    plan = mod.plan(sim, opts)
    sim.run_until(plan.until)
    plan.info["_meta_at_until"] = sim.node_bytes(META_KINDS)
    sim.note("activity over: heal, restart")
    sim.net.heal()
    for node in list(sim.nodes):
        if not node.alive and not node.gone:
            sim.restart(node.index)
    sim.run_until(plan.until + plan.settle, stop_when_settled=True)
    settled = sim.settled()
    results, lost = invariants.check(sim)
    for check_name, fn in plan.checks.items():
        results[check_name] = bool(fn())
    report = _report(name, sim, plan, settled, results, lost, time.perf_counter() - wall)
    report["options"] = dict(options or {})
    if keep:
        report["_sim"] = sim
    return report


def _report(name: str, sim: Cluster, plan: Plan, settled: bool, results: dict[str, bool],
            lost: list, wall: float) -> dict[str, Any]:
    from simulations import invariants

    cfg = sim.cfg
    at = sim.converged_at() if settled else None
    last = sim.last_write_at
    convergence = None if at is None else max(0.0, at - (last if last is not None else 0.0))
    tracked = sim.tracked()
    per_node = sim.node_bytes()
    meta = sim.node_bytes(META_KINDS)
    before = plan.info.pop("_meta_at_until", {})
    after_until = [meta[i] - before.get(i, 0) for i in tracked]
    report: dict[str, Any] = {
        "scenario": name,
        "nodes": cfg.nodes,
        "seed": cfg.seed,
        "topology": cfg.topology,
        "converged": settled and all(results.values()),
        "convergence_s": None if convergence is None else round(convergence, 6),
        "gossip_interval_s": cfg.tick,
        "convergence_intervals": None if convergence is None else round(convergence / cfg.tick, 2),
        "last_write_at": last,
        "converged_at": at,
        "settle_s": None if at is None or plan.since is None else round(at - plan.since, 6),
        "sim_time_s": round(sim.loop.now, 6),
        "wall_s": round(wall, 3),
        "events": sim.loop.events_run,
        "messages": sim.net.messages,
        "bytes_total": sim.net.bytes_total,
        "bytes_per_node_max": max((per_node[i] for i in tracked), default=0),
        "meta_bytes_per_node_max": max((meta[i] for i in tracked), default=0),
        "meta_bytes_per_node_mean": round(sum(meta[i] for i in tracked) / max(1, len(tracked))),
        "meta_bytes_per_node_settle_max": max(after_until, default=0),  # after the activity
        "block_bytes_total": sum(sim.net.kind_bytes.get(k, 0) for k in BLOCK_KINDS),
        "delta_answers": sim.net.kind_count.get("DeltaData", 0),  # blocks sent as deltas
        "writes": len(sim.oracle.writes),
        "live_nodes": len(tracked),
        "lost_writes": len(lost),
        "left_with_their_author": sum(w.left_alone for w in sim.oracle.writes),
        "lost": [f"write {w.id} by n{w.node} at {w.path}" for w in lost[:10]],
        "invariants": results,
        "max_link_backlog_s": round(sim.net.max_backlog(), 3),
        "connection_faults": sim.net.broken,
        "peer_errors": sum(len(n.errors) for n in sim.nodes if n.index not in sim.evil),
        "local_errors": sum(len(n.local_errors) for n in sim.nodes),
        "attacks": dict(sorted(sim.oracle.attacks.items())),
        "stale_user_versions": len(sim.oracle.born_stale),
        "settled": settled,
        "power_cuts": sim.power_cuts,
        "power_lost_writes": sum(w.power_lost for w in sim.oracle.writes),
        "disk_full_writes": sim.disk_full,
        "unavailable": invariants.unavailable(sim)[:10],
        "trace_hash": sim.trace_hash,
    }
    report.update(plan.info)
    return report
