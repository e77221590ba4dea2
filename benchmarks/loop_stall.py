"""How long the trio loop of each node stays blocked during an initial sync of many small files.

Two real `backer run` processes on 127.0.0.1: A holds FILES small files (1-4 KiB) before it
starts, B joins and pulls them all. Each daemon runs under a trio Instrument that times every task
step: a step is the time one task runs before it yields to the loop, so the longest step is the
longest stall (no other task, socket or timer is served meanwhile). Printed per node: the longest
step (and which task), steps over 10/50/100 ms, the time the loop thread itself spent blocked on
the store (its own SQLite calls, waiting for the store's lock or for the store thread included:
the longest one and the total), and the sync's wall time.

    python benchmarks/loop_stall.py [--files 10000] [--json]

(`--meter ROOT OUT [run args...]` is how this script starts each daemon; not for direct use.)
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CUTS = (0.010, 0.050, 0.100)


class StallMeter:
    """A trio Instrument: the longest task step, and how many steps exceed each of CUTS."""

    def __init__(self) -> None:
        self.started = 0.0
        self.longest = 0.0
        self.longest_task = ""
        self.over = [0] * len(CUTS)
        self.steps = 0
        self.by_task: dict[str, float] = {}  # each task's longest step
        self.sql_total = 0.0  # seconds the loop's thread spent in store statements
        self.sql_longest = 0.0
        self.sql_longest_what = ""

    def before_task_step(self, task) -> None:
        self.started = time.perf_counter()

    def after_task_step(self, task) -> None:
        took = time.perf_counter() - self.started
        self.steps += 1
        for i, cut in enumerate(CUTS):
            if took > cut:
                self.over[i] += 1
        if took > self.longest:
            self.longest, self.longest_task = took, task.name
        if took > self.by_task.get(task.name, 0.0):
            self.by_task[task.name] = took

    def report(self) -> dict:
        return {"longest_ms": round(self.longest * 1000, 1), "longest_task": self.longest_task,
                "steps": self.steps, **{f"over_{int(c * 1000)}ms": n for c, n in zip(CUTS, self.over)},
                "sql_on_loop_ms": round(self.sql_total * 1000, 1),
                "sql_longest_on_loop_ms": round(self.sql_longest * 1000, 1),
                "sql_longest_on_loop": self.sql_longest_what,
                "longest_by_task_ms": {name.rsplit(".", 2)[-2] + "." + name.rsplit(".", 1)[-1]:
                                       round(t * 1000, 1) for name, t in sorted(
                                           self.by_task.items(), key=lambda kv: -kv[1])[:4]}}

    def _blocked(self, took: float, what: str) -> None:
        self.sql_total += took
        if took > self.sql_longest:
            self.sql_longest, self.sql_longest_what = took, what

    def time_sql_on(self, thread) -> None:
        """Time every statement the store runs on `thread` (the loop's)."""
        import functools

        from gossip_backer.store.db import Database

        for name in ("query", "run", "run_many"):
            real = getattr(Database, name)

            @functools.wraps(real)
            def timed(db, *args, _real=real, **kw):
                if threading.current_thread() is not thread:
                    return _real(db, *args, **kw)
                t0 = time.perf_counter()
                try:
                    return _real(db, *args, **kw)
                finally:
                    self._blocked(time.perf_counter() - t0, " ".join(str(args[0]).split())[:60])
            setattr(Database, name, timed)
        try:  # the loop waiting for the store thread (our own updates) is the loop blocked too
            from gossip_backer.runtime.storethread import StoreThread
        except ImportError:  # a tree from before the store thread
            return
        real_wait = StoreThread.wait

        def timed_wait(store, *args, **kw):
            if threading.current_thread() is not thread:
                return real_wait(store, *args, **kw)
            t0 = time.perf_counter()
            try:
                return real_wait(store, *args, **kw)
            finally:
                self._blocked(time.perf_counter() - t0, "wait " + getattr(args[0], "__name__", "?"))
        StoreThread.wait = timed_wait


def meter_main(out: str, run_args: list[str]) -> int:
    """Run `backer run ...` in this process with a StallMeter on its trio loop."""
    import trio

    from gossip_backer import cli

    meter = StallMeter()
    meter.time_sql_on(threading.current_thread())
    real_run = trio.run
    trio.run = lambda *a, **kw: real_run(*a, instruments=[meter], **kw)
    atexit.register(lambda: Path(out).write_text(json.dumps(meter.report())))
    return cli.main(["run", *run_args])


def _backer(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "gossip_backer", *args, "--json"],
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def _start(root: Path, out: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--meter", str(out), str(root), "--listen", "127.0.0.1:0",
         "--no-web"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("listening on "):
            return proc, line.split()[-1]
    raise RuntimeError(f"backer run {root} did not start")


def _wait(what: str, predicate, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def run(files: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="backer-stall-") as tmp:
        tmp = Path(tmp)
        a_root, b_root = tmp / "A", tmp / "B"
        _backer("init", str(a_root), "--name", "a")
        for d in range(100):
            (a_root / f"d{d:02d}").mkdir()
        for i in range(files):
            (a_root / f"d{i % 100:02d}" / f"f{i:05d}.txt").write_bytes(os.urandom(1024 + i % 3072))
        a, _ = _start(a_root, tmp / "a.json")
        procs = [a]
        try:
            _wait("A's first scan", lambda: _backer("status", str(a_root))["files"] >= files)
            invite = _backer("invite", str(a_root))["invite"]
            _backer("join", str(b_root), invite, "--name", "b")
            t0 = time.time()
            b, _ = _start(b_root, tmp / "b.json")
            procs.append(b)
            _wait("B in sync", lambda: (lambda s: s["in_sync"] and s["files"] >= files)(
                _backer("status", str(b_root))))
            took = time.time() - t0
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=60)
        return {"files": files, "sync_s": round(took, 1),
                "A": json.loads((tmp / "a.json").read_text()),
                "B": json.loads((tmp / "b.json").read_text())}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--meter"]:
        return meter_main(argv[1], argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = run(args.files)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"initial sync of {result['files']} files: {result['sync_s']} s")
    for node in ("A", "B"):
        r = result[node]
        print(f"  {node}: longest loop stall {r['longest_ms']} ms ({r['longest_task']}), steps over "
              f"10/50/100 ms: {r['over_10ms']}/{r['over_50ms']}/{r['over_100ms']} of {r['steps']}; "
              f"loop blocked on the store: longest {r['sql_longest_on_loop_ms']} ms, "
              f"total {r['sql_on_loop_ms']} ms (longest: {r['sql_longest_on_loop']}); "
              f"longest step by task: {r['longest_by_task_ms']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
