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


def tree(root: Path) -> dict:
    """What a user sees in a root: kind, content, permission bits, mtime, link target."""
    import hashlib
    import stat as st

    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".backer" or rel_dir.startswith(".backer" + os.sep):
            continue
        dirnames[:] = [d for d in dirnames if not (rel_dir == "." and d == ".backer")]
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if name.startswith(".backer-tmp-"):
                continue
            s = os.lstat(full)
            if st.S_ISLNK(s.st_mode):
                out[rel] = ("link", os.readlink(full))
            elif st.S_ISDIR(s.st_mode):
                out[rel] = ("dir", st.S_IMODE(s.st_mode))
            else:
                digest = hashlib.blake2b(Path(full).read_bytes()).hexdigest()
                out[rel] = ("file", digest, st.S_IMODE(s.st_mode), s.st_mtime_ns)
    return out


def mesh(tmp_path: Path, daemons, n: int, web: bool = False) -> list:
    """n running nodes in one mesh (each joined through the previous one), all connected."""
    roots = [tmp_path / chr(ord("A") + i) for i in range(n)]
    backer_json("init", str(roots[0]), "--name", "node0")
    nodes = [daemons(roots[0], web).start()]
    for i, root in enumerate(roots[1:], start=1):
        join(root, invite(nodes[-1]), f"node{i}")
        nodes.append(daemons(root, web).start())
        wait_until(lambda: nodes[-1].connected(), what=f"node{i} admitted")
    ids = [d.status()["node_id"] for d in nodes]
    for d, me in zip(nodes, ids):
        wait_until(lambda d=d, me=me: d.connected() == set(ids) - {me}, timeout=60, what="full mesh")
    return nodes


def in_sync(nodes: list, timeout: float = 120, skip=lambda path: False) -> None:
    """Every node reports in_sync and all trees are identical (but for paths `skip` names)."""
    def check():
        if not all(d.status()["in_sync"] for d in nodes):
            return False
        trees = [{k: v for k, v in tree(d.root).items() if not skip(k)} for d in nodes]
        return all(t == trees[0] for t in trees[1:])
    wait_until(check, timeout=timeout, interval=0.5, what="all nodes identical and in sync")


def net_in(d) -> int:
    return d.status()["net"]["bytes_in"]
