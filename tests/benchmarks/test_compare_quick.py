"""Smoke test of the side-by-side benchmark: `benchmarks/compare.py --quick --json` (small
datasets, real gossip-backer, Syncthing and rsync processes on 127.0.0.1) must give figures for
every case and every tool that applies to it. The figures themselves are not judged here (that is
`make bench`'s job); only that the benchmark keeps working.

Syncthing and rsync come from Debian's packages, installed by .ci/install-bench-tools (CI runs it
before `make test`). This test installs nothing: without them it fails and says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "compare.py"
LIMIT = 175  # seconds: the quick run must stay under 3 minutes

BACKER, ST, ST1, RSYNC = "gossip-backer", "syncthing", "syncthing-1s", "rsync"
ALL = {BACKER, ST, ST1, RSYNC}
MESH = {BACKER, ST, ST1}
# The cases, each with the tools that apply to it.
EXPECTED = {
    "initial_small": ALL, "initial_tiny": ALL, "initial_large": ALL,
    "change_latency": MESH, "delta_inplace": ALL, "delta_insert": ALL, "rename_large": MESH,
    "rescan_idle": ALL, "memory": ALL, "edit_text": {BACKER, ST1, RSYNC},
}


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed: run .ci/install-bench-tools (apt-get installs "
                    "syncthing and rsync from Debian's packages; CI runs it before `make test`)")


@pytest.mark.timeout(LIMIT + 60)
def test_quick_benchmark_gives_figures_for_every_case_and_tool():
    _require("syncthing")
    _require("rsync")
    try:
        out = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json"], cwd=REPO,
                             capture_output=True, text=True, timeout=LIMIT)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-3000:]
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        pytest.fail(f"compare.py --quick took more than {LIMIT} s; its log ends with:\n{tail}")
    assert out.returncode in (0, 1), f"compare.py -> {out.returncode}:\n{out.stderr[-3000:]}"
    doc = json.loads(out.stdout)
    rows = {(r["case"], r["tool"]): r for r in doc["cases"]}

    problems = []
    for case, tools in EXPECTED.items():
        for tool in sorted(tools):
            row = rows.get((case, tool))
            if row is None:
                problems.append(f"{case}/{tool}: no row")
                continue
            if row.get("error"):
                problems.append(f"{case}/{tool}: {row['error']}")
                continue
            wanted = ("peak_rss_bytes",) if case == "memory" else (
                "seconds", "wire_bytes", "peak_rss_bytes")
            for key in wanted:
                value = row.get(key)
                if not isinstance(value, (int, float)) or value < 0:
                    problems.append(f"{case}/{tool}: {key} is {value!r}")
            if row.get("peak_rss_bytes") == 0:
                problems.append(f"{case}/{tool}: a peak RSS of 0")
            if case.startswith("initial_") and not row.get("wire_bytes"):
                problems.append(f"{case}/{tool}: nothing crossed the wire")
    assert not problems, "compare.py --quick gave no figures for:\n  " + "\n  ".join(problems) + \
        f"\n--- its log:\n{out.stderr[-3000:]}"
    assert set(rows) == {(c, t) for c, ts in EXPECTED.items() for t in ts}, "unexpected rows"

    # the ratios gossip-backer / Syncthing and gossip-backer / rsync, where both apply
    ratios = {(r["case"], r["against"]) for r in doc["ratios"]}
    for case, tools in EXPECTED.items():
        for ref in tools - {BACKER}:
            assert (case, ref) in ratios, f"no ratio for {case} against {ref}"
    assert {t["case"] for t in doc["targets"]} == {
        "initial_small", "initial_tiny", "initial_large", "change_latency", "delta_inplace",
        "delta_insert", "rename_large", "memory", "edit_text"}
    assert out.returncode == 0
