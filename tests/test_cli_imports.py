"""A `backer` command that only talks to a running node's control socket (status, peers,
events) starts without the node runtime: importing it (trio's loop machinery, numpy, the
store, every protocol module) made each `backer status` take 0.40 s on this machine instead of
0.19. A fresh interpreter, as the `backer` script starts one."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("gossip_backer.runtime.node", "gossip_backer.runtime.folder", "numpy", "pycrdt")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_the_command_line_and_its_commands_load_without_the_node_runtime():
    assert _loaded_after("import gossip_backer.cli, gossip_backer.runtime.commands") == []


def test_the_package_still_offers_node_when_asked():
    assert "gossip_backer.runtime.node" in _loaded_after(
        "from gossip_backer import Node\nassert Node.__name__ == 'Node'")
