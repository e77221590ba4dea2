"""The sub-block delta (core/delta.py): a block rebuilt from the receiver's old bytes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip_backer.core import delta
from gossip_backer.core.delta import DeltaError

TEXT = b"".join(b"    value_%d = self.read(index, %d)  # one line of source\n" % (i, i * 7)
                for i in range(1500))


def _send(old: bytes, new: bytes) -> bytes:
    chunk = delta.chunk_for(len(old))
    return delta.encode(new, chunk, len(old), delta.signature(old, chunk))


def _round_trip(old: bytes, new: bytes) -> bytes:
    encoded = _send(old, new)
    assert delta.decode(old, delta.chunk_for(len(old)), encoded, len(new)) == new
    return encoded


def test_an_edited_line_costs_about_the_line() -> None:
    at = TEXT.index(b"value_700 ")
    new = TEXT[:at] + b"renamed_700 = self.write(key, 1)" + TEXT[at + 30:]
    chunk = delta.chunk_for(len(TEXT))
    encoded = _round_trip(TEXT, new)
    assert len(encoded) < 2 * chunk < len(TEXT) // 20  # the chunk around the edit, compressed


@pytest.mark.parametrize("edit", ["insert", "delete", "replace", "append", "truncate", "same"])
def test_edits_of_random_bytes_round_trip(edit: str) -> None:
    rng = random.Random(edit)
    old = rng.randbytes(256 * 1024)
    at = 100_000
    new = {"insert": old[:at] + b"x" * 100 + old[at:], "delete": old[:at] + old[at + 5000:],
           "replace": old[:at] + rng.randbytes(300) + old[at + 300:],
           "append": old + rng.randbytes(777), "truncate": old[:at], "same": old}[edit]
    encoded = _round_trip(old, new)
    assert len(encoded) < 10_000  # a chunk or two of literals, not the block


def test_nothing_in_common_is_all_literal() -> None:
    old, new = random.Random(1).randbytes(5000), random.Random(2).randbytes(4000)
    assert len(_round_trip(old, new)) > 4000


@settings(deadline=None, derandomize=True, max_examples=60)
@given(st.binary(min_size=1, max_size=3000), st.binary(max_size=3000))
def test_any_pair_round_trips(old: bytes, new: bytes) -> None:
    _round_trip(old, new)


def test_a_signature_that_does_not_fit_its_base_size_is_refused() -> None:
    with pytest.raises(DeltaError):
        delta.encode(b"new", 128, 1000, b"\0" * 10)


@pytest.mark.parametrize("bad", [b"", b"\x07", b"\x00", b"\x00\x01\x05\x00\x00abc",
                                 b"\x00\x01\x00\x00\x09", b"\x01\x01\x03\x00\x00junk",
                                 b"\x00\x02\x00\x00\x01\x00\x00\x01"])
def test_a_malformed_delta_is_a_delta_error(bad: bytes) -> None:
    with pytest.raises(DeltaError):
        delta.decode(TEXT[:1000], 128, bad, 4)


def test_a_delta_against_other_bytes_does_not_rebuild_the_block() -> None:
    """The receiver checks the rebuilt block's hash: a changed base gives other bytes, never an
    exception beyond DeltaError."""
    new = TEXT[:5000] + b"edit" + TEXT[5000:]
    encoded = _send(TEXT, new)
    other = TEXT.replace(b"self", b"SELF")
    try:
        assert delta.decode(other, delta.chunk_for(len(TEXT)), encoded, len(new)) != new
    except DeltaError:
        pass


def test_chunk_sizes() -> None:
    assert [delta.chunk_for(k << 10) for k in (1, 10, 64, 256, 4096)] == [128, 512, 1024, 2048, 4096]
