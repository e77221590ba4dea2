"""How a peer's block request is answered, sans-IO: the rules runtime/blockserver.py carries out
on real disks and testing/simfolder.py on the memdisk.

Sources, in order (`serve_sources`): a local file whose content hash is the requested version's,
the revision archive (so history and restore work from any node that kept a version), then any
local file holding a block with that strong hash. The carrier reads each in turn (`read(source)`:
None when the file changed since it was scanned, so a file changed behind our back is never
served as the old version); the first whose bytes hash to the block is served (`first_served`).
A DeltaRequest gets that block as copies of the asker's old chunks and literals
(transfer.delta_answer), plainly when the delta would not be smaller; a request beyond the
limits is answered "missing". A BlockBatch is answered request by request in one BlockBatchData.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gossip_backer.errors import RemoteError
from gossip_backer.protocol.transfer import batch_ok, delta_answer, delta_request_ok
from gossip_backer.wire.messages import (BlockBatch, BlockBatchData, BlockData, BlockMissing,
                                         BlockRequest, DeltaData, DeltaRequest)

SERVE_MAX = 2 * 1024 * 1024 - 4096  # the largest block a peer may ask for (a block of
#                                     core.blocks plus room; larger: answered "missing")


def request_ok(req: BlockRequest | DeltaRequest) -> bool:
    """Can a peer's block request be served at all (else it is answered "missing")?"""
    if req.size <= 0 or req.size > SERVE_MAX or req.offset < 0:
        return False
    return delta_request_ok(req) if isinstance(req, DeltaRequest) else True


@dataclass(frozen=True, slots=True)
class Source:
    """Where a requested block may be read: `offset` of the local file `path` (checked to be
    still as the index says before it is served), or of the archived content when path is None."""

    path: str | None
    offset: int


def serve_sources(req: BlockRequest | DeltaRequest, find_file: Callable[[bytes], str | None],
                  find_block: Callable[[bytes], tuple[str, int] | None]) -> list[Source]:
    """Where to look for a requested block, in order: the local file whose content is the
    requested version, the revision archive (history and restores work from any node that kept
    a version), then any local file holding a block with that hash. The first whose bytes hash
    to the block is served (a request with no block hash, a piece of a whole version, is served
    only from the first two)."""
    out = []
    path = find_file(req.file_hash)
    if path is not None:
        out.append(Source(path, req.offset))
    out.append(Source(None, req.offset))
    found = find_block(req.hash) if req.hash else None
    if found is not None:
        out.append(Source(found[0], found[1]))
    return out


def serves(req: BlockRequest | DeltaRequest, data: bytes, hasher: Callable[[bytes], bytes]) -> bool:
    """May `data`, read from one of the sources, be served for `req`? Only bytes that hash to
    the block: a file changed behind our back is never served as the old version."""
    return len(data) == req.size and (not req.hash or hasher(data) == req.hash)


def first_served(req: BlockRequest | DeltaRequest, sources: Iterable,
                 read: Callable[[object], bytes | None],
                 hasher: Callable[[bytes], bytes]) -> bytes | None:
    """The bytes of the first of `sources` (in serve_sources' order) that may be served for
    `req`; `read(source)` gives them (None: unreadable, or the file changed since scanned)."""
    for source in sources:
        data = read(source)
        if data is not None and serves(req, data, hasher):
            return data
    return None


def serve(req: BlockRequest | DeltaRequest, sources: Iterable, read: Callable[[object], bytes | None],
          hasher: Callable[[bytes], bytes]) -> BlockData | DeltaData | BlockMissing:
    """The answer to `req` from the first source that may be served (`first_served`)."""
    return answer(req, first_served(req, sources, read, hasher))


def answer(req: BlockRequest | DeltaRequest, data: bytes | None):
    """The answer to a request whose block was read as `data` (None: no source held it)."""
    if data is None:
        return BlockMissing(req.request_id)
    if isinstance(req, DeltaRequest):
        return delta_answer(req, data)
    return BlockData(req.request_id, data)


def check_batch(batch: BlockBatch) -> None:
    """Raise RemoteError for a BlockBatch beyond the limits (its answer would not fit a frame):
    a peer that sends one breaks the protocol."""
    if not batch_ok(batch):
        raise RemoteError(f"a block batch beyond the limits ({len(batch.requests)} blocks)")


def batch_requests(batch: BlockBatch) -> list[BlockRequest | DeltaRequest]:
    """The requests of a checked batch whose blocks are read, in the order `answer_batch` takes
    them: the plain ones, then the delta requests that can be worked with (the others are
    answered "missing" unread)."""
    return [*batch.requests, *(req for req in batch.deltas if request_ok(req))]


def answer_batch(batch: BlockBatch, found: list[bytes | None]) -> BlockBatchData:
    """The answer to a checked batch whose `batch_requests` were read as `found` (in order;
    None: no source held that block): the blocks held, each delta request's block as a delta
    (or plainly when that is not smaller), and the ids of the others."""
    answers = [answer(req, data) for req, data in zip(batch_requests(batch), found)]
    asked = {req.request_id for req in batch_requests(batch)}
    missing = [a.request_id for a in answers if isinstance(a, BlockMissing)]
    missing += [req.request_id for req in batch.deltas if req.request_id not in asked]
    return BlockBatchData(tuple(a for a in answers if isinstance(a, BlockData)), tuple(missing),
                          tuple(a for a in answers if isinstance(a, DeltaData)))
