"""`backer demo` stopped by SIGTERM (a service manager, `kill`) stops the nodes it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ENV

pytestmark = pytest.mark.e2e


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():
        pytest.skip("needs /proc/PID/task/PID/children (Linux) to find the demo's nodes")
    return {int(c) for c in path.read_text().split()}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_sigterm_stops_the_demo_and_its_nodes(tmp_path):
    demo = subprocess.Popen([sys.executable, "-m", "gossip_backer", "demo", "--nodes", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**ENV, "TMPDIR": str(tmp_path)})  # its roots stay: here
    nodes: set[int] = set()
    try:
        deadline = time.time() + 90
        for line in demo.stdout:
            if "Ctrl-C stops" in line or time.time() > deadline:
                break
        nodes = _children(demo.pid)
        assert len(nodes) == 2, nodes
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=20) == 0
        deadline = time.time() + 15
        while any(_alive(p) for p in nodes) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in nodes), "the demo's nodes outlived it"
    finally:
        if demo.poll() is None:
            demo.kill()
        for pid in nodes:  # only the nodes this test's demo started, by pid
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
