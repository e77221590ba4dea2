"""A root that vanishes or suddenly empties (an unmounted disk) pauses the node instead of
spreading a mass deletion; it resumes when the root is back (SPEC.md, "Missing root")."""

from __future__ import annotations

import shutil
import time

import pytest

from gossip_backer.runtime import control
from tests.e2e.conftest import backer_json, in_sync, mesh, tree, wait_until

pytestmark = pytest.mark.e2e


def _fill(root, n=20):
    for i in range(n):
        (root / f"dir{i % 3}").mkdir(exist_ok=True)
        (root / f"dir{i % 3}" / f"f{i}.txt").write_bytes(b"precious %d" % i)


def test_emptied_root_pauses_and_resumes(tmp_path, daemons):
    a, b = mesh(tmp_path, daemons, 2)
    _fill(a.root)
    in_sync([a, b])
    before = tree(b.root)
    for child in a.root.iterdir():
        if child.name != ".backer":
            shutil.rmtree(child)
    wait_until(lambda: "paused" in a.status(), what="A paused")
    assert "empty" in a.status()["paused"]
    events = []
    time.sleep(3)
    assert tree(b.root) == before, "no deletion spread to B"
    for child in b.root.iterdir():  # the disk comes back
        if child.name != ".backer":
            shutil.copytree(child, a.root / child.name, copy_function=shutil.copy2)
    wait_until(lambda: "paused" not in a.status(), what="A resumed")
    in_sync([a, b])
    assert tree(b.root) == before


def test_vanished_root_pauses_and_resumes(tmp_path, daemons):
    a, b = mesh(tmp_path, daemons, 2)
    _fill(a.root)
    in_sync([a, b])
    before = tree(b.root)
    moved = tmp_path / "A-unmounted"
    a.root.rename(moved)
    sock = moved / ".backer" / "control.sock"
    wait_until(lambda: "paused" in (control.request(sock, {"cmd": "status"}) or {}), what="A paused")
    time.sleep(3)
    assert tree(b.root) == before
    moved.rename(a.root)
    wait_until(lambda: "paused" not in a.status(), timeout=60, what="A resumed")
    (a.root / "dir0" / "new.txt").write_bytes(b"after the disk came back")
    in_sync([a, b])
    assert (b.root / "dir0" / "f0.txt").read_bytes() == b"precious 0"
