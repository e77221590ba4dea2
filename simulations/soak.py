"""python -m simulations soak [--seeds N] [--scenarios a,b] [--workers 2] [--size default|soak]
                              [--json] [--first S]

Every scenario over many seeds (issue 10's campaign; `make soak SEEDS=N`), in worker processes,
then one table: scenario, seeds, lost writes, stuck meshes (did not settle), worst settle time,
failing seeds (the first few, each replayable with `python -m simulations SCENARIO --seed S`
plus the options printed), wall time. A run that raises counts as failed and stuck.

Sizes: `--size default` plays each scenario at its DEFAULTS; `--size soak` (the default) at the
smaller SOAK_SIZES below, chosen so that 10,000 seeds of every scenario fit in hours, not days,
on two cores (README, "Soak"). A failing seed found at soak size replays at that size only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
import traceback
from typing import Any

SOAK_SCENARIOS = ("converge", "partition_heal", "churn", "concurrent_edit", "offline_edit",
                  "crash_restart", "evil_peer", "slow_link", "live_edit", "restore")

# Smaller meshes and shorter activity for soaking: the same faults, a fraction of the events.
SOAK_SIZES: dict[str, dict[str, Any]] = {
    "converge": {"nodes": 6},
    "partition_heal": {"nodes": 6, "cut": 20.0},
    "churn": {"nodes": 8, "duration": 30.0, "writes": 8, "crashes": 4},
    "concurrent_edit": {"nodes": 5, "duration": 10.0, "size": 20000, "rate": 0.5},
    "offline_edit": {"nodes": 4, "rounds": 1},
    "crash_restart": {"nodes": 5, "duration": 25.0, "writes": 12, "crashes": 5, "size": 100000},
    "evil_peer": {"nodes": 5, "duration": 30.0, "revoke_at": 18.0, "writes": 5},
    "slow_link": {"nodes": 4, "files": 40, "big": 128 * 1024},
    "live_edit": {"nodes": 4, "duration": 20.0},
    "restore": {"nodes": 4, "rounds": 2},
}


def _sizes(scenario: str, size: str) -> tuple[int | None, dict[str, Any]]:
    if size == "default":
        return None, {}
    opts = dict(SOAK_SIZES.get(scenario, {}))
    return opts.pop("nodes", None), opts


def play(task: tuple[str, int, str]) -> dict[str, Any]:
    """One seed of one scenario -> a short result (picklable, for the pool)."""
    from simulations import command_line, run

    scenario, seed, size = task
    nodes, options = _sizes(scenario, size)
    started = time.perf_counter()
    try:
        r = run(scenario, nodes=nodes, seed=seed, options=options)
    except Exception as exc:  # a node that raises: the run is lost, say which and why
        line = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return {"scenario": scenario, "seed": seed, "ok": False, "settled": False,
                "lost": 0, "settle_s": None, "wall_s": time.perf_counter() - started,
                "error": line[:200], "replay": None}
    return {"scenario": scenario, "seed": seed, "ok": bool(r["converged"]),
            "settled": bool(r["settled"]), "lost": r["lost_writes"],
            "settle_s": r["settle_s"] if r["settle_s"] is not None else r["convergence_s"],
            "wall_s": r["wall_s"], "error": None, "replay": command_line(r)}


def soak(scenarios: list[str], seeds: range, *, workers: int = 2, size: str = "soak",
         progress: Any = None) -> list[dict[str, Any]]:
    """Play every (scenario, seed); returns one row per scenario (see `table`)."""
    tasks = [(sc, seed, size) for sc in scenarios for seed in seeds]
    rows = {sc: {"scenario": sc, "seeds": 0, "failed": 0, "lost_writes": 0, "stuck": 0,
                 "worst_settle_s": 0.0, "failing_seeds": [], "errors": [], "wall_s": 0.0}
            for sc in scenarios}
    started = time.perf_counter()
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = list(_collect(pool.imap_unordered(play, tasks, chunksize=4), progress,
                                            len(tasks)))
    else:
        results = list(_collect(map(play, tasks), progress, len(tasks)))
    for res in sorted(results, key=lambda r: (r["scenario"], r["seed"])):
        row = rows[res["scenario"]]
        row["seeds"] += 1
        row["wall_s"] += res["wall_s"]  # CPU-ish: the sum over workers
        row["lost_writes"] += res["lost"]
        row["stuck"] += not res["settled"]
        if res["settle_s"] is not None:
            row["worst_settle_s"] = max(row["worst_settle_s"], res["settle_s"])
        if not res["ok"]:
            row["failed"] += 1
            row["failing_seeds"].append(res["seed"])
            if res["error"] and len(row["errors"]) < 3:
                row["errors"].append(f"seed {res['seed']}: {res['error']}")
    out = list(rows.values())
    for row in out:
        row["s_per_seed"] = round(row["wall_s"] / max(1, row["seeds"]), 3)
        row["wall_s"] = round(row["wall_s"], 1)
        row["worst_settle_s"] = round(row["worst_settle_s"], 3)
    out.append({"scenario": "(total)", "seeds": len(tasks), "elapsed_s":
                round(time.perf_counter() - started, 1), "workers": workers})
    return out


PROGRESS_EVERY = 250


def _collect(results, progress, total: int = 0):
    """Pass results through, printing failures at once and a count every PROGRESS_EVERY runs
    (a soak of 10,000 seeds runs for an hour: it must be watchable)."""
    started = time.perf_counter()
    failed = 0
    for k, res in enumerate(results, 1):
        failed += not res["ok"]
        if progress is not None and not res["ok"]:
            print(f"FAILED {res['scenario']} seed {res['seed']}: {res['error'] or res['replay']}",
                  file=progress, flush=True)
        if progress is not None and k % PROGRESS_EVERY == 0:
            print(f"{k}/{total} runs, {failed} failed, {time.perf_counter() - started:.0f} s",
                  file=progress, flush=True)
        yield res


def table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'scenario':<16} {'seeds':>6} {'lost writes':>11} {'stuck':>6} {'failed':>6} "
            f"{'worst settle s':>14} {'s/seed':>7} {'run s':>8}  failing seeds (first 8)")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["scenario"] == "(total)":
            lines.append(f"{r['seeds']} runs in {r['elapsed_s']} s of wall time, "
                         f"{r['workers']} worker(s)")
            continue
        lines.append(f"{r['scenario']:<16} {r['seeds']:>6} {r['lost_writes']:>11} {r['stuck']:>6} "
                     f"{r['failed']:>6} {r['worst_settle_s']:>14} {r['s_per_seed']:>7} "
                     f"{r['wall_s']:>8}  {r['failing_seeds'][:8]}")
        lines.extend(f"{'':<16} {e}" for e in r["errors"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulations soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10000, help="seeds per scenario (0..N-1)")
    p.add_argument("--first", type=int, default=0, help="the first seed")
    p.add_argument("--scenarios", default=",".join(SOAK_SCENARIOS))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--size", choices=("soak", "default"), default="soak")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    from simulations import SCENARIOS

    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; one of {', '.join(SCENARIOS)}")
    rows = soak(scenarios, range(args.first, args.first + args.seeds), workers=args.workers,
                size=args.size, progress=sys.stderr)
    print(json.dumps(rows) if args.json else table(rows))
    return 1 if any(r.get("failed") for r in rows) else 0
