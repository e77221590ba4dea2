"""Serving blocks to peers: a request is answered from disk only after checking that the file
still is the version its record describes (else "missing", and the peer asks someone else).

Sources, in order: a local file whose content hash is the requested version's, the revision
archive (so history and restore work from any node that kept a version), then any local file
holding a block with that strong hash. Every block read is checked against its hash before it
leaves: a file changed behind our back is never served as the old version. A DeltaRequest gets
the same block as copies of the asker's old chunks and literals (core.delta), worked out in a
worker thread; plainly when the delta would not be smaller. A BlockBatch (many small files'
blocks) is read in one worker-thread hop and answered by one BlockBatchData.
"""

from __future__ import annotations

from pathlib import Path

import trio

from gossip_backer.core.blocks import strong_hash
from gossip_backer.core.record import FILE
from gossip_backer.disk import apply, versions
from gossip_backer.protocol import transfer
from gossip_backer.errors import RemoteError
from gossip_backer.wire.messages import (BlockBatch, BlockBatchData, BlockData, BlockMissing,
                                         BlockRequest, DeltaData, DeltaRequest)

MAX_BLOCK = 2 * 1024 * 1024 - 4096
CONCURRENT_READS = 8


class BlockServer:
    def __init__(self, root: Path, index: dict) -> None:
        self.root = root
        self.index = index  # the folder machine's local index (read only here)
        self._blocks: dict[bytes, tuple[str, int]] | None = None
        self._files: dict[bytes, str] | None = None
        self._stale = False  # a worker thread met a stale mapping
        self.limiter = trio.CapacityLimiter(CONCURRENT_READS)
        self.bytes_served = 0

    # -- where content is: kept up to date as the index changes, never rebuilt per file -------
    def note_put(self, entries) -> None:
        """Index rows were written: their blocks are found here from now on. (Mappings to the
        old content of these paths go stale; lookups check them against the index.)"""
        if self._blocks is None:
            return
        for e in entries:
            self._add(self._blocks, self._files, e, replace=True)

    def note_stale(self) -> None:
        """A lookup met a mapping the index no longer backs: rebuild once, at the next use."""
        self._blocks = self._files = None

    @staticmethod
    def _add(blocks: dict, files: dict, e, replace: bool) -> None:
        if e.kind != FILE or e.hash is None:
            return
        if replace:
            files[e.hash] = e.path
            for i, b in enumerate(e.blocks):
                blocks[b.hash] = (e.path, i * e.block_size)
        else:
            files.setdefault(e.hash, e.path)
            for i, b in enumerate(e.blocks):
                blocks.setdefault(b.hash, (e.path, i * e.block_size))

    def _build(self) -> None:
        if self._blocks is None:
            blocks: dict[bytes, tuple[str, int]] = {}
            files: dict[bytes, str] = {}
            for e in self.index.values():
                self._add(blocks, files, e, replace=False)
            self._blocks, self._files = blocks, files

    def find_block(self, block_hash: bytes) -> tuple[str, int] | None:
        """(path, offset) of a local file whose index entry has this block there, or None.
        Safe in a worker thread: it reads the dicts and never rebuilds them."""
        blocks = self._blocks
        found = blocks.get(block_hash) if blocks is not None else None
        if found is None:
            return None
        e = self.index.get(found[0])
        if e is not None and e.kind == FILE and e.block_size:
            i = found[1] // e.block_size
            if i < len(e.blocks) and e.blocks[i].hash == block_hash:
                return found
        self._stale = True
        return None

    def find_file(self, content_hash: bytes) -> str | None:
        """The local path whose index entry has this content, or None."""
        self._build()
        path = self._files.get(content_hash)
        if path is None:
            return None
        e = self.index.get(path)
        if e is not None and e.kind == FILE and e.hash == content_hash:
            return path
        self.note_stale()
        self._build()
        return self._files.get(content_hash)

    def ready(self) -> None:
        """(trio loop) Bring the block index up to date before worker threads use find_block."""
        if self._stale:
            self._stale = False
            self.note_stale()
        self._build()

    async def answer(self, req: BlockRequest | DeltaRequest | BlockBatch):
        if isinstance(req, BlockBatch):
            return await self._answer_batch(req)
        if req.size <= 0 or req.size > MAX_BLOCK or req.offset < 0:
            return BlockMissing(req.request_id)
        sources = self._sources(req)
        work = self._read_first
        if isinstance(req, DeltaRequest):
            if not transfer.delta_request_ok(req):
                return BlockMissing(req.request_id)
            work = self._read_delta
        async with self.limiter:
            answer = await trio.to_thread.run_sync(work, sources, req)
        if answer is None:
            return BlockMissing(req.request_id)
        if isinstance(answer, bytes):
            answer = BlockData(req.request_id, answer)
        self.bytes_served += len(answer.delta if isinstance(answer, DeltaData) else answer.data)
        return answer

    async def _answer_batch(self, batch: BlockBatch) -> BlockBatchData:
        if not transfer.batch_ok(batch):
            raise RemoteError(f"a block batch beyond the limits ({len(batch.requests)} blocks)")
        work = [(self._sources(req), req) for req in batch.requests]
        async with self.limiter:
            found = await trio.to_thread.run_sync(
                lambda: [self._read_first(sources, req) for sources, req in work])
        blocks = tuple(BlockData(req.request_id, data)
                       for req, data in zip(batch.requests, found) if data is not None)
        self.bytes_served += sum(len(b.data) for b in blocks)
        return BlockBatchData(blocks, tuple(req.request_id for req, data
                                            in zip(batch.requests, found) if data is None))

    def _read_delta(self, sources, req: DeltaRequest) -> BlockData | DeltaData | None:
        """(worker thread) The block as a delta against the asker's chunks, or plainly."""
        data = self._read_first(sources, req)
        return None if data is None else transfer.delta_answer(req, data)

    def _sources(self, req: BlockRequest) -> list[tuple[Path, int, object]]:
        """Candidate (file, offset, expected stat) triples, the version's own file first."""
        out = []
        path = self.find_file(req.file_hash)
        if path is not None:
            e = self.index.get(path)
            if e is not None:
                out.append((self.root / path, req.offset,
                            apply.Stat(e.size, e.mtime_ns, e.inode, e.kind), path))
        obj = versions.object_path(self.root, req.file_hash)
        out.append((obj, req.offset, None, None))
        self.ready()
        found = self.find_block(req.hash) if req.hash else None
        if found is not None:
            e = self.index.get(found[0])
            if e is not None:
                out.append((self.root / found[0], found[1],
                            apply.Stat(e.size, e.mtime_ns, e.inode, e.kind), found[0]))
        return out

    def _read_first(self, sources, req: BlockRequest) -> bytes | None:
        """(worker thread) The first source whose bytes at the offset hash to the block."""
        for full, offset, expect, rel in sources:
            if expect is not None and apply.stat_of(self.root, rel) != expect:
                continue  # changed since scanned: not the version we announced
            try:
                with open(full, "rb", buffering=0) as f:
                    f.seek(offset)
                    data = f.read(req.size)
            except OSError:
                continue
            if len(data) != req.size:
                continue
            if not req.hash or strong_hash(data) == req.hash:  # no hash: a piece of a whole
                return data  # version, from sources holding exactly that version
        return None

