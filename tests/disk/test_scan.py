"""disk.scan on real files: kinds, links never followed, change detection, ignore rules,
incremental scans, files that move while hashed, and a root that is not there."""

from __future__ import annotations

import hashlib
import os
import shutil
import time

import pytest

from gossip_backer.core.record import DIR, FILE, SYMLINK
from gossip_backer.disk import scan as scan_mod
from gossip_backer.disk.ignore import IgnoreMatcher
from gossip_backer.disk.scan import (
    FileHash, RootUnavailable, ScanEntry, root_state, scan, scan_paths,
)

NS = 1_000_000_000


class CountingHash:
    """A stand-in for the block hasher that records which files it opened."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, path: str, size: int, current: int = 0) -> FileHash:
        self.calls.append(path)
        with open(path, "rb") as f:
            return FileHash(hashlib.sha256(f.read()).digest(), 128 * 1024, ())


def _write(path, data: bytes | str = b"x", *, mtime_s: int | None = None, mode: int | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mode is not None:
        os.chmod(path, mode)
    if mtime_s is not None:
        os.utime(path, ns=(mtime_s * NS, mtime_s * NS))
    return path


def _scan(root, previous=None, *, hasher=None):
    return scan(root, previous or {}, IgnoreMatcher.load(root), hash_file=hasher or CountingHash())


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    _write(outside / "secret.txt", "not ours")
    _write(root / "a.txt", "hello", mtime_s=1_600_000_000, mode=0o755)
    _write(root / "sub" / "b.txt", "bee", mtime_s=1_600_000_001, mode=0o600)
    (root / "empty").mkdir()
    os.symlink("a.txt", root / "link_in")
    os.symlink(str(outside), root / "link_out")  # a folder outside the root
    os.symlink("../nowhere", root / "sub" / "dangling")
    return root


def test_finds_files_dirs_empty_dirs_and_links(tree):
    res = _scan(tree)
    e = res.entries
    assert set(e) == {"a.txt", "sub", "sub/b.txt", "empty", "link_in", "link_out", "sub/dangling"}
    assert (e["a.txt"].kind, e["a.txt"].size, e["a.txt"].mode) == (FILE, 5, 0o755)
    assert e["a.txt"].mtime_ns == 1_600_000_000 * NS
    assert (e["sub/b.txt"].mode, e["sub/b.txt"].mtime_ns) == (0o600, 1_600_000_001 * NS)
    assert e["a.txt"].hash == hashlib.sha256(b"hello").digest()
    assert e["a.txt"].inode == os.lstat(tree / "a.txt").st_ino
    assert e["sub"].kind == e["empty"].kind == DIR
    assert e["link_in"].kind == SYMLINK and e["link_in"].target == "a.txt"
    assert e["link_out"].target == str(tree.parent / "outside") and e["link_out"].hash is None
    assert e["sub/dangling"].target == "../nowhere"
    assert not any("secret" in p for p in e)  # the link to a folder was not followed
    assert res.changed == sorted(e)
    assert res.deleted == [] and res.unstable == [] and res.refused == []
    assert (res.files, res.dirs, res.links, res.total) == (2, 2, 3, 7)
    assert res.hashed_bytes == 5 + 3


def test_other_kinds_are_skipped(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    _write(tmp_path / "f", "x")
    assert set(_scan(tmp_path).entries) == {"f"}


def test_default_hasher_uses_core_blocks(tmp_path):
    from gossip_backer.core.blocks import BlockHasher, block_size_for

    data = os.urandom(2 * scan_mod.CHUNK + 12_345)  # crosses chunk and block boundaries
    _write(tmp_path / "f.bin", data)
    entry = scan(tmp_path, {}, IgnoreMatcher.load(tmp_path)).entries["f.bin"]
    hasher = BlockHasher(block_size_for(len(data)))
    hasher.update(data)
    file_hash, blocks = hasher.finish()
    assert (entry.hash, entry.blocks, entry.block_size) == (
        file_hash, tuple(blocks), block_size_for(len(data)))


def test_unchanged_rescan_only_stats(tree, monkeypatch):
    first = _scan(tree)
    hasher = CountingHash()
    with monkeypatch.context() as m:  # not one file may be opened
        m.setattr(scan_mod.os, "open", lambda *a, **k: pytest.fail("opened a file"))
        again = scan(tree, first.entries, IgnoreMatcher.load(tree), hash_file=hasher)
    assert hasher.calls == []
    assert again.entries == first.entries
    assert again.changed == again.refreshed == again.deleted == again.unstable == []
    assert again.hashed_bytes == 0


def test_default_hasher_unchanged_rescan_opens_nothing(tmp_path, monkeypatch):
    for i in range(5):
        _write(tmp_path / f"d{i}" / "f.txt", f"file {i}")
    ignore = IgnoreMatcher.load(tmp_path)
    first = scan(tmp_path, {}, ignore)
    monkeypatch.setattr(scan_mod, "hash_file", lambda *a: pytest.fail("hashed again"))
    assert scan(tmp_path, first.entries, ignore).changed == []


def test_new_modified_deleted(tree):
    first = _scan(tree)
    _write(tree / "a.txt", "hello, longer")  # new size
    _write(tree / "sub" / "b.txt", "BEE", mtime_s=1_700_000_000, mode=0o600)  # same size
    _write(tree / "new.txt", "new")
    os.remove(tree / "link_in")
    shutil.rmtree(tree / "empty")
    hasher = CountingHash()
    res = _scan(tree, first.entries, hasher=hasher)
    assert res.changed == ["a.txt", "new.txt", "sub/b.txt"]
    assert res.deleted == ["empty", "link_in"]
    assert sorted(os.path.basename(p) for p in hasher.calls) == ["a.txt", "b.txt", "new.txt"]
    assert res.entries["sub/b.txt"].hash == hashlib.sha256(b"BEE").digest()


def test_mode_and_mtime_changes(tree):
    first = _scan(tree)
    os.chmod(tree / "a.txt", 0o644)
    os.utime(tree / "sub" / "b.txt", ns=(5 * NS, 5 * NS))
    hasher = CountingHash()
    res = _scan(tree, first.entries, hasher=hasher)
    assert res.changed == ["a.txt", "sub/b.txt"]
    assert res.entries["a.txt"].mode == 0o644
    assert [os.path.basename(p) for p in hasher.calls] == ["b.txt"]  # a mode change keeps the hash


def test_same_content_new_inode_is_not_a_change(tree):
    first = _scan(tree)
    st = os.lstat(tree / "a.txt")
    _write(tree / "tmp", "hello", mode=0o755)
    os.utime(tree / "tmp", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tree / "tmp", tree / "a.txt")  # as disk/apply does
    res = _scan(tree, first.entries)
    assert res.changed == [] and res.refreshed == ["a.txt"]
    assert res.entries["a.txt"].inode != first.entries["a.txt"].inode


def test_folder_mtime_alone_is_refreshed_not_changed(tree):
    first = _scan(tree)
    os.utime(tree / "empty", ns=(7 * NS, 7 * NS))
    res = _scan(tree, first.entries)
    assert res.changed == [] and res.refreshed == ["empty"]
    assert res.entries["empty"].mtime_ns == 7 * NS


def test_kind_changes(tree):
    first = _scan(tree)
    os.remove(tree / "link_in")
    (tree / "link_in").mkdir()
    shutil.rmtree(tree / "sub")
    _write(tree / "sub", "now a file")
    res = _scan(tree, first.entries)
    assert res.entries["link_in"].kind == DIR and res.entries["sub"].kind == FILE
    assert res.changed == ["link_in", "sub"]
    assert res.deleted == ["sub/b.txt", "sub/dangling"]


def test_ignore_rules(tmp_path):
    _write(tmp_path / ".backerignore", "*.log\n!keep.log\nbuild/\n")
    for p in ("x.log", "keep.log", "sub/y.log", "build/out.o", "build/keep.log", "a.txt",
              ".backer/db", "sub/.backer-tmp-123", ".backer-tmp-9"):
        _write(tmp_path / p)
    res = _scan(tmp_path)
    assert set(res.entries) == {".backerignore", "keep.log", "a.txt", "sub"}


def test_ignored_paths_are_not_deleted(tmp_path):
    _write(tmp_path / "x.log")
    _write(tmp_path / "build" / "o")
    first = _scan(tmp_path)
    assert set(first.entries) == {"x.log", "build", "build/o"}
    _write(tmp_path / ".backerignore", "*.log\nbuild/\n")
    os.remove(tmp_path / "x.log")  # deleted after it became ignored: not spread
    res = _scan(tmp_path, first.entries)
    assert res.deleted == []
    assert set(res.entries) == {".backerignore"}
    assert res.changed == [".backerignore"]


def test_refused_names(tmp_path):
    _write(tmp_path / "ok.txt")
    _write(tmp_path / "back\\slash")
    _write(tmp_path / "ctrl\x01char")
    (tmp_path / "bad\\dir").mkdir()
    _write(tmp_path / "bad\\dir" / "inner.txt")
    os.symlink(b"target-\xff", os.path.join(os.fsencode(tmp_path), b"odd-link"))
    res = _scan(tmp_path)
    assert set(res.entries) == {"ok.txt"}
    assert len(res.refused) == 4 and "bad\\dir" in res.refused and "odd-link" in res.refused


def test_names_that_are_not_utf8_are_entries_byte_for_byte(tmp_path):
    """A Latin-1 name (and one whose valid part is NFD) is a mesh path as os.fsdecode gives it:
    not normalised, found again by a partial scan, its folder walked."""
    root = os.fsencode(tmp_path)
    os.close(os.open(os.path.join(root, b"latin1-\xe9"), os.O_CREAT | os.O_WRONLY))
    os.mkdir(os.path.join(root, b"cafe\xcc\x81-\xfe"))
    _write(tmp_path / os.fsdecode(b"cafe\xcc\x81-\xfe") / "inside.txt", "below")
    first = _scan(tmp_path)
    odd, folder = os.fsdecode(b"latin1-\xe9"), os.fsdecode(b"cafe\xcc\x81-\xfe")
    assert set(first.entries) == {odd, folder, folder + "/inside.txt"} and not first.refused
    _write(tmp_path / odd, "now with content")
    res = scan_paths(tmp_path, [odd], first.entries, IgnoreMatcher.load(tmp_path),
                     hash_file=CountingHash())
    assert res.changed == [odd] and res.entries[odd].size == len("now with content")


def test_names_are_nfc(tmp_path):
    nfd, nfc = "e\u0301t\u00e9.txt".replace("\u00e9", "e\u0301"), "\u00e9t\u00e9.txt"
    _write(tmp_path / nfd, "accent")
    first = _scan(tmp_path)
    assert list(first.entries) == [nfc]
    _write(tmp_path / nfd, "changed accent")
    res = scan_paths(tmp_path, [nfc], first.entries, IgnoreMatcher.load(tmp_path),
                     hash_file=CountingHash())
    assert res.changed == [nfc] and res.deleted == []


def test_growing_file_is_unstable(tmp_path):
    _write(tmp_path / "big.bin", b"0" * 1000)
    _write(tmp_path / "calm.txt", "calm")

    def appending(path: str, size: int, current: int = 0) -> FileHash:
        fh = CountingHash()(path, size)
        if path.endswith("big.bin"):
            with open(path, "ab") as f:
                f.write(b"more")
        return fh

    res = _scan(tmp_path, hasher=appending)
    assert res.unstable == ["big.bin"]
    assert "big.bin" not in res.entries and "big.bin" not in res.changed
    assert res.changed == ["calm.txt"]
    # Known before: its previous entry is kept, so it is neither changed nor deleted.
    known = _scan(tmp_path)
    _write(tmp_path / "big.bin", b"1" * 10)
    res = _scan(tmp_path, known.entries, hasher=appending)
    assert res.unstable == ["big.bin"] and res.deleted == [] and res.changed == []
    assert res.entries["big.bin"] == known.entries["big.bin"]
    # Once it stops moving, it is announced.
    res = _scan(tmp_path, known.entries)
    assert res.changed == ["big.bin"] and res.unstable == []


def test_unreadable_file_is_kept(tmp_path):
    _write(tmp_path / "f", "data")
    known = _scan(tmp_path)
    _write(tmp_path / "f", "new data")

    def denied(path: str, size: int, current: int = 0) -> FileHash:
        raise PermissionError(13, "Permission denied", path)

    res = _scan(tmp_path, known.entries, hasher=denied)
    assert res.errors == {"f": "Permission denied"}
    assert res.entries["f"] == known.entries["f"] and res.changed == res.deleted == []


def test_unlistable_folder_keeps_what_was_known(tree, monkeypatch):
    first = _scan(tree)
    os.remove(tree / "sub" / "b.txt")
    real_scandir = os.scandir

    def scandir(path):
        if os.fspath(path).endswith("sub"):
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(scan_mod.os, "scandir", scandir)
    res = _scan(tree, first.entries)
    assert res.errors == {"sub": "Permission denied"}
    assert res.deleted == [] and res.entries["sub/b.txt"] == first.entries["sub/b.txt"]


def test_previous_may_hold_other_entry_types(tree):
    """The runtime passes store.IndexEntry objects: any object with the same fields will do,
    and an unchanged path's entry is that object itself (no new entry per unchanged file)."""
    first = _scan(tree)

    class Other:
        def __init__(self, e: ScanEntry) -> None:
            for name in ScanEntry.__slots__:
                setattr(self, name, getattr(e, name))

    hasher = CountingHash()
    previous = {p: Other(e) for p, e in first.entries.items()}
    res = _scan(tree, previous, hasher=hasher)
    assert hasher.calls == [] and res.changed == [] and res.refreshed == []
    assert res.entries.keys() == first.entries.keys()
    assert all(res.entries[p] is previous[p] for p in previous)
    os.chmod(tree / "a.txt", 0o600)  # a moved field is a new ScanEntry again
    res = _scan(tree, previous, hasher=hasher)
    assert hasher.calls == [] and res.changed == ["a.txt"]
    assert type(res.entries["a.txt"]) is ScanEntry and res.entries["a.txt"].mode == 0o600


# -- scan_paths ----------------------------------------------------------------------------------


def test_scan_paths_new_subtree(tree):
    first = _scan(tree)
    _write(tree / "new" / "d" / "e" / "f.txt", "deep")
    (tree / "new" / "empty").mkdir()
    hasher = CountingHash()
    res = scan_paths(tree, ["new"], first.entries, IgnoreMatcher.load(tree), hash_file=hasher)
    expect = ["new", "new/d", "new/d/e", "new/d/e/f.txt", "new/empty"]
    assert res.changed == expect and sorted(res.entries) == expect
    assert len(hasher.calls) == 1 and res.deleted == []


def test_scan_paths_hands_over_progress(tree, monkeypatch):
    """A large new subtree is handed over while it is walked: each path once, either in a
    partial result or in the final one, and nothing handed over counts as deleted."""
    first = _scan(tree)
    for i in range(30):
        _write(tree / "new" / f"d{i % 3}" / f"f{i}.txt", f"file {i}")
    monkeypatch.setattr(scan_mod, "PROGRESS_SECONDS", 0.0)  # hand over at every entry
    monkeypatch.setattr(scan_mod, "PROGRESS_FIRST", 0.0)
    parts = []
    res = scan_paths(tree, ["new"], first.entries, IgnoreMatcher.load(tree),
                     hash_file=CountingHash(), progress=parts.append)
    assert len(parts) > 1
    handed = [p for part in parts for p in part.changed]
    for part in parts:
        assert sorted(part.entries) == part.changed and not part.deleted
    assert sorted(handed + res.changed) == sorted(set(handed + res.changed))  # each path once
    assert len(handed + res.changed) == 1 + 3 + 30 and res.deleted == []
    assert set(handed) <= res.entries.keys()
    quiet = scan_paths(tree, ["new"], first.entries, IgnoreMatcher.load(tree),
                       hash_file=CountingHash())  # without `progress`: all in the result
    assert len(quiet.changed) == 34


def test_the_first_hand_over_comes_early(tree, monkeypatch):
    """The first files of a large new subtree go to the peers after PROGRESS_FIRST of walking,
    not a whole PROGRESS_SECONDS: a tree dropped into the folder starts crossing sooner."""
    first = _scan(tree)
    for i in range(20):
        _write(tree / "new" / f"f{i:02d}.txt", f"file {i}")
    monkeypatch.setattr(scan_mod, "PROGRESS_SECONDS", 60.0)
    monkeypatch.setattr(scan_mod, "PROGRESS_FIRST", 0.05)
    inner = CountingHash()

    def slow_hash(*args, **kwargs):
        time.sleep(0.01)
        return inner(*args, **kwargs)

    parts = []
    start = time.monotonic()
    res = scan_paths(tree, ["new"], first.entries, IgnoreMatcher.load(tree), hash_file=slow_hash,
                     progress=lambda part: parts.append((time.monotonic() - start, part)))
    assert len(parts) == 1  # then nothing more until PROGRESS_SECONDS
    took, part = parts[0]
    assert 0.05 <= took < 0.2 and 0 < len(part.changed) < 21
    assert len(part.changed) + len(res.changed) == 21


def test_scan_paths_adds_unknown_ancestors(tree):
    first = _scan(tree)
    _write(tree / "x" / "y" / "z.txt", "z")
    res = scan_paths(tree, ["x/y/z.txt"], first.entries, IgnoreMatcher.load(tree),
                     hash_file=CountingHash())
    assert res.changed == ["x", "x/y", "x/y/z.txt"]


def test_scan_paths_vanished_subtree(tree):
    first = _scan(tree)
    shutil.rmtree(tree / "sub")
    os.remove(tree / "a.txt")
    res = scan_paths(tree, ["sub", "a.txt", "never-known"], first.entries,
                     IgnoreMatcher.load(tree), hash_file=CountingHash())
    assert res.deleted == ["a.txt", "sub", "sub/b.txt", "sub/dangling"]
    assert res.entries == {} and res.changed == []


def test_scan_paths_replaced_folder(tree):
    first = _scan(tree)
    os.rename(tree / "sub", tree / "old")
    _write(tree / "sub" / "c.txt", "sea")  # a new folder at the same path
    res = scan_paths(tree, ["sub"], first.entries, IgnoreMatcher.load(tree),
                     hash_file=CountingHash())
    assert res.changed == ["sub/c.txt"]  # the folder itself looks the same to a peer
    assert res.deleted == ["sub/b.txt", "sub/dangling"]


def test_scan_paths_unchanged_and_ignored(tree):
    first = _scan(tree)
    _write(tree / ".backer" / "db", "state")
    _write(tree / ".backer-tmp-1", "partial")
    hasher = CountingHash()
    res = scan_paths(tree, ["a.txt", "sub/b.txt", ".backer/db", ".backer-tmp-1", "link_out"],
                     first.entries, IgnoreMatcher.load(tree), hash_file=hasher)
    assert hasher.calls == [] and res.changed == [] and res.deleted == []
    assert sorted(res.entries) == ["a.txt", "link_out", "sub/b.txt"]


def test_scan_paths_does_not_go_through_links(tree):
    first = _scan(tree)
    res = scan_paths(tree, ["link_out/secret.txt"], first.entries, IgnoreMatcher.load(tree),
                     hash_file=CountingHash())
    assert res.entries == {} and res.changed == res.deleted == []


# -- the root itself -----------------------------------------------------------------------------


def test_root_state(tmp_path):
    assert root_state(tmp_path) is None
    assert root_state(tmp_path / "nope") == "missing"
    _write(tmp_path / "file")
    assert root_state(tmp_path / "file") == "not a directory"
    assert root_state(tmp_path / "file" / "below") == "missing"
    assert root_state(tmp_path, require_state_dir=True) == "without its .backer folder"
    (tmp_path / ".backer").mkdir()
    assert root_state(tmp_path, require_state_dir=True) is None


def test_root_state_unreadable(tmp_path, monkeypatch):
    """A root that cannot be listed (permissions; root bypasses them, so the OS refusal is
    simulated) is 'unreadable', not empty."""
    (tmp_path / "r").mkdir()
    real = os.scandir

    def refuse(path):
        if str(path) == str(tmp_path / "r"):
            raise PermissionError(13, "Permission denied")
        return real(path)
    monkeypatch.setattr(os, "scandir", refuse)
    assert root_state(tmp_path / "r") == "unreadable"


def test_missing_root_is_never_a_mass_deletion(tree):
    first = _scan(tree)
    shutil.rmtree(tree)
    with pytest.raises(RootUnavailable) as info:
        _scan(tree, first.entries)
    assert info.value.reason == "missing"
    with pytest.raises(RootUnavailable):
        scan_paths(tree, ["a.txt"], first.entries, IgnoreMatcher.load(tree))


def test_a_file_that_grows_keeps_its_block_size(tmp_path):
    """Crossing a size threshold must not re-cut a file: an insertion would then move every
    block boundary and cost a bigger block on the wire (a 100-byte insertion into a 512 MiB file
    cost a 512 KiB block instead of a 256 KiB one)."""
    from gossip_backer.core.blocks import block_size_for
    from gossip_backer.disk.scan import hash_file

    root = tmp_path / "root"
    big = root / "big.bin"
    root.mkdir()
    with open(big, "wb") as f:  # sparse: 256 MiB of zeros at the 128 KiB / 256 KiB threshold
        f.truncate(256 << 20)
    first = scan(root, {}, IgnoreMatcher.load(root), hash_file=hash_file)
    before = first.entries["big.bin"]
    assert before.block_size == block_size_for(256 << 20) == 128 << 10

    with open(big, "r+b") as f:
        f.seek(0, os.SEEK_END)
        f.write(b"x" * 100)
    assert block_size_for((256 << 20) + 100) == 256 << 10  # what a fresh file would get
    again = scan(root, first.entries, IgnoreMatcher.load(root), hash_file=hash_file)
    after = again.entries["big.bin"]
    assert after.size == (256 << 20) + 100 and after.block_size == 128 << 10
    assert after.blocks[:-1] == before.blocks  # only the new tail block differs


def test_a_partial_scan_refuses_a_name_that_is_another_once_normalised(tmp_path):
    """Issue 11: the watcher names only the NFC path; the NFD twin was never listed."""
    from gossip_backer.disk.ignore import IgnoreMatcher
    from gossip_backer.disk.scan import scan_paths

    (tmp_path / ".backer").mkdir()
    nfc, nfd = "caf\u00e9.txt", "cafe\u0301.txt"
    (tmp_path / nfc).write_bytes(b"composed")
    (tmp_path / nfd).write_bytes(b"decomposed")
    res = scan_paths(tmp_path, [nfc], {}, IgnoreMatcher.load(tmp_path))
    assert list(res.entries) == [nfc] and res.refused == [nfd]


@pytest.mark.parametrize("size", [scan_mod.TWO_THREADS - 1, scan_mod.TWO_THREADS,
                                  scan_mod.TWO_THREADS + 3 * scan_mod.CHUNK + 12_345])
def test_a_large_file_hashes_alike_on_two_threads(tmp_path, size) -> None:
    """From TWO_THREADS bytes a file is hashed on two threads (whole hash here, blocks in a
    helper, chunks in rotating buffers): the same file hash, blocks and weak sums as one pass
    over the bytes in memory, for sizes that end inside a chunk and inside a block."""
    from gossip_backer.core.blocks import hash_bytes

    data = bytes(range(251)) * (size // 251) + os.urandom(size % 251)
    path = _write(tmp_path / "big.bin", data)
    got = scan_mod.hash_file(str(path), size)
    file_hash, block_size, blocks = hash_bytes(data, got.block_size)
    assert (got.hash, got.block_size, got.blocks) == (file_hash, block_size, blocks)
    assert len(got.blocks) == -(-size // got.block_size)


@pytest.mark.parametrize("size", [0, 1000, 128 << 10, (128 << 10) + 1, 3 << 20])
def test_a_file_is_read_up_to_its_size_and_one_block_is_hashed_once(tmp_path, monkeypatch,
                                                                      size):
    """Each syscall and each hash of the scan thread is GIL time the block server and the loop
    wait for: no read past the scanned size to meet the end, and a file of one block hashed
    once (its hash is the block's). The result is BlockHasher's."""
    from gossip_backer.core import blocks as core_blocks
    from gossip_backer.core.blocks import BLOCK_SIZES, hash_bytes

    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    reads, hashes = [], []
    real_open, real_blake3 = open, core_blocks.blake3.blake3

    class Counted:
        def __init__(self, f):
            self.f = f

        def readinto(self, buf):
            reads.append(len(buf))
            return self.f.readinto(buf)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    class Blake3:
        @staticmethod
        def blake3(*a, **k):
            hashes.append(a)
            return real_blake3(*a, **k)

    monkeypatch.setattr(scan_mod, "open", lambda *a, **k: Counted(real_open(*a, **k)),
                        raising=False)
    monkeypatch.setattr(core_blocks, "blake3", Blake3)
    got = scan_mod.hash_file(str(tmp_path / "f"), size)
    assert len(reads) == -(-size // scan_mod.CHUNK)  # no read to meet the end
    if 0 < size <= got.block_size:
        assert len(hashes) == 1
    assert got.block_size in BLOCK_SIZES
    assert (got.hash, got.block_size, got.blocks) == hash_bytes(data, got.block_size)


def test_a_renamed_file_or_moved_folder_is_not_read_again(tmp_path):
    """A rename keeps a file's inode, size and mtime: the new path takes the hash and blocks
    its old path had, with no read (a moved folder of photos would otherwise be hashed whole
    again); the old path is deleted. A copy (another inode), and a moved file that changed on
    the way, are hashed."""
    tree = tmp_path / "t"
    _write(tree / "a.bin", b"renamed content", mtime_s=1_000)
    _write(tree / "photos" / "p1.jpg", b"first photo", mtime_s=1_000)
    _write(tree / "photos" / "p2.jpg", b"second photo", mtime_s=1_000)
    _write(tree / "c.bin", b"copied content", mtime_s=1_000)
    first = _scan(tree)
    os.rename(tree / "a.bin", tree / "b.bin")
    (tree / "archive").mkdir()
    os.rename(tree / "photos", tree / "archive" / "photos")
    shutil.copy2(tree / "c.bin", tree / "c copy.bin")  # same bytes and mtime, a new inode
    hasher = CountingHash()
    partial = scan_paths(tree, ["a.bin", "b.bin", "photos", "archive", "c copy.bin"],
                         first.entries, IgnoreMatcher.load(tree), hash_file=hasher)
    assert hasher.calls == [str(tree / "c copy.bin")]
    assert partial.deleted == ["a.bin", "photos", "photos/p1.jpg", "photos/p2.jpg"]
    for new, old in (("b.bin", "a.bin"), ("archive/photos/p1.jpg", "photos/p1.jpg"),
                     ("archive/photos/p2.jpg", "photos/p2.jpg")):
        e, was = partial.entries[new], first.entries[old]
        assert (e.path, e.hash, e.block_size, e.blocks) == (new, was.hash, was.block_size,
                                                              was.blocks)
        assert new in partial.changed
    hasher = CountingHash()
    full = scan(tree, first.entries, IgnoreMatcher.load(tree), hash_file=hasher)  # after a stop
    assert hasher.calls == [str(tree / "c copy.bin")]
    assert full.entries["b.bin"].hash == first.entries["a.bin"].hash

    os.rename(tree / "b.bin", tree / "d.bin")
    with open(tree / "d.bin", "ab") as f:  # changed on the way: size and mtime moved
        f.write(b" and more")
    hasher = CountingHash()
    later = scan_paths(tree, ["b.bin", "d.bin"], full.entries, IgnoreMatcher.load(tree),
                       hash_file=hasher)
    assert hasher.calls == [str(tree / "d.bin")]
    assert later.entries["d.bin"].hash == hashlib.sha256(b"renamed content and more").digest()


def test_a_moved_file_cut_in_smaller_blocks_than_a_new_one_is_hashed_again(tmp_path):
    """A file keeps its block size while it grows (within a factor of 2): one that grew past a
    size step is cut in smaller blocks than a new file of its size. Moved, it is hashed afresh,
    as a new file would be, so its peers get the shorter block list."""
    tree = tmp_path / "t"
    _write(tree / "a.bin", b"grown", mtime_s=1_000)
    first = _scan(tree)
    grown = first.entries["a.bin"]
    first.entries["a.bin"] = ScanEntry(grown.path, grown.size, grown.mtime_ns, grown.inode,
                                       grown.mode, FILE, grown.hash, grown.block_size // 2,
                                       grown.blocks)  # as if it kept the blocks of a smaller size
    os.rename(tree / "a.bin", tree / "b.bin")
    hasher = CountingHash()
    scan_paths(tree, ["a.bin", "b.bin"], first.entries, IgnoreMatcher.load(tree), hash_file=hasher)
    assert hasher.calls == [str(tree / "b.bin")]
