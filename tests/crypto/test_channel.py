"""Box-stream channel (over AEGIS-256): round trips on real handshake keys, every way a stream can
be attacked."""

from __future__ import annotations

import os
import tracemalloc

import nacl.bindings as sodium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip_backer.crypto.channel import (
    CLOSED,
    DEFAULT_MAX_FRAME,
    FRAME_OVERHEAD,
    HEADER_SIZE,
    NEED_DATA,
    BoxStreamChannel,
    increment_nonce,
)
from gossip_backer.crypto.handshake import Handshake, HandshakeResult, to_keys
from gossip_backer.errors import LocalError, RemoteError

NETWORK_KEY = b"\x07" * 32
SERVER_SEED = b"S" * 32


def handshake_results() -> tuple[HandshakeResult, HandshakeResult]:
    """A real, in-memory handshake; its keys drive every test here."""
    client = Handshake.client(NETWORK_KEY, b"C" * 32, to_keys(SERVER_SEED)["publicKey"])
    server = Handshake.server(NETWORK_KEY, SERVER_SEED, lambda key: True)
    server.initial_bytes()
    m2 = server.receive_data(client.initial_bytes())
    client.receive_data(server.receive_data(client.receive_data(m2)))
    return client.result, server.result


CLIENT_RESULT, SERVER_RESULT = handshake_results()


def pair(max_frame: int = DEFAULT_MAX_FRAME) -> tuple[BoxStreamChannel, BoxStreamChannel]:
    """(client, server) channels; fresh counters each time, same keys."""
    return (
        BoxStreamChannel.from_handshake(CLIENT_RESULT, max_frame=max_frame),
        BoxStreamChannel.from_handshake(SERVER_RESULT, max_frame=max_frame),
    )


def drain(channel: BoxStreamChannel) -> list[bytes | object]:
    """Every message now available, ending with CLOSED if the goodbye was read."""
    out: list[bytes | object] = []
    while True:
        item = channel.next_message()
        if item is NEED_DATA:
            return out
        out.append(item)
        if item is CLOSED:
            return out


def deliver(channel: BoxStreamChannel, stream: bytes, chunk: int = 1 << 16) -> list[bytes | object]:
    """The documented contract: feed in pieces, drain after each."""
    out = []
    for i in range(0, len(stream), chunk):
        channel.receive_data(stream[i : i + chunk])
        out += drain(channel)
    return out


# --- round trips ----------------------------------------------------------------------------------


def test_round_trip_both_directions() -> None:
    client, server = pair()
    assert deliver(server, client.seal(b"hello server")) == [b"hello server"]
    assert deliver(client, server.seal(b"hello client")) == [b"hello client"]
    assert deliver(server, client.seal(b"again")) == [b"again"]


def test_many_frames_any_chunking() -> None:
    client, server = pair()
    messages = [os.urandom(i % 300) for i in range(1000)]
    stream = b"".join(client.seal(m) for m in messages) + client.goodbye()
    assert deliver(server, stream, chunk=777) == messages + [CLOSED]
    server.receive_eof()  # after a goodbye: a clean end


def test_bodies_of_every_length_open_in_place_to_what_was_sealed() -> None:
    """A body is opened in the receive buffer's copy of it (AEGIS-256 in place): every length
    around its 32-byte blocks, and a maximal one arriving in uneven pieces, comes back whole."""
    client, server = pair()
    bodies = [os.urandom(n) for n in range(0, 100)] + [os.urandom(DEFAULT_MAX_FRAME)]
    stream = b"".join(bytes(client.seal(b)) for b in bodies)
    got = deliver(server, stream, chunk=65_537)
    assert got == bodies and all(type(b) is bytearray for b in got)


def test_frame_layout() -> None:
    client, _ = pair()
    assert len(client.seal(b"")) == FRAME_OVERHEAD == HEADER_SIZE + 32 == 68
    assert len(client.seal(b"abc")) == FRAME_OVERHEAD + 3
    assert len(client.goodbye()) == HEADER_SIZE == 36


def test_zero_byte_message_is_not_a_goodbye() -> None:
    client, server = pair()
    assert deliver(server, client.seal(b"") + client.seal(b"x")) == [b"", b"x"]
    assert not server.receive_closed


def test_max_size_message_is_one_frame() -> None:
    client, server = pair()
    body = os.urandom(DEFAULT_MAX_FRAME)
    frame = client.seal(body)
    assert len(frame) == FRAME_OVERHEAD + DEFAULT_MAX_FRAME
    assert deliver(server, frame) == [body]


def test_over_max_is_split_by_seal_and_refused_by_seal_frame() -> None:
    client, server = pair(max_frame=1000)
    body = os.urandom(2500)
    stream = client.seal(body)
    assert len(stream) == 3 * FRAME_OVERHEAD + 2500
    assert deliver(server, stream, chunk=1000) == [body[:1000], body[1000:2000], body[2000:]]
    with pytest.raises(LocalError):
        client.seal_frame(body)
    assert deliver(server, client.seal_frame(body[:1000])) == [body[:1000]]  # counters intact


def test_bytes_like_input() -> None:
    client, server = pair(max_frame=10)
    assert deliver(server, client.seal(bytearray(b"0123456789ab"))) == [b"0123456789", b"ab"]


# --- attacks --------------------------------------------------------------------------------------


def test_replayed_frame_fails() -> None:
    client, server = pair()
    frame = client.seal(b"pay 10")
    assert deliver(server, frame) == [b"pay 10"]
    with pytest.raises(RemoteError, match="tag"):
        deliver(server, frame)


def test_reordered_frames_fail() -> None:
    client, server = pair()
    first, second = client.seal(b"first"), client.seal(b"second")
    with pytest.raises(RemoteError, match="tag"):
        deliver(server, second + first)


def test_dropped_frame_fails() -> None:
    client, server = pair()
    client.seal(b"lost")
    with pytest.raises(RemoteError):
        deliver(server, client.seal(b"next"))


def test_every_flipped_bit_fails() -> None:
    client, _ = pair()
    frame = client.seal(b"ten bytes!")
    for bit in range(len(frame) * 8):
        tampered = bytearray(frame)
        tampered[bit // 8] ^= 1 << (bit % 8)
        _, server = pair()
        with pytest.raises(RemoteError):
            deliver(server, bytes(tampered))
            server.receive_eof()  # a flipped length can leave it waiting: then it is truncated


def test_frame_from_the_other_direction_fails() -> None:
    client, _ = pair()
    echo = BoxStreamChannel.from_handshake(CLIENT_RESULT)
    with pytest.raises(RemoteError):
        deliver(echo, client.seal(b"reflected back to its sender"))


@pytest.mark.parametrize("cut", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 5])
def test_eof_mid_frame_is_truncation(cut: int) -> None:
    client, server = pair()
    assert deliver(server, client.seal(b"0123456789" * 2)[:cut]) == []
    with pytest.raises(RemoteError, match="truncated"):
        server.receive_eof()


def test_eof_between_frames_without_goodbye_is_truncation() -> None:
    client, server = pair()
    assert deliver(server, client.seal(b"complete")) == [b"complete"]
    with pytest.raises(RemoteError, match="truncated.*without a goodbye"):
        server.receive_eof()


def aegis_nonce(nonce: bytes) -> bytes:
    """AEGIS-256 takes 32-byte nonces: the 24-byte counter with 8 zero bytes in front."""
    return bytes(8) + nonce


def forge_header(result: HandshakeResult, length: int) -> bytes:
    """A header sealed with the right key and nonce: only the length is hostile."""
    plain = length.to_bytes(4, "big")
    return sodium.crypto_aead_aegis256_encrypt(plain, None, aegis_nonce(result.encrypt_nonce),
                                               result.encrypt_key)


def test_forged_4_gib_length_raises_before_allocating() -> None:
    _, server = pair()
    server.receive_data(forge_header(CLIENT_RESULT, 0xFFFF_FFFE))  # header only: no body sent
    tracemalloc.start()
    try:
        with pytest.raises(RemoteError, match="4294967294"):
            server.next_message()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def test_forged_length_one_over_max_is_refused() -> None:
    _, server = pair(max_frame=1000)
    server.receive_data(forge_header(CLIENT_RESULT, 1001))
    with pytest.raises(RemoteError, match="max_frame"):
        server.next_message()


def test_data_after_goodbye_in_the_same_chunk() -> None:
    client, server = pair()
    server.receive_data(client.goodbye() + b"more")
    with pytest.raises(RemoteError, match="after goodbye"):
        server.next_message()


def test_data_after_goodbye_in_a_later_chunk() -> None:
    client, server = pair()
    assert deliver(server, client.goodbye()) == [CLOSED]
    assert server.next_message() is CLOSED  # stays closed
    server.receive_data(b"")  # nothing is fine
    with pytest.raises(RemoteError, match="after goodbye"):
        server.receive_data(b"x")


def test_no_sending_after_goodbye() -> None:
    client, _ = pair()
    client.goodbye()
    assert client.send_closed
    with pytest.raises(LocalError):
        client.seal(b"late")
    with pytest.raises(LocalError):
        client.goodbye()


def test_a_failed_channel_stays_failed() -> None:
    client, server = pair()
    with pytest.raises(RemoteError):
        deliver(server, b"\x00" * HEADER_SIZE)
    frame = client.seal(b"valid now, but too late")
    for call in (lambda: server.receive_data(frame), server.next_message, server.receive_eof):
        with pytest.raises(RemoteError, match="already failed"):
            call()


def test_receive_buffer_is_bounded() -> None:
    client, server = pair(max_frame=1000)
    frame = client.seal(b"z" * 1000)
    server.receive_data(frame)
    server.receive_data(frame)  # two maximal frames: the cap
    with pytest.raises(RemoteError, match="overflow"):
        server.receive_data(b"!")


def test_draining_receiver_never_hits_the_cap() -> None:
    client, server = pair(max_frame=1000)
    stream = b"".join(client.seal(bytes([i]) * 1000) for i in range(100))
    assert len(deliver(server, stream, chunk=1000)) == 100
    assert server.buffered == 0


def test_bad_construction_is_a_local_error() -> None:
    r = CLIENT_RESULT
    with pytest.raises(LocalError):
        BoxStreamChannel(
            r.encrypt_key, r.encrypt_nonce, r.decrypt_key, r.decrypt_nonce, max_frame=0
        )
    with pytest.raises(LocalError):
        BoxStreamChannel(b"short", r.encrypt_nonce, r.decrypt_key, r.decrypt_nonce)


# --- the nonce rule, spelled out ------------------------------------------------------------------


def test_increment_nonce_is_big_endian_and_wraps() -> None:
    assert increment_nonce(bytes(24)) == bytes(23) + b"\x01"
    assert increment_nonce(bytes(23) + b"\xff") == bytes(22) + b"\x01\x00"
    assert increment_nonce(b"\xff" * 24) == bytes(24)
    assert increment_nonce(bytes(24), by=2) == bytes(23) + b"\x02"


@given(st.binary(min_size=24, max_size=24))
def test_increment_nonce_is_sodium_increment_reversed(nonce: bytes) -> None:
    """sodium_increment counts little-endian: the same counter read backwards."""
    assert increment_nonce(nonce) == sodium.sodium_increment(nonce[::-1])[::-1]


def test_wire_format_matches_box_stream() -> None:
    """Open two frames and a goodbye by hand: header n (the length), body n+1 (with its tag
    behind it), next header n+2; the goodbye seals the length 0xFFFFFFFF."""
    client, _ = pair()
    key, n0 = CLIENT_RESULT.encrypt_key, CLIENT_RESULT.encrypt_nonce

    def open_(boxed: bytes, nonce: bytes) -> bytes:
        return sodium.crypto_aead_aegis256_decrypt(boxed, None, aegis_nonce(nonce), key)
    stream = bytes(client.seal(b"one") + client.seal(b"two") + client.goodbye())
    nonce = n0
    for body in (b"one", b"two"):
        header = open_(stream[:HEADER_SIZE], nonce)
        assert int.from_bytes(header, "big") == len(body)
        end = HEADER_SIZE + len(body) + 32
        assert open_(stream[HEADER_SIZE:end], increment_nonce(nonce)) == body
        stream, nonce = stream[end:], increment_nonce(nonce, 2)
    assert open_(stream, nonce) == b"\xff" * 4


def test_handshake_trailing_data_starts_the_stream() -> None:
    """The server may send its first frame right behind message 4."""
    client = Handshake.client(NETWORK_KEY, b"C" * 32, to_keys(SERVER_SEED)["publicKey"])
    server = Handshake.server(NETWORK_KEY, SERVER_SEED, lambda key: True)
    server.initial_bytes()
    m4 = server.receive_data(client.receive_data(server.receive_data(client.initial_bytes())))
    first = BoxStreamChannel.from_handshake(server.result).seal(b"welcome")
    client.receive_data(m4 + first)
    channel = BoxStreamChannel.from_handshake(client.result)
    assert deliver(channel, client.trailing_data) == [b"welcome"]


# --- fuzzing --------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000), chunk=st.integers(1, 500))
def test_random_bytes_only_raise_remote_error(data: bytes, chunk: int) -> None:
    _, server = pair(max_frame=1000)
    try:
        assert deliver(server, data, chunk) == []  # nothing forged ever opens
        server.receive_eof()
    except RemoteError:
        pass


MESSAGES = [b"alpha", b"", b"gamma" * 50, os.urandom(700)]


def valid_stream() -> bytes:
    client, _ = pair(max_frame=1000)
    return b"".join(client.seal(m) for m in MESSAGES) + client.goodbye()


mutations = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 40)),
    st.tuples(st.just("duplicate"), st.integers(0, 10_000), st.integers(1, 100)),
)


def mutate(stream: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(stream)
    for kind, where, arg in ops:
        where %= len(data) + 1
        if kind == "flip" and where < len(data):
            data[where] ^= arg
        elif kind == "cut":
            del data[where:]
        elif kind == "insert":
            data[where:where] = bytes([arg])
        elif kind == "delete":
            del data[where : where + arg]
        elif kind == "duplicate":
            data[where:where] = data[where : where + arg]
        if not data:
            break
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(mutations, min_size=1, max_size=4), chunk=st.integers(1, 1100))
def test_mutated_streams_yield_a_prefix_of_the_truth_or_remote_error(
    ops: list[tuple[str, int, int]], chunk: int
) -> None:
    """Whatever an attacker does to the bytes, the receiver yields only genuine messages, in
    order, and otherwise raises RemoteError: never another exception, never a forged message."""
    stream = mutate(valid_stream(), ops)
    _, server = pair(max_frame=1000)
    got: list[bytes | object] = []
    try:
        for i in range(0, len(stream), chunk):
            server.receive_data(stream[i : i + chunk])
            got += drain(server)
        server.receive_eof()
    except RemoteError:
        pass
    messages = [m for m in got if m is not CLOSED]
    assert messages == MESSAGES[: len(messages)]
    if CLOSED in got:  # a genuine goodbye: everything before it was genuine too
        assert messages == MESSAGES and stream.startswith(valid_stream())
