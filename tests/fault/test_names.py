"""Hostile and odd names on real processes (issue 11): names that are not UTF-8, names that
differ only by case or by Unicode normalization. Never a crash; mirrored when the mesh can carry
them, otherwise skipped and listed in `status` with the reason."""

from __future__ import annotations

import os

import pytest

from tests.e2e.conftest import backer, backer_json, mesh, wait_until
from tests.e2e.test_problems import _kinds, _status_when

pytestmark = pytest.mark.e2e


def test_non_utf8_names_are_skipped_and_listed_and_a_removed_node_says_so(tmp_path, daemons):
    a, b = mesh(tmp_path, daemons, 2)
    root = os.fsencode(a.root)
    with open(os.path.join(root, b"bad\xffname.txt"), "wb") as f:  # the watcher sees this one
        f.write(b"odd name")
    os.mkdir(os.path.join(root, b"dir\xfe"))
    with open(os.path.join(root, b"dir\xfe", b"inside.txt"), "wb") as f:
        f.write(b"below an odd folder")
    (a.root / "good.txt").write_bytes(b"fine")
    # Names that differ only by case: both mirrored (these disks are case-sensitive). Names that
    # are one once NFC-normalised: one is mirrored, the other skipped and listed.
    (a.root / "Readme.txt").write_bytes(b"capital R")
    (a.root / "README.txt").write_bytes(b"all capitals")
    nfc, nfd = "caf\u00e9.txt", "cafe\u0301.txt"
    (a.root / nfc).write_bytes(b"composed")
    (a.root / nfd).write_bytes(b"decomposed")
    wait_until(lambda: (b.root / "good.txt").exists(), what="good.txt mirrored despite the odd names")
    status = _status_when(a, lambda s: "skipped" in _kinds(s),
                        what="odd names listed")
    shown = {s["path"]: s["reason"] for s in status["skipped"]}
    assert {"bad\ufffdname.txt", "dir\ufffd"} <= shown.keys(), shown
    assert all("UTF-8" in shown[p] for p in ("bad\ufffdname.txt", "dir\ufffd"))
    wait_until(lambda: (b.root / "README.txt").exists() and (b.root / "Readme.txt").exists(),
               what="both case variants mirrored")
    assert (b.root / "Readme.txt").read_bytes() == b"capital R"
    wait_until(lambda: any(n in ("caf\u00e9.txt",) for n in os.listdir(b.root)), what="café mirrored")
    assert len([n for n in os.listdir(b.root) if n.startswith("caf")]) == 1
    wait_until(lambda: len([p for p in a.status().get("skipped", []) if p["path"].startswith("caf")]) == 1,
               what="the other café listed as skipped")
    (a.root / "later.txt").write_bytes(b"the watcher still works")
    wait_until(lambda: (b.root / "later.txt").exists(), what="later.txt mirrored")
    assert a.proc.poll() is None
    human = backer("status", str(a.root)).stdout
    assert "not valid UTF-8" in human and "what to do" in human
    os.unlink(os.path.join(root, b"bad\xffname.txt"))  # renamed or removed: no longer listed
    wait_until(lambda: "bad\ufffdname.txt" not in {s["path"] for s in a.status().get("skipped", [])},
               what="the removed name no longer listed")
    # A node removed from the mesh says so, and is never "in sync" again.
    backer_json("remove-peer", str(a.root), b.status()["node_id"])
    status = _status_when(b, lambda s: "removed" in _kinds(s), what="B knows it was removed")
    assert status["in_sync"] is False
    assert "removed" in backer("status", str(b.root)).stdout
