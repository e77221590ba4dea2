"""Small things a user trips over (issue 11), on real processes."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import backer, backer_json, invite, join, mesh, wait_until

pytestmark = pytest.mark.e2e


def _run_at(root, port: int):
    import subprocess
    import sys

    from tests.e2e.conftest import ENV

    proc = subprocess.Popen([sys.executable, "-m", "gossip_backer", "run", str(root), "--listen",
                             f"127.0.0.1:{port}", "--no-web"], stdout=subprocess.PIPE, text=True,
                            stderr=subprocess.DEVNULL, env=ENV)
    assert proc.stdout.readline().startswith("listening on ")
    return proc


def test_invite_right_after_run_waits_for_admission(tmp_path, daemons):
    """README order: `join`, `run`, then at once `invite`. It used to refuse "not admitted yet";
    it now waits (saying so) until the inviter admits the node."""
    import socket
    import subprocess
    import sys
    import time

    from tests.e2e.conftest import ENV

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backer_json("init", str(tmp_path / "A"), "--name", "a")
    a = _run_at(tmp_path / "A", port)
    try:
        text = backer_json("invite", str(tmp_path / "A"))["invite"]
        a.terminate()
        a.wait(10)
        join(tmp_path / "B", text, "b")
        daemons(tmp_path / "B").start()  # its inviter is away: not admitted yet
        waiting = subprocess.Popen([sys.executable, "-m", "gossip_backer", "invite",
                                    str(tmp_path / "B"), "--json"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=ENV)
        time.sleep(2.0)
        assert waiting.poll() is None, waiting.communicate()
        a = _run_at(tmp_path / "A", port)  # the inviter comes back and admits B
        out, err = waiting.communicate(timeout=40)
        assert waiting.returncode == 0, err
        assert "waiting for this node to be admitted" in err
        assert json_invite(out).startswith("backer-invite-1:")
    finally:
        a.terminate()
        a.wait(10)


def json_invite(out: str) -> str:
    import json

    return json.loads(out)["invite"]


def test_invite_address_must_be_host_port(tmp_path):
    backer_json("init", str(tmp_path / "A"), "--name", "a")
    for bad in ["nohost", "host:", ":7440", "host:99999", "a b:1", "host:port"]:
        out = backer("invite", str(tmp_path / "A"), "--address", bad, check=False)
        assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "HOST:PORT" in out.stderr
    assert backer_json("invite", str(tmp_path / "A"), "--address", "192.0.2.7:7440")["invite"]


def test_restore_on_a_read_only_node_refuses_and_peers_show_listen_ports(tmp_path, daemons):
    """Issue 11: restore said "restored" but the change stayed on that disk; a peer that
    dialed us showed its outgoing ephemeral port."""
    backer_json("init", str(tmp_path / "A"), "--name", "a")
    a = daemons(tmp_path / "A").start()
    join(tmp_path / "B", invite(a, "--read-only"), "b")
    b = daemons(tmp_path / "B").start()
    wait_until(lambda: b.connected() and a.connected(), what="B admitted")
    for me, other in ((a, b), (b, a)):  # a peer shows its listen port, whoever dialed whom
        [peer] = me.status()["peers"]
        assert peer["address"] == other.listen, (peer, other.listen)
    (a.root / "f.txt").write_bytes(b"one")
    wait_until(lambda: (b.root / "f.txt").exists(), what="f.txt at B")
    import time

    time.sleep(0.3)
    (a.root / "f.txt").write_bytes(b"two, longer")
    wait_until(lambda: (b.root / "f.txt").read_bytes() == b"two, longer", what="f.txt v2 at B")
    out = backer("restore", str(b.root), "f.txt", check=False)
    assert out.returncode == 1 and "read-only" in out.stderr, (out.returncode, out.stderr)
    assert len(out.stderr.strip().splitlines()) == 1
    assert (b.root / "f.txt").read_bytes() == b"two, longer"
    b.stop()
    out = backer("restore", str(b.root), "f.txt", check=False)  # the stopped node: the same
    assert out.returncode == 1 and "read-only" in out.stderr
