"""runtime/problems.py: what the scans could not mirror, until it is fixed (issue 11)."""

from __future__ import annotations

import os

from gossip_backer.disk.ignore import IgnoreMatcher
from gossip_backer.disk.scan import scan
from gossip_backer.runtime.problems import LocalProblems, describe


def test_an_unreadable_file_is_listed_until_a_scan_reads_it(tmp_path):
    """As root every file is readable, so the scan's hasher stands in for the OS refusing."""
    (tmp_path / ".backer").mkdir()
    (tmp_path / "secret.txt").write_bytes(b"x")
    ignore = IgnoreMatcher.load(tmp_path)

    def refusing(path, size, current):
        raise PermissionError(13, "Permission denied", path)

    local = LocalProblems(str(tmp_path))
    local.note(scan(tmp_path, {}, ignore, hash_file=refusing))
    shown = describe(local=local)
    assert shown["unreadable"] == {"secret.txt": "Permission denied"}
    [problem] = shown["problems"]
    assert problem["kind"] == "unreadable" and "permissions" in problem["action"]
    local.note(scan(tmp_path, {}, ignore))  # readable again
    assert describe(local=local) == {"problems": []}


def test_a_skipped_name_is_listed_until_it_is_gone(tmp_path):
    """A name that is not UTF-8 is mirrored (not listed); a link whose target is not UTF-8, and
    a name that is another one once NFC-normalised, are listed, escaped as `\\xNN`."""
    (tmp_path / ".backer").mkdir()
    root = os.fsencode(tmp_path)
    open(os.path.join(root, b"bad\xffname"), "wb").close()
    link = os.path.join(root, b"odd\xfe-link")
    os.symlink(b"target-\xff", link)
    local = LocalProblems(str(tmp_path))
    local.note(scan(tmp_path, {}, IgnoreMatcher.load(tmp_path)))
    shown = describe(local=local)
    assert [s["path"] for s in shown["skipped"]] == ["odd\\xfe-link"]
    assert "target is not UTF-8" in shown["skipped"][0]["reason"]
    os.unlink(link)
    assert describe(local=local) == {"problems": []}


def test_a_version_this_disk_cannot_hold_is_listed_until_written(tmp_path):
    local = LocalProblems(str(tmp_path))
    odd = os.fsdecode(b"bad\xffname")
    local.not_held(odd, "cannot move into place: this disk cannot hold the name")
    shown = describe(local=local)
    assert shown["skipped"] == [{"path": "bad\\xffname",
                                 "reason": "cannot move into place: this disk cannot hold the name"}]
    assert shown["problems"][0]["kind"] == "skipped"
    local.held(odd)
    assert describe(local=local) == {"problems": []}


def test_every_kind_says_what_to_do():
    shown = describe(paused="the root is gone", removed=True)
    assert [p["kind"] for p in shown["problems"]] == ["removed", "paused"]
    assert all(p["message"] and p["action"] for p in shown["problems"])
    assert describe(member=False, pending_invite=True, invite_wait="x: refused")["problems"][0][
        "message"].startswith("not admitted yet")
    assert "refused" in describe(member=False, invite_error="the invite was refused: used")[
        "problems"][0]["message"]


def test_unavailable_versions_are_a_problem_with_what_to_do():
    [p] = describe(unavailable=["a/b.bin", "c.txt"])["problems"]
    assert p["kind"] == "unavailable" and "'a/b.bin'" in p["message"] and "2 file(s)" in p["message"]
    assert "node that holds them" in p["action"]
