"""One conformance suite for the disk interface, run by every implementation (ARCHITECTURE.md habit
11, like trio's testing/_check_streams.py): the real `disk/` package on a temporary folder and
`gossip_backer.testing.memdisk` in memory must behave the same wherever the runtime relies on it.

`check_all(factory)` runs every case against fresh backends from `factory()`; `CASES` lists the
cases for pytest parametrisation. A `Backend` bundles the API under test (`api`: scan, scan_paths,
stat_of, TempFile, find_partial, make_dir, make_symlink, remove, set_meta, rename, archive,
has_version and the error classes) with the user's hands (write, mkdir, symlink, delete, read...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from gossip_backer.core.blocks import hash_bytes
from gossip_backer.core.paths import TMP_PREFIX, BadPath
from gossip_backer.core.record import DIR, FILE, SYMLINK
from gossip_backer.disk.apply import DEFAULT_HASHER
from gossip_backer.disk.ignore import IgnoreMatcher
from gossip_backer.disk.scan import ScanEntry
from gossip_backer.errors import IntegrityError

MTIME = 1_600_000_000_123_456_789
NS = 1_000_000_000

__all__ = ["Backend", "CASES", "check_all"]


@dataclass
class Backend:
    """The API under test and the hands of the user who owns the folder."""

    root: Any
    api: SimpleNamespace
    write: Callable[..., None]  # (path, data, *, mode=0o644, mtime_ns=None)
    mkdir: Callable[[str], None]
    symlink: Callable[[str, str], None]
    delete: Callable[[str], None]
    read: Callable[[str], bytes | None]
    kind: Callable[[str], str | None]
    mode: Callable[[str], int]
    mtime: Callable[[str], int]
    chmod: Callable[[str, int], None]
    names: Callable[[str], list[str]]  # entries of a folder, temp files included
    vanish: Callable[[], None]
    restore: Callable[[], None]
    ignore: Callable[[list[str]], IgnoreMatcher]
    locate: Callable[[str], Any]  # the API's location value for a mesh path (Path, MemPath)


def h(data: bytes) -> bytes:
    """The whole-file hash TempFile.finish checks by default (apply.DEFAULT_HASHER)."""
    hasher = DEFAULT_HASHER()
    hasher.update(data)
    return hasher.digest()


def put(b: Backend, path: str, data: bytes, *, mode: int = 0o644, mtime_ns: int = MTIME,
        expect: Any = None) -> None:
    t = b.api.TempFile.create(b.root, path)
    t.write_at(0, data)
    t.finish(None, h(data), mode, mtime_ns, expect)


def _scan(b: Backend, previous: dict | None = None, patterns: list[str] | None = None):
    return b.api.scan(b.root, previous or {}, b.ignore(patterns or []))


def _tree(b: Backend) -> None:
    b.write("a.txt", b"hello", mode=0o755, mtime_ns=1_600_000_000 * NS)
    b.write("sub/b.txt", b"bee", mode=0o600, mtime_ns=1_600_000_001 * NS)
    b.mkdir("empty")
    b.symlink("link_in", "a.txt")
    b.symlink("sub/dangling", "../nowhere")


# --- scan -----------------------------------------------------------------------------------------

def case_scan_finds_every_kind(b: Backend) -> None:
    _tree(b)
    res = _scan(b)
    e = res.entries
    assert set(e) == {"a.txt", "sub", "sub/b.txt", "empty", "link_in", "sub/dangling"}
    assert (e["a.txt"].kind, e["a.txt"].size, e["a.txt"].mode) == (FILE, 5, 0o755)
    assert e["a.txt"].mtime_ns == 1_600_000_000 * NS
    assert (e["sub/b.txt"].mode, e["sub/b.txt"].mtime_ns) == (0o600, 1_600_000_001 * NS)
    file_hash, block_size, blocks = hash_bytes(b"hello")
    assert (e["a.txt"].hash, e["a.txt"].block_size, tuple(e["a.txt"].blocks)) == (
        file_hash, block_size, tuple(blocks))
    assert e["sub"].kind == e["empty"].kind == DIR and e["sub"].size == 0
    assert e["link_in"].kind == SYMLINK and e["link_in"].target == "a.txt"
    assert e["link_in"].size == len("a.txt") and e["link_in"].hash is None
    assert e["sub/dangling"].target == "../nowhere"
    assert res.changed == sorted(e)
    assert res.deleted == [] and res.refused == []
    assert (res.files, res.dirs, res.links, res.total) == (2, 2, 2, 6)
    assert res.hashed_bytes == 5 + 3


def case_rescan_unchanged_is_quiet(b: Backend) -> None:
    _tree(b)
    first = _scan(b)
    again = _scan(b, first.entries)
    assert again.changed == [] and again.deleted == [] and again.hashed_bytes == 0
    assert again.entries == first.entries


def case_scan_sees_edits_modes_and_deletions(b: Backend) -> None:
    _tree(b)
    first = _scan(b).entries
    b.write("a.txt", b"hello, world", mode=0o755, mtime_ns=1_600_000_009 * NS)
    b.chmod("sub/b.txt", 0o644)
    b.delete("link_in")
    b.delete("empty")
    res = _scan(b, first)
    assert res.changed == ["a.txt", "sub/b.txt"]
    assert res.deleted == ["empty", "link_in"]
    assert res.entries["a.txt"].hash == hash_bytes(b"hello, world")[0]
    assert res.hashed_bytes == len(b"hello, world")


def case_scan_ignores_patterns_state_and_temp_files(b: Backend) -> None:
    b.write("keep.txt", b"k")
    b.write("x.log", b"log")
    b.write("build/out.bin", b"o")
    b.write(f"sub/{TMP_PREFIX}1234-part", b"partial")
    res = _scan(b, patterns=["*.log", "build/"])
    assert set(res.entries) == {"keep.txt", "sub"}
    known = {**res.entries, "x.log": ScanEntry("x.log", 3, MTIME, 1, 0o644, FILE)}
    again = _scan(b, known, patterns=["*.log", "build/"])
    assert again.deleted == []  # an ignored path is never "deleted"


def case_scan_paths_is_incremental(b: Backend) -> None:
    _tree(b)
    first = _scan(b).entries
    b.write("new/deep/c.txt", b"sea")
    b.delete("sub")
    res = b.api.scan_paths(b.root, ["new", "sub"], first, b.ignore([]))
    assert set(res.entries) == {"new", "new/deep", "new/deep/c.txt"}
    assert res.changed == ["new", "new/deep", "new/deep/c.txt"]
    assert res.deleted == ["sub", "sub/b.txt", "sub/dangling"]


def case_missing_root_is_not_a_mass_deletion(b: Backend) -> None:
    _tree(b)
    first = _scan(b).entries
    b.vanish()
    with pytest.raises(b.api.RootUnavailable):
        _scan(b, first)
    with pytest.raises(b.api.RootUnavailable):
        b.api.scan_paths(b.root, ["a.txt"], first, b.ignore([]))
    b.restore()
    assert _scan(b, first).deleted == []


# --- apply: files -------------------------------------------------------------------------------

def case_temp_file_assembles_and_moves_into_place(b: Backend) -> None:
    data = b"0123456789" * 10
    t = b.api.TempFile.create(b.root, "dir/f.bin")
    t.write_at(50, data[50:])
    t.write_at(0, data[:50])
    assert t.size == 100 and t.read_at(45, 10) == data[45:55]
    t.finish(None, h(data), 0o640, MTIME, None)
    assert b.read("dir/f.bin") == data
    assert b.mode("dir/f.bin") & 0o777 == 0o640 and b.mtime("dir/f.bin") == MTIME
    assert not any(n.startswith(TMP_PREFIX) for n in b.names("dir"))
    st = b.api.stat_of(b.root, "dir/f.bin")
    assert (st.size, st.mtime_ns, st.kind) == (100, MTIME, FILE)


def case_bad_content_never_lands(b: Backend) -> None:
    b.write("f.txt", b"old")
    expect = b.api.stat_of(b.root, "f.txt")
    t = b.api.TempFile.create(b.root, "f.txt")
    t.write_at(0, b"evil")
    with pytest.raises(IntegrityError):
        t.finish(None, h(b"good"), 0o644, MTIME, expect)
    assert b.read("f.txt") == b"old"
    assert not any(n.startswith(TMP_PREFIX) for n in b.names(""))


def case_never_over_a_user_change(b: Backend) -> None:
    b.write("f.txt", b"scanned", mtime_ns=MTIME)
    expect = b.api.stat_of(b.root, "f.txt")
    t = b.api.TempFile.create(b.root, "f.txt")
    t.write_at(0, b"remote")
    b.write("f.txt", b"user edit", mtime_ns=MTIME + NS)
    with pytest.raises(b.api.LocalChanged):
        t.finish(None, h(b"remote"), 0o644, MTIME, expect)
    assert b.read("f.txt") == b"user edit"
    partial = b.api.find_partial(b.root, "f.txt")
    assert partial is not None  # the verified bytes are kept for the caller
    again = b.api.TempFile.open_existing(partial, target=b.locate("f.txt"))
    assert again.read_at(0, 6) == b"remote"
    again.finish(None, h(b"remote"), 0o644, MTIME, b.api.stat_of(b.root, "f.txt"))
    assert b.read("f.txt") == b"remote" and b.api.find_partial(b.root, "f.txt") is None


def case_nothing_expected_but_something_there(b: Backend) -> None:
    t = b.api.TempFile.create(b.root, "new.txt")
    t.write_at(0, b"x")
    b.write("new.txt", b"user made it first")
    with pytest.raises(b.api.LocalChanged):
        t.finish(None, h(b"x"), 0o644, MTIME, None)
    assert b.read("new.txt") == b"user made it first"


def case_replaced_file_is_archived_first(b: Backend) -> None:
    put(b, "f.txt", b"version one")
    old = b.api.stat_of(b.root, "f.txt")
    kept = []

    def archive(where: Any) -> None:
        kept.append(b.api.archive(b.root, where, h(b"version one")))

    t = b.api.TempFile.create(b.root, "f.txt")
    t.write_at(0, b"version two")
    t.finish(None, h(b"version two"), 0o644, MTIME, old, archive=archive)
    assert kept == [True] and b.api.has_version(b.root, h(b"version one"))
    assert b.read("f.txt") == b"version two"


def case_conflict_copy_name_in_the_same_folder(b: Backend) -> None:
    t = b.api.TempFile.create(b.root, "d/f.txt")
    t.write_at(0, b"loser")
    t.finish(b.locate("d/f.sync-conflict-x.txt"), h(b"loser"), 0o644, MTIME, None)
    assert b.read("d/f.sync-conflict-x.txt") == b"loser" and b.kind("d/f.txt") is None


# --- apply: folders, links, deletions, renames -------------------------------------------------

def case_folders(b: Backend) -> None:
    b.api.make_dir(b.root, "a/b", 0o750, MTIME)
    assert b.kind("a") == b.kind("a/b") == DIR and b.mode("a/b") & 0o777 == 0o750
    assert b.mtime("a/b") == MTIME
    b.api.make_dir(b.root, "a/b", 0o755, MTIME + NS)  # an existing folder: mode and mtime
    assert b.mode("a/b") & 0o777 == 0o755 and b.mtime("a/b") == MTIME + NS
    b.write("file", b"f")
    with pytest.raises(b.api.LocalChanged):
        b.api.make_dir(b.root, "file", 0o755, MTIME)


def case_symlinks_are_links(b: Backend) -> None:
    b.api.make_symlink(b.root, "l", "target/elsewhere", None)
    assert b.kind("l") == SYMLINK
    assert b.api.stat_of(b.root, "l").kind == SYMLINK
    st = b.api.stat_of(b.root, "l")
    b.api.make_symlink(b.root, "l", "other", st)
    assert _scan(b).entries["l"].target == "other"
    with pytest.raises(b.api.LocalChanged):
        b.api.make_symlink(b.root, "l", "third", st)  # `st` is stale now


def case_remove(b: Backend) -> None:
    b.write("f.txt", b"x")
    st = b.api.stat_of(b.root, "f.txt")
    b.write("f.txt", b"changed")
    with pytest.raises(b.api.LocalChanged):
        b.api.remove(b.root, "f.txt", st)
    assert b.read("f.txt") == b"changed"
    assert b.api.remove(b.root, "f.txt", b.api.stat_of(b.root, "f.txt")) is True
    assert b.kind("f.txt") is None
    assert b.api.remove(b.root, "f.txt", None) is True  # nothing there, nothing expected
    b.write("d/keep.txt", b"k")
    assert b.api.remove(b.root, "d", b.api.stat_of(b.root, "d")) is False  # not empty
    b.write(f"e/{TMP_PREFIX}0000-x", b"ours")
    assert b.api.remove(b.root, "e", b.api.stat_of(b.root, "e")) is True  # only our temp files
    assert b.kind("e") is None


def case_rename(b: Backend) -> None:
    b.write("a.txt", b"content")
    b.api.rename(b.root, "a.txt", "moved/b.txt", b.api.stat_of(b.root, "a.txt"))
    assert b.kind("a.txt") is None and b.read("moved/b.txt") == b"content"
    b.write("c.txt", b"c")
    with pytest.raises(b.api.LocalChanged):
        b.api.rename(b.root, "c.txt", "moved/b.txt", b.api.stat_of(b.root, "c.txt"))


def case_set_meta(b: Backend) -> None:
    b.write("f", b"x")
    b.api.set_meta(b.root, "f", 0o600, MTIME)
    assert b.mode("f") & 0o777 == 0o600 and b.mtime("f") == MTIME
    with pytest.raises(b.api.LocalChanged):
        b.api.set_meta(b.root, "gone", 0o600, MTIME)


# --- safety ---------------------------------------------------------------------------------------

def case_hostile_paths_are_refused(b: Backend) -> None:
    for bad in ("../escape", "/abs", ".backer/identity.key", "a/../../b", f"{TMP_PREFIX}x", ""):
        with pytest.raises(BadPath):
            b.api.TempFile.create(b.root, bad)
    b.mkdir("real")
    b.symlink("lnk", "real")
    with pytest.raises(BadPath):  # never write through a link
        b.api.TempFile.create(b.root, "lnk/x.txt")
    with pytest.raises(BadPath):
        b.api.make_dir(b.root, "lnk/sub", 0o755, MTIME)
    assert b.names("real") == []


def case_stat_of(b: Backend) -> None:
    _tree(b)
    assert b.api.stat_of(b.root, "nothing") is None
    assert b.api.stat_of(b.root, "a.txt/below") is None  # a file is not a folder
    entries = _scan(b).entries
    for path in ("a.txt", "sub", "link_in"):
        st = b.api.stat_of(b.root, path)
        e = entries[path]
        assert (st.kind, st.inode) == (e.kind, e.inode)
        if st.kind != DIR:
            assert (st.size, st.mtime_ns) == (e.size, e.mtime_ns)


CASES: list[Callable[[Backend], None]] = [
    fn for name, fn in sorted(globals().items()) if name.startswith("case_") and callable(fn)
]


def check_all(factory: Callable[[], Backend]) -> None:
    """Run every case, each on a fresh backend."""
    for case in CASES:
        case(factory())
