"""FileRecord. Its wire form: the trailing `source_seq` of a record repeating another node's
version (wire protocol 5) is absent when 0, so a node's own records, and every record stored
before the field existed, encode exactly as they did. Its memory: a one-block file's block is
held as its weak sum, and reads back as the tuple of one Block it was."""

from __future__ import annotations

import copy
import pickle
import tracemalloc
from dataclasses import replace

import pytest

from gossip_backer.core.record import (Block, FileRecord, IndexEntry, payload_from_plain,
                                       payload_to_plain)
from gossip_backer.disk.scan import ScanEntry
from gossip_backer.core.vv import VersionVector
from gossip_backer.wire.codec import pack, unpack

O = b"\x02" * 32
REC = FileRecord(path="a.txt", kind="file", vv=VersionVector({O: 3}), origin=O, size=5,
                 mtime_ns=7, hash=b"\x03" * 32)


def test_a_record_of_its_signers_own_version_encodes_as_before_the_field() -> None:
    assert REC.to_plain() == ["a.txt", "file", REC.vv.encode(), O, 5, 7, 0o644, b"\x03" * 32, 0,
                              [], None, False]
    assert FileRecord.from_plain(REC.to_plain()) == REC


def test_a_repeat_names_its_source_and_round_trips_byte_for_byte() -> None:
    copy = replace(REC, path="a.sync-conflict.txt", source_seq=41)
    body = pack(payload_to_plain(copy))
    assert unpack(body)[1][12] == 41
    assert payload_from_plain(unpack(body)) == copy
    assert pack(payload_to_plain(payload_from_plain(unpack(body)))) == body


@pytest.mark.parametrize("bad", [0, -1, True, "1", None])
def test_a_trailing_source_that_is_not_a_positive_int_is_refused(bad) -> None:
    """0 has one encoding (absent): a second one would break `SignedUpdate.compact`."""
    with pytest.raises(ValueError, match="malformed record"):
        FileRecord.from_plain(REC.to_plain() + [bad])
    with pytest.raises(ValueError, match="malformed record"):
        FileRecord.from_plain(REC.to_plain() + [1, 2])


def _one_block(path: str, h: bytes, weak: int) -> FileRecord:
    return FileRecord(path, "file", VersionVector({b"a" * 32: 1}), b"a" * 32, size=10, mtime_ns=5,
                      hash=h, block_size=4096, blocks=(Block(h, weak),))


@pytest.mark.parametrize("blocks", [
    (), (Block(bytes(32), 7),), (Block(bytes([1]) * 32, 7), Block(bytes([2]) * 32, 8)),
])
def test_a_records_blocks_read_back_as_given_whatever_their_number(blocks) -> None:
    h = bytes([1]) * 32 if len(blocks) != 1 else bytes(32)
    rec = FileRecord("a", "file", VersionVector(), b"a" * 32, hash=h, blocks=blocks)
    assert rec.blocks == blocks and type(rec.blocks) is tuple
    assert replace(rec, path="b").blocks == blocks
    assert copy.deepcopy(rec) == rec and pickle.loads(pickle.dumps(rec)) == rec
    assert payload_from_plain(unpack(pack(payload_to_plain(rec)))) == rec


def test_a_one_block_record_is_equal_to_one_holding_the_same_block_and_unequal_to_another() -> None:
    h = bytes([3]) * 32
    rec = _one_block("a", h, 7)
    assert rec == _one_block("a", bytes(h), 7) and hash(rec) == hash(_one_block("a", bytes(h), 7))
    assert rec != _one_block("a", h, 8)
    other = replace(rec, blocks=(Block(bytes([4]) * 32, 7),))  # a block that is not the file's hash
    assert other.blocks == (Block(bytes([4]) * 32, 7),) and other != rec
    assert rec.blocks[0].hash is rec.hash  # (the block shares the file's hash bytes)


def test_a_one_block_record_whose_weak_sum_is_not_an_int_reads_back_as_given() -> None:
    """A peer's record may carry True as a weak sum (it passes as an int): found by the fuzzer."""
    h = bytes([3]) * 32
    rec = replace(_one_block("a", h, 7), blocks=(Block(h, True),))
    assert rec.blocks == (Block(h, True),) and type(rec.blocks[0].weak) is bool
    assert payload_from_plain(unpack(pack(payload_to_plain(rec)))) == rec


def _index_entry(path: str, h: bytes, weak: int) -> IndexEntry:
    return IndexEntry(path, 10, 5, 7, 0o644, "file", h, 4096, (Block(h, weak),))


def _scan_entry(path: str, h: bytes, weak: int) -> ScanEntry:
    return ScanEntry(path, 10, 5, 7, 0o644, "file", h, 4096, (Block(h, weak),))


@pytest.mark.parametrize("make", [_one_block, _index_entry, _scan_entry])
def test_a_one_block_file_holds_no_tuple_and_no_block_of_its_own(make) -> None:
    """A node holding 100,000 one-block files kept a 1-tuple and a Block for each (96 bytes) in
    its records, and a first scan held them in every scanned entry and index row too."""
    n = 5_000
    inputs = [(f"d/f{i}", bytes([i % 251]) * 31 + bytes([i % 7]), 100_000 + i) for i in range(n)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [make(path, h, weak) for path, h, weak in inputs]
        per_file = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    assert held[0].blocks == (Block(inputs[0][1], inputs[0][2]),)
    assert len(held) == n and per_file < 160, per_file  # the object (112-144) and its list slot
