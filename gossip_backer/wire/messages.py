"""One frozen dataclass per message kind of the peer protocol, and their msgpack encoding.

A message travels as msgpack `[tag, field1, field2, ...]`. Decoding checks every field's type,
so a peer's malformed message becomes a RemoteError here and never reaches the protocol logic.

Messages of the kinds in PACKED_KINDS (gossip deltas, delta requests and batches of requests:
each update repeats its origin's 32-byte key, a small file's block hash repeats its file hash,
paths share their folders) travel deflated when that is smaller, as `[PACKED, deflated msgpack]` (raw deflate,
level 1): in the edit_text benchmark a Delta of a round's updates shrinks to half. Inflating
stops at PACKED_MAX bytes, what one frame could have carried plainly.

Small messages sent at once (`bundled` kinds: a gossip round's Digest and DeltaAck, pings) share
one frame as `[BUNDLE, [message, ...]]` (`bundles`, `decode_all`): a frame costs 68 bytes.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from typing import ClassVar

from gossip_backer.core import paths
from gossip_backer.errors import RemoteError
from gossip_backer.wire import blockframes
from gossip_backer.wire.codec import pack, unpack

PROTOCOL_VERSION = 6  # 2: BlockBatch / BlockBatchData (a version-1 peer is refused by Hello);
# 3: frames sealed with AEGIS-256 (crypto/channel.py; a version-2 peer fails the first frame's
# tag), packed (deflated) messages, delta pieces; 4: BlockBatch carries DeltaRequests and
# BlockBatchData their DeltaData (a field more each), BlockBatch travels packed, small messages
# sent together share a frame (BUNDLE), delta signatures with 4-byte chunk entries (core.delta);
# 5: a file record repeating another node's version (a conflict copy) ends with `source_seq`,
# the update of its origin that carried it (core/record.py): a version-4 node refuses it;
# 6: a BlockBatch of blocks over 128 KiB only may ask for up to 1984 KiB (protocol.transfer
# LARGE_BATCH_BYTES; 1 MiB before), so its BlockBatchData is up to ~2 MiB: a version-5 node
# refuses such a batch
UpdateTuple = tuple  # (origin: bytes, seq: int, body: bytes, sig: bytes)
WirePath = str  # a mesh path: a str in memory, a str or (not UTF-8) a bin on the wire (core.paths)


@dataclass(frozen=True, slots=True)
class Hello:
    """First message after the handshake: protocol version and how to reach the sender."""

    TAG: ClassVar[int] = 1
    version: int
    name: str
    listen: tuple[str, ...]
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class Refuse:
    """Last message before closing on purpose: why (incompatible version, revoked...)."""

    TAG: ClassVar[int] = 2
    reason: str


@dataclass(frozen=True, slots=True)
class Digest:
    """Scuttlebutt digest entries (origin -> highest seq held); `full` when it is all of them."""

    TAG: ClassVar[int] = 3
    entries: dict
    full: bool


@dataclass(frozen=True, slots=True)
class Summary:
    """Anti-entropy probe: a hash of the sender's whole digest."""

    TAG: ClassVar[int] = 4
    digest_hash: bytes
    origins: int


@dataclass(frozen=True, slots=True)
class Delta:
    """Updates the receiver lacks, each as (origin, seq, body, sig)."""

    TAG: ClassVar[int] = 5
    updates: tuple


@dataclass(frozen=True, slots=True)
class DeltaAck:
    """How many bytes of the last delta the receiver took in (drives the sender's AIMD budget)."""

    TAG: ClassVar[int] = 6
    received: int
    absorbed: int


@dataclass(frozen=True, slots=True)
class Ping:
    TAG: ClassVar[int] = 7
    nonce: int


@dataclass(frozen=True, slots=True)
class Pong:
    TAG: ClassVar[int] = 8
    nonce: int


@dataclass(frozen=True, slots=True)
class BlockRequest:
    """Ask for the block with `hash`, which is `size` bytes at `offset` of version `file_hash`."""

    TAG: ClassVar[int] = 9
    request_id: int
    hash: bytes
    file_hash: bytes
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class BlockData:
    TAG: ClassVar[int] = 10
    request_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class BlockMissing:
    TAG: ClassVar[int] = 11
    request_id: int


@dataclass(frozen=True, slots=True)
class DeltaRequest:
    """A BlockRequest that may be answered with a DeltaData: the asker holds `base_size` bytes
    of an older content in the place of this block, of which `signature` describes each
    `chunk`-byte piece (core.delta)."""

    TAG: ClassVar[int] = 17
    request_id: int
    hash: bytes
    file_hash: bytes
    offset: int
    size: int
    base_size: int
    chunk: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class DeltaData:
    """The answer to a DeltaRequest as copies of the asker's chunks and literals (core.delta)."""

    TAG: ClassVar[int] = 18
    request_id: int
    delta: bytes


@dataclass(frozen=True, slots=True)
class BlockBatch:
    """Many small BlockRequests and DeltaRequests in one message: a tree of small files costs
    one message (and one disk hop on the server) per batch, not per file, and a round of edited
    files one frame, not one each (a frame costs 68 bytes). Answered by one BlockBatchData."""

    TAG: ClassVar[int] = 19
    requests: tuple[BlockRequest, ...]
    deltas: tuple[DeltaRequest, ...] = ()


@dataclass(frozen=True, slots=True)
class BlockBatchData:
    """The answer to a BlockBatch: the blocks found (a DeltaRequest's block too, when its delta
    would not be smaller), the request ids of those not found, and the deltas."""

    TAG: ClassVar[int] = 20
    blocks: tuple[BlockData, ...]
    missing: tuple[int, ...]
    deltas: tuple[DeltaData, ...] = ()


@dataclass(frozen=True, slots=True)
class InviteClaim:
    """Sent over a connection authenticated with an invite's one-time key: "grant `node`".
    `proof` is `node`'s signature over the claim, so the grant names a key its holder controls."""

    TAG: ClassVar[int] = 12
    node: bytes
    name: str
    proof: bytes


@dataclass(frozen=True, slots=True)
class InviteResult:
    """The inviter's answer to a claim; the connection closes after it."""

    TAG: ClassVar[int] = 14
    accepted: bool
    reason: str


@dataclass(frozen=True, slots=True)
class LiveSync:
    """A live-edit document update (pycrdt/Yrs bytes) for one path."""

    TAG: ClassVar[int] = 13
    path: WirePath
    kind: int
    data: bytes


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """Which versions of `path` does the peer keep in its revision archive?"""

    TAG: ClassVar[int] = 15
    request_id: int
    path: WirePath


@dataclass(frozen=True, slots=True)
class HistoryReply:
    """Kept versions, each as [content hash, size, mtime_ns, origin node]."""

    TAG: ClassVar[int] = 16
    request_id: int
    entries: tuple


Message = (Hello | Refuse | Digest | Summary | Delta | DeltaAck | Ping | Pong | BlockRequest
           | BlockData | BlockMissing | InviteClaim | InviteResult | LiveSync | HistoryRequest | HistoryReply
           | DeltaRequest | DeltaData | BlockBatch | BlockBatchData)
KINDS: dict[int, type] = {
    cls.TAG: cls
    for cls in (Hello, Refuse, Digest, Summary, Delta, DeltaAck, Ping, Pong, BlockRequest,
                BlockData, BlockMissing, InviteClaim, InviteResult, LiveSync, HistoryRequest,
                HistoryReply, DeltaRequest, DeltaData, BlockBatch, BlockBatchData)
}
_FIELDS = {tag: dataclasses.fields(cls) for tag, cls in KINDS.items()}
_PY = {"int": int, "str": str, "bytes": bytes, "bool": bool, "dict": dict}
_NESTED = {cls.__name__: cls for cls in (BlockRequest, BlockData, DeltaRequest, DeltaData)}  # kinds carried inside others


def _values(msg) -> list:
    """A message's fields as plain msgpack values (nested messages as their field lists)."""
    out = []
    for f in _FIELDS[msg.TAG]:
        v = getattr(msg, f.name)
        if str(f.type) == "WirePath":
            v = paths.to_plain(v)
        elif isinstance(v, tuple):
            v = [_values(x) if type(x).__name__ in _NESTED else x for x in v]
        out.append(v)
    return out


PACKED = 21  # the tag of a deflated message (never nested)
PACKED_KINDS = frozenset({5, 17, 19})  # Delta, DeltaRequest, BlockBatch
PACKED_MIN = 96  # smaller messages are sent as they are
PACKED_MAX = 2 << 20  # the most a packed message may inflate to (one frame's worth)


BUNDLE = 22  # the tag of several small messages in one frame (never nested, never packed)
BUNDLE_ITEM = 16 << 10  # a message larger than this, encoded, travels in a frame of its own
BUNDLE_BYTES = 64 << 10  # the encoded messages of one bundle, at most
BUNDLE_COUNT = 64  # messages in one bundle, at most


BUNDLED_KINDS = frozenset({Digest, Summary, DeltaAck, Ping, Pong, BlockMissing, LiveSync})


def bundled(msg: Message) -> bool:
    """May `msg` share a frame with others queued with it? (Small kinds only: a sender never
    holds several large messages encoded at once.)"""
    return type(msg) in BUNDLED_KINDS


def bundles(encoded: list[bytes]) -> list[bytes]:
    """Encoded messages queued together, as frame bodies: runs of small ones (at most
    BUNDLE_COUNT and BUNDLE_BYTES) as one `[BUNDLE, [message, ...]]` each, the others alone.
    A frame costs 68 bytes (crypto/channel.py): a gossip round's Digest and DeltaAck, sent at
    once, cost one (protocol 4)."""
    out: list[bytes] = []
    run: list[bytes] = []
    size = 0

    def flush() -> None:
        if len(run) > 1:
            out.append(pack([BUNDLE, list(run)]))
        elif run:
            out.append(run[0])

    for body in encoded:
        if len(body) > BUNDLE_ITEM or len(run) >= BUNDLE_COUNT or size + len(body) > BUNDLE_BYTES:
            flush()
            run, size = [], 0
        if len(body) > BUNDLE_ITEM:
            out.append(body)
            continue
        run.append(body)
        size += len(body)
    flush()
    return out


def decode_all(data: bytes) -> list[Message]:
    """A frame body -> its messages (several for a bundle); RemoteError if malformed. Blocks
    come as read-only views of `data` (wire.blockframes), which must not change afterwards."""
    answer = _block_answer(data)
    if answer is not None:
        return [answer]
    plain = unpack(data)
    if not (isinstance(plain, list) and len(plain) == 2 and plain[0] == BUNDLE):
        return [_from_plain(plain)]
    items = plain[1]
    if (not isinstance(items, list) or not 1 < len(items) <= BUNDLE_COUNT
            or not all(isinstance(b, bytes) and len(b) <= BUNDLE_ITEM for b in items)):
        raise RemoteError("bundle: malformed")
    return [decode(body) for body in items]


def _block_answer(data: bytes) -> Message | None:
    """A BlockData or BlockBatchData whose blocks are views of `data`, not copies; None when
    `data` is something else (or not laid out as `encode` lays it out)."""
    found = blockframes.split(data)
    if found is None:
        return None
    tag, blocks, rest = found
    if tag == BlockData.TAG:
        if len(rest):
            return None  # trailing bytes: the ordinary decoder names the fault
        (rid, block), = blocks
        return BlockData(rid, block)
    tail = _from_plain(unpack(b"\x94" + pack(BlockBatchData.TAG) + b"\x90" + bytes(rest)))
    return dataclasses.replace(tail, blocks=tuple(BlockData(rid, b) for rid, b in blocks))


def encode_plain(msg: Message) -> bytes:
    """A message's msgpack form, never packed (for counting its size cheaply)."""
    return pack([msg.TAG, *_values(msg)])


def _worth_packing(msg: Message) -> bool:
    """A BlockBatch of plain block requests only is mostly hashes, which deflate cannot shrink:
    deflating it cost a receiver of 2,000 small files ~4% of its loop's busy time for nothing.
    Its delta requests' signatures are what shrinks."""
    return type(msg) is not BlockBatch or bool(msg.deltas)


def encode(msg: Message) -> bytes:
    if type(msg) is BlockData:
        return b"".join(_block_parts(msg))
    if type(msg) is BlockBatchData:
        return _encode_batch(msg)
    plain = encode_plain(msg)
    if msg.TAG in PACKED_KINDS and PACKED_MIN <= len(plain) <= PACKED_MAX and _worth_packing(msg):
        deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
        packed = pack([PACKED, deflate.compress(plain) + deflate.flush()])
        if len(packed) < len(plain):
            return packed
    return plain


def _inflated(packed: object) -> list:
    """The message inside a packed one, as plain values (RemoteError if it cannot be one)."""
    if not isinstance(packed, bytes):
        raise RemoteError("packed message: wrong type")
    inflate = zlib.decompressobj(-15)
    try:
        data = inflate.decompress(packed, PACKED_MAX + 1)
    except zlib.error:
        raise RemoteError("packed message: bad deflate data") from None
    if len(data) > PACKED_MAX or inflate.unconsumed_tail or not inflate.eof:
        raise RemoteError("packed message: too large or truncated")
    plain = unpack(data)
    if isinstance(plain, list) and plain and plain[0] == PACKED:
        raise RemoteError("packed message inside a packed message")
    return plain


def _block_parts(msg: BlockData, nested: bool = False) -> tuple[bytes, bytes]:
    """A BlockData's msgpack form in two pieces, the block itself the second: joined, they are
    the same bytes as `pack` gives with the block copied once (msgpack copies it into its buffer
    and out again: two passes over every byte a node sends). Nested in a batch, without its tag."""
    n = len(msg.data)
    size = (b"\xc4" + n.to_bytes(1, "big") if n < 1 << 8 else
            b"\xc5" + n.to_bytes(2, "big") if n < 1 << 16 else b"\xc6" + n.to_bytes(4, "big"))
    head = b"\x92" if nested else b"\x93" + pack(BlockData.TAG)
    return head + pack(msg.request_id) + size, msg.data


def _array_header(n: int) -> bytes:
    return (bytes((0x90 | n,)) if n < 16 else
            b"\xdc" + n.to_bytes(2, "big") if n < 1 << 16 else b"\xdd" + n.to_bytes(4, "big"))


def _encode_batch(msg: BlockBatchData) -> bytes:
    """A BlockBatchData (a large file's blocks travel four to a message) with each block copied
    once, as `_block_parts`; the same bytes as `pack` gives."""
    parts = [b"\x94" + pack(BlockBatchData.TAG) + _array_header(len(msg.blocks))]
    for block in msg.blocks:
        parts += _block_parts(block, nested=True)
    parts.append(pack(list(msg.missing)))
    parts.append(pack([_values(delta) for delta in msg.deltas]))
    return b"".join(parts)


def _field_ok(annotation: str, value: object) -> bool:
    if annotation.startswith("tuple"):
        if not isinstance(value, list):
            return False
        if annotation.startswith("tuple[") and annotation != "tuple":  # typed items, e.g. str
            item = annotation[len("tuple["):].split(",")[0].strip(" ]")
            if item in _NESTED:
                return all(_nested_ok(_NESTED[item], v) for v in value)
            return all(_field_ok(item, v) for v in value)
        return True
    if annotation == "WirePath":
        return isinstance(value, (str, bytes))
    want = _PY[annotation]
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, want)


def _nested_ok(cls: type, value: object) -> bool:
    fields = _FIELDS[cls.TAG]
    return (isinstance(value, list) and len(value) == len(fields)
            and all(_field_ok(str(f.type), v) for f, v in zip(fields, value)))


def _converted(annotation: str, value: object) -> object:
    if not isinstance(value, list):
        return value
    item = annotation[len("tuple["):].split(",")[0].strip(" ]") if annotation.startswith("tuple[") else ""
    if item in _NESTED:
        return tuple(_NESTED[item](*v) for v in value)
    return tuple(value)


def decode(data: bytes) -> Message:
    """bytes -> message; anything malformed raises RemoteError (a bundle too: `decode_all`)."""
    return _from_plain(unpack(data))


def _from_plain(plain: object) -> Message:
    if isinstance(plain, list) and len(plain) == 2 and plain[0] == PACKED:
        plain = _inflated(plain[1])
    if not isinstance(plain, list) or not plain or type(plain[0]) is not int or plain[0] not in KINDS:
        raise RemoteError("unknown message kind")
    tag, values = plain[0], plain[1:]
    fields = _FIELDS[tag]
    if len(values) != len(fields):
        raise RemoteError(f"{KINDS[tag].__name__}: wrong number of fields")
    for f, v in zip(fields, values):
        if not _field_ok(str(f.type), v):
            raise RemoteError(f"{KINDS[tag].__name__}.{f.name}: wrong type")
    converted = [_converted(str(f.type), v) for f, v in zip(fields, values)]
    for i, f in enumerate(fields):
        if str(f.type) == "WirePath":
            try:
                converted[i] = paths.from_plain(converted[i])
            except ValueError as exc:
                raise RemoteError(f"{KINDS[tag].__name__}.{f.name}: {exc}") from None
    return KINDS[tag](*converted)
