"""The benchmark's gossip-backer driver survives a port taken between `free_port` and the bind
(another process of the run got it first): it starts again on a fresh port, and says why it failed
when the reason is anything else. A real `backer run` process on 127.0.0.1."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from tools.backer import Node, cli  # noqa: E402
from tools.common import HOST  # noqa: E402


def test_a_taken_port_is_retried_on_a_fresh_one(tmp_path):
    root = tmp_path / "A"
    cli("init", str(root), "--name", "A")
    node = Node(root, "A")
    with socket.socket() as squatter:
        squatter.bind((HOST, 0))
        squatter.listen()
        taken = node.port = squatter.getsockname()[1]
        node.start(30)
        try:
            assert node.port != taken
            assert node.status()["running"]
        finally:
            node.stop()


def test_any_other_failure_is_raised_with_the_log(tmp_path):
    node = Node(tmp_path / "not-a-root", "A")  # never initialised: `backer run` refuses it
    with pytest.raises(RuntimeError, match="exited"):
        node.start(30)


def test_a_syncthing_pair_that_never_connects_is_started_again_on_fresh_ports(tmp_path, capsys):
    """Seen once in `make test`, under load: both instances up, never connected. With both sync
    ports taken before they start, neither can listen; the pair is started again on fresh ports
    and says why from the logs, instead of failing the run."""
    import shutil

    if shutil.which("syncthing") is None:
        pytest.skip("syncthing is not installed (.ci/install-bench-tools)")
    from tools.syncthing import SyncthingPair

    pair = SyncthingPair(tmp_path / "st", delay=1)
    squatters = []
    for inst in (pair.a, pair.b):
        s = socket.socket()
        s.bind((HOST, 0))
        s.listen()
        inst.listen_port = s.getsockname()[1]
        squatters.append(s)
    taken = [inst.listen_port for inst in (pair.a, pair.b)]
    try:
        pair.setup(timeout=60, tries=2, connect_timeout=10)
        assert [inst.listen_port for inst in (pair.a, pair.b)] != taken
        assert pair.a.connected_to(pair.b) and pair.b.connected_to(pair.a)
        assert "not connected after 10 s" in capsys.readouterr().err
    finally:
        pair.close()
        for s in squatters:
            s.close()
