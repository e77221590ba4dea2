"""`compare.py` measures a noisy case several times and reports the run of median seconds, with
every run's seconds beside it; a failed run still fails the benchmark. Real `backer run` pairs on
127.0.0.1 with the quick dataset, and the merge on rows as the runs give them."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import compare  # noqa: E402


def _bench(**args) -> compare.Bench:
    defaults = {"quick": False, "cases": list(compare.CASES), "tools": list(compare.TOOLS),
                "repeats": None, "profile": None, "perf": None}
    return compare.Bench(argparse.Namespace(**{**defaults, **args}), Path("/nonexistent"))


def _row(case: str, tool: str, seconds: float | None, error: str | None = None, **more) -> dict:
    return {"case": case, "tool": tool, "seconds": seconds, "wire_bytes": 1, "peak_rss_bytes": 1,
            "error": error, **more}


def test_further_runs_come_in_rounds_of_every_tool_on_fresh_sessions():
    bench = _bench()
    plan = [("large", compare.SESSIONS["large"], Path("d"), tool) for tool in compare.TOOLS]
    more = bench.repeats(plan)
    assert more == [(f"large-{n}", ("initial_large",), Path("d"), tool)
                    for n in (2, 3) for tool in compare.TOOLS]
    assert _bench(quick=True).repeats(plan) == []
    assert len(_bench(quick=True, repeats=2).repeats(plan)) == len(compare.TOOLS)
    assert _bench(cases=["delta_insert"]).repeats(plan) == []


def test_every_case_with_a_throughput_target_is_measured_three_times():
    bench = _bench()
    plan = [(session, compare.SESSIONS[session], Path(session), tool)
            for session in ("small", "tiny", "large", "text") for tool in compare.TOOLS
            if any(tool in compare.APPLIES[c] for c in compare.SESSIONS[session])]
    more = bench.repeats(plan)
    assert {case for _, (case,), _, _ in more} == {"initial_small", "initial_tiny", "initial_large"}
    for session, case in (("small", "initial_small"), ("tiny", "initial_tiny"),
                          ("large", "initial_large")):
        assert [(s, tool) for s, (c,), _, tool in more if c == case] == [
            (f"{session}-{n}", tool) for n in (2, 3) for tool in compare.TOOLS]


def test_the_row_is_the_median_run_and_lists_every_run():
    bench = _bench()
    bench.rows = [_row("initial_large", "rsync", 0.9, cpu_sender_s=1),
                  _row("delta_insert", "rsync", 0.5),
                  _row("initial_large", "rsync", 0.7, cpu_sender_s=2),
                  _row("initial_large", "rsync", 1.4, cpu_sender_s=3)]
    bench.merge_repeats()
    rows = {r["case"]: r for r in bench.rows}
    assert rows["delta_insert"] == _row("delta_insert", "rsync", 0.5)
    large = rows["initial_large"]
    assert (large["seconds"], large["cpu_sender_s"]) == (0.9, 1)  # that run's figures, all of them
    assert large["samples"] == [0.9, 0.7, 1.4]
    assert large["error"] is None


def test_a_failed_run_is_listed_and_fails_the_row():
    bench = _bench()
    bench.rows = [_row("initial_large", "rsync", 0.9), _row("initial_large", "rsync", None, "Timeout: x"),
                  _row("initial_large", "rsync", 0.7)]
    bench.merge_repeats()
    (row,) = bench.rows
    assert row["seconds"] == 0.7  # the lower middle of the two that gave figures
    assert row["samples"] == [0.9, None, 0.7]
    assert row["error"] == "1 of 3 runs failed: Timeout: x"
    bench.rows = [_row("initial_large", "rsync", None, "Timeout: y")]
    bench.merge_repeats()
    assert bench.rows == [_row("initial_large", "rsync", None, "Timeout: y")]


@pytest.mark.timeout(240)
def test_two_real_runs_of_the_large_drop_give_one_row():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "compare.py"), "--quick",
                          "--json", "--cases", "initial_large", "--tools", "gossip-backer",
                          "--repeats", "2"], cwd=REPO, capture_output=True, text=True, timeout=200)
    assert out.returncode == 0, out.stderr[-3000:]
    (row,) = json.loads(out.stdout)["cases"]
    assert row["case"] == "initial_large" and row["error"] is None
    assert len(row["samples"]) == 2 and all(s > 0 for s in row["samples"])
    assert round(row["seconds"], 3) == min(row["samples"])  # the lower middle of two
    assert out.stderr.count("initial_large   gossip-backer") == 2
