"""A live note's node killed (kill -9) while a peer's edit is in its store but not yet in its
file, its file edited while it is down: at restart both edits are there (protocol/live.py's
three-way merge against the durable disk base), on real processes."""

from __future__ import annotations

import time

from tests.e2e import conftest
from tests.e2e.conftest import backer_json, mesh, wait_until
from gossip_backer.runtime.live import WRITE_DELAY_ENV


def _text(d, path: str) -> str | None:
    try:
        return (d.root / path).read_text("utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def test_a_node_killed_before_writing_a_peers_edit_keeps_it_and_the_offline_save(
        tmp_path, daemons, monkeypatch) -> None:
    monkeypatch.setitem(conftest.ENV, WRITE_DELAY_ENV, "10")  # every live file write waits 10 s
    a, b = mesh(tmp_path, daemons, 2)
    note = "one\ntwo\nthree\n"
    (a.root / "plan.md").write_text(note)
    wait_until(lambda: _text(b, "plan.md") == note, what="note mirrored")
    backer_json("live", str(a.root), "*.md")
    time.sleep(2.0)  # both documents seeded from the same bytes (no write needed)
    (a.root / "plan.md").write_text("zero\none\ntwo\nthree\n")  # A's user: a line on top
    time.sleep(3.0)  # A's edit reached B's store; B's file write waits
    assert _text(b, "plan.md") == note
    addresses = {d: d.listen for d in (a, b)}  # each starts again where the other dials it
    b.kill9()
    assert a.stop() == 0  # B can only have A's line from its own store
    (b.root / "plan.md").write_text("one\ntwo\nthree\nfour\n")  # B's user, while B is down
    monkeypatch.delitem(conftest.ENV, WRITE_DELAY_ENV)
    b.args = ("--listen", addresses[b])
    b.start()
    want = "zero\none\ntwo\nthree\nfour\n"
    wait_until(lambda: _text(b, "plan.md") == want, timeout=30, what="both edits in B's file")
    a.args = ("--listen", addresses[a])
    a.start()
    wait_until(lambda: _text(a, "plan.md") == want, timeout=30, what="both edits in A's file")
    assert not [p for p in (a.root.iterdir()) if "sync-conflict" in p.name]
