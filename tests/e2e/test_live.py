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


def _events(d):
    """`backer events --json` on node `d`, read in a thread: (the process, the events so far).
    Returns once it is subscribed (events are "from now on"): a file touched on `d` shows."""
    import subprocess
    import sys
    import threading

    proc = subprocess.Popen([sys.executable, "-m", "gossip_backer", "events", str(d.root),
                             "--json"], stdout=subprocess.PIPE, text=True)
    seen: list[dict] = []

    def pump() -> None:
        for line in proc.stdout:
            if line.strip():
                seen.append(json.loads(line))
    threading.Thread(target=pump, daemon=True).start()
    pings = iter(range(10_000))

    def subscribed() -> bool:
        if any(str(e.get("path", "")).startswith(".ping") for e in seen):
            return True
        (d.root / f".ping{next(pings)}.txt").write_text("are you listening?")
        return False
    wait_until(subscribed, timeout=60, interval=1.0, what="`backer events` subscribed")
    return proc, seen


def test_live_notes_on_three_nodes(tmp_path, daemons):
    """`backer live` marks *.md mesh-wide; a note that three nodes already hold the same is not
    doubled; three nodes edit different lines at once and all end with one merged text. Then all
    three stop (cut off from each other), each edits another line, and started again (from their
    stores) they hold one merged text, with no conflict copy. Files that cannot be live (not
    UTF-8, over 10 MiB) are mirrored as plain files, the reason in an event."""
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
    (a.root / "todo.md").write_text("one\ntwo\nthree\n")
    wait_until(lambda: all(_text(d, "todo.md") == "one\ntwo\nthree\n" for d in nodes), what="note")
    time.sleep(1.0)
    addresses = [d.listen for d in nodes]
    for d in nodes:
        assert d.stop() == 0
    for d, line in zip(nodes, ("one", "two", "three")):
        text = _text(d, "todo.md").replace(line + "\n", f"{line} ({d.root.name}) ✓\n")
        (d.root / "todo.md").write_text(text)
    for d, address in zip(nodes, addresses):
        d.args = ("--listen", address)
        d.start()
    want = "one (A) ✓\ntwo (B) ✓\nthree (C) ✓\n"
    wait_until(lambda: [_text(d, "todo.md") for d in nodes] == [want] * 3, timeout=60,
               what="the three offline edits merged on every disk")
    assert not any(_conflicts(d) for d in nodes)
    watch, events = _events(nodes[1])
    try:
        (a.root / "bin.md").write_bytes(b"\xff\xfe not text")
        (a.root / "big.md").write_bytes(b"x" * (10 * 1024 * 1024 + 1))
        for d in nodes[1:]:
            wait_until(lambda d=d: (d.root / "bin.md").exists() and (d.root / "big.md").exists()
                       and (d.root / "big.md").stat().st_size == 10 * 1024 * 1024 + 1, timeout=60,
                       what="plain files mirrored")
        assert (nodes[2].root / "bin.md").read_bytes() == b"\xff\xfe not text"
        wait_until(lambda: nodes[1].status()["in_sync"], what="in sync")

        def fallbacks() -> dict:
            return {e["path"]: e["reason"] for e in events if e["type"] == "live_fallback"}
        wait_until(lambda: {"bin.md", "big.md"} <= fallbacks().keys(), timeout=30,
                   what="both fallbacks announced")
    finally:
        watch.terminate()
    announced = fallbacks()
    assert announced.get("bin.md") == "not UTF-8 text", events
    assert announced.get("big.md") == "larger than 10 MiB", events
    assert backer_json("live", str(a.root), "*.md", "--off") == {"live": []}
