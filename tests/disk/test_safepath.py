"""safepath: where a mesh path lands on disk, and which paths are refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gossip_backer.core.paths import BadPath
from gossip_backer.disk import safepath


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / ".backer").mkdir(parents=True)
    return r


def test_resolve_plain_paths(root: Path) -> None:
    assert safepath.resolve(root, "a.txt") == root / "a.txt"
    assert safepath.resolve(root, "new/deep/b.txt") == root / "new" / "deep" / "b.txt"


def test_resolve_normalises_to_nfc(root: Path) -> None:
    assert safepath.resolve(root, "cafe\u0301") == root / "caf\u00e9"


@pytest.mark.parametrize("bad", [
    "", "../x", "a/../../x", "a/./b", "/etc/passwd", "C:/x", "a\x00b", "a\\..\\b", "a//b",
    ".backer/x", ".backer", ".BACKER/key", "dir/.backer-tmp-1234-x",
])
def test_resolve_refuses_bad_names(root: Path, bad: str) -> None:
    with pytest.raises(BadPath):
        safepath.resolve(root, bad)


def test_resolve_refuses_a_symlink_parent(root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "link").symlink_to(elsewhere)
    with pytest.raises(BadPath):
        safepath.resolve(root, "link/x")
    (root / "d").mkdir()
    (root / "d" / "inner").symlink_to(elsewhere)
    with pytest.raises(BadPath):
        safepath.resolve(root, "d/inner/deeper/x")
    assert list(elsewhere.iterdir()) == []


def test_resolve_allows_a_symlink_as_last_component(root: Path, tmp_path: Path) -> None:
    (root / "link").symlink_to(tmp_path)
    assert safepath.resolve(root, "link") == root / "link"  # the link itself, never followed


def test_resolve_refuses_a_relative_symlink_into_state(root: Path) -> None:
    (root / "sneaky").symlink_to(".backer")
    with pytest.raises(BadPath):
        safepath.resolve(root, "sneaky/key")


def test_probe_on_this_disk_matches_reality(root: Path) -> None:
    safepath.forget()
    (root / "probe-me").write_text("x")
    really = os.path.exists(root / "PROBE-ME")
    assert safepath.is_case_insensitive(root) is really
    assert [p for p in (root / ".backer").iterdir()] == []  # the probe file is removed
    if not really:
        assert safepath.case_collision(root, "Probe-Me") is None


def test_case_collision_when_insensitive(root: Path) -> None:
    (root / "docs").mkdir()
    (root / "docs" / "Readme.md").write_text("x")
    find = lambda p, **kw: safepath.case_collision(root, p, insensitive=True, **kw)  # noqa: E731
    assert find("docs/Readme.md") is None  # the same name is no collision
    assert find("docs/README.md") == "docs/Readme.md"
    assert find("Docs/new.txt") == "docs"
    assert find("other/x") is None
    assert find("docs/Readme.md/x") is None  # a file where a folder should be is not a case issue
    assert find("docs/README.md", allow="docs/Readme.md") is None  # case-only rename source
    assert safepath.case_collision(root, "docs/README.md", insensitive=False) is None


def test_refuse_case_collision_uses_the_probe(root: Path, monkeypatch) -> None:
    (root / "a.txt").write_text("x")
    safepath.forget()
    monkeypatch.setattr(safepath, "_probe", lambda r: True)
    with pytest.raises(safepath.CaseCollision) as info:
        safepath.refuse_case_collision(root, "A.TXT")
    assert info.value.existing == "a.txt"
    safepath.refuse_case_collision(root, "b.txt")
    safepath.forget()
    monkeypatch.setattr(safepath, "_probe", lambda r: False)
    safepath.refuse_case_collision(root, "A.TXT")
    safepath.forget()


def test_probe_failure_assumes_insensitive(tmp_path: Path) -> None:
    blocked = tmp_path / "r"
    blocked.mkdir()
    (blocked / ".backer").write_text("not a folder")
    assert safepath._probe(blocked) is True
