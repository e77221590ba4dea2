"""Convergence time and per-node bandwidth against mesh size: `python -m simulations sweep`.

Each size runs the `converge` scenario with one write on a `random:8` mesh (by default) and
reports how long (simulated) until every node holds it, in seconds and in gossip intervals next
to the target 2 x log2(N) intervals, how long it took to compute, and the most bytes any one node
sent and received (all traffic, and metadata gossip alone: over the whole run, which includes
connecting to its peers, and from the write on: what spreading the write cost).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from simulations import run

__all__ = ["sweep", "main", "plot_progress", "plot_sweep"]

COLUMNS = ("nodes", "converged", "convergence_s", "convergence_intervals", "target_intervals",
           "wall_s", "messages", "bytes_per_node_max", "meta_bytes_per_node_max",
           "meta_bytes_per_node_mean", "meta_bytes_per_node_settle_max")


def sweep(sizes: list[int], *, seed: int = 0, topology: str = "random:8",
          writes: int = 1) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        report = run("converge", nodes=n, seed=seed, topology=topology,
                     options={"writes": writes, "size": 4096})
        report["target_intervals"] = round(2 * math.log2(n), 2)
        rows.append(report)
        print(f"N={n}: {report['convergence_s']} s simulated, {report['wall_s']} s wall",
              file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    widths = [max(len(c), *(len(str(r.get(c))) for r in rows)) for c in COLUMNS]
    lines = ["  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths))]
    lines += ["  ".join(str(r.get(c)).rjust(w) for c, w in zip(COLUMNS, widths)) for r in rows]
    return "\n".join(lines)


def plot_sweep(rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["nodes"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    tick = rows[0]["gossip_interval_s"]
    ax1.plot(ns, [r["convergence_s"] or float("nan") for r in rows], "o-", label="measured")
    ax1.plot(ns, [2 * math.log2(n) * tick for n in ns], "--", label="target 2·log2(N) intervals")
    ax1.set_xscale("log")
    ax1.set_xlabel("nodes")
    ax1.set_ylabel("simulated seconds from the write to convergence")
    ax1.legend()
    ax1.grid(True, alpha=0.3)
    meta = [r["meta_bytes_per_node_max"] / 1024 for r in rows]
    ax2.plot(ns, [r["bytes_per_node_max"] / 1024 for r in rows], "o-", label="all traffic (max node)")
    ax2.plot(ns, meta, "s-", label="metadata gossip (max node)")
    ax2.plot(ns, [r["meta_bytes_per_node_mean"] / 1024 for r in rows], "^-",
             label="metadata gossip (mean node)")
    ref = meta[0] / math.log2(ns[0]) if ns[0] > 1 else meta[0]
    ax2.plot(ns, [ref * math.log2(n) for n in ns], "--", label="∝ log2(N)")
    ax2.set_xscale("log")
    ax2.set_xlabel("nodes")
    ax2.set_ylabel("KiB sent + received per node")
    ax2.legend(fontsize=8)
    ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_progress(sim, report: dict[str, Any], path: str) -> None:
    """The fraction of live nodes already in the final state, over simulated time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = sim.up_to_date_series()
    fig, ax = plt.subplots(figsize=(8, 4))
    if series:
        xs = [t for t, _ in series] + [sim.loop.now]
        ys = [f for _, f in series] + [series[-1][1]]
        ax.step(xs, ys, where="post")
    if report.get("last_write_at") is not None:
        ax.axvline(report["last_write_at"], color="grey", ls=":", label="last write")
    if report.get("heal_at") is not None:
        ax.axvline(report["heal_at"], color="green", ls="--", label="heal")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("simulated seconds")
    ax.set_ylabel("fraction of nodes up to date")
    ax.set_title(f"{report['scenario']}: {report['nodes']} nodes, seed {report['seed']}, "
                 f"{report['topology']}")
    ax.legend(loc="lower right")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m simulations sweep")
    p.add_argument("--nodes", default="10,30,100,300,1000")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--topology", default="random:8")
    p.add_argument("--writes", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--plot", default=None)
    args = p.parse_args(argv)
    sizes = [int(x) for x in args.nodes.split(",") if x]
    rows = sweep(sizes, seed=args.seed, topology=args.topology, writes=args.writes)
    if args.json:
        print(json.dumps(rows))
    else:
        print(table(rows))
    if args.plot:
        plot_sweep(rows, args.plot)
    return 0 if all(r["converged"] for r in rows) else 1
