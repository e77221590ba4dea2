"""Real `backer` processes on 127.0.0.1 for end-to-end tests (no fakes: the CLI a user types)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def backer(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "gossip_backer", *args], capture_output=True,
                         text=True, timeout=timeout, env=ENV)
    if check and out.returncode != 0:
        raise AssertionError(f"backer {' '.join(args)} -> {out.returncode}: {out.stderr}")
    return out


def backer_json(*args: str) -> object:
    return json.loads(backer(*args, "--json").stdout)


class Daemon:
    """One `backer run` child process."""

    def __init__(self, root: Path, web: bool = False) -> None:
        self.root = root
        self.web = web
        self.proc: subprocess.Popen | None = None
        self.listen = ""
        self.lines: list[str] = []

    def start(self) -> "Daemon":
        web = ["--web", "127.0.0.1:0"] if self.web else ["--no-web"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gossip_backer", "run", str(self.root), "--listen", "127.0.0.1:0", *web],
            stdout=subprocess.PIPE, stderr=open(self.root.parent / f"{self.root.name}.log", "ab"),
            text=True, env=ENV)
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"backer run {self.root} exited: {self.proc.wait()}")
            self.lines.append(line.strip())
            if line.startswith("listening on "):
                self.listen = line.split()[-1]
                if not self.web:
                    return self
            if line.startswith("web on "):
                return self
        raise AssertionError("backer run did not print its address")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def status(self) -> dict:
        return backer_json("status", str(self.root))

    def connected(self) -> set[str]:
        return {p["node_id"] for p in self.status()["peers"] if p["connected"]}

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return -9
        return self.proc.returncode if self.proc else 0

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.25, what: str = "condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture
def daemons():
    started: list[Daemon] = []

    def make(root: Path, web: bool = False) -> Daemon:
        d = Daemon(root, web)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


def invite(daemon: Daemon, *extra: str) -> str:
    return backer_json("invite", str(daemon.root), *extra)["invite"]


def join(root: Path, invite_text: str, name: str) -> str:
    return backer_json("join", str(root), invite_text, "--name", name)["node_id"]
