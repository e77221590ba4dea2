"""The map's files: a mapping of path -> tuple of versions that holds a lone version bare."""

from __future__ import annotations

import tracemalloc

import pytest

from gossip_backer.core.fileversions import FileVersions
from gossip_backer.core.record import FileRecord
from gossip_backer.core.vv import VersionVector

A, B = b"a" * 32, b"b" * 32


def rec(path: str, origin: bytes = A) -> FileRecord:
    return FileRecord(path, "file", VersionVector({origin: 1}), origin)


def test_it_reads_as_a_dict_of_tuples() -> None:
    files = FileVersions()
    one, two = (rec("x"),), (rec("y"), rec("y", B))
    files["x"], files["y"] = one, two
    assert files["x"] == one and files.get("y") == two and files.get("z") is None
    assert files.get("z", ()) == () and "x" in files and "z" not in files and len(files) == 2
    assert list(files) == ["x", "y"] and dict(files.items()) == {"x": one, "y": two}
    assert files == {"x": one, "y": two} and type(files["x"]) is tuple
    with pytest.raises(KeyError):
        files["z"]


def test_it_changes_as_a_dict_and_copies_apart() -> None:
    files = FileVersions()
    files["x"] = (rec("x"),)
    files["y"] = (rec("y"), rec("y", B))
    other = files.copy()
    files["x"] = (rec("x"), rec("x", B))  # a second version joins
    assert files.pop("y") == (rec("y"), rec("y", B)) and files.pop("y", None) is None
    assert files == {"x": (rec("x"), rec("x", B))}
    assert other == {"x": (rec("x"),), "y": (rec("y"), rec("y", B))}
    files.clear()
    assert len(files) == 0 and other


def test_a_path_is_never_held_without_versions() -> None:
    with pytest.raises(ValueError):
        FileVersions()["x"] = ()


def test_a_lone_version_costs_no_tuple() -> None:
    """100,000 paths of one version each held 100,000 1-tuples (56 bytes each)."""
    n = 5_000
    records = [rec(f"f{i}") for i in range(n)]
    files = FileVersions()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for r in records:
            files[r.path] = (r,)  # (as the map sets a path's versions)
        per_path = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    assert len(files) == n and per_path < 45, per_path  # the dict's entry, ~30-40 bytes
