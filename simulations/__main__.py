"""python -m simulations SCENARIO [--nodes N] [--seed S | --seeds A-B] [--topology T] [--json]
                                 [--plot FILE.png] [--trace FILE] [--option KEY=VALUE]... [--record]
   python -m simulations sweep --nodes 10,30,100 [--seed S] [--topology T] [--json] [--plot FILE]
   python -m simulations soak [--seeds N] [--size soak|default] [--workers 2] [--scenarios a,b]

One run prints one report (JSON with --json); a failing run prints the command that replays it
on stderr and exits 1. `--seeds A-B` plays every seed in the range and reports the failures;
`--record` appends failing seeds to simulations/seeds.txt, which the tests replay.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from simulations import SCENARIOS, command_line, run

SEEDS_FILE = Path(__file__).with_name("seeds.txt")


def _value(text: str) -> Any:
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def _options(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--option wants KEY=VALUE, got {item!r}")
        out[key] = _value(value)
    return out


def _seed_range(text: str) -> range:
    lo, sep, hi = text.partition("-")
    return range(int(lo), int(hi) + 1) if sep else range(int(lo))


def _human(report: dict) -> str:
    keys = ("scenario", "nodes", "seed", "topology", "converged", "convergence_s",
            "convergence_intervals", "settle_s", "wall_s", "messages", "bytes_total",
            "bytes_per_node_max", "meta_bytes_per_node_max", "lost_writes", "trace_hash")
    lines = [f"{k:>26}: {report.get(k)}" for k in keys]
    lines += [f"{'invariant ' + k:>36}: {'ok' if v else 'FAILED'}"
              for k, v in report["invariants"].items()]
    return "\n".join(lines)


def record_failure(report: dict) -> None:
    options = "".join(f" {k}={v}" for k, v in sorted(report.get("options", {}).items()))
    line = (f"{report['scenario']} {report['nodes']} {report['seed']} {report['topology']}{options}"
            f"  # open: {', '.join(k for k, v in report['invariants'].items() if not v)}\n")
    with open(SEEDS_FILE, "a") as f:
        f.write(line)


def main_scenario(args: argparse.Namespace) -> int:
    options = _options(args.option)
    if args.seeds:
        return _many(args, options)
    trace = open(args.trace, "w") if args.trace else None
    try:
        report = run(args.scenario, nodes=args.nodes, seed=args.seed, topology=args.topology,
                     options=options, trace=trace, keep=bool(args.plot))
    finally:
        if trace is not None:
            trace.close()
    sim = report.pop("_sim", None)
    if args.plot and sim is not None:
        from simulations.sweep import plot_progress

        plot_progress(sim, report, args.plot)
    print(json.dumps(report) if args.json else _human(report))
    if not report["converged"]:
        print(f"FAILED seed: {command_line(report)}", file=sys.stderr)
        if args.record:
            record_failure(report)
        return 1
    return 0


def _many(args: argparse.Namespace, options: dict) -> int:
    failures, slowest, worst = [], 0.0, 0.0
    seeds = _seed_range(args.seeds)
    for seed in seeds:
        report = run(args.scenario, nodes=args.nodes, seed=seed, topology=args.topology,
                     options=options)
        slowest = max(slowest, report["wall_s"])
        if report["convergence_s"] is not None:
            worst = max(worst, report.get("settle_s") or report["convergence_s"])
        if not report["converged"]:
            failures.append(report)
            print(f"FAILED seed: {command_line(report)}  "
                  f"{[k for k, v in report['invariants'].items() if not v]}", file=sys.stderr,
                  flush=True)
            if args.record:
                record_failure(report)
    summary = {"scenario": args.scenario, "nodes": args.nodes, "topology": args.topology,
               "seeds": f"{seeds.start}-{seeds.stop - 1}", "runs": len(seeds),
               "failed": [r["seed"] for r in failures], "passed": len(seeds) - len(failures),
               "worst_settle_s": round(worst, 3), "slowest_wall_s": slowest}
    print(json.dumps(summary) if args.json else "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "soak":
        from simulations.soak import main as soak_main

        return soak_main(argv[1:])
    if argv and argv[0] == "sweep":
        from simulations.sweep import main as sweep_main

        return sweep_main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m simulations", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=SCENARIOS)
    p.add_argument("--nodes", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", default=None, help="a range A-B (or a count N: 0..N-1)")
    p.add_argument("--topology", default=None, help="full, ring, star or random:K")
    p.add_argument("--json", action="store_true")
    p.add_argument("--plot", default=None, help="PNG of up-to-date nodes over time")
    p.add_argument("--trace", default=None, help="write every delivery and action to FILE")
    p.add_argument("--option", action="append", default=[], help="scenario option KEY=VALUE")
    p.add_argument("--record", action="store_true", help="append failing seeds to seeds.txt")
    args = p.parse_args(argv)
    if args.nodes is None:
        from simulations import load

        args.nodes = load(args.scenario).DEFAULTS["nodes"]
    if args.topology is None:
        from simulations import load

        args.topology = load(args.scenario).DEFAULTS["topology"]
    return main_scenario(args)


if __name__ == "__main__":
    sys.exit(main())
