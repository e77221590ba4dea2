"""The live-edit wire with a stock Yjs client (yjs 13 + y-websocket from npm, a real Node process)
against real `backer run` processes: an insert on node A reaches node B's file on disk; a plain
write of B's file reaches the client's Y.Text; a path that is not live is refused."""

from __future__ import annotations

import os

import pytest

from tests.e2e.conftest import backer_json, mesh, wait_until
from tests.e2e.yjs import YClient, ensure_node_modules, ws_base


@pytest.fixture(scope="module", autouse=True)
def _node_modules():
    ensure_node_modules()


def _web(d) -> str:
    return next(line.split()[-1] for line in d.lines if line.startswith("web on "))


def test_yjs_client_edits_a_live_note_on_two_nodes(tmp_path, daemons):
    a, b = mesh(tmp_path, daemons, 2, web=True)
    (a.root / "notes").mkdir()
    (a.root / "notes" / "plan.md").write_text("plan\n")
    backer_json("live", str(a.root), "*.md")
    wait_until(lambda: (b.root / "notes" / "plan.md").exists(), what="note on B")
    client = YClient(ws_base(_web(a)), "notes/plan.md")
    try:
        client.wait_text(lambda t: t == "plan\n")
        client.send(insert=[4, " for monday ünï😀"])
        want = "plan for monday ünï😀\n"
        wait_until(lambda: (b.root / "notes" / "plan.md").read_text() == want, timeout=20,
                   interval=0.05, what="the client's insert in B's file")
        (b.root / "notes" / "plan.md").write_text(want + "- buy milk\n")
        client.wait_text(lambda t: t == want + "- buy milk\n")
        wait_until(lambda: (a.root / "notes" / "plan.md").read_text() == want + "- buy milk\n",
                   timeout=10, interval=0.05, what="B's write in A's file")
        # history and restore keep working: the first version comes back as an edit of the text
        versions = backer_json("history", str(a.root), "notes/plan.md")
        first = min(versions, key=lambda v: v["time"])
        backer_json("restore", str(a.root), "notes/plan.md", "--version", first["version"])
        client.wait_text(lambda t: t == "plan\n")
        wait_until(lambda: (b.root / "notes" / "plan.md").read_text() == "plan\n", timeout=10,
                   interval=0.05, what="the restored text on B")
    finally:
        client.stop()
    (a.root / "other.txt").write_text("not live\n")
    refused = YClient(ws_base(_web(a)), "other.txt")
    try:
        assert refused.wait_closed() is not None and refused.text is None
    finally:
        refused.stop()


def test_demo_starts_with_a_live_note_on_every_node(tmp_path):
    """`backer demo` marks *.md live and a note waits on every node: a Yjs client edits it on
    the second node and the first node's file follows."""
    import re
    import signal
    import subprocess
    import sys
    from pathlib import Path

    demo = subprocess.Popen([sys.executable, "-m", "gossip_backer", "demo", "--nodes", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TMPDIR": str(tmp_path)})  # its roots stay: here
    client = None
    try:
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if "Ctrl-C stops" in line:
                break
        text = "".join(lines)
        roots = [Path(r) for r in re.findall(r"root (/\S+)", text)]
        notes = re.findall(r"live note (http://\S+)/editor\?path=(\S+)", text)
        assert len(roots) == 2 and len(notes) == 2, text
        wait_until(lambda: (roots[1] / "welcome.md").exists(), what="the note on node 2")
        client = YClient(ws_base(notes[1][0] + "/"), notes[1][1])
        client.wait_text(lambda t: t.startswith("# Welcome"))
        client.send(insert=[0, "hi "])
        wait_until(lambda: (roots[0] / "welcome.md").read_text().startswith("hi # Welcome"),
                   interval=0.05, what="node 2's edit in node 1's file")
    finally:
        if client is not None:
            client.stop()
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)


def test_yjs_clients_on_two_nodes_see_each_others_cursor_and_name(tmp_path, daemons):
    """Awareness crosses the mesh: a stock Yjs client on each node sees the other's state
    (relayed between the nodes as LiveSync); a state goes when its client leaves, and when its
    node goes away."""
    a, b = mesh(tmp_path, daemons, 2, web=True)
    (a.root / "n.md").write_text("hello\n")
    backer_json("live", str(a.root), "*.md")
    wait_until(lambda: (b.root / "n.md").exists(), what="note on B")
    on_a, on_b = YClient(ws_base(_web(a)), "n.md"), YClient(ws_base(_web(b)), "n.md")
    clients = [on_a, on_b]
    try:
        on_a.wait_text(lambda t: t == "hello\n")
        on_b.wait_text(lambda t: t == "hello\n")
        on_a.send(aware={"user": {"name": "Ann"}, "cursor": 1})
        on_b.send(aware={"user": {"name": "Bob ünï"}, "cursor": 3})
        names = lambda others: {s.get("user", {}).get("name") for s in others.values()}  # noqa: E731
        on_a.wait_others(lambda o: "Bob ünï" in names(o), timeout=10)
        on_b.wait_others(lambda o: "Ann" in names(o), timeout=10)
        on_b.send(aware={"user": {"name": "Bob ünï"}, "cursor": 5})
        on_a.wait_others(lambda o: any(s.get("cursor") == 5 for s in o.values()), timeout=10)
        on_b.send(quit=True)  # leaves: its state is removed on A too
        on_a.wait_others(lambda o: "Bob ünï" not in names(o), timeout=10)
        again = YClient(ws_base(_web(b)), "n.md")
        clients.append(again)
        again.wait_text(lambda t: t == "hello\n")
        again.send(aware={"user": {"name": "Bea"}})
        on_a.wait_others(lambda o: "Bea" in names(o), timeout=10)
        assert b.stop() == 0  # node B goes: its editors' cursors go from A's editors
        on_a.wait_others(lambda o: "Bea" not in names(o), timeout=10)
    finally:
        for client in clients:
            client.stop()
