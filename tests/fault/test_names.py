"""Hostile and odd names on real processes (issue 11): names that are not UTF-8, names that
differ only by case or by Unicode normalization. Never a crash; mirrored byte for byte when the
disk can hold them, otherwise skipped and listed in `status` with the reason."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.e2e.conftest import backer, backer_json, mesh, wait_until
from tests.e2e.test_problems import _kinds, _status_when

pytestmark = pytest.mark.e2e

ODD_FILE = b"bad\xffname.txt"  # Latin-1 and stray bytes: possible on Linux, not UTF-8
ODD_DIR = b"dir\xfe"
ODD_NFD = b"cafe\xcc\x81-\xe9.txt"  # an NFD part and a byte that is not UTF-8: kept as it is


def _read(root, *parts: bytes) -> bytes | None:
    try:
        with open(os.path.join(os.fsencode(root), *parts), "rb") as f:
            return f.read()
    except OSError:
        return None


def _write(root, *parts: bytes, data: bytes) -> None:
    with open(os.path.join(os.fsencode(root), *parts), "wb") as f:
        f.write(data)


def test_names_that_are_not_utf8_are_mirrored_byte_for_byte(tmp_path, daemons):
    a, b = mesh(tmp_path, daemons, 2)
    root = os.fsencode(a.root)
    # The watcher sees these (the periodic rescan is an hour away): watchfiles cannot decode
    # them, the watcher looks at their folder again instead.
    started = time.monotonic()
    _write(a.root, ODD_FILE, data=b"odd name")
    os.mkdir(os.path.join(root, ODD_DIR))
    _write(a.root, ODD_DIR, b"inside.txt", data=b"below an odd folder")
    _write(a.root, ODD_NFD, data=b"half NFD, half Latin-1")
    wait_until(lambda: _read(b.root, ODD_FILE) == b"odd name", what="the odd name on B")
    wait_until(lambda: _read(b.root, ODD_DIR, b"inside.txt") == b"below an odd folder",
               what="the file below the odd folder on B")
    wait_until(lambda: _read(b.root, ODD_NFD) == b"half NFD, half Latin-1", what="the NFD+odd name")
    assert time.monotonic() - started < 30
    names_b = set(os.listdir(os.fsencode(b.root)))
    assert {ODD_FILE, ODD_DIR, ODD_NFD} <= names_b  # the very bytes, not a replacement
    assert os.stat(os.path.join(os.fsencode(b.root), ODD_FILE)).st_mtime_ns == \
        os.stat(os.path.join(root, ODD_FILE)).st_mtime_ns
    # Its edit spreads, both ways.
    _write(a.root, ODD_FILE, data=b"edited on A")
    wait_until(lambda: _read(b.root, ODD_FILE) == b"edited on A", what="the edit on B")
    _write(b.root, ODD_DIR, b"inside.txt", data=b"edited on B")
    wait_until(lambda: _read(a.root, ODD_DIR, b"inside.txt") == b"edited on B", what="B's edit on A")
    # Status, history and events show it escaped (`\xNN`), as valid JSON; the escaped form can
    # be typed back.
    status = json.loads(backer("status", str(b.root), "--json").stdout)
    assert status["in_sync"] is True and "skipped" not in status, status.get("skipped")
    shown = "bad\\xffname.txt"
    history = backer_json("history", str(b.root), shown)
    assert len(history) == 2 and not history[0]["deleted"]
    raw = backer("history", str(b.root), os.fsdecode(ODD_FILE), "--json").stdout
    assert json.loads(raw) == history
    # Its deletion spreads (folder and all).
    os.unlink(os.path.join(root, ODD_FILE))
    os.unlink(os.path.join(root, ODD_DIR, b"inside.txt"))
    os.rmdir(os.path.join(root, ODD_DIR))
    wait_until(lambda: not ({ODD_FILE, ODD_DIR} & set(os.listdir(os.fsencode(b.root)))),
               what="the deletions on B")
    assert json.loads(backer("history", str(b.root), shown, "--json").stdout)[0]["deleted"]
    assert a.proc.poll() is None and b.proc.poll() is None


def test_names_one_once_normalised_are_skipped_and_listed_and_a_removed_node_says_so(
        tmp_path, daemons):
    a, b = mesh(tmp_path, daemons, 2)
    (a.root / "good.txt").write_bytes(b"fine")
    # Names that differ only by case: both mirrored (these disks are case-sensitive). Names that
    # are one once NFC-normalised: one is mirrored, the other skipped and listed.
    (a.root / "Readme.txt").write_bytes(b"capital R")
    (a.root / "README.txt").write_bytes(b"all capitals")
    nfc, nfd = "caf\u00e9.txt", "cafe\u0301.txt"
    (a.root / nfc).write_bytes(b"composed")
    (a.root / nfd).write_bytes(b"decomposed")
    wait_until(lambda: (b.root / "good.txt").exists(), what="good.txt mirrored")
    wait_until(lambda: (b.root / "README.txt").exists() and (b.root / "Readme.txt").exists(),
               what="both case variants mirrored")
    assert (b.root / "Readme.txt").read_bytes() == b"capital R"
    wait_until(lambda: any(n == nfc for n in os.listdir(b.root)), what="café mirrored")
    assert len([n for n in os.listdir(b.root) if n.startswith("caf")]) == 1
    status = _status_when(a, lambda s: "skipped" in _kinds(s), what="the other café listed")
    assert [s["path"] for s in status["skipped"] if s["path"].startswith("caf")] in ([nfc], [nfd])
    assert "NFC" in status["skipped"][0]["reason"]
    (a.root / "later.txt").write_bytes(b"the watcher still works")
    wait_until(lambda: (b.root / "later.txt").exists(), what="later.txt mirrored")
    assert a.proc.poll() is None
    human = backer("status", str(a.root)).stdout
    assert "NFC" in human and "what to do" in human
    # A node removed from the mesh says so, and is never "in sync" again.
    backer_json("remove-peer", str(a.root), b.status()["node_id"])
    status = _status_when(b, lambda s: "removed" in _kinds(s), what="B knows it was removed")
    assert status["in_sync"] is False
    assert "removed" in backer("status", str(b.root)).stdout


@pytest.fixture
def strict_disk(tmp_path):
    """tmp_path/B on a tmpfs that folds case and refuses names that are not UTF-8 (Linux 6.13+
    built with CONFIG_UNICODE, as root; skipped, with the reason, elsewhere)."""
    import subprocess

    where = tmp_path / "B"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,casefold,strict_encoding",
                           "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"no case-folding strict tmpfs here: {done.stderr.strip().splitlines()[0]}")
    try:
        folded = subprocess.run(["chattr", "+F", str(where)], capture_output=True, text=True)
        if folded.returncode != 0:
            pytest.skip(f"chattr +F refused: {folded.stderr.strip()}")
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_disk_that_cannot_hold_a_name_skips_it_lists_it_and_deletes_nothing(
        strict_disk, tmp_path, daemons):
    """B folds case and refuses names that are not UTF-8: it keeps running, lists what it could
    not write with the reason, and neither the odd name nor one of the case twins is lost on A."""
    a, b = mesh(tmp_path, daemons, 2)
    _write(a.root, ODD_FILE, data=b"odd name")
    (a.root / "Readme.txt").write_bytes(b"capital R")
    (a.root / "README.txt").write_bytes(b"all capitals")
    (a.root / "plain.txt").write_bytes(b"fine")
    wait_until(lambda: _read(b.root, b"plain.txt") == b"fine", what="plain.txt on B")
    status = _status_when(b, lambda s: len(s.get("skipped", [])) >= 2,
                          what="B lists the odd name and one case twin")
    shown = {s["path"]: s["reason"] for s in status["skipped"]}
    assert "cannot hold the name" in shown["bad\\xffname.txt"], shown
    assert {"Readme.txt", "README.txt"} & shown.keys() and "case" in str(shown)
    assert b.proc.poll() is None and a.proc.poll() is None
    time.sleep(2)  # nothing B skipped comes back to A as a deletion
    assert _read(a.root, ODD_FILE) == b"odd name"
    assert (a.root / "Readme.txt").read_bytes() == b"capital R"
    assert (a.root / "README.txt").read_bytes() == b"all capitals"
