"""`.backerignore` rules: gitignore syntax, built-in rules, ignored folders, reload."""

from __future__ import annotations

import os

import pytest

from gossip_backer.disk.ignore import IgnoreMatcher


def _matcher(tmp_path, text: str | None) -> IgnoreMatcher:
    if text is not None:
        (tmp_path / ".backerignore").write_text(text)
    return IgnoreMatcher.load(tmp_path)


def test_no_file_ignores_only_builtins(tmp_path):
    m = _matcher(tmp_path, None)
    assert not m.has_patterns
    assert not m.matches("a.txt", False)
    assert not m.matches("sub/dir", True)
    assert m.matches(".backer", True)
    assert m.matches(".backer/db.sqlite", False)
    assert m.matches(".backer-tmp-123", False)
    assert m.matches("deep/down/.backer-tmp-x.part", False)
    assert m.matches("nested/.backer/keys", False)  # a nested root's state is never mirrored


@pytest.mark.parametrize(
    ("path", "is_dir", "ignored"),
    [
        ("x.log", False, True),
        ("sub/x.log", False, True),
        ("keep.log", False, False),  # negation
        ("sub/keep.log", False, False),
        ("build", True, True),  # directory pattern
        ("build", False, False),  # ...matches folders only
        ("build/out.o", False, True),  # below an ignored folder
        ("build/keep.log", False, True),  # a negation cannot re-include below an ignored folder
        ("src/build", True, True),
        ("top", False, True),  # anchored
        ("src/top", False, False),
        ("notes.txt", False, False),
        ("# not a comment", False, False),
    ],
)
def test_patterns(tmp_path, path, is_dir, ignored):
    m = _matcher(tmp_path, "# comment\n\n*.log\n!keep.log\nbuild/\n/top\n")
    assert m.matches(path, is_dir) is ignored


def test_backerignore_itself_is_never_ignored(tmp_path):
    m = _matcher(tmp_path, "*\n.*\n")
    assert not m.matches(".backerignore", False)
    assert m.matches("anything", False)
    assert m.matches("sub/.backerignore", False)  # only the root's file is special


def test_reload_if_changed(tmp_path):
    m = _matcher(tmp_path, "*.log\n")
    assert m.generation == 0
    assert not m.reload_if_changed()
    assert m.matches("a.log", False) and not m.matches("a.tmp", False)

    (tmp_path / ".backerignore").write_text("*.tmp\n# longer now\n")
    assert m.reload_if_changed()
    assert m.generation == 1
    assert not m.matches("a.log", False) and m.matches("a.tmp", False)

    os.remove(tmp_path / ".backerignore")
    assert m.reload_if_changed()
    assert not m.has_patterns and not m.matches("a.tmp", False)
    assert not m.reload_if_changed()
