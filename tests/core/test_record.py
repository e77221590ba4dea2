"""FileRecord's wire form: the trailing `source_seq` of a record repeating another node's
version (wire protocol 5) is absent when 0, so a node's own records, and every record stored
before the field existed, encode exactly as they did."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gossip_backer.core.record import FileRecord, payload_from_plain, payload_to_plain
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
