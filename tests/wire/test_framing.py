"""Plain length-prefixed frames: round trips, limits checked before allocation, fuzzing."""

from __future__ import annotations

import pickle
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip_backer.errors import LocalError, RemoteError
from gossip_backer.wire.framing import (
    CLOSED,
    DEFAULT_MAX_FRAME,
    LENGTH_PREFIX,
    NEED_DATA,
    FrameBuffer,
    ReceiveBuffer,
    frame,
)


def drain(buf: FrameBuffer) -> list[bytes]:
    out = []
    while (item := buf.next()) is not NEED_DATA:
        out.append(item)
    return out


def feed_in_chunks(buf: FrameBuffer, data: bytes, size: int) -> list[bytes]:
    """The documented contract: drain after every feed."""
    out = []
    for i in range(0, len(data), size):
        buf.feed(data[i : i + size])
        out += drain(buf)
    return out


def test_frame_is_big_endian_length_prefix() -> None:
    assert frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert frame(b"") == bytes(4)


def test_round_trip_several_frames_in_one_feed() -> None:
    payloads = [b"one", b"", b"three" * 100]
    buf = FrameBuffer()
    buf.feed(b"".join(frame(p) for p in payloads))
    assert drain(buf) == payloads
    assert len(buf) == 0
    buf.feed_eof()  # between frames: a clean end


def test_byte_at_a_time() -> None:
    payloads = [b"hello", b"", b"world!"]
    buf = FrameBuffer()
    assert feed_in_chunks(buf, b"".join(frame(p) for p in payloads), 1) == payloads


def test_max_size_frame_passes_and_one_more_byte_is_refused_by_the_sender() -> None:
    buf = FrameBuffer(max_frame=1000)
    buf.feed(frame(b"x" * 1000, max_frame=1000))
    assert buf.next() == b"x" * 1000
    with pytest.raises(LocalError):
        frame(b"x" * 1001, max_frame=1000)


def test_default_max_frame_is_one_mebibyte() -> None:
    assert DEFAULT_MAX_FRAME == 1 << 20
    big = b"\x01" * DEFAULT_MAX_FRAME
    buf = FrameBuffer()
    assert feed_in_chunks(buf, frame(big), 1 << 16) == [big]
    with pytest.raises(LocalError):
        frame(big + b"\x01")


def test_oversize_length_refused_before_allocating() -> None:
    buf = FrameBuffer(max_frame=1000)
    buf.feed((0xFFFFFFFF).to_bytes(LENGTH_PREFIX, "big"))  # claims 4 GiB
    tracemalloc.start()
    try:
        with pytest.raises(RemoteError, match="4294967295"):
            buf.next()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def test_length_one_over_max_is_refused() -> None:
    buf = FrameBuffer(max_frame=1000)
    buf.feed((1001).to_bytes(4, "big"))
    with pytest.raises(RemoteError):
        buf.next()


@pytest.mark.parametrize("cut", [1, 3, 4, 5, 9])
def test_eof_inside_a_frame_is_truncation(cut: int) -> None:
    buf = FrameBuffer()
    buf.feed(frame(b"0123456789")[:cut])
    assert buf.next() is NEED_DATA
    with pytest.raises(RemoteError, match="truncated"):
        buf.feed_eof()


def test_feeding_without_draining_is_refused_not_hoarded() -> None:
    buf = FrameBuffer(max_frame=100)
    one = frame(b"y" * 100)
    buf.feed(one)
    buf.feed(one)  # two whole frames fit the cap
    with pytest.raises(RemoteError, match="overflow"):
        buf.feed(b"z")
    assert len(buf) == 2 * len(one)


def test_draining_caller_never_hits_the_cap() -> None:
    buf = FrameBuffer(max_frame=100)
    stream = b"".join(frame(bytes([i]) * 100) for i in range(50))
    assert len(feed_in_chunks(buf, stream, 100)) == 50


def test_bad_max_frame_is_a_local_error() -> None:
    for bad in (0, -1, 1 << 32):
        with pytest.raises(LocalError):
            FrameBuffer(max_frame=bad)
    with pytest.raises(LocalError):
        ReceiveBuffer(0)


def test_receive_buffer_take_keeps_bytes_until_enough() -> None:
    rb = ReceiveBuffer(10)
    rb.feed(b"abc")
    assert rb.take(4) is None
    assert len(rb) == 3
    rb.feed(b"de")
    assert rb.take(4) == b"abcd"
    assert rb.take(1) == b"e"
    assert rb.take(0) == b""


def test_receive_buffer_takes_across_pieces_and_keeps_mutable_input_safe() -> None:
    rb = ReceiveBuffer(20)
    piece = bytearray(b"headbo")
    rb.feed(piece)
    piece[:] = b"XXXXXX"  # the caller reuses its buffer: what we hold must not change
    rb.feed(memoryview(b"dy-and"))
    rb.feed(b"-more")
    assert rb.take(4) == b"head"
    assert rb.take_owned(14) is None and len(rb) == 13  # too few: nothing taken
    rb.feed(b"!!")
    assert rb.take_owned(16) is None and len(rb) == 15
    owned = rb.take_owned(9)
    assert owned == bytearray(b"body-and-") and type(owned) is bytearray
    owned[:] = b"mine"  # the caller's own: changing it changes nothing held
    assert rb.take(4) == b"more" and rb.take(2) == b"!!" and len(rb) == 0
    assert rb.take(0) == b"" and rb.take_owned(0) == bytearray()


@settings(max_examples=100, deadline=None)
@given(pieces=st.lists(st.binary(max_size=50), max_size=12),
       cuts=st.lists(st.integers(0, 60), max_size=12))
def test_receive_buffer_gives_back_the_stream_whatever_the_pieces(pieces, cuts) -> None:
    """Whatever sizes arrive and are taken, the bytes taken are the stream, in order."""
    stream = b"".join(pieces)
    rb = ReceiveBuffer(max(1, len(stream)))
    for p in pieces:
        rb.feed(p)
    got = bytearray()
    for i, n in enumerate(cuts):
        out = (rb.take if i % 2 else rb.take_owned)(n)
        if out is None:
            assert n > len(rb)
            continue
        got += out
    got += rb.take(len(rb))
    assert bytes(got) == stream and len(rb) == 0


def test_a_peer_trickling_single_bytes_costs_no_object_per_byte() -> None:
    """Pieces under SMALL_PIECE are gathered: 200,000 one-byte receives cost about their bytes
    (a view kept per piece would cost ~40 MB), and come back in order."""
    rb = ReceiveBuffer(1 << 20)
    tracemalloc.start()
    try:
        for i in range(200_000):
            rb.feed(b"ab"[i % 2:i % 2 + 1])
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert used < 1 << 20, used
    assert rb.take(6) == b"ababab" and rb.take_owned(199_994) == bytearray(b"ab" * 99_997)


def test_sentinels_are_distinct_named_singletons() -> None:
    assert NEED_DATA is not CLOSED
    assert repr(NEED_DATA) == "NEED_DATA" and repr(CLOSED) == "CLOSED"
    assert pickle.loads(pickle.dumps(NEED_DATA)) is NEED_DATA


@settings(max_examples=150, deadline=None)
@given(payloads=st.lists(st.binary(max_size=300), max_size=10), chunk=st.integers(1, 400))
def test_round_trip_any_chunking(payloads: list[bytes], chunk: int) -> None:
    buf = FrameBuffer(max_frame=300)
    stream = b"".join(frame(p, max_frame=300) for p in payloads)
    assert feed_in_chunks(buf, stream, chunk) == payloads
    buf.feed_eof()


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000), chunk=st.integers(1, 300))
def test_random_bytes_only_ever_raise_remote_error(data: bytes, chunk: int) -> None:
    buf = FrameBuffer(max_frame=256)
    try:
        feed_in_chunks(buf, data, chunk)
        buf.feed_eof()
    except RemoteError:
        pass
