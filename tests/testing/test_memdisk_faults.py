"""MemRoot's faults: power cuts drop what was not synced, a quota fills the disk, a root vanishes
or empties and comes back (gossip_backer/testing/memdisk.py, "Faults")."""

from __future__ import annotations

import errno
import random
from pathlib import Path

import pytest

from gossip_backer.core import blocks as coreblocks
from gossip_backer.disk.ignore import IgnoreMatcher
from gossip_backer.testing import memdisk
from gossip_backer.testing.memdisk import DiskFull, MemRoot

IGNORE = IgnoreMatcher(Path("/nonexistent"))
S = 10**9


class Clock:
    def __init__(self) -> None:
        self.ns = 1_700_000_000 * S

    def __call__(self) -> int:
        return self.ns


class Always(random.Random):
    """An rng whose every draw says "lost" (0.99 >= keep) or "kept" (0.0 < keep)."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


LOSE, KEEP = Always(0.99), Always(0.0)


def root() -> tuple[MemRoot, Clock]:
    clock = Clock()
    return MemRoot("r", clock=clock), clock


def put_file(r: MemRoot, path: str, data: bytes, mtime_ns: int) -> None:
    """The node's way: a temp file, finished (fsync, rename, fsync of the folder)."""
    t = memdisk.TempFile.create(r, path, hasher_factory=coreblocks.FileHasher)
    t.write_at(0, data)
    t.finish(None, coreblocks.hash_bytes(data)[0], 0o644, mtime_ns, memdisk.stat_of(r, path))


def test_a_finished_temp_file_survives_a_power_cut_and_a_user_write_may_not() -> None:
    r, clock = root()
    put_file(r, "a.txt", b"from the mesh", clock.ns)
    r.write("b.txt", b"old")
    r.sync("b.txt")
    clock.ns += S
    r.write("b.txt", b"new, not synced")
    r.write("d/new.txt", b"also new")
    assert set(r.unsynced()) == {"b.txt", "d", "d/new.txt"}
    cut = r.power_cut(LOSE)
    assert r.read("a.txt") == b"from the mesh"
    assert r.read("b.txt") == b"old" and not r.exists("d") and not r.exists("d/new.txt")
    assert {(c.path, c.before, c.after) for c in cut} == {
        ("b.txt", b"new, not synced", b"old"), ("d/new.txt", b"also new", None)}
    assert r.unsynced() == []


def test_kept_changes_stay_and_old_ones_were_written_back() -> None:
    r, clock = root()
    r.write("old.txt", b"written long ago")
    clock.ns += 31 * S  # past the kernel's write-back
    r.write("kept.txt", b"lucky")
    assert r.unsynced() == ["kept.txt"]
    assert r.power_cut(KEEP) == []
    assert r.read("kept.txt") == b"lucky" and r.read("old.txt") == b"written long ago"
    r.write("old.txt", b"again")
    assert r.power_cut(LOSE)[0].after == b"written long ago"


def test_a_lost_deletion_brings_the_tree_back_and_a_kept_one_keeps_it_gone() -> None:
    r, clock = root()
    r.write("d/x.txt", b"x")
    r.write("d/y.txt", b"y")
    r.sync()
    r.delete("d")
    r.power_cut(LOSE)
    assert r.read("d/x.txt") == b"x" and r.read("d/y.txt") == b"y" and r.kind("d") == "dir"
    r.delete("d")
    r.power_cut(KEEP)
    assert not r.exists("d") and r.paths() == []


def test_a_partial_download_may_lose_its_blocks_but_removals_are_durable() -> None:
    r, clock = root()
    put_file(r, "f.bin", b"keep me", clock.ns)
    t = memdisk.TempFile.create(r, "g.bin")
    t.write_at(0, b"half")
    assert memdisk.remove(r, "f.bin", memdisk.stat_of(r, "f.bin"))
    r.power_cut(LOSE)
    assert not r.exists("f.bin") and memdisk.find_partial(r, "g.bin") is None


def test_seeded_cuts_replay() -> None:
    def run(seed: int) -> list[str]:
        r, clock = root()
        for i in range(40):
            r.write(f"f{i}", b"%d" % i)
        r.power_cut(random.Random(seed))
        return r.paths()

    assert run(1) == run(1) and 0 < len(run(1)) < 40 and run(1) != run(2)


def test_a_full_disk_refuses_writes_as_enospc() -> None:
    r, clock = root()
    r.quota = 100
    r.write("a", bytes(60))
    with pytest.raises(DiskFull) as err:
        r.write("b", bytes(50))
    assert isinstance(err.value, OSError) and isinstance(err.value, memdisk.DiskError)
    assert err.value.errno == errno.ENOSPC and not r.exists("b")
    r.write("a", bytes(90))  # in place: only the growth counts
    t = memdisk.TempFile.create(r, "c")
    with pytest.raises(DiskFull):
        t.truncate(20)
    with pytest.raises(DiskFull):
        t.write_at(0, bytes(11))
    t.write_at(0, bytes(10))
    assert r.used() == 100
    memdisk.archive(r, memdisk.MemPath(r, "a"), coreblocks.hash_bytes(bytes(90))[0],
                    hasher_factory=coreblocks.FileHasher)  # a hard link: no space needed
    r.delete("a")
    assert r.used() == 100  # the archived bytes are still on the disk
    memdisk.remove_version(r, coreblocks.hash_bytes(bytes(90))[0])
    r.write("b", bytes(50))


def test_an_emptied_root_scans_empty_and_comes_back_whole() -> None:
    r, clock = root()
    r.write("a/b.txt", b"b")
    before = r.fingerprint()
    r.empty()
    assert r.present and r.paths() == [] and memdisk.root_state(r) is None
    assert memdisk.scan(r, {}, IGNORE).entries == {}
    r.write("under-the-mount.txt", b"hidden after the restore")
    r.restore()
    assert r.paths() == ["a", "a/b.txt"] and r.fingerprint() == before
    r.vanish()
    with pytest.raises(memdisk.RootUnavailable):
        memdisk.scan(r, {}, IGNORE)
    r.restore()
    assert memdisk.scan(r, {}, IGNORE).entries


def test_set_state_shows_an_older_view_without_touching_durability() -> None:
    r, clock = root()
    r.write("a", b"one")
    r.sync()
    old = r.state("a")
    clock.ns += S
    r.write("a", b"two")
    new = r.state("a")
    r.set_state("a", old)
    assert r.read("a") == b"one" and r.lstat("a").mtime_ns == old.mtime_ns
    r.set_state("a", new)
    assert r.read("a") == b"two" and r.unsynced() == ["a"]
    r.set_state("a", None)
    assert not r.exists("a")
