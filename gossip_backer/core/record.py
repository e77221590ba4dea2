"""The values the mesh replicates, and the signed update that carries each of them.

Every change a node makes is one `SignedUpdate`: (origin, seq, key, payload), signed by the origin.
`key` names what the update is about ("f:PATH", "g:NODE", ...); for each (origin, key) only the
newest update is kept, so state grows with paths x writers, not with history.

Payloads are plain frozen dataclasses with `to_plain()` / `from_plain()` (lists, ints, bytes, str):
the core stays free of msgpack; `wire/` turns plain values into bytes and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Union

from gossip_backer.core import paths
from gossip_backer.core.interned import Interned
from gossip_backer.core.vv import VersionVector, node_key

FILE, DIR, SYMLINK = "file", "dir", "symlink"
KINDS = (FILE, DIR, SYMLINK)
MAX_NAME = 200
MAX_ADDRESSES = 16


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise ValueError(f"malformed record: {what}")


@dataclass(frozen=True, slots=True)
class Block:
    """One block of a file: its strong hash and weak rolling checksum (rsync/zsync style)."""

    hash: bytes
    weak: int

    def to_plain(self) -> list:
        return [self.hash, self.weak]

    @classmethod
    def from_plain(cls, plain: list) -> "Block":
        _need(isinstance(plain, list) and len(plain) == 2, "block")
        h, weak = plain
        _need(isinstance(h, bytes) and len(h) == 32, "block hash")
        _need(isinstance(weak, int) and 0 <= weak < 2**32, "block weak sum")
        return cls(h, weak)


def one_block_as_weak_sum(cls: type) -> type:
    """Class decorator for a slots dataclass of a file's content (fields `hash`, then `blocks`).

    Most files of a large tree are one block, whose hash is the file's: such a record holds that
    block's weak sum alone in its `blocks` slot, and `blocks` makes the 1-tuple again when read.
    The 1-tuple and the Block were 96 of the ~700 bytes a file cost a node holding 100,000, and
    a first scan held both for every file at once (measured). Any other value is held as it is;
    construction, equality, hashing, `replace` and copies read and write `blocks` as the tuple
    they always were."""
    slot = cls.blocks  # the slot's own descriptor

    def read(record: object) -> tuple[Block, ...]:
        held = slot.__get__(record, cls)
        return (Block(record.hash, held),) if type(held) is int else held

    def write(record: object, blocks: tuple[Block, ...]) -> None:
        if (type(blocks) is tuple and len(blocks) == 1 and record.hash is not None
                and blocks[0].hash == record.hash  # (`hash` is set first: field order)
                and type(blocks[0].weak) is int):  # (a peer's True passes as an int: kept whole)
            slot.__set__(record, blocks[0].weak)
        else:
            slot.__set__(record, blocks)

    cls.blocks = property(read, write, doc="The file's blocks, in order.")
    return cls


_KIND = {k: k for k in KINDS}  # decoded kinds become these three strings, not a copy each
_COMMON: Interned[int] = Interned(1024)  # modes and block sizes: a few values, 100,000 records


def common_kind(kind: str) -> str:
    """The one shared string of a valid kind (others come back as they are, to be refused)."""
    return _KIND.get(kind, kind) if isinstance(kind, str) else kind


def common_int(value: int) -> int:
    """One shared int object for a value many records hold (a mode, a block size)."""
    if type(value) is not int:  # (True == 1: a bool stays itself)
        return value
    return _COMMON(value)


def blocks_from_plain(plain: list, file_hash: bytes | None) -> tuple[Block, ...]:
    """Decoded blocks; a block whose hash is the file's (a one-block file) shares its bytes."""
    blocks = tuple(Block.from_plain(b) for b in plain)
    if len(blocks) == 1 and blocks[0].hash == file_hash:
        return (Block(file_hash, blocks[0].weak),)
    return blocks


@one_block_as_weak_sum
@dataclass(frozen=True, slots=True)
class FileRecord:
    """One version of one path: a file, folder or symlink, or a tombstone (deleted=True)."""

    TAG: ClassVar[str] = "f"
    path: str
    kind: str
    vv: VersionVector
    origin: bytes  # node id of the node that made this version
    size: int = 0
    mtime_ns: int = 0
    mode: int = 0o644
    hash: bytes | None = None
    block_size: int = 0
    blocks: tuple[Block, ...] = ()
    target: str | None = None  # symlink target
    deleted: bool = False
    # A record repeating `origin`'s version (a conflict copy, signed by whichever node made it)
    # names the update of `origin` that carried that version, so a revocation of `origin` voids
    # the repeat exactly as it voids the original (core/membership.py). 0: the signer's own.
    source_seq: int = 0

    @property
    def key(self) -> str:
        return "f:" + self.path

    def same_content(self, other: "FileRecord") -> bool:
        """Two versions a user would call identical (concurrent copies of one edit)."""
        return (self.kind, self.deleted, self.hash, self.target, self.mode & 0o777) == (
            other.kind, other.deleted, other.hash, other.target, other.mode & 0o777,
        ) and (self.deleted or self.kind != FILE or self.size == other.size)

    def to_plain(self) -> list:
        plain = [
            paths.to_plain(self.path), self.kind, self.vv.encode(), self.origin, self.size, self.mtime_ns,
            self.mode, self.hash, self.block_size, [b.to_plain() for b in self.blocks],
            self.target, self.deleted,
        ]
        if self.source_seq:  # a trailing field, absent when 0: a node's own records encode
            plain.append(self.source_seq)  # as they did before it existed
        return plain

    @classmethod
    def from_plain(cls, plain: list) -> "FileRecord":
        _need(isinstance(plain, list) and len(plain) in (12, 13), "file record shape")
        path, kind, vv, origin, size, mtime_ns, mode, h, bsize, blocks, target, deleted = plain[:12]
        source_seq = plain[12] if len(plain) == 13 else 0
        _need(len(plain) == 12 or (type(source_seq) is int and source_seq > 0), "source seq")
        try:
            path = paths.from_plain(path)
        except ValueError as exc:
            raise ValueError(f"malformed record: {exc}") from None
        _need(path != "", "path")
        _need(kind in KINDS, "kind")
        _need(isinstance(origin, bytes) and len(origin) == 32, "origin")
        _need(all(isinstance(x, int) and x >= 0 for x in (size, mode, bsize)), "sizes")
        _need(isinstance(mtime_ns, int), "mtime")
        _need(h is None or (isinstance(h, bytes) and len(h) == 32), "hash")
        _need(isinstance(blocks, list), "blocks")
        _need(target is None or isinstance(target, str), "target")
        _need(isinstance(deleted, bool), "deleted")
        _need(isinstance(vv, list), "version vector")
        return cls(
            path=path, kind=common_kind(kind), vv=VersionVector.decode(vv), origin=node_key(origin),
            size=size, mtime_ns=mtime_ns, mode=common_int(mode), hash=h, block_size=common_int(bsize),
            blocks=blocks_from_plain(blocks, h), target=target, deleted=deleted, source_seq=source_seq,
        )


@dataclass(frozen=True, slots=True)
class Grant:
    """A read-write member admits `node` to the mesh (or the founder admits itself)."""

    TAG: ClassVar[str] = "g"
    node: bytes
    name: str
    read_only: bool
    clock: int

    @property
    def key(self) -> str:
        """Per role, so that a later grant cannot erase an earlier one from its granter's log:
        a member's role is fixed by its first grant (core/membership.py)."""
        return "g:" + self.node.hex() + (":ro" if self.read_only else ":rw")

    def to_plain(self) -> list:
        return [self.node, self.name, self.read_only, self.clock]

    @classmethod
    def from_plain(cls, plain: list) -> "Grant":
        _need(isinstance(plain, list) and len(plain) == 4, "grant shape")
        node, name, ro, clock = plain
        _need(isinstance(node, bytes) and len(node) == 32, "grant node")
        _need(isinstance(name, str) and len(name) <= MAX_NAME, "grant name")
        _need(isinstance(ro, bool) and isinstance(clock, int), "grant fields")
        return cls(node, name, ro, clock)


@dataclass(frozen=True, slots=True)
class Revoke:
    """A read-write member expels `node`. Its updates numbered above `cutoff` are void."""

    TAG: ClassVar[str] = "r"
    node: bytes
    cutoff: int
    clock: int

    @property
    def key(self) -> str:
        return "r:" + self.node.hex()

    def to_plain(self) -> list:
        return [self.node, self.cutoff, self.clock]

    @classmethod
    def from_plain(cls, plain: list) -> "Revoke":
        _need(isinstance(plain, list) and len(plain) == 3, "revoke shape")
        node, cutoff, clock = plain
        _need(isinstance(node, bytes) and len(node) == 32, "revoke node")
        _need(isinstance(cutoff, int) and cutoff >= 0 and isinstance(clock, int), "revoke")
        return cls(node, cutoff, clock)


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """A member's own name and listen addresses, signed by itself (read-only members too)."""

    TAG: ClassVar[str] = "i"
    node: bytes
    name: str
    addresses: tuple[str, ...]
    clock: int

    @property
    def key(self) -> str:
        return "i:" + self.node.hex()

    def to_plain(self) -> list:
        return [self.node, self.name, list(self.addresses), self.clock]

    @classmethod
    def from_plain(cls, plain: list) -> "MemberInfo":
        _need(isinstance(plain, list) and len(plain) == 4, "info shape")
        node, name, addrs, clock = plain
        _need(isinstance(node, bytes) and len(node) == 32, "info node")
        _need(isinstance(name, str) and len(name) <= MAX_NAME, "info name")
        _need(isinstance(addrs, list) and len(addrs) <= MAX_ADDRESSES, "info addresses")
        _need(all(isinstance(a, str) and len(a) < 300 for a in addrs), "info address")
        _need(isinstance(clock, int), "info clock")
        return cls(node, name, tuple(addrs), clock)


@dataclass(frozen=True, slots=True)
class LiveGlob:
    """Marks (or unmarks) text files matching `glob` as live-edit, mesh-wide; last writer wins."""

    TAG: ClassVar[str] = "l"
    glob: str
    on: bool
    clock: int

    @property
    def key(self) -> str:
        return "l:" + self.glob

    def to_plain(self) -> list:
        return [self.glob, self.on, self.clock]

    @classmethod
    def from_plain(cls, plain: list) -> "LiveGlob":
        _need(isinstance(plain, list) and len(plain) == 3, "live shape")
        glob, on, clock = plain
        _need(isinstance(glob, str) and 0 < len(glob) < 1000, "live glob")
        _need(isinstance(on, bool) and isinstance(clock, int), "live fields")
        return cls(glob, on, clock)


MAX_LIVE_CHUNK = 512 * 1024  # bytes of a live document update in one signed update (frames: 1 MiB)


@dataclass(frozen=True, slots=True)
class LiveEdit:
    """A piece of a live document's history (a Yjs update), made by the signer.

    An edit is numbered per (signer, path) by `part`; a snapshot is the signer's whole document
    state, covering its own parts up to `part` (the map then drops them: protocol/live.py).
    An update larger than a frame travels as `chunks` pieces, joined before it is applied."""

    TAG: ClassVar[str] = "y"
    path: str
    snapshot: bool
    part: int
    chunk: int
    chunks: int
    data: bytes

    @property
    def key(self) -> str:
        kind = "s" if self.snapshot else f"e{self.part}"
        return f"y:{self.path}#{kind}.{self.chunk}"

    def to_plain(self) -> list:
        return [self.path, self.snapshot, self.part, self.chunk, self.chunks, self.data]

    @classmethod
    def from_plain(cls, plain: list) -> "LiveEdit":
        _need(isinstance(plain, list) and len(plain) == 6, "live edit shape")
        path, snap, part, chunk, chunks, data = plain
        _need(isinstance(path, str) and path != "", "live edit path")
        _need(isinstance(snap, bool), "live edit kind")
        _need(all(isinstance(x, int) for x in (part, chunk, chunks)), "live edit numbers")
        _need(part >= 0 and 0 <= chunk < chunks <= 64, "live edit numbers")
        _need(isinstance(data, bytes) and len(data) <= MAX_LIVE_CHUNK, "live edit data")
        return cls(path, snap, part, chunk, chunks, data)


from gossip_backer.core.share import Share, ShareCount  # noqa: E402 (share links: core/share.py)

Payload = Union[FileRecord, Grant, Revoke, MemberInfo, LiveGlob, Share, ShareCount, LiveEdit]
PAYLOAD_TYPES: dict[str, type] = {t.TAG: t for t in (FileRecord, Grant, Revoke, MemberInfo, LiveGlob,
                                                     Share, ShareCount, LiveEdit)}


def payload_to_plain(payload: Payload) -> list:
    return [payload.TAG, payload.to_plain()]


def payload_from_plain(plain: object) -> Payload:
    _need(isinstance(plain, list) and len(plain) == 2, "payload")
    tag, body = plain
    _need(isinstance(tag, str) and tag in PAYLOAD_TYPES, "payload tag")  # a list is unhashable
    return PAYLOAD_TYPES[tag].from_plain(body)


@dataclass(frozen=True, slots=True, eq=False)
class SignedUpdate:
    """One change, as its origin signed it. `body` is the exact signed encoding of `payload`,
    so that relays forward the origin's bytes and signature untouched.

    A file record's body is not held when `encode` makes it again byte for byte (always for our
    own updates, nearly always for others': `compact`): a node holding 100,000 files would
    otherwise hold every record twice, decoded and encoded (~220 bytes a file). Any other body,
    and any that does not come back exact, is kept as it came (`kept_body`)."""

    origin: bytes
    seq: int
    payload: Payload
    kept_body: bytes | None
    sig: bytes = field(repr=False)
    encode: Callable[[Payload], bytes] | None = field(default=None, repr=False)
    body_len: int = 0  # len(body) when it is not kept

    @classmethod
    def compact(cls, origin: bytes, seq: int, payload: Payload, body: bytes, sig: bytes,
                encode: Callable[[Payload], bytes]) -> "SignedUpdate":
        """The update, holding its body only if `encode(payload)` does not give it back."""
        if isinstance(payload, FileRecord) and encode(payload) == body:
            return cls(origin, seq, payload, None, sig, encode, len(body))
        return cls(origin, seq, payload, body, sig)

    @property
    def body(self) -> bytes:
        kept = self.kept_body
        return kept if kept is not None else self.encode(self.payload)

    @property
    def key(self) -> str:
        return self.payload.key

    @property
    def size(self) -> int:
        """Bytes this update costs on the wire (used for gossip budgets)."""
        body = len(self.kept_body) if self.kept_body is not None else self.body_len
        return body + len(self.sig) + 48

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SignedUpdate) and (self.origin, self.seq, self.sig) == (
            other.origin, other.seq, other.sig) and self.body == other.body

    def __hash__(self) -> int:
        return hash((self.origin, self.seq, self.sig))


@one_block_as_weak_sum
@dataclass(frozen=True, slots=True)
class IndexEntry:
    """What the last scan saw of one local path (and what hashing it gave), and which mesh
    version that content is (`vv`): a row of the local index."""

    path: str
    size: int
    mtime_ns: int
    inode: int
    mode: int
    kind: str
    hash: bytes | None = None
    block_size: int = 0
    blocks: tuple[Block, ...] = ()
    target: str | None = None
    vv: VersionVector = VersionVector()
