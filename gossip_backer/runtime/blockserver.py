"""Serving blocks to peers: a request is answered from disk only after checking that the file
still is the version its record describes (else "missing", and the peer asks someone else).

Sources, in order: a local file whose content hash is the requested version's, the revision
archive (so history and restore work from any node that kept a version), then any local file
holding a block with that strong hash. Every block read is checked against its hash before it
leaves: a file changed behind our back is never served as the old version. A DeltaRequest gets
the same block as copies of the asker's old chunks and literals (core.delta), worked out in a
worker thread; plainly when the delta would not be smaller. A BlockBatch (many small files'
blocks, plain or as deltas) is read and worked out in one worker-thread hop and answered by one
BlockBatchData.
"""

from __future__ import annotations

import os
import stat
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from gossip_backer.core.blocks import strong_hash
from gossip_backer.core.record import FILE
from gossip_backer.disk import apply, versions
from gossip_backer.protocol import serving
from gossip_backer.wire.messages import (BlockBatch, BlockBatchData, BlockMissing, BlockRequest,
                                         DeltaData, DeltaRequest)

CONCURRENT_READS = 8
CONCURRENT_DELTAS = 1  # a delta's rolling match holds ~25 bytes a position of its block (6.5 MiB
# for 256 KiB): four at once were most of a sender's peak memory in an in-place edit of 1 MiB,
# and one takes about a millisecond


@asynccontextmanager
async def _free():
    """No limit (a plain read)."""
    yield


class BlockServer:
    def __init__(self, root: Path, index: dict) -> None:
        self.root = root
        self._objects = os.fspath(versions.objects_dir(root))  # the archive, for `_sources`
        self.index = index  # the folder machine's local index (read only here)
        self._blocks: dict[bytes, tuple[str, int]] | None = None
        self._files: dict[bytes, str] | None = None
        self._stale = False  # a worker thread met a stale mapping
        self.limiter = trio.CapacityLimiter(CONCURRENT_READS)
        self._deltas = trio.CapacityLimiter(CONCURRENT_DELTAS)
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
        if not serving.request_ok(req):
            return BlockMissing(req.request_id)
        sources = self._sources(req)
        async with self.limiter, (self._deltas if isinstance(req, DeltaRequest) else _free()):
            answer = await trio.to_thread.run_sync(self._answer, sources, req)
        if not isinstance(answer, BlockMissing):
            self.bytes_served += len(answer.delta if isinstance(answer, DeltaData) else answer.data)
        return answer

    def _answer(self, sources, req: BlockRequest | DeltaRequest):
        """(worker thread) The block, as a delta against the asker's chunks where asked so."""
        with _HopReads() as reads:
            return serving.answer(req, self._read_first(sources, req, reads))

    async def _answer_batch(self, batch: BlockBatch) -> BlockBatchData:
        """Every block of the batch read, and its deltas worked out, in one worker hop; a
        batch of plain blocks that the page cache holds is read on the loop (`_read_cached`),
        and only what it does not hold goes to the worker thread."""
        serving.check_batch(batch)
        work = [(self._sources(req), req) for req in serving.batch_requests(batch)]
        async with self.limiter, (self._deltas if batch.deltas else _free()):
            with _HopReads(nowait=not batch.deltas and _NOWAIT is not None) as reads:
                found = self._read_cached(work, reads)
                if len(found) == len(work) and not batch.deltas:
                    answer = serving.answer_batch(batch, found)
                else:
                    reads.nowait = False
                    rest = work[len(found):]
                    answer = await trio.to_thread.run_sync(lambda: serving.answer_batch(
                        batch, found + [self._read_first(s, req, reads) for s, req in rest]))
        self.bytes_served += (sum(len(b.data) for b in answer.blocks)
                              + sum(len(d.delta) for d in answer.deltas))
        return answer

    def _sources(self, req: BlockRequest) -> list[tuple[str, int, object, str | None]]:
        """Candidate (file, offset, expected stat, path) in the order serving.serve_sources
        gives: the version's own file first."""
        self.ready()
        out = []
        root = os.fspath(self.root)  # string paths: a batch of small blocks asks this per block
        for src in serving.serve_sources(req, self.find_file, self.find_block):
            if src.path is None:
                out.append((versions.object_file(self._objects, req.file_hash), src.offset, None,
                            None))
                continue
            e = self.index.get(src.path)
            if e is not None:
                out.append((os.path.join(root, src.path), src.offset,
                            apply.Stat(e.size, e.mtime_ns, e.inode, e.kind), src.path))
        return out

    def _read_cached(self, work, reads: "_HopReads") -> list[bytes | None]:
        """(trio loop) The batch's first blocks, as long as the page cache holds them (none
        when `reads` may wait). While the sender scans, the scan thread holds the GIL most of
        the time: a worker hop waited 3.6-6.3 ms to start and 3-5.6 ms to get its answer back
        to the loop, on top of its reads."""
        found: list[bytes | None] = []
        if not reads.nowait:
            return found
        for sources, req in work:
            try:
                found.append(self._read_first(sources, req, reads))
            except _WouldBlock:
                break
        return found

    def _read_first(self, sources, req: BlockRequest, reads: "_HopReads") -> bytes | None:
        """(worker thread, or the loop when `reads` may not wait) The bytes of the first source
        that may be served, or None."""
        return serving.first_served(req, sources, lambda source: reads.read(*source, req.size),
                                    strong_hash)


_NOWAIT = getattr(os, "RWF_NOWAIT", None) if hasattr(os, "preadv") else None  # Linux


class _WouldBlock(Exception):
    """(`_HopReads` with `nowait`) The page cache does not hold the whole block: read it in a
    worker thread."""


_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0))  # no link followed, never blocked on a fifo


class _HopReads:
    """(worker thread) The reads of one hop. A source file is opened once per hop without
    following a link and checked against its scanned stat on the open descriptor (fstat: nothing
    can replace it between the check and the read), then read with pread; each folder on the way
    is checked for links once per hop. Every syscall of a worker thread is a GIL hand-off, and
    while the sender's scan holds the GIL each cost ~1 ms: a small file's block took ~8 (lstat of
    each folder and the file, open, fstat, seek, read, close), now ~4, and a large file's blocks
    of one batch ~2 each."""

    def __init__(self, nowait: bool = False) -> None:
        self._files: dict[str, int | None] = {}  # file -> open descriptor (None: not served)
        self._folders: dict[str, bool] = {}  # folder -> it is a folder, not a link
        self.nowait = nowait  # reads that would wait for the disk raise _WouldBlock instead

    def __enter__(self) -> "_HopReads":
        return self

    def __exit__(self, *exc) -> None:
        for fd in self._files.values():
            if fd is not None:
                os.close(fd)

    def read(self, full: str, offset: int, expect: apply.Stat | None, rel: str | None,
             size: int) -> bytes | None:
        """`size` bytes at `offset` of `full`; None if it is not the file the scan saw (`expect`;
        None for an archived version) or cannot be read."""
        if full not in self._files:
            self._files[full] = self._open(full, expect, rel)
        fd = self._files[full]
        if fd is None:
            return None
        if self.nowait:
            return self._cached(fd, offset, size, expect)
        try:
            return os.pread(fd, size, offset)
        except OSError:
            return None

    @staticmethod
    def _cached(fd: int, offset: int, size: int, expect: apply.Stat | None) -> bytes | None:
        """The block if the page cache holds all of it (preadv2 with RWF_NOWAIT gives EAGAIN,
        or fewer bytes, rather than wait for the disk), else _WouldBlock."""
        buf = bytearray(size)
        try:
            n = os.preadv(fd, [buf], offset, _NOWAIT)
        except BlockingIOError:
            raise _WouldBlock() from None
        except OSError:
            return None
        if n < size and (expect is None or offset + n < expect.size):
            raise _WouldBlock()  # (not the file's end: the rest is not cached)
        del buf[n:]  # the block as read, not copied into bytes: a third of the sender's copies
        return buf

    def _open(self, full: str, expect: apply.Stat | None, rel: str | None) -> int | None:
        if rel is not None and not self._folders_ok(full, rel):
            return None
        try:
            fd = os.open(full, _OPEN_FLAGS)
        except OSError:
            return None
        try:
            if expect is None or apply.Stat.from_os(os.fstat(fd)) == expect:
                return fd
        except OSError:
            pass
        os.close(fd)
        return None

    def _folders_ok(self, full: str, rel: str) -> bool:
        """Is every folder between the root and `rel` a folder, not a link (the scan never
        follows one, and a link put there since must not lead the read elsewhere)?"""
        base = full[: len(full) - len(rel)]
        parts = rel.split("/")[:-1]
        for i in range(len(parts)):
            folder = base + "/".join(parts[: i + 1])
            ok = self._folders.get(folder)
            if ok is None:
                try:
                    ok = stat.S_ISDIR(os.lstat(folder).st_mode)
                except OSError:
                    ok = False
                self._folders[folder] = ok
            if not ok:
                return False
        return True
