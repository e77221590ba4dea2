"""rsync through its daemon mode on 127.0.0.1: `rsync --daemon --no-detach` with a config of our
own (one writable module on the receiving folder, no chroot, running as the current user), and
`rsync -a --stats --no-whole-file SRC/ rsync://127.0.0.1:PORT/bench/` as the client that sends.

Bytes on the wire are the client's `--stats` "Total bytes sent" + "Total bytes received" (the
rsync protocol's bytes over the socket, both ways). Peak RSS: the client and the daemon-side
processes (the daemon forks a receiver and a generator per transfer) are sampled from /proc every
5 ms while they live (VmHWM, the peak so far, so a spike between samples still shows); the figure is
the largest of them. (The client's rusage is no good here: Linux carries the forking parent's peak
over an exec into ru_maxrss.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from .common import HOST, PeakRss, Timeout, children, free_port, stop, track, wait_until

MODULE = "bench"


def binary() -> str | None:
    return shutil.which("rsync")


def version() -> str:
    out = subprocess.run([binary() or "rsync", "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0].strip() if out.stdout else ""


def _stat(text: str, label: str) -> int:
    m = re.search(rf"^{label}:\s*([\d,.]+)", text, re.M)
    if not m:
        raise RuntimeError(f"rsync --stats printed no {label!r}:\n{text}")
    return int(m.group(1).replace(",", "").replace(".", ""))


class RsyncPair:
    """A: the source folder (client side); B: the daemon's module folder."""

    name = "rsync"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.a_root = workdir / "A"
        self.b_root = workdir / "B"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "rsyncd.log"

    def setup(self, timeout: float = 30) -> None:
        self.a_root.mkdir(exist_ok=True)
        self.b_root.mkdir(exist_ok=True)
        conf = self.workdir / "rsyncd.conf"
        conf.write_text(
            f"pid file = {self.workdir / 'rsyncd.pid'}\n"
            f"log file = {self.log}\n"
            "use chroot = no\n"
            f"uid = {os.getuid()}\n"
            f"gid = {os.getgid()}\n"
            "max connections = 4\n"
            f"[{MODULE}]\n"
            f"    path = {self.b_root}\n"
            "    read only = no\n"
            "    munge symlinks = no\n")
        self.proc = track(subprocess.Popen(
            [binary(), "--daemon", "--no-detach", f"--port={self.port}", f"--address={HOST}",
             f"--config={conf}"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "rsyncd.err", "ab")))

        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rsync --daemon exited ({self.proc.returncode}); see {self.workdir}")
            out = subprocess.run([binary(), f"rsync://{HOST}:{self.port}/"], capture_output=True,
                                 text=True, timeout=10)
            return out.returncode == 0 and MODULE in out.stdout
        wait_until(up, timeout, 0.05, "rsync daemon listening")

    def push(self, *extra: str, timeout: float = 1800) -> dict:
        """One transfer A -> B: {"seconds", "wire_bytes", "peak_rss_bytes"}."""
        cmd = [binary(), "-a", "--stats", "--no-whole-file", *extra, f"{self.a_root}/",
               f"rsync://{HOST}:{self.port}/{MODULE}/"]
        client: list[int] = []

        def processes() -> list[int]:
            return self._daemon_side() + [p for c in client for p in [c, *self._tree(c)]]
        sampler = PeakRss(dynamic=processes, interval=0.005)
        out_f = open(self.workdir / "client.out", "w+")
        err_f = open(self.workdir / "client.err", "w+")
        with sampler, out_f, err_f:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f)
            client.append(proc.pid)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise Timeout(f"rsync did not finish within {timeout:.0f} s") from None
            seconds = time.perf_counter() - t0
            out_f.seek(0)
            err_f.seek(0)
            out, err = out_f.read(), err_f.read()
        if proc.returncode != 0:
            raise RuntimeError(f"rsync -> {proc.returncode}: {err.strip()[-2000:]}")
        client_peak = max((v for pid, v in sampler.peaks.items() if pid in client), default=None)
        daemon_peak = max((v for pid, v in sampler.peaks.items() if pid not in client), default=None)
        return {"seconds": seconds,
                "wire_bytes": _stat(out, "Total bytes sent") + _stat(out, "Total bytes received"),
                "peak_rss_bytes": sampler.peak, "client_rss_bytes": client_peak,
                "daemon_rss_bytes": daemon_peak}

    @staticmethod
    def _tree(pid: int) -> list[int]:
        out, todo = [], children(pid)
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(children(p))
        return out

    def _daemon_side(self) -> list[int]:
        return self._tree(self.proc.pid) if self.proc is not None else []

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc else []

    def close(self) -> None:
        stop(self.proc)
        self.proc = None
