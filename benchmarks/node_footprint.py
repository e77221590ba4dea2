"""Footprint of real `backer run` processes: idle CPU and memory of a node with two peers, and the
memory of a node holding many files. Prints a table, or one JSON object with --json.

    python benchmarks/node_footprint.py [--idle-seconds 60] [--files 100000] [--settle-seconds 20]
                                        [--watch-seconds 90] [--rss-at 20,45,90] [--json]

`rss_bytes` is read as soon as `status` counts every file, published (the node may still be busy: its
second full scan starts 0.5 s after the first), `settled_rss_bytes` --settle-seconds later; then
the node is stopped and started again (`restart_*`: until `status` counts every file, and the
RSS --settle-seconds after that).

The RSS is followed every 0.5 s until --watch-seconds after the files are published, so that a
reading at one moment cannot hide a later jump (the folder's full refresh runs every 30 s, say):
`settled_max_rss_bytes` is the highest RSS seen from --settle-seconds on, `rss_at` the RSS at
each second of --rss-at (`restart_settled_max_rss_bytes` and `restart_rss_at` likewise).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = [sys.executable, "-m", "gossip_backer"]
TICKS = os.sysconf("SC_CLK_TCK")


def cli(*args: str) -> dict:
    return json.loads(subprocess.run([*PY, *args, "--json"], check=True, capture_output=True, text=True).stdout)


def start(root: Path) -> subprocess.Popen:
    p = subprocess.Popen([*PY, "run", str(root), "--listen", "127.0.0.1:0", "--no-web"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    while not p.stdout.readline().startswith("listening on "):
        pass
    return p


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1]) * 1024
    return out


def follow(pid: int, settle: float, watch: float, at: list[float]) -> dict:
    """Read the RSS every 0.5 s from now until `watch` seconds (at least `settle` and the last
    of `at`): the RSS at `settle` and at each of `at`, and the highest seen from `settle` on."""
    t0, samples = time.time(), []
    end = max(settle, watch, *at)
    while True:
        t = time.time() - t0
        samples.append((t, memory(pid)["VmRSS"]))
        if t >= end:
            break
        time.sleep(min(0.5, max(0.0, end - t)))
    return {"settled_rss_bytes": rss_at(samples, settle),
            "settled_max_rss_bytes": max(r for t, r in samples if t >= settle - 0.5),
            "rss_at": {f"{s:g}": rss_at(samples, s) for s in at}}


def rss_at(samples: list[tuple[float, int]], second: float) -> int:
    """The first RSS read at or after `second` (samples are (seconds, bytes), in time order)."""
    return next((r for t, r in samples if t >= second), samples[-1][1])


def wait(predicate, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError


def idle(base: Path, seconds: float) -> dict:
    roots = [base / n for n in "ABC"]
    cli("init", str(roots[0]))
    procs = [start(roots[0])]
    try:
        for prev, root in zip(roots, roots[1:]):
            wait(lambda: _try_invite(prev) is not None, 30)
            cli("join", str(root), _try_invite(prev))
            procs.append(start(root))
        wait(lambda: all(sum(p["connected"] for p in cli("status", str(r))["peers"]) == 2 for r in roots), 60)
        time.sleep(5)
        pid = procs[0].pid
        c0, t0 = cpu_seconds(pid), time.time()
        time.sleep(seconds)
        used = cpu_seconds(pid) - c0
        return {"idle_seconds": round(time.time() - t0, 1), "idle_cpu_seconds": round(used, 3),
                "idle_cpu_percent": round(100 * used / (time.time() - t0), 3),
                "idle_rss_bytes": memory(pid)["VmRSS"]}
    finally:
        _stop(procs)


def _try_invite(root: Path) -> str | None:
    out = subprocess.run([*PY, "invite", str(root), "--json"], capture_output=True, text=True)
    return json.loads(out.stdout)["invite"] if out.returncode == 0 else None


def many_files(base: Path, n: int, settle: float, watch: float = 0.0,
               at: tuple[float, ...] = ()) -> dict:
    root = base / "many"
    cli("init", str(root))
    for i in range(n):
        d = root / f"d{i % 1000:03d}"
        if i < 1000:
            d.mkdir()
        (d / f"f{i}.txt").write_bytes(b"x" * (i % 200))
    t0 = time.time()
    p = start(root)
    try:
        wait(lambda: _published(root, n), 1800)
        took = time.time() - t0
        mem = memory(p.pid)
        # by `settle` the second full scan (0.5 s after the first) and its trim are over
        seen = follow(p.pid, settle, watch, list(at))
        out = {"files": n, "first_scan_and_publish_seconds": round(took, 1),
               "rss_bytes": mem["VmRSS"], "peak_rss_bytes": mem["VmHWM"], **seen}
    finally:
        _stop([p])
    t0 = time.time()
    p = start(root)  # a restart: the node loads its update log and index, then rescans
    try:
        wait(lambda: _published(root, n), 1800)
        took = time.time() - t0
        seen = follow(p.pid, settle, watch, list(at))
        return {**out, "restart_seconds": round(took, 1), **{f"restart_{k}": v for k, v in seen.items()},
                "restart_peak_rss_bytes": memory(p.pid)["VmHWM"]}
    finally:
        _stop([p])


def _published(root: Path, n: int) -> bool:
    """Does the node hold `n` files, all published (`in_sync`: our versions are signed in the
    background after the scan counted the files)? False while it is too busy to answer."""
    try:
        status = cli("status", str(root))
    except subprocess.CalledProcessError:
        return False
    return status["files"] == n and status["in_sync"]


def _stop(procs: list) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle-seconds", type=float, default=60)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--settle-seconds", type=float, default=20,
                    help="after the files are published, wait this long, then read RSS again")
    ap.add_argument("--watch-seconds", type=float, default=90,
                    help="follow the RSS until this long after the files are published")
    ap.add_argument("--rss-at", default="20,45,90",
                    help="seconds after the files are published at which the RSS is reported")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="backer-footprint-"))
    try:
        result = {**idle(base, args.idle_seconds), **many_files(
            base, args.files, args.settle_seconds, args.watch_seconds,
            tuple(float(s) for s in args.rss_at.split(",") if s))}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:34} {v}")


if __name__ == "__main__":
    main()
