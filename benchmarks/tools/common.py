"""What the tool helpers share: free loopback ports, waiting with a deadline, peak RSS of
processes from /proc, cleanup of every process started, and comparing two trees."""

from __future__ import annotations

import atexit
import hashlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

HOST = "127.0.0.1"

# Names that belong to a tool's own bookkeeping, never to the mirrored data.
TOOL_NAMES = {".backer", ".stfolder", ".stignore", ".stversions"}


class Timeout(Exception):
    """A case did not finish within its deadline (reported as a timeout, never a hang)."""


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05,
               what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = predicate()
        except Exception as exc:  # a daemon still starting: keep trying until the deadline
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise Timeout(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def settle(read: Callable[[], int], quiet: float = 1.0, cap: float = 6.0) -> int:
    """Read a growing counter until it has not moved for `quiet` seconds (or `cap` passed): the
    trailing index updates and acknowledgements that follow a transfer belong to it."""
    deadline = time.monotonic() + cap
    value = read()
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = read()
        if now != value:
            value, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            break
    return value


# -- processes ---------------------------------------------------------------------------------
_started: dict[int, subprocess.Popen] = {}
_lock = threading.Lock()


def track(proc: subprocess.Popen) -> subprocess.Popen:
    """Remember a process so that `cleanup()` (also run at exit) ends it by its PID."""
    with _lock:
        _started[proc.pid] = proc
    return proc


def stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """End one process we started: `sig`, then SIGKILL after `timeout`."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
    with _lock:
        _started.pop(proc.pid, None)


def cleanup() -> None:
    with _lock:
        procs = list(_started.values())
    for proc in procs:
        stop(proc, timeout=5.0)


atexit.register(cleanup)


# -- memory ------------------------------------------------------------------------------------
def _status_kib(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def rss_bytes(pid: int) -> int | None:
    kib = _status_kib(pid, "VmRSS:")
    return None if kib is None else kib * 1024


def steal_seconds() -> float | None:
    """CPU time the hypervisor gave to others while this VM wanted it, all CPUs, so far (the
    `steal` column of /proc/stat): the same work measured 40-70% more CPU seconds in some runs
    here, and steal during a case says the machine, not the code, was slower."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else None


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) the process and its reaped children used so far: on a shared
    machine a steadier figure than wall time."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def hwm_bytes(pid: int) -> int | None:
    """The process's peak RSS (VmHWM) since it started or since `reset_hwm`."""
    kib = _status_kib(pid, "VmHWM:")
    return None if kib is None else kib * 1024


def reset_hwm(pid: int) -> bool:
    """Start a new peak-RSS window for `pid` (writing 5 to /proc/PID/clear_refs, Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def children(pid: int) -> list[int]:
    """Direct children of `pid` (all threads' lists)."""
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out.extend(int(x) for x in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return out


class PeakRss:
    """Peak RSS of some processes over a window. Long-lived processes (`pids`) get an exact
    figure: their VmHWM is reset at the start and read at the end. Processes that come and go
    (`dynamic()`, e.g. the daemon side of an rsync transfer) are sampled every `interval` s, their
    VmHWM included, so a peak between samples is still seen while the process lives."""

    def __init__(self, pids: Iterable[int] = (), dynamic: Callable[[], Iterable[int]] | None = None,
                 interval: float = 0.01) -> None:
        self.pids = list(pids)
        self.dynamic = dynamic
        self.interval = interval
        self.peaks: dict[int, int] = {}
        self._exact: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _note(self, pid: int, value: int | None) -> None:
        if value is not None and value > self.peaks.get(pid, 0):
            self.peaks[pid] = value

    def _sample(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                if pid not in self._exact:
                    self._note(pid, rss_bytes(pid))
            if self.dynamic is not None:
                for pid in self.dynamic():
                    self._note(pid, hwm_bytes(pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRss":
        for pid in self.pids:
            if reset_hwm(pid):
                self._exact.add(pid)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def finish(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            for pid in self._exact:
                self._note(pid, hwm_bytes(pid))

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def of(self, pid: int) -> int | None:
        return self.peaks.get(pid)

    @property
    def peak(self) -> int | None:
        return max(self.peaks.values(), default=None)


# -- trees -------------------------------------------------------------------------------------
def file_digest(path: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def tree(root: Path) -> dict[str, tuple]:
    """rel path -> ("dir",) or ("file", size, digest), without the tools' own files."""
    out: dict[str, tuple] = {}
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in TOOL_NAMES]
            filenames = [f for f in filenames if f not in TOOL_NAMES]
        for name in dirnames:
            out[os.path.normpath(os.path.join(rel_dir, name))] = ("dir",)
        for name in filenames:
            if name.startswith((".backer-tmp-", ".syncthing.", "~syncthing~")) or name.endswith(".tmp"):
                continue
            full = os.path.join(dirpath, name)
            out[os.path.normpath(os.path.join(rel_dir, name))] = (
                "file", os.path.getsize(full), file_digest(full))
    return out


def same_tree(a: Path, b: Path) -> str | None:
    """None when both trees hold the same folders and file contents, else what differs."""
    ta, tb = tree(a), tree(b)
    if ta == tb:
        return None
    only_a = sorted(set(ta) - set(tb))
    only_b = sorted(set(tb) - set(ta))
    differ = sorted(p for p in set(ta) & set(tb) if ta[p] != tb[p])
    return (f"trees differ: {len(only_a)} only on the sender {only_a[:3]}, {len(only_b)} only on "
            f"the receiver {only_b[:3]}, {len(differ)} with other content {differ[:3]}")


def dir_stats(root: Path) -> tuple[int, int]:
    """(files, bytes) of a data tree."""
    files = size = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            files += 1
            size += os.path.getsize(os.path.join(dirpath, name))
    return files, size
