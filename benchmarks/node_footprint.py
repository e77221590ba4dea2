"""Footprint of real `backer run` processes: idle CPU and memory of a node with two peers, and the
memory of a node holding many files. Prints a table, or one JSON object with --json.

    python benchmarks/node_footprint.py [--idle-seconds 60] [--files 100000] [--settle-seconds 20]
                                        [--json]

`rss_bytes` is read as soon as `status` counts every file, published (the node may still be busy: its
second full scan starts 0.5 s after the first), `settled_rss_bytes` --settle-seconds later; then
the node is stopped and started again (`restart_*`: until `status` counts every file, and the
RSS --settle-seconds after that).
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


def many_files(base: Path, n: int, settle: float) -> dict:
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
        time.sleep(settle)  # the second full scan (0.5 s after the first) and its trim are over
        out = {"files": n, "first_scan_and_publish_seconds": round(took, 1),
               "rss_bytes": mem["VmRSS"], "peak_rss_bytes": mem["VmHWM"],
               "settled_rss_bytes": memory(p.pid)["VmRSS"]}
    finally:
        _stop([p])
    t0 = time.time()
    p = start(root)  # a restart: the node loads its update log and index, then rescans
    try:
        wait(lambda: _published(root, n), 1800)
        took = time.time() - t0
        time.sleep(settle)
        mem = memory(p.pid)
        return {**out, "restart_seconds": round(took, 1), "restart_settled_rss_bytes": mem["VmRSS"],
                "restart_peak_rss_bytes": mem["VmHWM"]}
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
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="backer-footprint-"))
    try:
        result = {**idle(base, args.idle_seconds), **many_files(base, args.files, args.settle_seconds)}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:34} {v}")


if __name__ == "__main__":
    main()
