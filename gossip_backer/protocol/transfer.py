"""Which block to ask whom: the block scheduler of the puller, sans-IO.

Theory of operation. The puller registers, per file, the blocks it could not build from local
data. `requests(peers, now)` hands out BlockRequests to connected peers: every peer that has not
said it lacks that content is a candidate, the least loaded first, within per-peer limits on
requests and bytes in flight (so several peers and several requests run at once, and no peer is
flooded). An answer is checked against the block's strong hash before it is handed back: a peer
that sends bad data is named (IntegrityError) so the caller drops it. "Missing" answers and
timeouts put the block back for another peer; a file no connected peer can serve is `stalled`.

A block whose old bytes the receiver holds (`delta_bases`: the same place in the file the disk
holds at that path) is asked for with a DeltaRequest carrying their signature (core.delta), and
the answer rebuilt from them; one that fails its hash (a false match of the short signature
hashes, or a changed old file) is asked for again with the signature's chunks only, then
plainly, and only a plain block that fails its hash names the peer.

Blocks travel in batches: `messages` groups the requests for one peer of blocks up to
BATCH_BLOCK, plain and delta, into BlockBatch messages (at most BATCH_COUNT blocks and BATCH_BYTES
of them, LARGE_BATCH_BYTES of large blocks only, so the answer fits one frame), answered by one
BlockBatchData. The delta requests of a
round of edited files so cost one frame each way, not one per file (protocol 4: a frame's 68
bytes were a fifth of edit_text's wire). A tree of small files costs a message per
batch, not per file, and a large file one per ~2 MiB (protocol 6; 1 MiB before), not per block: each message costs both
nodes a task, a worker-thread hop and a frame (protocol 3; before, only blocks up to SMALL_BLOCK).
The per-peer limit on requests in flight counts small blocks apart (`per_peer_small`), so
hundreds of small files are in flight at once while large blocks stay few. Each block keeps its
own request id and flight.

An answer to a request we no longer wait for (timed out, or its file cancelled) is dropped
quietly: `retired` remembers the last RETIRED of those ids and whom they were sent to. Any other
answer (an id never sent to that peer, or answered already) is unrequested data: RemoteError, the
peer is dropped, so nobody can push data at us.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gossip_backer.core import delta
from gossip_backer.core.blocks import MAX_BLOCK_SIZE
from gossip_backer.core.record import FILE, Block, FileRecord, IndexEntry
from gossip_backer.errors import IntegrityError, RemoteError
from gossip_backer.wire.messages import (BlockBatch, BlockData, BlockRequest, DeltaData,
                                         DeltaRequest, Message)

RETIRED = 4096
SMALL_BLOCK = 128 << 10  # blocks up to this size have their own limit of requests in flight
BATCH_BLOCK = 512 << 10  # blocks up to this size are asked for in batches
BATCH_COUNT = 256  # blocks in one BlockBatch, at most
BATCH_BYTES = 1 << 20  # their bytes, at most, where small blocks are in it
LARGE_BATCH_BYTES = (2 << 20) - (64 << 10)  # a batch of blocks over SMALL_BLOCK only: its answer
# must fit one 2 MiB frame with room for the framing (protocol 6; before, 1 MiB: a 512 MiB file
# cost twice the messages, each a task, a worker hop and a frame on both nodes)
SMALL_IN_FLIGHT = 4 << 20  # bytes of small blocks asked of one peer at once, at most: the
# sender holds them while it reads, seals and sends (16 MiB cost it ~18 MiB of peak RSS)
DELTA_MAX_BLOCKS = 64  # blocks of one file asked for as deltas (a rewritten file: plain blocks)


@dataclass(frozen=True, slots=True)
class Base:
    """Old bytes a block can come as a delta against: `size` bytes at `offset` of the file the
    disk holds at the path, cut in `chunk`-byte pieces that `signature` describes."""

    offset: int
    size: int
    chunk: int
    signature: bytes

    def coarser(self) -> "Base | None":
        """The same base described by its chunks only (after a delta that did not rebuild:
        its short piece hashes may have matched falsely); None when it has no pieces."""
        if delta.unit_of(self.signature, self.chunk) == self.chunk:
            return None
        return Base(self.offset, self.size, self.chunk,
                    delta.without_pieces(self.signature, self.size, self.chunk))


def delta_bases(rec: FileRecord, entry: IndexEntry | None,
                missing: Iterable[int]) -> dict[int, tuple[int, int]]:
    """Which old bytes each missing block of `rec` is asked for against, as (offset, size) in
    the file `entry` says the disk holds at the path: the same range (a block's edit moves its
    bytes little), the last block up to the old end (a file that grew or shrank). None for new
    files, and not more than DELTA_MAX_BLOCKS blocks (beyond that the file was rewritten)."""
    if entry is None or entry.kind != FILE or not entry.size or entry.hash == rec.hash:
        return {}
    out: dict[int, tuple[int, int]] = {}
    for i in sorted(missing):
        start = i * rec.block_size
        if start >= entry.size:
            break
        end = entry.size if i == len(rec.blocks) - 1 else start + rec.block_size
        end = min(end, entry.size, start + 2 * rec.block_size)
        out[i] = (start, end - start)
        if len(out) >= DELTA_MAX_BLOCKS:
            break
    return out


def batched(requests: list[BlockRequest | DeltaRequest]) -> list[Message]:
    """Small requests for one peer, plain and delta, as few messages as the batch limits allow
    (a lone request stays as it is): BATCH_BYTES a batch, LARGE_BATCH_BYTES while its blocks
    are all over SMALL_BLOCK."""
    out: list[Message] = []
    group: list[BlockRequest | DeltaRequest] = []
    size, large = 0, True  # bytes of the group; are all its blocks over SMALL_BLOCK?

    def flush() -> None:
        if len(group) == 1:
            out.append(group[0])
        elif group:
            out.append(BlockBatch(tuple(r for r in group if type(r) is BlockRequest),
                                  tuple(r for r in group if type(r) is DeltaRequest)))

    for req in requests:
        joined_large = large and req.size > SMALL_BLOCK
        limit = LARGE_BATCH_BYTES if joined_large else BATCH_BYTES
        if group and (len(group) >= BATCH_COUNT or size + req.size > limit):
            flush()
            group, size, joined_large = [], 0, req.size > SMALL_BLOCK
        group.append(req)
        size, large = size + req.size, joined_large
    flush()
    return out


def batch_ok(batch: BlockBatch) -> bool:
    """Is a peer's BlockBatch within the limits (so that its answer fits one frame)?"""
    every = batch.requests + batch.deltas
    return (len(every) <= BATCH_COUNT
            and all(0 < r.size <= BATCH_BLOCK and r.offset >= 0 for r in every)
            and sum(r.size for r in every) <= LARGE_BATCH_BYTES)


def delta_request_ok(req: DeltaRequest) -> bool:
    """Can a peer's DeltaRequest be worked with (sizes checked before any work)?"""
    return (delta.MIN_CHUNK <= req.chunk <= delta.MAX_CHUNK
            and 0 < req.base_size <= 2 * MAX_BLOCK_SIZE
            and delta.signature_ok(req.base_size, req.chunk, req.signature))


def delta_answer(req: DeltaRequest, data: bytes) -> BlockData | DeltaData:
    """The answer to a DeltaRequest whose block is `data`: the delta, or the block itself when
    the delta would not be smaller (new content that shares nothing with the old)."""
    encoded = delta.encode(data, req.chunk, req.base_size, req.signature)
    if len(encoded) < len(data):
        return DeltaData(req.request_id, encoded)
    return BlockData(req.request_id, data)


def base_of(offset: int, old: bytes) -> Base | None:
    """The Base describing `old`, the bytes read at `offset` of the file at the path (None
    when there were none: that block is asked for plainly)."""
    if not old:
        return None
    chunk = delta.chunk_for(len(old))
    return Base(offset, len(old), chunk, delta.signature(old, chunk, delta.piece_for(chunk)))


def rebuild(base: Base, old: bytes, encoded: bytes, size: int, block_hash: bytes,
            hasher: Callable[[bytes], bytes]) -> bytes | None:
    """A DeltaData's block from the old bytes now at the base's place, or None if it does not
    hash to the block (the old file changed meanwhile, or a false match of the signature)."""
    if len(old) != base.size:
        return None
    try:
        data = delta.decode(old, delta.unit_of(base.signature, base.chunk), encoded, size)
    except delta.DeltaError:
        return None
    return data if hasher(data) == block_hash else None


@dataclass
class _File:
    path: str
    file_hash: bytes
    block_size: int
    size: int
    blocks: dict[int, Block]  # index -> block, every block still to fetch
    waiting: dict[int, Block]  # those not requested right now
    asked: dict[int, int] = field(default_factory=dict)  # index -> request id in flight
    bases: dict[int, Base] = field(default_factory=dict)  # index -> old bytes for a delta


@dataclass(frozen=True, slots=True)
class _Flight:
    peer: bytes
    path: str
    index: int
    size: int
    sent_at: float


@dataclass(frozen=True, slots=True)
class Arrived:
    """A verified block: write `data` at `offset` of the file being built at `path`."""

    path: str
    index: int
    offset: int
    data: bytes


class Scheduler:
    """Outstanding block fetches of all files being pulled (see the module docstring)."""

    def __init__(self, hasher: Callable[[bytes], bytes], *, per_peer_requests: int = 32,
                 per_peer_small: int = 1024, per_peer_bytes: int = 16 << 20,
                 per_peer_small_bytes: int = SMALL_IN_FLIGHT, timeout: float = 20.0) -> None:
        self.hasher = hasher
        self.per_peer_requests = per_peer_requests
        self.per_peer_small = per_peer_small
        self.per_peer_bytes = per_peer_bytes
        self.per_peer_small_bytes = per_peer_small_bytes
        self.timeout = timeout
        self.files: dict[str, _File] = {}
        # paths with blocks waiting to be asked for, in order: files cut into small blocks apart
        # (each kind has its own room in flight; a walk for one kind never passes the other's)
        self._ready_small: dict[str, None] = {}
        self._ready_large: dict[str, None] = {}
        self.flights: dict[int, _Flight] = {}
        self.lacking: set[tuple[bytes, bytes]] = set()  # (peer, file_hash) it said it lacks
        self._next_id = 1
        self.bytes_received = 0
        self.retired: OrderedDict[int, bytes] = OrderedDict()  # request id -> peer asked

    # -- registering work ------------------------------------------------------------------
    def add(self, path: str, file_hash: bytes, block_size: int, size: int,
            blocks: Iterable[tuple[int, Block]], bases: Mapping[int, Base] = {}) -> None:
        self.cancel(path)
        todo = dict(blocks)
        self.files[path] = _File(path, file_hash, block_size, size, todo, dict(todo),
                                 bases={i: b for i, b in bases.items() if i in todo})
        if todo:
            self._ready(self.files[path])

    def _ready(self, f: _File) -> None:
        """`f` has blocks waiting to be asked for."""
        (self._ready_small if f.block_size <= SMALL_BLOCK else self._ready_large)[f.path] = None

    def cancel(self, path: str) -> None:
        f = self.files.pop(path, None)
        self._ready_small.pop(path, None)
        self._ready_large.pop(path, None)
        if f is not None:
            for rid in f.asked.values():
                self._retire(rid)

    def remaining(self, path: str) -> int:
        f = self.files.get(path)
        return 0 if f is None else len(f.blocks)

    def stalled(self, path: str, peers: Iterable[bytes]) -> bool:
        """True when every connected peer said it lacks this content (or none is connected)."""
        f = self.files.get(path)
        if f is None:
            return False
        return all((p, f.file_hash) in self.lacking for p in peers)

    def any_stalled(self, peers: list[bytes]) -> bool:
        """Is some file `stalled` while peers are connected? (Cheap when no peer lacks anything.)"""
        if not peers or not self.lacking:
            return False
        lacked = {h for _, h in self.lacking}
        return any(f.file_hash in lacked and self.stalled(path, peers)
                   for path, f in self.files.items())

    # -- handing out requests --------------------------------------------------------------
    def messages(self, peers: list[bytes], now: float) -> list[tuple[bytes, Message]]:
        """`requests`, those of blocks up to BATCH_BLOCK (plain or delta) grouped into
        BlockBatch messages per peer."""
        out: list[tuple[bytes, Message]] = []
        small: dict[bytes, list[BlockRequest | DeltaRequest]] = {}
        for peer, req in self.requests(peers, now):
            if req.size <= BATCH_BLOCK:
                small.setdefault(peer, []).append(req)
            else:
                out.append((peer, req))
        for peer, reqs in small.items():
            out.extend((peer, m) for m in batched(reqs))
        return out

    def requests(self, peers: list[bytes], now: float) -> list[tuple[bytes, BlockRequest]]:
        out: list[tuple[bytes, BlockRequest]] = []
        load = {p: [0, 0, 0, 0] for p in peers}  # in flight: large requests, bytes, small
        for fl in self.flights.values():  # requests, bytes of the small ones
            if fl.peer in load:
                small = fl.size <= SMALL_BLOCK
                load[fl.peer][2 if small else 0] += 1
                load[fl.peer][1] += fl.size
                if small:
                    load[fl.peer][3] += fl.size
        room = {True: self._room(load, True), False: self._room(load, False)}
        for ready, kinds in ((self._ready_small, (True,)), (self._ready_large, (True, False))):
            for path in list(ready):
                if not any(room[k] for k in kinds):
                    break  # every peer is full: the rest of the files wait (no walk over them)
                f = self.files[path]
                for index in list(f.waiting):
                    length = self._block_len(f, index)
                    small = length <= SMALL_BLOCK
                    peer = self._pick(f, load, length) if room[small] else None
                    if peer is None:
                        if room[small] and not self._fits(load, length):
                            room[small] = False  # no peer has room left for this much: a
                        break  # smaller block might fit, asked for at the next call
                    out.append((peer, self._ask(f, index, peer, now)))
                    load[peer][2 if small else 0] += 1
                    load[peer][1] += length
                    if small:
                        load[peer][3] += length
                    room[small] = self._room(load, small)
                if not f.waiting:
                    del ready[path]
        return out

    def _fits(self, load: dict[bytes, list[int]], length: int) -> bool:
        """Has some peer room for `length` more bytes (whether it has the content or not)?"""
        small = length <= SMALL_BLOCK
        return any((k < self.per_peer_small and (n + k == 0 or k_size + length
                                                 <= self.per_peer_small_bytes)
                    if small else n < self.per_peer_requests)
                   and (n + k == 0 or size + length <= self.per_peer_bytes)
                   for n, size, k, k_size in load.values())

    def _room(self, load: dict[bytes, list[int]], small: bool) -> bool:
        """May some peer take another small (or large) block at all?"""
        return any((k < self.per_peer_small and (n + k == 0 or k_size < self.per_peer_small_bytes)
                    if small else n < self.per_peer_requests)
                   and (n + k == 0 or size < self.per_peer_bytes)
                   for n, size, k, k_size in load.values())

    def _pick(self, f: _File, load: dict[bytes, list[int]], length: int) -> bytes | None:
        """The least loaded peer that may have it and has room for `length` more bytes (an
        idle peer always has room, so a block larger than the byte limit still moves)."""
        small = length <= SMALL_BLOCK
        candidates = [p for p, (n, size, k, k_size) in load.items()
                      if (p, f.file_hash) not in self.lacking
                      and (k < self.per_peer_small and (
                          n + k == 0 or k_size + length <= self.per_peer_small_bytes)
                           if small else n < self.per_peer_requests)
                      and (n + k == 0 or size + length <= self.per_peer_bytes)]
        return min(candidates, key=lambda p: (load[p][0] + load[p][2], p)) if candidates else None

    def _ask(self, f: _File, index: int, peer: bytes, now: float) -> BlockRequest | DeltaRequest:
        block = f.waiting.pop(index)
        rid = self._next_id
        self._next_id += 1
        f.asked[index] = rid
        size = self._block_len(f, index)
        self.flights[rid] = _Flight(peer, f.path, index, size, now)
        base = f.bases.get(index)
        if base is not None:  # a file of one block is named by its file hash alone (serving)
            named = b"" if size == f.size else block.hash
            return DeltaRequest(rid, named, f.file_hash, index * f.block_size, size,
                                base.size, base.chunk, base.signature)
        return BlockRequest(rid, block.hash, f.file_hash, index * f.block_size, size)

    @staticmethod
    def _block_len(f: _File, index: int) -> int:
        return min(f.block_size, f.size - index * f.block_size)

    # -- answers ---------------------------------------------------------------------------
    def expected(self, request_id: int) -> bytes | None:
        """The strong hash the answer to `request_id` must have (to verify it off the loop)."""
        fl = self.flights.get(request_id)
        f = self.files.get(fl.path) if fl else None
        return f.blocks[fl.index].hash if f and fl.index in f.blocks else None

    def destination(self, request_id: int) -> tuple[str, int] | None:
        """(path, offset) the answer to `request_id` is written at, while it is awaited: so the
        puller can write a block in the same worker hop that verifies it."""
        fl = self.flights.get(request_id)
        f = self.files.get(fl.path) if fl else None
        return None if f is None else (fl.path, fl.index * f.block_size)

    def delta_of(self, request_id: int) -> tuple[str, Base, bytes, int] | None:
        """(path, base, expected hash, size) to rebuild a DeltaData answering `request_id`."""
        fl = self.flights.get(request_id)
        f = self.files.get(fl.path) if fl else None
        if f is None or fl.index not in f.blocks or fl.index not in f.bases:
            return None
        return f.path, f.bases[fl.index], f.blocks[fl.index].hash, fl.size

    def on_delta(self, peer: bytes, request_id: int, data: bytes | None) -> Arrived | None:
        """A DeltaData from `peer`, rebuilt and checked (`data`: the verified block, or None
        when it did not rebuild to the block's hash: asked for again plainly)."""
        fl = self._answered(peer, request_id)
        if fl is None:
            return None
        f = self.files.get(fl.path)
        if f is None or f.asked.get(fl.index) != request_id:
            return None
        if fl.index not in f.bases:
            raise RemoteError(f"a delta answers a plain block request ({request_id})")
        if data is None:
            coarser = f.bases.pop(fl.index).coarser()
            if coarser is not None:
                f.bases[fl.index] = coarser
            self._requeue(f, fl.index, request_id)
            return None
        return self._take(f, fl, data, True)

    def on_data(self, peer: bytes, request_id: int, data: bytes,
                verified: bool | None = None) -> Arrived | None:
        """A BlockData from `peer`: the verified block, or None if no longer wanted.
        Raises IntegrityError when the data does not match the block's hash. `verified` is the
        outcome of checking `data` against `expected(request_id)` already (else it is hashed)."""
        fl = self._answered(peer, request_id)
        if fl is None:
            return None
        f = self.files.get(fl.path)
        if f is None or f.asked.get(fl.index) != request_id:
            return None
        return self._take(f, fl, data, verified)

    def _take(self, f: _File, fl: _Flight, data: bytes, verified: bool | None) -> Arrived:
        del f.asked[fl.index]
        block = f.blocks[fl.index]
        # a piece of a whole version (restore) has no block hash: its whole hash is checked
        good = verified if verified is not None else (not block.hash
                                                      or self.hasher(data) == block.hash)
        if len(data) != fl.size or not good:
            f.waiting[fl.index] = block
            self._ready(f)
            raise IntegrityError(f"peer sent a block of {fl.path} that fails its hash")
        del f.blocks[fl.index]
        f.bases.pop(fl.index, None)
        self.bytes_received += len(data)
        return Arrived(fl.path, fl.index, fl.index * f.block_size, data)

    def on_missing(self, peer: bytes, request_id: int) -> None:
        fl = self._answered(peer, request_id)
        if fl is None:
            return
        f = self.files.get(fl.path)
        if f is not None:
            self.lacking.add((peer, f.file_hash))
            self._requeue(f, fl.index, request_id)

    def peer_gone(self, peer: bytes) -> None:
        for rid, fl in list(self.flights.items()):
            if fl.peer == peer:
                self._retire(rid)
                f = self.files.get(fl.path)
                if f is not None:
                    self._requeue(f, fl.index, rid)
        self.lacking = {(p, h) for p, h in self.lacking if p != peer}

    def tick(self, now: float) -> None:
        for rid, fl in list(self.flights.items()):
            if now - fl.sent_at > self.timeout:
                self._retire(rid)
                f = self.files.get(fl.path)
                if f is not None:
                    self._requeue(f, fl.index, rid)

    def forget_lacking(self, file_hash: bytes | None = None) -> None:
        """Peers may have fetched the content since they said no: ask again (after new news;
        only about `file_hash` when given)."""
        if file_hash is None:
            self.lacking.clear()
        else:
            self.lacking = {(p, h) for p, h in self.lacking if h != file_hash}

    # -- internals -------------------------------------------------------------------------
    def _answered(self, peer: bytes, request_id: int) -> _Flight | None:
        """The flight an answer from `peer` ends; None for one we stopped waiting for. Raises
        RemoteError for an answer nobody asked `peer` for."""
        fl = self.flights.get(request_id)
        if fl is not None and fl.peer == peer:
            del self.flights[request_id]
            return fl
        if fl is None and self.retired.get(request_id) == peer:
            del self.retired[request_id]
            return None
        raise RemoteError(f"unrequested block answer (request {request_id})")

    def _retire(self, request_id: int) -> None:
        fl = self.flights.pop(request_id, None)
        if fl is not None:
            self.retired[request_id] = fl.peer
            while len(self.retired) > RETIRED:
                self.retired.popitem(last=False)

    def _requeue(self, f: _File, index: int, request_id: int) -> None:
        if f.asked.get(index) == request_id:
            del f.asked[index]
            f.waiting[index] = f.blocks[index]
            self._ready(f)
