"""Problems the user must see (issue 11): a paused root, an invite that cannot work (names that
are not UTF-8 and a removed node: tests/fault/test_names.py). Each shows in `status --json` (`problems`, with what
to do), in human `status`, and never kills the node or looks "in sync"."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import backer, backer_json, invite, join, wait_until

pytestmark = pytest.mark.e2e


def _status_when(daemon, predicate, what: str) -> dict:
    """The first status of `daemon` for which `predicate` holds."""
    return wait_until(lambda: (lambda s: s if predicate(s) else None)(daemon.status()), what=what)


def _kinds(status: dict) -> set[str]:
    return {p["kind"] for p in status.get("problems", [])}


def test_paused_root_is_not_shown_as_syncing(tmp_path, daemons):
    root = tmp_path / "a"
    backer_json("init", str(root), "--name", "a")
    for i in range(20):
        (root / f"f{i}.txt").write_bytes(b"x%d" % i)
    a = daemons(root).start()
    wait_until(lambda: a.status()["files"] == 20, what="20 files indexed")
    for i in range(20):
        (root / f"f{i}.txt").unlink()
    status = _status_when(a, lambda s: "paused" in s, what="paused")
    assert "paused" in _kinds(status) and status["in_sync"] is False
    human = backer("status", str(root)).stdout
    assert "paused" in human and "syncing" not in human and "what to do" in human


def test_used_or_unreachable_invite_is_never_in_sync(tmp_path, daemons):
    backer_json("init", str(tmp_path / "A"), "--name", "a")
    a = daemons(tmp_path / "A").start()
    used = invite(a)
    d_id = join(tmp_path / "D", used, "d")
    daemons(tmp_path / "D").start()
    wait_until(lambda: d_id in a.connected(), what="D joined")
    join(tmp_path / "E", used, "e")  # the same invite again
    e = daemons(tmp_path / "E").start()
    status = _status_when(e, lambda s: "error" in s, what="E refused")
    assert "invite" in _kinds(status) and status["in_sync"] is False
    assert "what to do" in backer("status", str(e.root)).stdout
    e.stop()
    stopped = e.status()  # still said after a restart of the CLI, the node not running
    assert stopped["in_sync"] is False and "invite" in _kinds(stopped)
    # An invite that points at nobody (mistyped, tampered): waiting, never "in sync".
    join(tmp_path / "F", invite(a, "--address", "127.0.0.1:9"), "f")
    f = daemons(tmp_path / "F").start()
    time.sleep(1.0)
    status = f.status()
    assert status["in_sync"] is False
    problem = next(p for p in status["problems"] if p["kind"] == "invite")
    assert "not admitted yet" in problem["message"]
    # A tampered invite that still parses (a byte of its mesh secret changed): the inviter
    # cannot even complete a handshake; the node says why, and is never "in sync".
    from gossip_backer.core.invite import Invite
    from gossip_backer.wire.codec import pack, unpack

    inv = Invite.from_text(invite(a), unpack)
    bad = Invite(bytes([inv.mesh_secret[0] ^ 1]) + inv.mesh_secret[1:], inv.founder, inv.inviter,
                 inv.addresses, inv.read_only, inv.expires, inv.invite_seed)
    join(tmp_path / "G", bad.to_text(pack), "g")
    g = daemons(tmp_path / "G").start()
    status = _status_when(g, lambda s: any("not admitted yet" in p["message"] and "answer (" in p["message"]
                                           for p in s.get("problems", [])),
                          what="G says why it is not admitted")
    assert status["in_sync"] is False and g.connected() == set()
