"""Peer messages <-> msgpack bytes: round trips of every kind, and a hostile peer's bytes.

`decode` must turn anything malformed into RemoteError (the peer's fault) and never let another
exception, or a message with a field of the wrong type, reach the protocol logic.
"""

from __future__ import annotations

import dataclasses
import os
import zlib

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossip_backer.errors import RemoteError
from gossip_backer.wire import messages
from gossip_backer.wire.codec import pack, unpack
from gossip_backer.wire.messages import (
    KINDS,
    BlockBatch,
    BlockBatchData,
    BlockData,
    BlockMissing,
    BlockRequest,
    Delta,
    DeltaAck,
    DeltaData,
    DeltaRequest,
    Digest,
    Hello,
    HistoryReply,
    HistoryRequest,
    InviteClaim,
    InviteResult,
    LiveSync,
    Ping,
    Pong,
    Refuse,
    Summary,
    decode,
    encode,
)

SETTINGS = settings(deadline=None, derandomize=True, max_examples=60,
                    suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(deadline=None, derandomize=True, max_examples=400,
                suppress_health_check=[HealthCheck.too_slow])

ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # msgpack's whole int range
uints = st.integers(min_value=0, max_value=2**64 - 1)
texts = st.text(max_size=40)
blobs = st.binary(max_size=80)
key32 = st.binary(min_size=32, max_size=32)
sig64 = st.binary(min_size=64, max_size=64)

# Nested items travel as msgpack arrays and come back as lists (runtime/history.py and
# crypto.identity.update_from_wire read them as lists), so the strategies build them as lists.
wire_update = st.tuples(key32, uints, blobs, sig64).map(list)
history_entry = st.tuples(key32, uints, ints, key32).map(list)

STRATEGIES = {
    Hello: st.builds(Hello, version=ints, name=texts,
                     listen=st.lists(texts, max_size=4).map(tuple), read_only=st.booleans()),
    Refuse: st.builds(Refuse, reason=texts),
    Digest: st.builds(Digest, entries=st.dictionaries(key32, uints, max_size=5),
                      full=st.booleans()),
    Summary: st.builds(Summary, digest_hash=blobs, origins=ints),
    Delta: st.builds(Delta, updates=st.lists(wire_update, max_size=4).map(tuple)),
    DeltaAck: st.builds(DeltaAck, received=ints, absorbed=ints),
    Ping: st.builds(Ping, nonce=ints),
    Pong: st.builds(Pong, nonce=ints),
    BlockRequest: st.builds(BlockRequest, request_id=ints, hash=blobs, file_hash=blobs,
                            offset=ints, size=ints),
    BlockData: st.builds(BlockData, request_id=ints, data=st.binary(max_size=2000)),
    BlockMissing: st.builds(BlockMissing, request_id=ints),
    DeltaRequest: st.builds(DeltaRequest, request_id=ints, hash=blobs, file_hash=blobs,
                            offset=ints, size=ints, base_size=ints, chunk=ints, signature=blobs),
    DeltaData: st.builds(DeltaData, request_id=ints, delta=blobs),
    InviteClaim: st.builds(InviteClaim, node=key32, name=texts, proof=sig64),
    InviteResult: st.builds(InviteResult, accepted=st.booleans(), reason=texts),
    LiveSync: st.builds(LiveSync, path=texts, kind=ints, data=blobs),
    HistoryRequest: st.builds(HistoryRequest, request_id=ints, path=texts),
    HistoryReply: st.builds(HistoryReply, request_id=ints,
                            entries=st.lists(history_entry, max_size=4).map(tuple)),
}
STRATEGIES[BlockBatch] = st.builds(
    BlockBatch, requests=st.lists(STRATEGIES[BlockRequest], max_size=4).map(tuple),
    deltas=st.lists(STRATEGIES[DeltaRequest], max_size=3).map(tuple))
STRATEGIES[BlockBatchData] = st.builds(
    BlockBatchData, blocks=st.lists(STRATEGIES[BlockData], max_size=4).map(tuple),
    missing=st.lists(ints, max_size=4).map(tuple),
    deltas=st.lists(STRATEGIES[DeltaData], max_size=3).map(tuple))
any_message = st.one_of(*STRATEGIES.values())


def test_every_kind_has_a_strategy_and_a_unique_tag() -> None:
    assert set(STRATEGIES) == set(KINDS.values())
    assert len({cls.TAG for cls in STRATEGIES}) == len(STRATEGIES)


@pytest.mark.parametrize("cls", sorted(KINDS.values(), key=lambda c: c.TAG),
                         ids=lambda c: c.__name__)
@SETTINGS
@given(data=st.data())
def test_round_trip_of_every_kind(cls, data) -> None:
    msg = data.draw(STRATEGIES[cls])
    raw = encode(msg)
    assert isinstance(raw, bytes)
    plain = unpack(raw)
    if plain[0] == messages.PACKED:
        assert cls.TAG in messages.PACKED_KINDS
        plain = unpack(zlib.decompress(plain[1], -15))
    assert plain[0] == cls.TAG and len(plain) == 1 + len(dataclasses.fields(cls))
    back = decode(raw)
    assert type(back) is cls
    assert back == msg
    assert encode(back) == raw


def test_round_trip_examples() -> None:
    msgs = [Hello(1, "laptop", ("10.0.0.1:7440", "[::1]:7440"), True), Refuse("revoked"),
            Digest({}, True), Digest({b"\x01" * 32: 3, b"\x02" * 32: 0}, False),
            Summary(b"\x00" * 32, 2), Delta(()), DeltaAck(10, 5), Ping(0), Pong(-1),
            BlockRequest(1, b"h" * 32, b"f" * 32, 0, 131072), BlockData(1, b""),
            BlockMissing(3), InviteClaim(b"n" * 32, "new", b"p" * 64), InviteResult(False, "no"),
            LiveSync("notes.txt", 1, b"\x00\x01"), HistoryRequest(4, "a/b.txt"),
            HistoryReply(4, ([b"h" * 32, 10, 1_700_000_000_000_000_000, b"o" * 32],))]
    for m in msgs:
        assert decode(encode(m)) == m


# --- fuzzing: a hostile peer's bytes ----------------------------------------------------------


def _decode_or_remote_error(data: bytes) -> None:
    try:
        msg = decode(data)
    except RemoteError:
        return
    assert type(msg) in KINDS.values()


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_remote_error(data: bytes) -> None:
    _decode_or_remote_error(data)


@FUZZ
@given(any_message, st.data())
def test_mutated_valid_encodings_decode_or_raise_remote_error(msg, data) -> None:
    raw = bytearray(encode(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and raw:
            del raw[pos]
        elif op == "truncate":
            del raw[pos:]
    _decode_or_remote_error(bytes(raw))


msgpack_values = st.recursive(
    st.none() | st.booleans() | ints | st.floats(allow_nan=False) | texts | blobs,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.integers(0, 5) | st.text(max_size=3) | st.binary(max_size=3), inner, max_size=3),
    max_leaves=12,
)


@FUZZ
@given(st.lists(msgpack_values, max_size=7), st.sampled_from(sorted(KINDS) + [0, 99, -1]))
def test_structured_junk_with_a_known_tag_decodes_or_raises_remote_error(values, tag) -> None:
    _decode_or_remote_error(pack([tag, *values]))


@FUZZ
@given(msgpack_values)
def test_any_msgpack_document_decodes_or_raises_remote_error(value) -> None:
    _decode_or_remote_error(pack(value))


# --- wrong shapes and types -----------------------------------------------------------------


def _plain(msg) -> list:
    return [msg.TAG, *[list(v) if isinstance(v, tuple) else v for v in
                       (getattr(msg, f.name) for f in dataclasses.fields(msg))]]


SAMPLES = {
    Hello: Hello(1, "n", ("a:1",), False), Refuse: Refuse("r"), Digest: Digest({}, True),
    Summary: Summary(b"h", 1), Delta: Delta(()), DeltaAck: DeltaAck(1, 1), Ping: Ping(1),
    Pong: Pong(1), BlockRequest: BlockRequest(1, b"h", b"f", 0, 1), BlockData: BlockData(1, b"d"),
    BlockMissing: BlockMissing(1), InviteClaim: InviteClaim(b"n", "x", b"p"),
    InviteResult: InviteResult(True, ""), LiveSync: LiveSync("p", 0, b""),
    HistoryRequest: HistoryRequest(1, "p"), HistoryReply: HistoryReply(1, ()),
    DeltaRequest: DeltaRequest(1, b"h", b"f", 0, 1, 1, 128, b"s"), DeltaData: DeltaData(1, b"d"),
    BlockBatch: BlockBatch(()), BlockBatchData: BlockBatchData((), ()),
}
# A value of another type for each annotation (bool is not an int; a str is not bytes...).
WRONG = {
    "int": ["1", b"1", True, 1.0, None, [1]],
    "str": [b"s", 1, None, ["s"]],
    "WirePath": [b"s", "caf\u00e9".encode(), 1, None, ["s"]],  # a bin only for non-UTF-8 bytes
    "bytes": ["b", 1, None, [1]],
    "bool": [1, 0, "true", None],
    "dict": [[], "d", 1, None],
    "tuple": [{}, "t", 1, None, b"t"],
}


def _annotation_kind(annotation: str) -> str:
    return "tuple" if annotation.startswith("tuple") else annotation


def test_a_path_that_is_not_utf8_travels_as_its_raw_bytes() -> None:
    path = os.fsdecode(b"dir\xfe/bad\xffname.txt")
    data = encode(HistoryRequest(7, path))
    assert b"bad\xffname.txt" in data
    assert decode(data) == HistoryRequest(7, path)
    assert encode(HistoryRequest(7, "plain.txt")) == pack([HistoryRequest.TAG, 7, "plain.txt"])


def test_samples_cover_every_kind() -> None:
    assert set(SAMPLES) == set(KINDS.values())
    for cls, msg in SAMPLES.items():
        assert decode(pack(_plain(msg))) == msg


WRONG_CASES = [
    (cls, f.name, bad)
    for cls in sorted(SAMPLES, key=lambda c: c.TAG)
    for f in dataclasses.fields(cls)
    for bad in WRONG[_annotation_kind(str(f.type))]
]


@pytest.mark.parametrize("cls,field,bad", WRONG_CASES,
                         ids=[f"{c.__name__}.{f}={b!r}" for c, f, b in WRONG_CASES])
def test_wrong_field_type_is_a_remote_error(cls, field, bad) -> None:
    plain = _plain(SAMPLES[cls])
    index = 1 + [f.name for f in dataclasses.fields(cls)].index(field)
    plain[index] = bad
    with pytest.raises(RemoteError):
        decode(pack(plain))


@pytest.mark.parametrize("cls", sorted(SAMPLES, key=lambda c: c.TAG), ids=lambda c: c.__name__)
def test_wrong_field_count_is_a_remote_error(cls) -> None:
    plain = _plain(SAMPLES[cls])
    with pytest.raises(RemoteError):
        decode(pack(plain[:-1]))  # one field short
    with pytest.raises(RemoteError):
        decode(pack(plain + [0]))  # one field too many
    with pytest.raises(RemoteError):
        decode(pack([cls.TAG]))  # no field at all


@pytest.mark.parametrize("doc", [None, 1, "hello", b"\x01", {1: 2}, [], [99], [0], [-1],
                                 ["1"], [b"\x01"], [None, 1]],
                         ids=repr)
def test_not_a_tagged_array_is_a_remote_error(doc) -> None:
    with pytest.raises(RemoteError):
        decode(pack(doc))


@pytest.mark.parametrize("tag", [[1], {}, {1: 1}], ids=repr)
def test_unhashable_tag_is_a_remote_error(tag) -> None:
    """An array or map where the tag should be: the peer's fault, not a TypeError."""
    with pytest.raises(RemoteError):
        decode(pack([tag, 1, "n", [], False]))


@pytest.mark.parametrize("tag", [True, 1.0], ids=repr)
def test_tag_of_another_type_is_a_remote_error(tag) -> None:
    """The tag is an int; a bool or float equal to a tag is a wrongly typed field."""
    with pytest.raises(RemoteError):
        decode(pack([tag, 1, "n", [], False]))


@pytest.mark.parametrize("listen", [[1], [None], [b"h:1"], [["h", 1]]], ids=repr)
def test_hello_listen_items_must_be_strings(listen) -> None:
    """`listen: tuple[str, ...]`: each address is a str (the module checks every field's type)."""
    with pytest.raises(RemoteError):
        decode(pack([Hello.TAG, 1, "n", listen, False]))


def test_raw_garbage_and_limits() -> None:
    for data in (b"", b"\xc1", b"\x91", b"\x92\x07", b"\xdd\xff\xff\xff\xff",
                 b"\xc7\x01\x05\x00", b"\x91" * 100_000 + b"\x07"):
        with pytest.raises(RemoteError):
            decode(data)
    with pytest.raises(RemoteError):  # over the codec's size limit, refused before parsing
        decode(pack([BlockData.TAG, 1, b"\0" * (16 << 20)]))


def test_trailing_bytes_after_a_message_are_a_remote_error() -> None:
    with pytest.raises(RemoteError):
        decode(encode(Ping(1)) + b"\x00")
    with pytest.raises(RemoteError):
        decode(encode(Ping(1)) + encode(Ping(2)))


def test_encode_is_plain_msgpack_with_the_tag_first() -> None:
    raw = encode(Hello(1, "n", ("a",), True))
    assert msgpack.unpackb(raw, raw=False) == [Hello.TAG, 1, "n", ["a"], True]
    assert messages.PROTOCOL_VERSION == 6


def _deflated(data: bytes) -> bytes:
    deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
    return deflate.compress(data) + deflate.flush()


def test_a_gossip_delta_travels_deflated_when_that_is_smaller() -> None:
    origin = b"o" * 32
    updates = tuple([origin, seq, pack(["f", [f"src/pkg/mod{seq}.py", origin, b"h" * 32]]),
                     bytes(range(64))] for seq in range(1, 8))
    msg = Delta(updates)
    raw = encode(msg)
    assert unpack(raw)[0] == messages.PACKED
    assert len(raw) < len(pack([Delta.TAG, list(updates)])) // 2
    assert decode(raw) == msg
    assert unpack(encode(Delta(()))) == [Delta.TAG, []]  # small: as it is
    assert unpack(encode(Ping(1)))[0] == Ping.TAG  # other kinds: as they are


def test_a_batch_of_plain_block_requests_travels_as_it_is() -> None:
    """Its hashes do not deflate: packing it only cost the receiver CPU. A batch with delta
    requests still travels deflated when that is smaller (their signatures shrink)."""
    same = os.urandom(32)  # a one-block file: its block hash is its file hash, which deflates
    plain_only = BlockBatch(tuple(BlockRequest(i, same, same, 0, 4096) for i in range(64)))
    raw = encode(plain_only)
    assert unpack(raw)[0] == BlockBatch.TAG
    assert decode(raw) == plain_only
    signature = bytes(range(16)) * 64
    with_deltas = BlockBatch(plain_only.requests[:4], tuple(
        DeltaRequest(100 + i, os.urandom(32), same, 0, 65536, 65536, 4096, signature)
        for i in range(8)))
    raw = encode(with_deltas)
    assert unpack(raw)[0] == messages.PACKED
    assert decode(raw) == with_deltas


@pytest.mark.parametrize("packed", [
    pack([messages.PACKED, b"not deflate data"]),
    pack([messages.PACKED, "text"]),
    pack([messages.PACKED, _deflated(pack([messages.PACKED, _deflated(encode(Ping(1)))]))]),
    pack([messages.PACKED, _deflated(pack([BlockData.TAG, 1, b"\0" * (2 << 20)]))]),  # a bomb
    pack([messages.PACKED, _deflated(encode(Ping(1)))[:-2]]),
])
def test_a_bad_packed_message_is_a_remote_error(packed: bytes) -> None:
    with pytest.raises(RemoteError):
        decode(packed)


def test_a_batch_carries_whole_messages_and_refuses_a_malformed_one() -> None:
    batch = BlockBatch((BlockRequest(1, b"h", b"f", 0, 10), BlockRequest(2, b"i", b"f", 10, 5)))
    assert decode(encode(batch)) == batch
    assert unpack(encode(batch)) == [BlockBatch.TAG, [[1, b"h", b"f", 0, 10], [2, b"i", b"f", 10, 5]],
                                     []]
    answer = BlockBatchData((BlockData(1, b"x" * 10),), (2,))
    assert decode(encode(answer)) == answer
    # protocol 4: delta requests ride in the batch too, and their deltas in its answer
    deltas = BlockBatch((), (DeltaRequest(3, b"", b"f" * 32, 0, 900, 800, 256, b"s" * 40),))
    assert decode(encode(deltas)) == deltas
    answer = BlockBatchData((), (), (DeltaData(3, b"d" * 30),))
    assert decode(encode(answer)) == answer
    for bad in ([BlockBatch.TAG, [[1, b"h", b"f", 0]], []],
                [BlockBatch.TAG, [[1, b"h", b"f", 0, "10"]], []],
                [BlockBatch.TAG, [7], []], [BlockBatchData.TAG, [[1, 5]], [], []],
                [BlockBatchData.TAG, [], ["x"], []],
                [BlockBatch.TAG, [], [[3, b"", b"f", 0, 900, 800, 256]]],  # a field short
                [BlockBatchData.TAG, [], [], [[3, "d"]]],
                [BlockBatch.TAG, [[1, b"h", b"f", 0, 10]]]):  # a protocol-3 batch
        with pytest.raises(RemoteError):
            decode(pack(bad))


@pytest.mark.parametrize("size", [0, 1, 255, 256, 65535, 65536, 1 << 20])
def test_a_block_is_encoded_as_plain_msgpack(size: int) -> None:
    """BlockData takes a shortcut past msgpack's buffer (one copy of the block, not two); its
    bytes are exactly msgpack's."""
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    for rid in (0, 7, 1 << 40):
        raw = encode(BlockData(rid, data))
        assert raw == msgpack.packb([BlockData.TAG, rid, data], use_bin_type=True)
        assert decode(raw) == BlockData(rid, data)


@pytest.mark.parametrize("count", [0, 1, 4, 15, 16, 17])
def test_a_batch_of_blocks_is_encoded_as_plain_msgpack(count: int) -> None:
    """BlockBatchData takes the same shortcut (each block copied once); its bytes are exactly
    msgpack's, whatever the number of blocks (msgpack's array header changes at 16)."""
    blocks = tuple(BlockData(i * 1000, bytes([i]) * (i * 300 + (1 << 16) * (i % 2)))
                   for i in range(count))
    deltas = (DeltaData(7, b"\x01" * 40), DeltaData(9, b"\x02" * 300))
    for missing, with_deltas in (((), ()), ((3,), deltas), (tuple(range(20)), deltas[:1])):
        answer = BlockBatchData(blocks, missing, with_deltas)
        raw = encode(answer)
        assert raw == msgpack.packb(
            [BlockBatchData.TAG, [[b.request_id, b.data] for b in blocks],
             list(missing), [[d.request_id, d.delta] for d in with_deltas]], use_bin_type=True)
        assert decode(raw) == answer


def test_a_bundle_carries_small_messages_and_refuses_a_malformed_one() -> None:
    small = [encode(Ping(1)), encode(Pong(2)), encode(Ping(3))]
    large = encode(BlockData(4, b"x" * (messages.BUNDLE_ITEM + 1)))
    out = messages.bundles(small[:2] + [large] + small[2:])
    assert [messages.decode_all(body) for body in out] == [[Ping(1), Pong(2)],
                                                           [BlockData(4, b"x" * (messages.BUNDLE_ITEM + 1))],
                                                           [Ping(3)]]
    assert len(messages.bundles(small * 30)) == 2  # at most BUNDLE_COUNT a bundle
    assert messages.bundled(Ping(1)) and not messages.bundled(BlockData(1, b""))
    bundle = messages.BUNDLE
    for bad in ([bundle, [small[0]]], [bundle, "x"], [bundle, [small[0], 5]],
                [bundle, [small[0], pack([bundle, small])]],  # nested
                [bundle, [small[0], b"\xc1"]], [bundle, [small[0], large]]):
        with pytest.raises(RemoteError):
            messages.decode_all(pack(bad))
    with pytest.raises(RemoteError):
        decode(pack([bundle, small]))  # one message expected: a bundle is not one
