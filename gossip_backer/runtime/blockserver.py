"""Serving blocks to peers: a request is answered from disk only after checking that the file
still is the version its record describes (else "missing", and the peer asks someone else).

Sources, in order: a local file whose content hash is the requested version's, the revision
archive (so history and restore work from any node that kept a version), then any local file
holding a block with that strong hash. Every block read is checked against its hash before it
leaves: a file changed behind our back is never served as the old version.
"""

from __future__ import annotations

from pathlib import Path

import trio

from gossip_backer.core.blocks import strong_hash
from gossip_backer.core.record import FILE
from gossip_backer.disk import apply, versions
from gossip_backer.wire.messages import BlockData, BlockMissing, BlockRequest

MAX_BLOCK = 2 * 1024 * 1024 - 4096
CONCURRENT_READS = 8


class BlockServer:
    def __init__(self, folder) -> None:
        self.folder = folder
        self.root: Path = folder.root
        self._blocks: dict[bytes, tuple[str, int]] | None = None
        self._files: dict[bytes, str] | None = None
        self.limiter = trio.CapacityLimiter(CONCURRENT_READS)
        self.bytes_served = 0

    def forget_blocks(self) -> None:
        self._blocks = self._files = None

    def block_index(self) -> dict[bytes, tuple[str, int]]:
        """strong hash -> (path, offset) over every local file (rebuilt after index changes)."""
        if self._blocks is None:
            blocks: dict[bytes, tuple[str, int]] = {}
            files: dict[bytes, str] = {}
            for e in self.folder.index.values():
                if e.kind != FILE or e.hash is None:
                    continue
                files.setdefault(e.hash, e.path)
                for i, b in enumerate(e.blocks):
                    blocks.setdefault(b.hash, (e.path, i * e.block_size))
            self._blocks, self._files = blocks, files
        return self._blocks

    def file_index(self) -> dict[bytes, str]:
        self.block_index()
        return self._files

    async def answer(self, req: BlockRequest):
        if req.size <= 0 or req.size > MAX_BLOCK or req.offset < 0:
            return BlockMissing(req.request_id)
        sources = self._sources(req)
        async with self.limiter:
            data = await trio.to_thread.run_sync(self._read_first, sources, req)
        if data is None:
            return BlockMissing(req.request_id)
        self.bytes_served += len(data)
        return BlockData(req.request_id, data)

    def _sources(self, req: BlockRequest) -> list[tuple[Path, int, object]]:
        """Candidate (file, offset, expected stat) triples, the version's own file first."""
        out = []
        path = self.file_index().get(req.file_hash)
        if path is not None:
            e = self.folder.index.get(path)
            if e is not None:
                out.append((self.root / path, req.offset,
                            apply.Stat(e.size, e.mtime_ns, e.inode, e.kind), path))
        obj = versions.object_path(self.root, req.file_hash)
        out.append((obj, req.offset, None, None))
        found = self.block_index().get(req.hash) if req.hash else None
        if found is not None:
            e = self.folder.index.get(found[0])
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
