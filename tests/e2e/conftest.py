"""Real `backer` processes on 127.0.0.1 for end-to-end tests (no fakes: the CLI a user types)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
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

    def __init__(self, root: Path, web: bool = False, args: tuple[str, ...] = ()) -> None:
        self.root = root
        self.web = web
        self.args = tuple(args)  # more `backer run` options, e.g. ("--log-level", "info")
        self.proc: subprocess.Popen | None = None
        self.listen = ""
        self.lines: list[str] = []

    def start(self) -> "Daemon":
        web = ["--web", "127.0.0.1:0"] if self.web else ["--no-web"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gossip_backer", "run", str(self.root), "--listen", "127.0.0.1:0", *web,
             *self.args],
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

    def make(root: Path, web: bool = False, args: tuple[str, ...] = ()) -> Daemon:
        d = Daemon(root, web, args)
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
    try:
        wait_until(check, timeout=timeout, interval=0.5, what="all nodes identical and in sync")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_out_of_sync(nodes, skip)}") from None


def _out_of_sync(nodes: list, skip) -> str:
    """What each node says and which paths differ from the first node's tree: a timeout alone
    says nothing of why a mesh did not converge."""
    lines = []
    for i, d in enumerate(nodes):
        s = d.status()
        lines.append(f"node {i}: " + ", ".join(f"{k}={s.get(k)!r}" for k in (
            "in_sync", "files", "pending_files", "pending_bytes", "unavailable", "conflicts",
            "paused", "problems") if k in s))
    trees = [{k: v for k, v in tree(d.root).items() if not skip(k)} for d in nodes]
    for i, t in enumerate(trees[1:], 1):
        differ = sorted(k for k in trees[0].keys() | t.keys() if trees[0].get(k) != t.get(k))
        lines.append(f"node 0 vs node {i}: {len(differ)} paths differ: {differ[:10]}")
    return "\n".join(lines)


def net_in(d) -> int:
    return d.status()["net"]["bytes_in"]


# -- the offline edit of issue 10 (tests/e2e/test_lost_writes.py, benchmarks/offline_edit_trials.py)
TREE_FILES = 4000


def make_tree(root: Path, files: int = TREE_FILES) -> None:
    """`files` small files under ROOT/t/ (40 folders) plus ROOT/big0.txt, written fast."""
    for d in range(40):
        (root / "t" / f"d{d:02}").mkdir(parents=True, exist_ok=True)
    for i in range(files - 1):
        with open(root / "t" / f"d{i % 40:02}" / f"f{i:05}.txt", "wb") as f:
            f.write(b"small file %d\n" % i)
    (root / "big0.txt").write_bytes(b"big0, as it was made\n" * 200)


def conflict_name(path: str, loser_mtime_ns: int, loser_id: str) -> str:
    """SPEC: STEM.sync-conflict-YYYYMMDD-HHMMSS-NODEID7.EXT, the loser's mtime in UTC."""
    stem, dot, ext = path.rpartition(".")
    when = datetime.fromtimestamp(loser_mtime_ns // 10**9, tz=timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stem}.sync-conflict-{when}-{loser_id[:7]}.{ext}"


def three_with_tree(tmp_path: Path, daemons, files: int = TREE_FILES, args: tuple = ()) -> list:
    """A (with the 4,000-file tree, made before its first start), B and C, in sync."""
    a_root = tmp_path / "A"
    backer_json("init", str(a_root), "--name", "node0")
    make_tree(a_root, files)
    a = daemons(a_root, args=args).start()
    nodes = [a]
    for i, name in ((1, "B"), (2, "C")):
        join(tmp_path / name, invite(a), f"node{i}")
        nodes.append(daemons(tmp_path / name, args=args).start())
    in_sync(nodes, timeout=150)
    return nodes


def offline_texts(tag: str) -> tuple[bytes, bytes]:
    """The stopped node's edit and the running node's later edit of big0.txt in round `tag`."""
    return (f"offline edit {tag} made on the stopped node\n".encode(),
            f"edit {tag} made on a running node, later\n".encode())


def offline_edit_round(nodes: list, ids: list[str], stopped: int, editor: int, tag: str) -> str:
    """Stop one node, edit big0.txt on it, 2 s later edit it on a running node, start the
    stopped one; returns the name the stopped node's edit must be kept under."""
    off, on = nodes[stopped], nodes[editor]
    offline, online = offline_texts(tag)
    off.stop()
    target = off.root / "big0.txt"
    target.write_bytes(offline)
    loser_mtime = target.stat().st_mtime_ns
    time.sleep(2)
    (on.root / "big0.txt").write_bytes(online)
    off.start()
    return conflict_name("big0.txt", loser_mtime, ids[stopped])


def kept_as_copy(nodes: list, copy: str, offline: bytes) -> list:
    """The nodes that hold `offline` at `copy` and list it in `status` conflicts."""
    return [d for d in nodes if (d.root / copy).is_file() and (d.root / copy).read_bytes() == offline
            and copy in d.status()["conflicts"]]
