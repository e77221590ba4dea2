"""The sub-block delta (core/delta.py): a block rebuilt from the receiver's old bytes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip_backer.core import delta
from gossip_backer.core.blocks import strong_hash
from gossip_backer.core.delta import DeltaError

TEXT = b"".join(b"    value_%d = self.read(index, %d)  # one line of source\n" % (i, i * 7)
                for i in range(1500))


def _sig(old: bytes, pieces: bool = True) -> bytes:
    chunk = delta.chunk_for(len(old))
    return delta.signature(old, chunk, delta.piece_for(chunk) if pieces else 0)


def _send(old: bytes, new: bytes, pieces: bool = True) -> bytes:
    return delta.encode(new, delta.chunk_for(len(old)), len(old), _sig(old, pieces))


def _round_trip(old: bytes, new: bytes, pieces: bool = True) -> bytes:
    encoded = _send(old, new, pieces)
    unit = delta.unit_of(_sig(old, pieces), delta.chunk_for(len(old)))
    assert delta.decode(old, unit, encoded, len(new)) == new
    return encoded


def test_an_edited_line_costs_about_the_line() -> None:
    at = TEXT.index(b"value_700 ")
    new = TEXT[:at] + b"renamed_700 = self.write(key, 1)" + TEXT[at + 30:]
    chunk = delta.chunk_for(len(TEXT))
    piece = delta.piece_for(chunk)
    encoded = _round_trip(TEXT, new)
    assert len(encoded) < piece < chunk  # the pieces around the edit, compressed
    assert len(_round_trip(TEXT, new, pieces=False)) > 2 * len(encoded)  # the chunk around it


@pytest.mark.parametrize("at", [0, 3, 40_000, len(TEXT) - 10, len(TEXT)])
def test_pieces_find_the_edges_of_an_insertion_anywhere(at: int) -> None:
    new = TEXT[:at] + b"    inserted_line = 1\n" + TEXT[at:]
    assert len(_round_trip(TEXT, new)) < delta.piece_for(delta.chunk_for(len(TEXT)))


def test_a_false_piece_match_does_not_rebuild_and_the_chunks_alone_do() -> None:
    """A piece hash is one byte: an edited piece that happens to hash like the old one is
    copied from the old bytes, the block fails its hash, and the signature without pieces
    (transfer.Base.coarser) then gives the block."""
    chunk = delta.chunk_for(len(TEXT))
    piece = delta.piece_for(chunk)
    at = 20 * piece + 5
    old_hash = strong_hash(TEXT[20 * piece: 21 * piece])[:delta.PIECE_ENTRY]
    new = next(n for n in (TEXT[:at] + b"%05d" % k + TEXT[at + 5:] for k in range(100_000))
               if n != TEXT and strong_hash(n[20 * piece: 21 * piece])[:1] == old_hash)
    sig = _sig(TEXT)
    encoded = delta.encode(new, chunk, len(TEXT), sig)
    try:
        assert delta.decode(TEXT, delta.unit_of(sig, chunk), encoded, len(new)) != new
    except DeltaError:
        pass
    coarse = delta.without_pieces(sig, len(TEXT), chunk)
    assert coarse == _sig(TEXT, pieces=False)
    assert delta.decode(TEXT, chunk, delta.encode(new, chunk, len(TEXT), coarse), len(new)) == new


@pytest.mark.parametrize("sig", [b"", b"\x03" + b"\0" * 100, b"\x11" + b"\0" * 100,
                                 b"\x06" + b"\0" * 99])
def test_a_signature_that_does_not_cut_its_base_is_refused(sig: bytes) -> None:
    assert not delta.signature_ok(1000, 512, sig)
    with pytest.raises(DeltaError):
        delta.encode(b"new", 512, 1000, sig)


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
        unit = delta.unit_of(_sig(TEXT), delta.chunk_for(len(TEXT)))
        assert delta.decode(other, unit, encoded, len(new)) != new
    except DeltaError:
        pass


def test_chunk_sizes() -> None:
    assert [delta.chunk_for(k << 10) for k in (1, 10, 64, 256, 4096)] == [256, 1024, 2048, 4096, 4096]
    assert [delta.piece_for(c) for c in (64, 128, 256, 4096)] == [0, 32, 64, 1024]


def test_a_chunk_costs_four_bytes_of_signature_its_weak_sum_folded_to_two() -> None:
    """Protocol 4: a chunk entry is the weak sum folded to 16 bits (core.blocks.fold16) and two
    bytes of BLAKE3 (was 4 + 2): an edited 55 KiB file's signature 293 -> 247 bytes. The
    rolling match finds chunks by the folded sum, anywhere."""
    from gossip_backer.core.blocks import fold16, weak_sum
    chunk = 1024
    sig = delta.signature(TEXT, chunk)
    assert len(sig) == 1 + -(-len(TEXT) // chunk) * 4 == delta.signature_size(len(TEXT), chunk, 0)
    for k, at in enumerate(range(0, len(TEXT), chunk)):  # the last chunk is short
        part = TEXT[at: at + chunk]
        entry = sig[1 + 4 * k: 5 + 4 * k]
        assert entry == fold16(weak_sum(part)).to_bytes(2, "little") + strong_hash(part)[:2]
    shifted = b"#" * 333 + TEXT  # every chunk found at its new place: only the 333 bytes sent
    encoded = delta.encode(shifted, chunk, len(TEXT), sig)
    assert delta.decode(TEXT, chunk, encoded, len(shifted)) == shifted
    assert len(encoded) < 40
