"""gossip-backer side by side with Syncthing and rsync, on 127.0.0.1 (see benchmarks/README.md).

    python benchmarks/compare.py [--quick] [--json] [--cases a,b,...] [--tools a,b,...]
                                 [--keep] [--workdir DIR] [--profile DIR [--profile-gil] [--profile-timeline]]
                                 [--perf DIR] [--repeats N]

Cases (each with the tools that apply; datasets generated from a seed under a temporary folder):
  initial_small   2,000 files of 1-256 KiB dropped into a synced, empty folder
  initial_tiny    10,000 files of 1-4 KiB in 100 folders, likewise
  initial_large   one 512 MiB file, likewise
                  (each of these three: each tool three times, in turns; the run of median
                  seconds is reported, every run's in `samples`)
  change_latency  one small file saved in a synced tree until it is complete on the other node
                  (median of 10)
  delta_inplace   1 MiB overwritten in the middle of the 512 MiB file
  delta_insert    100 bytes inserted at 100 MiB of the 512 MiB file
  rename_large    the 512 MiB file renamed
  rescan_idle     a full rescan of the 10,000 unchanged files
  memory          peak RSS of each daemon during initial_tiny
  edit_text       300 source files of 10-100 KiB in sync, then 100 rounds of a few lines changed
                  in 3-10 of them: wire bytes (against the gzip-compressed diff) and per-round
                  latency (median)
Tools: gossip-backer (two `backer run`), syncthing (two instances, default fsWatcherDelayS=10),
syncthing-1s (the same with fsWatcherDelayS=1), rsync (daemon mode; one-way copies and deltas).

For each case and tool: seconds, bytes on the wire, peak RSS; then gossip-backer's ratios to
Syncthing and to rsync, and the issue's targets. A table on stdout, or one JSON document with
--json: {"cases": [{"case", "tool", "seconds", "wire_bytes", "peak_rss_bytes", ...}],
"ratios": [{"case", "against", "seconds", "wire_bytes", "peak_rss_bytes"}], "targets": [...],
"env": {...}}. Progress goes to stderr. --quick: small datasets, 2 saves for change_latency (the
smoke test of `make test`). Exit status 0 when every row has its figures (targets do not change
it), 1 otherwise, 2 when syncthing or rsync is not installed (run .ci/install-bench-tools).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tools import datasets  # noqa: E402
from tools import backer as backer_tool  # noqa: E402
from tools import rsyncd, syncthing  # noqa: E402
from tools.common import (PeakRss, Timeout, cleanup, cpu_seconds, dir_stats, same_tree,  # noqa: E402
                          settle, steal_seconds, wait_until)

BACKER, ST, ST1, RSYNC = "gossip-backer", "syncthing", "syncthing-1s", "rsync"
TOOLS = (BACKER, ST, ST1, RSYNC)
MESH = (BACKER, ST, ST1)
CASES = ("initial_small", "initial_tiny", "initial_large", "change_latency", "delta_inplace",
         "delta_insert", "rename_large", "rescan_idle", "memory", "edit_text")
APPLIES = {
    "initial_small": TOOLS, "initial_tiny": TOOLS, "initial_large": TOOLS,
    "change_latency": MESH,  # rsync watches nothing
    "delta_inplace": TOOLS, "delta_insert": TOOLS,
    "rename_large": MESH,  # rsync has no rename detection (it would send the file again)
    "rescan_idle": TOOLS,  # rsync: a run with nothing to send (both file lists compared)
    "memory": TOOLS,
    # Syncthing with its 10 s watcher delay would take 20 minutes for the 100 rounds
    "initial_text": (BACKER, ST1, RSYNC), "edit_text": (BACKER, ST1, RSYNC),
}
# Cases run in sessions: a fresh pair of daemons, one dataset, its first case sets the tree up.
SESSIONS = {
    "small": ("initial_small", "change_latency"),
    "tiny": ("initial_tiny", "memory", "rescan_idle"),
    "large": ("initial_large", "delta_inplace", "delta_insert", "rename_large"),
    "text": ("initial_text", "edit_text"),  # initial_text: the set-up, not reported
}
# The cases with a throughput target, measured more than once, each time on a fresh pair, the
# tools in turns (a round of every tool, then the next round): one drop of 512 MiB takes 1.3-3.5 s,
# and in one hour of this 2-core VM the same build's time for it moved by 30% (Syncthing-1s's
# 2.23-3.46 s); the same 2,000 small files cost a receiver 1.6-3.0 s of CPU, mostly the kernel
# creating files (on this VM's ext4 without a journal, a new file costs 0.06-0.7 ms depending on
# how many were deleted in the last minutes: see benchmarks/README.md). The row is the run of
# median seconds; `samples` lists every run's. Only the first run goes on with its session's other
# cases. --quick measures once.
REPEATED = {"initial_small": 3, "initial_tiny": 3, "initial_large": 3}
KiB = 1024


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace, base: Path) -> None:
        self.args = args
        self.sizes = datasets.QUICK if args.quick else datasets.FULL
        self.base = base
        self.rows: list[dict] = []
        self.load_start = os.getloadavg()  # others' work on the machine skews the times
        self.rows_or_hidden: list[dict] = []  # also the rows of set-up cases not asked for
        self.wanted_cases = args.cases
        self.wanted_tools = args.tools
        scale = 1.0 if args.quick else 5.0
        self.t_case = 120 * scale  # a case's deadline (seconds)
        # quiet time before a change, and how long wire counters must stand still after one
        self.quiet = 0.3 if args.quick else 1.0
        self.profile_dir: Path | None = Path(args.profile).resolve() if args.profile else None
        self.perf_dir: Path | None = Path(args.perf).resolve() if args.perf else None

    # -- rows ------------------------------------------------------------------------------
    def add(self, case: str, tool: str, **fields: object) -> dict:
        row = {"case": case, "tool": tool, "seconds": None, "wire_bytes": None,
               "peak_rss_bytes": None, "error": None, **fields}
        if case in self.wanted_cases:
            self.rows.append(row)
            shown = ", ".join(f"{k}={_fmt_field(k, v)}" for k, v in row.items()
                              if k not in ("case", "tool") and v is not None and k != "samples")
            log(f"  {case:15s} {tool:14s} {shown}")
        return row

    def fail_rest(self, cases: tuple[str, ...], tool: str, why: str) -> None:
        for case in cases:
            if tool in APPLIES[case]:
                self.add(case, tool, error=why)

    # -- sessions --------------------------------------------------------------------------
    def run(self) -> None:
        plan = []
        for session, cases in SESSIONS.items():
            if not set(cases) & set(self.wanted_cases):
                continue
            dataset = datasets.ensure(self.base / "datasets", session, self.sizes)
            for tool in self.wanted_tools:
                if any(tool in APPLIES[c] and c in self.wanted_cases for c in cases):
                    plan.append((session, cases, dataset, tool))
        plan += self.repeats(plan)
        # --quick only checks that everything still produces figures: there, Syncthing with its
        # default 10 s watcher delay (mostly waiting) runs beside the rest to stay within time.
        # The text session (edit_text) runs in a third thread there too: the smoke test must not
        # take longer for it.
        side = [p for p in plan if self.args.quick and p[3] == ST]
        text = [p for p in plan if self.args.quick and p[0] == "text"]
        besides = [threading.Thread(target=self.run_plan, args=(part,), daemon=True)
                   for part in (side, text) if part]
        for t in besides:
            t.start()
        self.run_plan([p for p in plan if p not in side and p not in text])
        for t in besides:
            t.join()

    def repeats(self, plan: list) -> list:
        """The further runs of REPEATED cases: a session of that case alone per tool, in rounds."""
        more = []
        for case, times in REPEATED.items():
            runs = self.args.repeats or (1 if self.args.quick else times)
            if case not in self.wanted_cases:
                continue
            firsts = [p for p in plan if p[1][0] == case]
            for n in range(2, runs + 1):
                more += [(f"{session}-{n}", (case,), dataset, tool)
                         for session, _, dataset, tool in firsts]
        return more

    def run_plan(self, plan: list) -> None:
        for session, cases, dataset, tool in plan:
            log(f"{session}: {tool}")
            work = self.base / f"{session}-{tool}"
            try:
                if tool == RSYNC:
                    self.rsync_session(session, cases, dataset, work)
                else:
                    self.mesh_session(session, cases, tool, dataset, work)
            finally:
                if not self.args.keep:
                    shutil.rmtree(work, ignore_errors=True)

    def make_pair(self, tool: str, work: Path):
        if tool == BACKER:
            return backer_tool.BackerPair(work)
        return syncthing.SyncthingPair(work, delay=1 if tool == ST1 else syncthing.DEFAULT_DELAY,
                                       name=tool)

    def mesh_session(self, session: str, cases: tuple[str, ...], tool: str, dataset: Path,
                     work: Path) -> None:
        pair = self.make_pair(tool, work)
        done: list[str] = []
        try:
            pair.setup()
            stage = work / "stage"
            stage.mkdir()
            datasets.copy_into(dataset, stage)  # same disk as the roots: the drop is a rename
            first = self.initial(session, cases[0], tool, pair, stage)
            done.append(cases[0])
            for case in cases[1:]:
                if tool not in APPLIES[case]:
                    continue
                if case == "memory":
                    self.add("memory", tool, peak_rss_bytes=first["peak_rss_bytes"],
                             rss_sender_bytes=first.get("rss_sender_bytes"),
                             rss_receiver_bytes=first.get("rss_receiver_bytes"))
                else:
                    getattr(self, case)(tool, pair, work)
                done.append(case)
        except Exception as exc:  # a failure or a timeout: reported, and the session ends
            why = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, Timeout):
                log(traceback.format_exc())
            failed = next(c for c in cases if c not in done)
            self.add(failed, tool, error=why)
            self.fail_rest(tuple(c for c in cases if c not in done and c != failed), tool,
                           f"not run: {failed} failed")
        finally:
            pair.close()

    def rsync_session(self, session: str, cases: tuple[str, ...], dataset: Path, work: Path) -> None:
        pair = rsyncd.RsyncPair(work)
        done: list[str] = []
        try:
            pair.setup()
            datasets.copy_into(dataset, pair.a_root)
            for case in cases:
                if RSYNC not in APPLIES[case]:
                    continue
                if case == "memory":
                    first = next(r for r in self.rows_or_hidden
                                 if r["case"] == cases[0] and r["tool"] == RSYNC)
                    self.add("memory", RSYNC, peak_rss_bytes=first["peak_rss_bytes"])
                    done.append(case)
                    continue
                if case == "edit_text":
                    self.edit_text(RSYNC, pair, work)
                    done.append(case)
                    continue
                if case == "delta_inplace":
                    datasets.inplace_change(pair.a_root, self.sizes)
                elif case == "delta_insert":
                    datasets.insert_change(pair.a_root, work / "stage", self.sizes)
                res = pair.push(timeout=self.t_case * (3 if case == "initial_large" else 1))
                diff = same_tree(pair.a_root, pair.b_root)
                if diff:
                    raise RuntimeError(diff)
                row = self.add(case, RSYNC, seconds=res["seconds"], wire_bytes=res["wire_bytes"],
                               peak_rss_bytes=res["peak_rss_bytes"],
                               rss_client_bytes=res["client_rss_bytes"],
                               rss_daemon_bytes=res["daemon_rss_bytes"])
                self.rows_or_hidden.append(row)
                done.append(case)
        except Exception as exc:
            if not isinstance(exc, Timeout):
                log(traceback.format_exc())
            failed = next(c for c in cases if c not in done and RSYNC in APPLIES[c])
            self.add(failed, RSYNC, error=f"{type(exc).__name__}: {exc}")
            self.fail_rest(tuple(c for c in cases if c not in done and c != failed), RSYNC,
                           f"not run: {failed} failed")
        finally:
            pair.close()

    # -- measuring -------------------------------------------------------------------------
    def measure(self, pair, tool: str, case: str, act, done, timeout: float, interval: float):
        """Run `act()` (the change; returns what `done` needs), then poll `done(x)` until true.
        Returns (seconds from the end of `act` to `done`, wire bytes, PeakRss)."""
        os.sync()  # untimed: the staged dataset's writeback must not land inside the measurement
        wire0 = pair.wire_bytes()
        profiler = self.profile_start(pair, tool, case)
        cpu0 = [cpu_seconds(p) for p in pair.pids()]
        steal0 = steal_seconds()
        try:
            with PeakRss(pair.pids()) as rss:
                x = act()
                t0 = time.perf_counter()
                wait_until(lambda: done(x), timeout, interval, f"{tool}: {case} complete")
                seconds = time.perf_counter() - t0
        finally:
            self.profile_stop(profiler)
        rss.cpu = [None if a is None or b is None else round(b - a, 2)
                   for a, b in zip(cpu0, [cpu_seconds(p) for p in pair.pids()])]
        steal1 = steal_seconds()
        rss.steal = None if steal0 is None or steal1 is None else round(steal1 - steal0, 2)
        fast = getattr(pair, "wire_bytes_fast", pair.wire_bytes)
        settle(fast, self.quiet)
        wire = pair.wire_bytes() - wire0
        return seconds, wire, rss

    def rss_fields(self, pair, rss: PeakRss) -> dict:
        cpu = getattr(rss, "cpu", [None, None])
        return {"peak_rss_bytes": rss.peak, "rss_sender_bytes": rss.of(pair.pids()[0]),
                "rss_receiver_bytes": rss.of(pair.pids()[1]), "cpu_sender_s": cpu[0],
                "cpu_receiver_s": cpu[1], "steal_s": getattr(rss, "steal", None)}

    def verify(self, pair) -> None:
        diff = same_tree(pair.a_root, pair.b_root)
        if diff:
            raise RuntimeError(diff)

    def initial(self, session: str, case: str, tool: str, pair, stage: Path) -> dict:
        files, size = dir_stats(stage / datasets.DATA)
        wait_until(pair.both_idle, 60, 0.1, f"{tool}: idle before {case}")
        # The receiver's status is asked for when its events say its state changed (and once a
        # second in any case): polling a busy daemon's status many times a second would slow it.
        with pair.receiver_events() as changed:
            done = OnEvent(changed, lambda: pair.receiver_has(files, size))
            seconds, wire, rss = self.measure(
                pair, tool, case,
                lambda: os.rename(stage / datasets.DATA, pair.a_root / datasets.DATA),
                done, self.t_case * (3 if case == "initial_large" else 1), 0.005)
        self.verify(pair)
        row = self.add(case, tool, seconds=seconds, wire_bytes=wire, **self.rss_fields(pair, rss))
        self.rows_or_hidden.append(row)
        return row

    def change_latency(self, tool: str, pair, work: Path) -> None:
        samples, wires, peaks = [], [], []
        target = pair.b_root
        for rep in range(self.sizes.latency_reps):
            wait_until(pair.both_idle, 60, 0.1, f"{tool}: idle before a save")
            time.sleep(self.quiet)

            def act(rep=rep):
                return datasets.latency_change(pair.a_root, rep, self.sizes)

            def done(x) -> bool:
                rel, content = x
                try:
                    return (target / rel).read_bytes() == content
                except OSError:
                    return False

            seconds, wire, rss = self.measure(pair, tool, "change_latency", act, done,
                                              self.t_case, 0.002)
            samples.append(seconds)
            wires.append(wire)
            peaks.append(rss.peak or 0)
            log(f"    save {rep + 1}/{self.sizes.latency_reps}: {seconds:.3f} s, {wire} B")
        self.verify(pair)
        self.add("change_latency", tool, seconds=statistics.median(samples),
                 wire_bytes=int(statistics.median(wires)), peak_rss_bytes=max(peaks),
                 samples=[round(s, 4) for s in samples])

    def edit_text(self, tool: str, pair, work: Path) -> None:
        """Rounds of a few lines edited in a few files; each round's latency runs from the last
        save to the receiver holding every saved file's new content (rsync: one push). Wire:
        every byte from before the first round until the counters settle after the last."""
        rounds, samples, gz = self.sizes.text_rounds, [], 0
        if tool != RSYNC:
            wait_until(pair.both_idle, 60, 0.1, f"{tool}: idle before edit_text")
            time.sleep(self.quiet)
            wire0 = pair.wire_bytes()
        else:
            wire0 = 0
        peaks = []
        with PeakRss(pair.pids() if tool != RSYNC else []) as rss:
            for rnd in range(rounds):
                edits = datasets.text_edits(pair.a_root, rnd, self.sizes)
                gz += datasets.compressed_diff(edits)
                if tool == RSYNC:
                    res = pair.push(timeout=self.t_case)
                    samples.append(res["seconds"])
                    wire0 += res["wire_bytes"]
                    peaks.append(res["peak_rss_bytes"] or 0)
                    continue
                t0 = time.perf_counter()
                wait_until(lambda: all(_read(pair.b_root / rel) == new for rel, _, new in edits),
                           self.t_case, 0.002, f"{tool}: edit_text round {rnd} complete")
                samples.append(time.perf_counter() - t0)
                time.sleep(0.05)
        if tool == RSYNC:
            wire, peak = wire0, max(peaks)
        else:
            settle(getattr(pair, "wire_bytes_fast", pair.wire_bytes), self.quiet)
            wire, peak = pair.wire_bytes() - wire0, rss.peak
        self.verify(pair)
        log(f"    edit_text {tool}: {rounds} rounds, wire {wire} B, gzip diff {gz} B "
            f"({wire / max(gz, 1):.1f}x), latency median {statistics.median(samples):.3f} s")
        self.add("edit_text", tool, seconds=statistics.median(samples), wire_bytes=wire,
                 peak_rss_bytes=peak,
                 diff_gz_bytes=gz, wire_per_diff=round(wire / max(gz, 1), 2), rounds=rounds,
                 latency_max=round(max(samples), 4))

    def _large_change(self, case: str, tool: str, pair, act, done) -> None:
        wait_until(pair.both_idle, 60, 0.1, f"{tool}: idle before {case}")
        time.sleep(self.quiet)
        seconds, wire, rss = self.measure(pair, tool, case, act,
                                          lambda x: done(x) and pair.both_idle(),
                                          self.t_case, 0.02)
        self.verify(pair)
        self.add(case, tool, seconds=seconds, wire_bytes=wire, **self.rss_fields(pair, rss))

    def delta_inplace(self, tool: str, pair, work: Path) -> None:
        path = pair.b_root / datasets.DATA / datasets.LARGE_NAME
        size = self.sizes.large_bytes

        def done(x) -> bool:
            offset, data = x
            return os.path.getsize(path) == size and _read_at(path, offset, len(data)) == data
        self._large_change("delta_inplace", tool, pair,
                           lambda: datasets.inplace_change(pair.a_root, self.sizes), done)

    def delta_insert(self, tool: str, pair, work: Path) -> None:
        path = pair.b_root / datasets.DATA / datasets.LARGE_NAME
        size = self.sizes.large_bytes + self.sizes.insert_bytes

        def done(x) -> bool:
            offset, data = x
            return os.path.getsize(path) == size and _read_at(path, offset, len(data)) == data
        self._large_change("delta_insert", tool, pair,
                           lambda: datasets.insert_change(pair.a_root, work / "stage", self.sizes),
                           done)

    def rename_large(self, tool: str, pair, work: Path) -> None:
        def done(x) -> bool:
            old, new = x
            return (pair.b_root / new).is_file() and not (pair.b_root / old).exists()
        self._large_change("rename_large", tool, pair, lambda: datasets.rename_change(pair.a_root),
                           done)

    def rescan_idle(self, tool: str, pair, work: Path) -> None:
        wait_until(pair.both_idle, 60, 0.1, f"{tool}: idle before the rescan")
        time.sleep(self.quiet)
        wire0 = pair.wire_bytes()
        if tool == BACKER:
            res = pair.rescan_sender(timeout=self.t_case)
            if res["changed"]:
                raise RuntimeError(f"the rescan of an unchanged tree found {res['changed']} changes")
            settle(pair.wire_bytes_fast, self.quiet)
            self.add("rescan_idle", tool, seconds=res["seconds"],
                     wire_bytes=pair.wire_bytes() - wire0, peak_rss_bytes=res["peak_rss_bytes"],
                     note="backer has no rescan command: the daemon's full_scan code, timed in "
                          "a process of its own on the node's stored index")
            return
        with PeakRss(pair.pids()) as rss:
            t0 = time.perf_counter()
            pair.rescan_sender()
            seconds = time.perf_counter() - t0
        settle(getattr(pair, "wire_bytes_fast", pair.wire_bytes), self.quiet)
        self.add("rescan_idle", tool, seconds=seconds, wire_bytes=pair.wire_bytes() - wire0,
                 **self.rss_fields(pair, rss))

    # -- profiling (gossip-backer only) ----------------------------------------------------
    def profile_start(self, pair, tool: str, case: str):
        if tool != BACKER or (self.profile_dir is None and self.perf_dir is None):
            return None
        procs = []
        if self.profile_dir is not None:
            spy = _py_spy()
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            gil = ["--gil"] if self.args.profile_gil else []
            for side, pid in zip("AB", pair.pids()):
                timeline = self.args.profile_timeline
                out = self.profile_dir / f"{case}-{side}.{'speedscope.json' if timeline else 'txt'}"
                procs.append(subprocess.Popen(
                    [spy, "record", "--pid", str(pid), "--rate", "250",
                     *(["--format", "speedscope", "--idle"] if timeline else ["--format", "raw"]),
                     "--output", str(out), "--threads", *gil],
                    stdout=subprocess.DEVNULL, stderr=open(self.profile_dir / "py-spy.log", "ab")))
        if self.perf_dir is not None:
            self.perf_dir.mkdir(parents=True, exist_ok=True)
            for side, pid in zip("AB", pair.pids()):
                procs.append(subprocess.Popen(
                    ["perf", "record", "-F", "499", "-g", "-p", str(pid), "-o",
                     str(self.perf_dir / f"{case}-{side}.perf")],
                    stdout=subprocess.DEVNULL, stderr=open(self.perf_dir / "perf.log", "ab")))
        time.sleep(1.0)  # let py-spy and perf attach
        return procs

    def profile_stop(self, procs) -> None:
        for p in procs or ():
            p.send_signal(signal.SIGINT)
        for p in procs or ():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    # -- results ---------------------------------------------------------------------------
    def merge_repeats(self) -> None:
        """One row per case and tool: a repeated case's run of median seconds among those that
        gave figures, with every run's seconds in `samples` (None for a failed run, whose
        error the row then carries too)."""
        merged, runs = [], {}
        for r in self.rows:
            if r["case"] in REPEATED:
                runs.setdefault((r["case"], r["tool"]), []).append(r)
            else:
                merged.append(r)
        for rows in runs.values():
            good = sorted((r for r in rows if r["error"] is None), key=lambda r: r["seconds"])
            if not good:
                merged.append(rows[0])
                continue
            row = dict(good[(len(good) - 1) // 2])  # the lower middle of an even count
            if len(rows) > 1:
                row["samples"] = [round(r["seconds"], 3) if r["error"] is None else None
                                  for r in rows]
            failed = [r["error"] for r in rows if r["error"] is not None]
            if failed:  # still a failed run: the exit status says so
                row["error"] = f"{len(failed)} of {len(rows)} runs failed: {failed[0]}"
            merged.append(row)
        self.rows = merged

    def ratios(self) -> list[dict]:
        by = {(r["case"], r["tool"]): r for r in self.rows}
        out = []
        for case in CASES:
            mine = by.get((case, BACKER))
            if mine is None:
                continue
            for ref in (ST, ST1, RSYNC):
                other = by.get((case, ref))
                if other is None:
                    continue
                entry = {"case": case, "against": ref}
                for k in ("seconds", "wire_bytes", "peak_rss_bytes"):
                    a, b = mine.get(k), other.get(k)
                    entry[k] = round(a / b, 4) if a is not None and b else None
                out.append(entry)
        return out

    def targets(self) -> list[dict]:
        by = {(r["case"], r["tool"]): r for r in self.rows}
        s = self.sizes

        def val(case, tool, key):
            r = by.get((case, tool))
            return None if r is None else r.get(key)

        def best(case, key):  # the stronger Syncthing configuration
            vals = [v for v in (val(case, ST, key), val(case, ST1, key)) if v is not None]
            return min(vals) if vals else None

        out = []

        def target(name, case, ok, detail):
            if case in self.wanted_cases:
                out.append({"target": name, "case": case, "pass": ok, "detail": detail})

        # issue 14's targets
        for case, most in (("initial_small", 0.6), ("initial_tiny", 0.6), ("initial_large", 0.67)):
            mine, ref = val(case, BACKER, "seconds"), val(case, ST1, "seconds")
            ok = None if mine is None or ref is None else mine <= most * ref
            target(f"at most {most}x Syncthing-1s's time", case, ok, f"{_s(mine)} vs {_s(ref)}")
        mine, ref = val("change_latency", BACKER, "seconds"), val("change_latency", ST1, "seconds")
        ok = None if mine is None or ref is None else (mine < 0.3 and mine < ref)
        target("median under 0.3 s and below Syncthing's with fsWatcherDelayS=1", "change_latency",
               ok, f"{_s(mine)} vs {_s(ref)}")
        mine = val("delta_inplace", BACKER, "wire_bytes")
        ok = None if mine is None else mine <= 1.1 * s.inplace_bytes
        target("wire bytes within 1.1x of the changed bytes", "delta_inplace", ok,
               f"{_b(mine)} vs 1.1 x {_b(s.inplace_bytes)}")
        mine, ref = val("delta_inplace", BACKER, "peak_rss_bytes"), best("delta_inplace", "peak_rss_bytes")
        ok = None if mine is None or ref is None else mine <= ref
        target("peak RSS no higher than Syncthing's", "delta_inplace", ok,
               f"{_b(mine)} vs {_b(ref)}")
        mine, ref = val("delta_insert", BACKER, "wire_bytes"), val("delta_insert", RSYNC, "wire_bytes")
        ok = None if mine is None or ref is None else mine <= 0.5 * ref
        target("wire bytes at most 0.5x rsync's", "delta_insert", ok,
               f"{_b(mine)} vs 0.5 x {_b(ref)}")
        mine = val("rename_large", BACKER, "wire_bytes")
        ok = None if mine is None else mine < 64 * KiB
        target("wire bytes under 64 KiB", "rename_large", ok, f"{_b(mine)}")
        row = by.get(("edit_text", BACKER)) or {}
        mine, gz, lat = row.get("wire_bytes"), row.get("diff_gz_bytes"), row.get("seconds")
        ok = None if mine is None or not gz else (mine <= 3 * gz and lat < 0.3)
        target("wire bytes at most 3x the gzip-compressed diff, median latency under 0.3 s",
               "edit_text", ok, f"{_b(mine)} vs 3 x {_b(gz)}, {_s(lat)}")
        mine, ref = val("memory", BACKER, "peak_rss_bytes"), best("memory", "peak_rss_bytes")
        ok = None if mine is None or ref is None else mine <= ref
        target("peak RSS no more than Syncthing's (the lower of its configurations)", "memory",
               ok, f"{_b(mine)} vs {_b(ref)}")
        return out

    def env(self) -> dict:
        return {"quick": bool(self.args.quick), "loadavg_start": self.load_start,
                "loadavg_end": os.getloadavg(), "syncthing": syncthing.version(),
                "rsync": rsyncd.version(), "python": platform.python_version(),
                "cpus": os.cpu_count(), "sizes": {k: getattr(self.sizes, k) for k in (
                    "small_files", "tiny_files", "large_bytes", "inplace_bytes", "insert_bytes",
                    "insert_offset", "latency_reps")}}


class OnEvent:
    """A completion test run when `changed` is set, or after `every` seconds without it."""

    def __init__(self, changed: threading.Event, check, every: float = 1.0) -> None:
        self.changed = changed
        self.check = check
        self.every = every
        self.last = time.monotonic()

    def __call__(self, _x: object) -> bool:
        now = time.monotonic()
        if not self.changed.is_set() and now - self.last < self.every:
            return False
        self.changed.clear()
        self.last = now
        return bool(self.check())


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _read_at(path: Path, offset: int, n: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(n)
    except OSError:
        return b""


def _py_spy() -> str:
    for cand in (os.environ.get("PY_SPY"), shutil.which("py-spy"),
                 str(Path(sys.executable).with_name("py-spy"))):
        if cand and Path(cand).exists():
            return cand
    raise SystemExit("--profile needs py-spy (pip install py-spy; or set PY_SPY=/path/to/py-spy)")


# -- output ------------------------------------------------------------------------------------
def _s(v) -> str:
    return "-" if v is None else f"{v:.3f} s"


def _b(v) -> str:
    if v is None:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(v) >= size:
            return f"{v / size:.1f} {unit}"
    return f"{v} B"


def _fmt_field(k: str, v) -> str:
    if k == "seconds":
        return _s(v)
    if k.endswith("bytes"):
        return _b(v)
    return str(v)


def table(doc: dict) -> str:
    lines = []
    hdr = f"{'case':15s} {'tool':14s} {'seconds':>10s} {'wire':>11s} {'peak RSS':>11s}  notes"
    lines += [hdr, "-" * len(hdr)]
    for r in doc["cases"]:
        secs = "-" if r["seconds"] is None else f"{r['seconds']:.3f}"
        note = r["error"] or ""
        if r.get("samples"):
            what = "runs" if r["case"] in REPEATED else "saves"
            note = f"{what}: " + ", ".join("failed" if x is None else f"{x:.2f}"
                                           for x in r["samples"])
        lines.append(f"{r['case']:15s} {r['tool']:14s} {secs:>10s} {_b(r['wire_bytes']):>11s} "
                     f"{_b(r['peak_rss_bytes']):>11s}  {note}")
    lines += ["", "gossip-backer / other (below 1: gossip-backer does better)"]
    hdr = f"{'case':15s} {'against':14s} {'seconds':>9s} {'wire':>9s} {'peak RSS':>9s}"
    lines += [hdr, "-" * len(hdr)]
    for r in doc["ratios"]:
        cells = ["-" if r[k] is None else f"{r[k]:.3g}" for k in ("seconds", "wire_bytes", "peak_rss_bytes")]
        lines.append(f"{r['case']:15s} {r['against']:14s} {cells[0]:>9s} {cells[1]:>9s} {cells[2]:>9s}")
    lines += ["", "targets"]
    for t in doc["targets"]:
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[t["pass"]]
        lines.append(f"  {verdict} {t['case']:15s} {t['target']}: {t['detail']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small datasets (the smoke test)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated, default: all")
    p.add_argument("--tools", default=",".join(TOOLS), help="comma-separated, default: all")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--workdir", help="parent of the temporary folder (default: the system's)")
    p.add_argument("--profile", metavar="DIR",
                   help="record py-spy profiles (raw collapsed stacks) of both gossip-backer "
                        "nodes during each case into DIR (timings then include py-spy's cost)")
    p.add_argument("--profile-gil", action="store_true",
                   help="with --profile: only the thread holding the GIL (py-spy --gil)")
    p.add_argument("--profile-timeline", action="store_true",
                   help="with --profile: speedscope files (samples in time order, per thread: "
                        "what each thread did when) instead of collapsed stacks")
    p.add_argument("--perf", metavar="DIR",
                   help="record perf samples (-g, native and kernel) of both gossip-backer nodes "
                        "during each case into DIR")
    p.add_argument("--repeats", type=int, metavar="N",
                   help="runs of each repeated case (initial_large: 3, or 1 with --quick)")
    args = p.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [c for c in args.cases if c not in CASES] + [t for t in args.tools if t not in TOOLS]
    if bad:
        p.error(f"unknown case or tool: {', '.join(bad)} (cases: {', '.join(CASES)}; "
                f"tools: {', '.join(TOOLS)})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [name for name, mod, tools in (("syncthing", syncthing, (ST, ST1)),
                                             ("rsync", rsyncd, (RSYNC,)))
               if set(tools) & set(args.tools) and mod.binary() is None]
    if missing:
        print(f"compare.py: {' and '.join(missing)} not installed: run .ci/install-bench-tools "
              "(apt-get install syncthing rsync)", file=sys.stderr)
        return 2

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    base = Path(tempfile.mkdtemp(prefix="backer-bench-", dir=args.workdir))
    bench = Bench(args, base)
    started = time.time()
    try:
        log(f"working in {base}{' (quick)' if args.quick else ''}")
        bench.run()
    finally:
        cleanup()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    bench.merge_repeats()
    order = {c: i for i, c in enumerate(CASES)}
    torder = {t: i for i, t in enumerate(TOOLS)}
    rows = sorted(bench.rows, key=lambda r: (order[r["case"]], torder[r["tool"]]))
    bench.rows = rows
    doc = {"cases": rows, "ratios": bench.ratios(), "targets": bench.targets(), "env": bench.env(),
           "elapsed_seconds": round(time.time() - started, 1)}
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print(table(doc))
    complete = all(r["error"] is None for r in rows)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
