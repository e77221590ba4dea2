"""Two gossip-backer nodes (`backer run`) on 127.0.0.1, joined by an invite, driven through the
command line exactly as a user would: `backer init`, `backer invite --json`, `backer join`,
`backer run ROOT --listen 127.0.0.1:PORT --no-web`, `backer status --json`.

B is the founder and receives; A joins it and sends. Each `backer run` is one Python process (the
venv's interpreter), whose PID is the one whose RSS is measured. Bytes on the wire come from the
receiver's `net` counters (`bytes_in + bytes_out`, every byte on its peer connections since it
started; its only peer is A). Frequent polls (completion) read the same status object straight
from the node's control socket (ROOT/.backer/control.sock, one JSON line each way: what
`backer status --json` itself does), to keep a Python start per poll off the two CPUs.

Run as a script, `python tools/backer.py rescan ROOT` times the full rescan a running node makes
(runtime.folder.Folder.full_scan: the stored index turned into the scan's `previous`, then
disk.scan.scan over the whole root) on ROOT's stored index, in a process of its own, and prints
{"seconds", "files", "changed", "peak_rss_bytes"}: the node has no command to ask the daemon itself
for a rescan."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

if __package__:
    from .common import HOST, free_port, stop, track, wait_until


def python() -> str:
    """The interpreter that has gossip_backer installed (the venv's)."""
    env = os.environ.get("BACKER_PYTHON")
    if env:
        return env
    venv = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
# `python -m gossip_backer` imports the package in the current folder first: run from a checkout,
# BACKER_PYTHON's build would run that checkout's code. So the daemons and commands run from /.
CWD = "/"


def cli(*args: str, timeout: float = 60) -> dict:
    out = subprocess.run([python(), "-m", "gossip_backer", *args, "--json"], capture_output=True,
                         text=True, timeout=timeout, env=ENV, cwd=CWD)
    if out.returncode != 0:
        raise RuntimeError(f"backer {' '.join(args)} -> {out.returncode}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def control_status(root: Path, timeout: float = 10) -> dict:
    """The running node's status object, from its control socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(root / ".backer" / "control.sock"))
        s.sendall(b'{"cmd": "status"}\n')
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    answer = json.loads(buf)
    if not answer.get("ok"):
        raise RuntimeError(answer.get("error"))
    return answer["result"]


class EventWatch:
    """`backer events` of a running node, read in a thread: `changed` is set whenever the node
    emits an `in_sync` event (no polling of the node while it works)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.changed = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> threading.Event:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(str(self.root / ".backer" / "control.sock"))
        self._sock.sendall(b'{"cmd": "events"}\n')
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        time.sleep(0.05)  # let the node register the subscriber
        return self.changed

    def _read(self) -> None:
        try:
            with self._sock.makefile("rb") as f:
                for line in f:
                    if b'"in_sync"' in line:
                        self.changed.set()
        except (OSError, ValueError):
            pass

    def __exit__(self, *exc: object) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=5)


class Node:
    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = root.parent / f"{name}.log"
        self.out = root.parent / f"{name}.out"

    def start(self, timeout: float = 60, attempts: int = 3) -> None:
        """Start `backer run`; a port taken between `free_port` and the bind (another test's
        process got it first) is retried on a fresh port, any other failure is raised."""
        for attempt in range(attempts):
            try:
                return self._start(timeout)
            except RuntimeError:
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                if "address in use" not in log or attempt == attempts - 1:
                    raise
                self.port = free_port()
                self.log.write_bytes(b"")

    def _start(self, timeout: float) -> None:
        self.out.write_bytes(b"")
        self.proc = track(subprocess.Popen(
            [python(), "-m", "gossip_backer", "run", str(self.root), "--listen",
             f"{HOST}:{self.port}", "--no-web"],
            stdin=subprocess.DEVNULL, stdout=open(self.out, "ab"), stderr=open(self.log, "ab"),
            env=ENV, cwd=CWD))

        def listening_or_exited() -> bool:
            return self.proc.poll() is not None or b"listening on " in self.out.read_bytes()
        wait_until(listening_or_exited, timeout, 0.05, f"backer {self.name} listening")
        if self.proc.poll() is not None:
            raise RuntimeError(f"backer run {self.root} exited ({self.proc.returncode}); see {self.log}")
        wait_until(lambda: control_status(self.root)["running"], timeout, 0.05,
                   f"backer {self.name} control socket")

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def status(self) -> dict:
        return control_status(self.root)

    def connected(self) -> bool:
        return any(p["connected"] for p in self.status()["peers"])


class BackerPair:
    """A (sends) and B (founder, receives); see the module docstring."""

    def __init__(self, workdir: Path, name: str = "gossip-backer") -> None:
        self.name = name
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.a = Node(workdir / "A", f"{name}-A")
        self.b = Node(workdir / "B", f"{name}-B")

    @property
    def a_root(self) -> Path:
        return self.a.root

    @property
    def b_root(self) -> Path:
        return self.b.root

    def setup(self, timeout: float = 90) -> None:
        cli("init", str(self.b.root), "--name", "B")
        self.b.start(timeout)
        invite = cli("invite", str(self.b.root))["invite"]
        cli("join", str(self.a.root), invite, "--name", "A")
        self.a.start(timeout)
        self.wait_connected(timeout)
        wait_until(self.both_idle, timeout, 0.1, f"{self.name}: both in sync")

    def wait_connected(self, timeout: float = 60) -> None:
        wait_until(lambda: self.a.connected() and self.b.connected(), timeout, 0.05,
                   f"{self.name}: both nodes connected")

    def pids(self) -> list[int]:
        return [n.pid for n in (self.a, self.b) if n.proc is not None]

    def wire_bytes(self) -> int:
        """The receiver's `net` counters, from `backer status --json`."""
        net = cli("status", str(self.b.root))["net"]
        return int(net["bytes_in"]) + int(net["bytes_out"])

    def wire_bytes_fast(self) -> int:
        net = self.b.status()["net"]
        return int(net["bytes_in"]) + int(net["bytes_out"])

    def receiver_events(self) -> EventWatch:
        return EventWatch(self.b.root)

    def receiver_has(self, files: int, size: int) -> bool:
        st = self.b.status()
        return (st["files"] == files and st["bytes"] == size and st["in_sync"]
                and st["pending_files"] == 0)

    def both_idle(self) -> bool:
        return all(n.status()["in_sync"] for n in (self.a, self.b))

    def rescan_sender(self, timeout: float = 600) -> dict:
        """Time the full rescan of A's root in a process of its own (see the module docstring)."""
        out = subprocess.run([python(), __file__, "rescan", str(self.a.root)], capture_output=True,
                             text=True, timeout=timeout, env=ENV)
        if out.returncode != 0:
            raise RuntimeError(f"rescan helper failed: {out.stderr.strip()[-2000:]}")
        return json.loads(out.stdout)

    def close(self) -> None:
        for n in (self.a, self.b):
            n.stop()


def _rescan_main(root: Path) -> None:
    from gossip_backer.disk.ignore import IgnoreMatcher
    from gossip_backer.disk.scan import scan
    from gossip_backer.store.db import open_db
    from gossip_backer.store.repo import Repo

    repo = Repo(open_db(root / ".backer" / "store.db"))
    index = {e.path: e for e in repo.index_all()}  # what the running node holds in memory
    ignore = IgnoreMatcher.load(root)
    t0 = time.perf_counter()
    previous = dict(index)  # what Folder.full_scan hands the scan
    result = scan(root, previous, ignore)
    seconds = time.perf_counter() - t0
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    print(json.dumps({"seconds": seconds, "files": len(result.entries),
                      "changed": len(result.changed) + len(result.deleted),
                      "peak_rss_bytes": hwm}))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "rescan":
        _rescan_main(Path(sys.argv[2]))
    else:
        sys.exit("usage: backer.py rescan ROOT")
