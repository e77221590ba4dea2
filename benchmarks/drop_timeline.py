"""Where the time of one tree drop goes: two real `backer run` nodes, a dataset of compare.py
(`small` by default) moved into the sender's folder, and then, in 0.1 s steps from the move, how
many files the sender announced (`file_changed`) and the receiver placed (`file_updated`), when
each was done, and the CPU seconds of every thread of both daemons (user / system).

    python benchmarks/drop_timeline.py [--dataset small|tiny] [--runs 3] [--workdir DIR]

It answers what compare.py's single figure cannot: whether the receiver waits for the sender's
scan, or the sender for the receiver. Run it from outside a checkout to time another build
(`PYTHONPATH=/path/to/checkout`): the daemons import the package as this process does.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tools import datasets  # noqa: E402
from tools.backer import BackerPair, wait_until  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
STEP = 0.1  # seconds per column of the timeline


def _events(root: Path, seen: list[tuple[float, str]]) -> None:
    """(thread) Every event of the node at `root`, with the time it arrived."""
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(root / ".backer" / "control.sock"))
    sock.sendall(b'{"cmd": "events"}\n')
    for line in sock.makefile("rb"):
        try:
            seen.append((time.perf_counter(), json.loads(line).get("type", "")))
        except ValueError:
            continue


def _threads_cpu(pid: int) -> dict[str, list[float]]:
    """Thread name -> [user, system] seconds, summed over threads of the same name."""
    out: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        out[name][0] += int(fields[11]) / TICKS
        out[name][1] += int(fields[12]) / TICKS
    return out


def _used(before: dict, after: dict) -> dict[str, list[float]]:
    return {name: [u - before.get(name, [0, 0])[0], s - before.get(name, [0, 0])[1]]
            for name, (u, s) in after.items()}


def one_drop(base: Path, dataset: Path) -> None:
    work = Path(tempfile.mkdtemp(dir=base))
    stage = work / "stage"
    shutil.copytree(dataset, stage)
    sizes = [p.stat().st_size for p in (stage / datasets.DATA).rglob("*") if p.is_file()]
    files = len(sizes)
    pair = BackerPair(work / "pair")
    try:
        pair.setup()
        seen = {"A": [], "B": []}
        for side, root in (("A", pair.a_root), ("B", pair.b_root)):
            threading.Thread(target=_events, args=(root, seen[side]), daemon=True).start()
        os.sync()  # the staged copy's writeback must not land inside the drop
        time.sleep(0.3)
        cpu0 = {side: _threads_cpu(pid) for side, pid in zip("AB", pair.pids())}
        t0 = time.perf_counter()
        os.rename(stage / datasets.DATA, pair.a_root / datasets.DATA)
        wait_until(lambda: pair.receiver_has(files, sum(sizes)), 300, 0.05,
                   "the receiver has every file")
        seconds = time.perf_counter() - t0
        cpu1 = {side: _threads_cpu(pid) for side, pid in zip("AB", pair.pids())}
        time.sleep(0.2)  # the last events' lines
    finally:
        pair.close()
    print(f"drop of {files} files: {seconds:.3f} s")
    for side, kind in (("A", "file_changed"), ("B", "file_updated")):
        times = [t - t0 for t, k in seen[side] if k == kind]
        steps = collections.Counter(int(t / STEP) for t in times)
        used = _used(cpu0[side], cpu1[side])
        print(f"  {side} {kind}: first {min(times, default=0):.2f} s, last {max(times, default=0):.2f}"
              f" s; per {STEP} s: " + " ".join(f"{k * STEP:.1f}:{steps[k]}" for k in sorted(steps)))
        print(f"  {side} CPU {sum(u + s for u, s in used.values()):.2f} s: " + ", ".join(
            f"{name} {u:.2f}/{s:.2f}" for name, (u, s) in
            sorted(used.items(), key=lambda kv: -sum(kv[1])) if u + s > 0))
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=("small", "tiny"), default="small")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", help="parent of the temporary folder (default: the system's)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="backer-timeline-", dir=args.workdir))
    try:
        dataset = datasets.ensure(base / "data", args.dataset, datasets.FULL)
        for _ in range(args.runs):
            one_drop(base, dataset)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
