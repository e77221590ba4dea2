"""One large file between two `backer run` nodes, for several builds of gossip-backer side by side.

    python benchmarks/bulk.py [--size MiB] [--rounds N] [--python PY]... [--profile DIR]

Each round, for each interpreter given (`--python`, default: this checkout's venv; give another
checkout's `.venv/bin/python` to compare against it in the same run), starts a fresh pair of nodes
(B the founder receives, A joins and sends; the same set-up as `compare.py`), drops one file of
random bytes into A's root (one rename of a staged folder) and times it until B holds it and is
in sync. Prints per run: seconds, when A had published it (scan and hash done), when B's temp
file got its first bytes and all of them and when the file was in place, CPU seconds of
each daemon, each daemon's peak RSS, and A's RSS a few seconds after it sent the file (the memory
a sender keeps, most of `delta_inplace`'s peak). Builds alternate within each round, so the
machine's load falls on all of them alike. `--profile DIR` records py-spy (GIL holder only,
`--gil`) of both daemons per run, `--perf DIR` perf samples (native, kernel included).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tools import backer as backer_tool  # noqa: E402
from tools.common import cleanup, wait_until  # noqa: E402

MiB = 1 << 20


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def reset_hwm(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


class Timeline:
    """When the receiver's temp file first had bytes, when they all were written (its allocated
    blocks: the temp file has its full length from the start), and when the file was in place:
    polled every 5 ms in a thread (a scandir of one folder, cheap)."""

    def __init__(self, folder: Path, name: str, size: int, t0: float) -> None:
        self.folder, self.name, self.size, self.t0 = folder, name, size, t0
        self.first = self.full = self.placed = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set() and self.placed is None:
            try:
                entries = [(e.name, e.stat().st_blocks * 512) for e in os.scandir(self.folder)]
            except OSError:
                entries = []
            now = time.perf_counter() - self.t0
            for name, size in entries:
                if name.startswith(".backer-tmp-"):
                    if size and self.first is None:
                        self.first = now
                    if size >= self.size and self.full is None:
                        self.full = now
                elif name == self.name and size >= self.size:
                    self.placed = now
            time.sleep(0.005)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {"first_byte": self.first, "tmp_full": self.full, "placed": self.placed}


def make_data(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MiB)
            f.write(os.urandom(n))
            left -= n


def one_run(python: str, data: Path, work: Path, profile: Path | None, tag: str,
            perf: Path | None = None) -> dict:
    os.environ["BACKER_PYTHON"] = python
    pair = backer_tool.BackerPair(work, name=tag)
    spies = []
    try:
        pair.setup()
        a, b = pair.a, pair.b
        stage = work / "stage"
        (stage / "data").mkdir(parents=True)
        shutil.copyfile(data, stage / "data" / "big.bin")
        os.sync()
        size = data.stat().st_size
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            for side, node in (("A", a), ("B", b)):
                spies.append(subprocess.Popen(
                    [str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
                     str(node.pid), "--rate", "250", "--format", "raw", "--gil", "--output",
                     str(profile / f"{tag}-{side}.txt")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(1.0)
        if perf is not None:
            perf.mkdir(parents=True, exist_ok=True)
            for side, node in (("A", a), ("B", b)):
                spies.append(subprocess.Popen(
                    ["perf", "record", "-F", "499", "-g", "-p", str(node.pid), "-o",
                     str(perf / f"{tag}-{side}.perf")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(0.5)
        rss_before = status_kib(a.pid, "VmRSS") * 1024
        for node in (a, b):
            reset_hwm(node.pid)
        cpu0 = [cpu_seconds(n.pid) for n in (a, b)]
        t0 = time.perf_counter()
        timeline = Timeline(b.root / "data", "big.bin", size, t0)
        os.rename(stage / "data", a.root / "data")
        published = None
        while True:
            if published is None:
                st = a.status()
                if st["files"] == 1 and st["bytes"] == size:
                    published = time.perf_counter() - t0
            st = b.status()
            if st["files"] == 1 and st["bytes"] == size and st["in_sync"]:
                break
            if time.perf_counter() - t0 > 300:
                raise RuntimeError("no sync within 300 s")
            time.sleep(0.1)
        seconds = time.perf_counter() - t0
        marks = timeline.stop()
        cpu1 = [cpu_seconds(n.pid) for n in (a, b)]
        hwm = [status_kib(n.pid, "VmHWM") * 1024 for n in (a, b)]
        for p in spies:
            p.send_signal(2)
        for p in spies:
            p.wait(timeout=60)
        time.sleep(3.0)
        rss_after = status_kib(a.pid, "VmRSS") * 1024
        wait_until(lambda: (b.root / "data" / "big.bin").stat().st_size == size, 10)
        return {"tag": tag, "seconds": seconds, "published": published,
                "cpu_sender_s": cpu1[0] - cpu0[0], "cpu_receiver_s": cpu1[1] - cpu0[1],
                "hwm_sender": hwm[0], "hwm_receiver": hwm[1], "rss_sender_before": rss_before,
                "rss_sender_after": rss_after, **marks}
    finally:
        pair.close()
        shutil.rmtree(work, ignore_errors=True)


def _mark(seconds: float | None) -> str:
    """A timeline mark, or "-" where the 5 ms polling missed it (a temp file placed at once)."""
    return "    -" if seconds is None else f"{seconds:5.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=512, help="MiB (default 512)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--python", action="append", help="interpreter of a build (repeatable)")
    p.add_argument("--profile", help="py-spy (--gil) raw stacks of both daemons into DIR")
    p.add_argument("--perf", help="perf record -g of both daemons into DIR")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    pythons = args.python or [backer_tool.python()]
    base = Path(tempfile.mkdtemp(prefix="backer-bulk-"))
    os.chdir(base)  # `python -m gossip_backer` would import the package in the current folder
    rows = []
    try:
        data = base / "big.bin"
        make_data(data, args.size * MiB)
        for r in range(args.rounds):
            for i, py in enumerate(pythons):
                tag = f"b{i}r{r}"
                row = one_run(py, data, base / tag,
                              Path(args.profile) / tag if args.profile else None, tag,
                              Path(args.perf) if args.perf else None)
                row["python"] = py
                rows.append(row)
                print(f"{py:45s} {row['seconds']:6.2f} s  published {row['published'] or 0:5.2f} s"
                      f"  B first byte {_mark(row['first_byte'])} all written {_mark(row['tmp_full'])}"
                      f" placed {_mark(row['placed'])}"
                      f"  CPU A {row['cpu_sender_s']:5.2f} B {row['cpu_receiver_s']:5.2f}"
                      f"  HWM A {row['hwm_sender'] / MiB:5.1f} B {row['hwm_receiver'] / MiB:5.1f}"
                      f"  A before {row['rss_sender_before'] / MiB:5.1f} after {row['rss_sender_after'] / MiB:5.1f} MiB"
                      f"  load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    finally:
        cleanup()
        shutil.rmtree(base, ignore_errors=True)
    for i, py in enumerate(pythons):
        mine = [r for r in rows if r["python"] == py]
        print(f"{py}: median {statistics.median(r['seconds'] for r in mine):.2f} s, CPU A "
              f"{statistics.median(r['cpu_sender_s'] for r in mine):.2f} B "
              f"{statistics.median(r['cpu_receiver_s'] for r in mine):.2f}")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
