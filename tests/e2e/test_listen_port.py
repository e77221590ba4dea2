"""`backer run --listen HOST:0` restarted: peers that kept its old address still reach it."""

from __future__ import annotations

import socket

import pytest

from tests.e2e.conftest import backer_json, invite, join, wait_until

pytestmark = pytest.mark.e2e


def test_two_nodes_restarted_on_port_0_while_the_other_was_stopped_reconnect(tmp_path, daemons):
    """A stops; B restarts (A cannot hear of a new port); then A starts again. Each only knows
    the other's address of the last run: both must be listening there again."""
    a_id = backer_json("init", str(tmp_path / "A"), "--name", "alpha")["node_id"]
    a = daemons(tmp_path / "A").start()
    b_id = join(tmp_path / "B", invite(a), "beta")
    b = daemons(tmp_path / "B").start()
    wait_until(lambda: a.connected() == {b_id} and b.connected() == {a_id}, what="A and B connected")
    a_port, b_port = a.listen, b.listen

    a.stop()
    b.stop()
    b = daemons(tmp_path / "B").start()
    a = daemons(tmp_path / "A").start()
    assert (a.listen, b.listen) == (a_port, b_port)
    wait_until(lambda: a.connected() == {b_id} and b.connected() == {a_id}, timeout=20,
               what="A and B connected again")


def test_a_taken_port_gives_a_new_one_that_reaches_the_peers(tmp_path, daemons):
    """The last run's port is taken by another program: a new free port, announced to the peer
    the node reaches, which shows it."""
    a_id = backer_json("init", str(tmp_path / "A"), "--name", "alpha")["node_id"]
    a = daemons(tmp_path / "A").start()
    join(tmp_path / "B", invite(a), "beta")
    b = daemons(tmp_path / "B").start()
    wait_until(lambda: b.connected() == {a_id}, what="B connected")
    b.stop()
    host, port = b.listen.rsplit(":", 1)
    with socket.socket() as squatter:
        squatter.bind((host, int(port)))
        squatter.listen()
        b = daemons(tmp_path / "B").start()
        assert b.listen != f"{host}:{port}"
        wait_until(lambda: [p["address"] for p in a.status()["peers"]] == [b.listen],
                   what="A shows B's new address")
