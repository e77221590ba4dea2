"""The reuse plan (protocol/reuse.py): which local sources a file is built from, in which order,
and what counts as had; carried out here on a dict of byte strings, as the daemon does on disk
and the simulator on the memdisk."""

from __future__ import annotations

from gossip_backer.core.blocks import RollingMatcher, hash_bytes, strong_hash
from gossip_backer.core.record import FILE, FileRecord, IndexEntry
from gossip_backer.core.vv import VersionVector
from gossip_backer.protocol import reuse
from gossip_backer.protocol.reuse import ARCHIVE, Copy, LocalBlocks, Plan, Rolling, Truncate, Verify

BS = 128 * 1024
ME = b"\x01" * 32


def content(size: int, seed: int) -> bytes:
    return bytes((i * 7 + seed * 13 + (i >> 9)) % 251 for i in range(size))


def record(path: str, data: bytes, block_size: int = BS) -> FileRecord:
    h, bs, blocks = hash_bytes(data, block_size)
    return FileRecord(path=path, kind="file", vv=VersionVector({ME: 1}), origin=ME,
                      size=len(data), mtime_ns=1, hash=h, block_size=bs, blocks=blocks)


def entry(path: str, data: bytes, block_size: int = BS) -> IndexEntry:
    h, bs, blocks = hash_bytes(data, block_size)
    return IndexEntry(path, len(data), 1, 1, 0o644, FILE, h, bs, blocks)


class Carrier:
    """Carries a plan out on `files` (path -> bytes) and `archive` (hash -> bytes)."""

    def __init__(self, files: dict, archive: dict, temp: bytes = b"") -> None:
        self.files, self.archive, self.temp = files, archive, bytearray(temp)
        self.steps: list = []

    def run(self, plan: Plan) -> set[int]:
        while (step := plan.next_step()) is not None:
            self.steps.append(step)
            plan.got(self.carry(step, plan.rec))
        return plan.have

    def carry(self, step, rec) -> set[int]:
        if isinstance(step, Truncate):
            del self.temp[step.size:]
            self.temp.extend(bytes(step.size - len(self.temp)))
            return set()
        if isinstance(step, Verify):
            return {i for i in step.indices if reuse.is_block(
                rec, i, bytes(self.temp[i * rec.block_size:][:reuse.block_length(rec, i)]),
                strong_hash)}
        if isinstance(step, Rolling):
            old = self.files.get(step.path, b"")
            found = RollingMatcher(rec.blocks, rec.block_size, rec.size).scan(old)
            step = Copy(step.path, None, {i: o for i, o in found.items() if i in step.indices})
        data = (self.archive.get(step.content_hash) if step.source is ARCHIVE
                else self.files.get(step.source))
        got = set()
        for i, off, size in reuse.reads(step, rec) if data is not None else ():
            if reuse.is_block(rec, i, data[off:off + size], strong_hash):
                at = i * rec.block_size  # as pwrite: a write past the end extends the file
                self.temp.extend(bytes(max(0, at - len(self.temp))))
                self.temp[at:at + size] = data[off:off + size]
                got.add(i)
        return got


def kinds(steps) -> list[str]:
    out = []
    for s in steps:
        if isinstance(s, Copy):
            out.append("archive" if s.source is ARCHIVE else f"copy:{s.source}")
        else:
            out.append(type(s).__name__.lower())
    return out


def plan_for(rec, index: dict, *, resumed=False, entry_=None) -> Plan:
    local = LocalBlocks(index)
    return Plan(rec, entry_, resumed=resumed, same=local.find_file(rec.hash),
                find_block=local.find_block)


def test_the_sources_in_order_and_what_counts_as_done():
    """A resumed download: its verified blocks first; then the archive (empty here), blocks
    found in other local files, the archive again, then a rolling match of the old content."""
    new = content(5 * BS, 1)
    rec = record("f", new)
    old_here = content(BS // 2, 9) + new[3 * BS:5 * BS]  # blocks 3, 4 shifted: rolling
    other = new[BS:2 * BS]  # block 1 in another file
    index = {"f": entry("f", old_here), "other": entry("other", other)}
    partial = new[:BS] + bytes(BS)  # block 0 fetched before a restart
    c = Carrier({"f": old_here, "other": other}, {}, partial)
    have = c.run(plan_for(rec, index, resumed=True, entry_=index["f"]))
    assert kinds(c.steps) == ["verify", "truncate", "archive", "copy:other", "archive", "rolling"]
    assert have == {0, 1, 3, 4}
    assert bytes(c.temp[:2 * BS]) == new[:2 * BS] and bytes(c.temp[3 * BS:]) == new[3 * BS:]
    p = plan_for(rec, index, resumed=True, entry_=index["f"])
    Carrier({"f": old_here, "other": other}, {}, partial).run(p)
    assert p.missing() == [2]
    assert p.delta_bases(index["f"]) == {2: (2 * BS, len(old_here) - 2 * BS)}


def test_the_archive_ends_the_plan_and_a_fresh_download_verifies_nothing():
    data = content(3 * BS + 5, 2)
    rec = record("f", data)
    c = Carrier({}, {rec.hash: data})
    have = c.run(plan_for(rec, {}))
    assert kinds(c.steps) == ["archive"]
    assert have == {0, 1, 2, 3} and bytes(c.temp) == data


def test_only_a_resumed_temp_file_is_truncated():
    """A fresh temp file is empty: its blocks, written whole, make it its size (an ftruncate
    per small file was one of its ~13 syscalls). A resumed one may be longer: cut to size."""
    data = content(3 * BS + 5, 11)
    rec = record("f", data)
    c = Carrier({}, {rec.hash: data})
    assert c.run(plan_for(rec, {})) == {0, 1, 2, 3} and bytes(c.temp) == data
    assert not any(isinstance(s, Truncate) for s in c.steps)
    c = Carrier({}, {}, content(5 * BS, 12))
    c.run(plan_for(rec, {}, resumed=True))
    assert kinds(c.steps)[:2] == ["verify", "truncate"] and len(c.temp) == len(data)


def test_a_rename_in_other_blocks_is_read_at_this_records_offsets():
    """The same content at another path, cut in blocks of another size there."""
    data = content(4 * BS, 3)
    rec = record("new", data)
    index = {"old": entry("old", data, block_size=2 * BS)}
    c = Carrier({"old": data}, {})
    have = c.run(plan_for(rec, index))
    assert kinds(c.steps) == ["archive", "copy:old"]
    assert have == {0, 1, 2, 3}


def test_no_rolling_match_without_a_file_at_the_path_and_no_second_archive_look_after_a_hit():
    data = content(2 * BS, 4)
    rec = record("f", data)
    c = Carrier({}, {rec.hash: data[:BS]})  # an archive that gives only block 0 (torn)
    have = c.run(plan_for(rec, {}))
    assert kinds(c.steps) == ["archive"]
    assert have == {0}


def test_a_new_file_with_no_local_source_looks_into_the_archive_once_or_not_at_all():
    """Nothing local to read: the archive is looked into once (a second look could only find
    what a source read meanwhile left there), and not at all when the carrier saw it empty at
    the start of the batch; a source read still earns the second look."""
    data = content(2 * BS, 10)
    rec = record("f", data)
    c = Carrier({}, {})
    assert c.run(plan_for(rec, {})) == set()
    assert kinds(c.steps) == ["archive"]
    local = LocalBlocks({})
    c = Carrier({}, {})
    c.run(Plan(rec, None, resumed=False, same=None, find_block=local.find_block,
               archive_empty=True))
    assert kinds(c.steps) == []
    index = {"other": entry("other", data[:BS])}
    local = LocalBlocks(index)
    c = Carrier({"other": data[:BS]}, {rec.hash: data})  # archived after the batch began
    have = c.run(Plan(rec, None, resumed=False, same=None, find_block=local.find_block,
                      archive_empty=True))
    assert kinds(c.steps) == ["copy:other", "archive"]
    assert have == {0, 1}


def test_a_changed_source_is_not_used():
    """The index says `other` holds the block, but its bytes changed: nothing is copied."""
    data = content(2 * BS, 5)
    rec = record("f", data)
    index = {"other": entry("other", data[:BS])}
    c = Carrier({"other": content(BS, 6)}, {})
    assert c.run(plan_for(rec, index)) == set()


def test_local_blocks_follow_the_index_after_forget():
    data = content(BS, 7)
    index = {"a": entry("a", data)}
    local = LocalBlocks(index)
    h = index["a"].blocks[0].hash
    assert local.find_block(h) == ("a", 0) and local.find_file(index["a"].hash) == "a"
    index["b"] = entry("b", data)
    del index["a"]
    assert local.find_block(h) == ("a", 0)  # stale until told
    local.forget()
    assert local.find_block(h) == ("b", 0) and local.find_file(index["b"].hash) == "b"


def test_an_edit_in_place_is_left_to_the_deltas_without_a_rolling_match():
    """Blocks 1 and 2 overwritten in place: the unchanged blocks come from the old file by the
    block index, and the two changed ones are asked for as deltas against their old bytes, so
    no rolling match reads the old file again. One shifted by an insertion still rolls."""
    old = content(6 * BS, 8)
    new = old[:BS] + content(2 * BS, 9) + old[3 * BS:]
    rec = record("f", new)
    index = {"f": entry("f", old)}
    c = Carrier({"f": old}, {})
    p = plan_for(rec, index, entry_=index["f"])
    assert c.run(p) == {0, 3, 4, 5}
    assert kinds(c.steps) == ["archive", "copy:f", "archive"]
    assert p.delta_bases(index["f"]) == {1: (BS, BS), 2: (2 * BS, BS)}
    shifted = old[:BS] + b"inserted" + old[BS:]
    c = Carrier({"f": old}, {})
    assert c.run(plan_for(record("f", shifted), index, entry_=index["f"])) == {0, 2, 3, 4, 5, 6}
    assert kinds(c.steps)[-1] == "rolling"


def test_a_source_holding_the_whole_content_is_marked_whole_until_a_block_is_had():
    """`Copy.whole`: the archived version or a local file indexed with the record's hash, while
    nothing is had yet, may be copied in one pass and checked by the content hash once; not
    after a resumed download's blocks verified (those stay), nor for a file holding some blocks."""
    data = content(4 * BS, 21)
    rec = record("new", data)
    index = {"part": entry("part", data[BS:2 * BS]), "old": entry("old", data)}
    c = Carrier({"old": data, "part": data[BS:2 * BS]}, {rec.hash: data})
    c.run(plan_for(rec, index))
    assert [(kinds([s])[0], s.whole) for s in c.steps] == [("archive", True)]
    c = Carrier({"old": data[:BS] + bytes(3 * BS), "part": data[BS:2 * BS]}, {})
    have = c.run(plan_for(rec, index))  # the file at "old" changed since it was indexed
    assert [(kinds([s])[0], s.whole) for s in c.steps] == [
        ("archive", True), ("copy:old", True), ("copy:part", False), ("copy:old", False),
        ("archive", False)]
    assert have == {0, 1}
    resumed = data[:BS] + bytes(BS)
    c = Carrier({"old": data}, {}, resumed)
    c.run(plan_for(rec, index, resumed=True))
    assert [(kinds([s])[0], getattr(s, "whole", None)) for s in c.steps] == [
        ("verify", None), ("truncate", None), ("archive", False), ("copy:old", False)]
