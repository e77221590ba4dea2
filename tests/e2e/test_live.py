"""Live files between real `backer run` processes on 127.0.0.1: the CLI, disk edits merged on
every node, identical content that never doubles, cut-off nodes merged on reconnect, fallback."""

from __future__ import annotations

import json
import os
import time

from tests.e2e.conftest import backer, backer_json, mesh, wait_until


def _text(d, path: str) -> str | None:
    try:
        return (d.root / path).read_text("utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def _conflicts(d) -> list[str]:
    return [p for p in os.listdir(d.root) if "sync-conflict" in p]


def test_live_cli_and_merged_edits_on_three_nodes(tmp_path, daemons):
    """`backer live` marks *.md mesh-wide; a note that three nodes already hold the same is not
    doubled; three nodes edit different lines at once; all end with one merged text."""
    nodes = mesh(tmp_path, daemons, 3)
    a, b, c = nodes
    note = "line one\nline two\nline three\n"
    (a.root / "plan.md").write_text(note)
    wait_until(lambda: all(_text(d, "plan.md") == note for d in nodes), what="note mirrored")
    assert backer_json("live", str(a.root), "*.md") == {"live": ["*.md"]}
    assert json.loads(backer("live", str(b.root), "--json", "*.md").stdout) == {"live": ["*.md"]}
    time.sleep(1.5)  # every node seeded its document from the same bytes
    assert all(_text(d, "plan.md") == note for d in nodes)
    (a.root / "plan.md").write_text("line one (A)\nline two\nline three\n")
    (b.root / "plan.md").write_text("line one\nline two (B) ünï 😀\nline three\n")
    (c.root / "plan.md").write_text("line one\nline two\nline three (C)\n")
    want = "line one (A)\nline two (B) ünï 😀\nline three (C)\n"
    wait_until(lambda: [_text(d, "plan.md") for d in nodes] == [want] * 3, timeout=30,
               what="one merged text on every disk")
    assert not any(_conflicts(d) for d in nodes)
    assert backer_json("live", str(a.root), "*.md", "--off") == {"live": []}
