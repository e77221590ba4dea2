"""`backer demo`: N nodes in fresh temporary roots on loopback, joined in one mesh, web GUIs up.

Each node is a real `backer run` child process, joined with real invites, so what a newcomer sees
is exactly what three machines would do.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gossip_backer.errors import UserError


def _backer(*args: str) -> list[str]:
    return [sys.executable, "-m", "gossip_backer", *args]


def _json(*args: str) -> dict:
    out = subprocess.run(_backer(*args, "--json"), capture_output=True, text=True)
    if out.returncode != 0:
        raise UserError(out.stderr.strip() or f"backer {args[0]} failed")
    return json.loads(out.stdout)


def _die_with_parent() -> None:
    """In the child, before exec (Linux): SIGTERM when the demo dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM/SIGHUP stop the demo like Ctrl-C: its nodes too


def _start(root: Path) -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen(_backer("run", str(root), "--listen", "127.0.0.1:0", "--web", "127.0.0.1:0"),
                            stdout=subprocess.PIPE, text=True,
                            preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    listen = web = ""
    while not (listen and web):
        line = proc.stdout.readline()
        if not line:
            raise UserError(f"node at {root} did not start")
        if line.startswith("listening on "):
            listen = line.split()[-1]
        elif line.startswith("web on "):
            web = line.split()[-1]
    return proc, listen, web


def run_demo(n: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="backer-demo-"))
    procs: list[subprocess.Popen] = []
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        roots = [base / f"node{i + 1}" for i in range(n)]
        _json("init", str(roots[0]), "--name", "node1")
        _live_note(roots[0])
        proc, listen, web = _start(roots[0])
        procs.append(proc)
        print(f"node1  root {roots[0]}\n       peers {listen}  web {web}\n"
              f"       live note {web}editor?path={NOTE}", flush=True)
        for i, root in enumerate(roots[1:], start=2):
            invite = _invite_when_admitted(roots[i - 2], listen)
            _json("join", str(root), invite, "--name", f"node{i}")
            proc, listen, web = _start(root)
            procs.append(proc)
            print(f"node{i}  root {root}\n       peers {listen}  web {web}\n"
                  f"       live note {web}editor?path={NOTE}", flush=True)
        _wait_connected(roots, n)
        print("Put files in any root and watch `backer status ROOT`. Ctrl-C stops the mesh.", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        print(f"stopped; the roots stay in {base}", flush=True)


NOTE = "welcome.md"


def _live_note(root: Path) -> None:
    """Every *.md file is live in the demo, and a note waits on every node, ready to edit."""
    (root / NOTE).write_text("# Welcome\n\nThis note is live: type here on one node, watch the "
                             "others (their pages and their files on disk).\n\n- \n",
                             encoding="utf-8")
    _json("live", str(root), "*.md")


def _invite_when_admitted(root: Path, listen: str, timeout: float = 30.0) -> str:
    """An invite from `root`, as soon as that node has been admitted to the mesh."""
    deadline = time.time() + timeout
    while True:
        try:
            return _json("invite", str(root), "--address", listen)["invite"]
        except UserError:
            if time.time() > deadline:
                raise
            time.sleep(0.3)


def _wait_connected(roots: list[Path], n: int, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        counts = [sum(p["connected"] for p in _json("status", str(r))["peers"]) for r in roots]
        if all(c == n - 1 for c in counts):
            print(f"all {n} nodes connected to each other", flush=True)
            return
        time.sleep(0.5)
    print("warning: not every node connected yet; see `backer status ROOT`", flush=True)
