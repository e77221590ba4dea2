"""A running node holds its invites in memory (runtime/invites.py), and stays in step with the
invites it did not make itself: `backer invite` asks the running node to make it, an invite
stored behind its back (a `backer invite` that found no node running while one was starting)
lets its holder in at the next try, and a used invite keeps its reason across a restart."""

from __future__ import annotations

import json
import subprocess
import sys

from gossip_backer.core.invite import Invite
from gossip_backer.crypto.identity import Identity
from gossip_backer.runtime.state import NodeState
from gossip_backer.wire.codec import pack, unpack
from tests.e2e.conftest import ENV, backer_json, invite, join, wait_until


def _events(root) -> subprocess.Popen:
    """`backer events ROOT --json`, its lines gathered until it is stopped."""
    return subprocess.Popen([sys.executable, "-m", "gossip_backer", "events", str(root), "--json"],
                            stdout=subprocess.PIPE, text=True, env=ENV)


def _stop(proc: subprocess.Popen) -> list[dict]:
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_a_cli_invite_lets_the_joiner_in_at_once_and_a_used_one_stays_used(tmp_path, daemons):
    backer_json("init", str(tmp_path / "A"), "--name", "a")
    a = daemons(tmp_path / "A").start()
    watch = _events(a.root)
    wait_until(lambda: a.status(), what="A answers")
    used = invite(a)  # made by the running node, through its control socket
    b_id = join(tmp_path / "B", used, "b")
    daemons(tmp_path / "B").start()
    wait_until(lambda: b_id in a.connected(), what="B admitted")
    key = Identity.from_seed(Invite.from_text(used, unpack).invite_seed).public.hex()
    refused = [e for e in _stop(watch) if e["type"] == "peer_refused" and key in e["reason"]]
    assert refused == [], f"B's claim was turned away first: {refused}"

    join(tmp_path / "C", used, "c")  # the same invite again
    c = daemons(tmp_path / "C").start()
    wait_until(lambda: c.status().get("error"), what="C told its invite was refused")
    assert "already used" in c.status()["error"]
    a.stop()
    a.start()  # the node reads its invites again, the used one with them
    join(tmp_path / "D", used, "d")
    d = daemons(tmp_path / "D").start()
    wait_until(lambda: d.status().get("error"), what="D told its invite was refused")
    assert "already used" in d.status()["error"]


def test_an_invite_stored_behind_the_running_nodes_back_is_admitted_on_retry(tmp_path, daemons):
    backer_json("init", str(tmp_path / "A"), "--name", "a")
    a = daemons(tmp_path / "A").start()
    state = NodeState.open(a.root)  # what `backer invite` does when it finds no node running
    try:
        text = state.create_invite([a.listen], False, 3600).to_text(pack)
    finally:
        state.close()
    b_id = join(tmp_path / "B", text, "b")
    b = daemons(tmp_path / "B").start()
    wait_until(lambda: b_id in a.connected(), what="B admitted at a later try")
    assert "error" not in b.status()
