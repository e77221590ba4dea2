"""Where a file's blocks come from before any is asked of a peer: the reuse plan, sans-IO.

Theory of operation. A file the folder machine wants written (a WRITE_FILE need) is built in a
temporary file next to its target. `Plan` hands its carrier (runtime/puller.py on real disks,
testing/simfolder.py on the memdisk) one step at a time, cheapest and surest source first, and
learns after each which blocks it got; a block counts as had only once bytes that hash to it
were written to the temporary file. The order:

  1. `Verify`: blocks of a temporary file a crash or restart left behind (a resumed download);
  2. `Truncate` the temporary file to the record's size, when it was resumed (a fresh one is
     empty, and the blocks written past its end make it their size: one syscall less per file);
  3. `Copy` from the archive (`ARCHIVE`): the same content kept as an old version (restores,
     conflict copies, undone deletions);
  4. `Copy` from a local file with the same content hash (a rename or copy, even where the two
     were cut in blocks of other sizes: it is read at this record's offsets);
  5. `Copy` of blocks present in any local file (the block index by strong hash: renames,
     copies, duplicated blocks), one step per source file;
  6. `Copy` from the archive again when it gave nothing before and a local file was read
     since (a source deleted while we read it was archived meanwhile);
  7. `Rolling`: a zsync-style match of the file's old content at this path (the index says a
     file is there), so data shifted by an insertion is reused; not when every missing block
     is asked for as a delta against the old bytes in its place (an edit that stayed put).

What is missing then is fetched from peers (protocol/transfer.py), each block as a delta against
the old bytes `transfer.delta_bases` names where the file had content.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gossip_backer.core.record import FILE, FileRecord, IndexEntry
from gossip_backer.protocol import transfer

ARCHIVE = None  # a Copy source: the archived version of the record's content hash


@dataclass(frozen=True, slots=True)
class Verify:
    """Check these blocks in the temporary file (at their own offsets) against their hashes."""

    indices: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Truncate:
    size: int


@dataclass(frozen=True, slots=True)
class Copy:
    """Copy block i from `offsets[i]` of `source` (a local path, or ARCHIVE: the archived
    content `content_hash`), each only if its bytes hash to the block.

    `whole`: the source holds the record's whole content at its own offsets (the archived
    version, or a local file the index has with the record's hash) and no block is had yet. A
    carrier may then copy it in one pass and check the content hash once, every block had if it
    holds, instead of a read and a hash per block (a renamed 512 MiB file: 1.7 s of the
    receiver's CPU, and the temp file read back for its hash); if it does not hold (the source
    changed since it was scanned), each block is copied and checked as for any Copy."""

    source: str | None
    content_hash: bytes | None
    offsets: dict[int, int]
    whole: bool = False


@dataclass(frozen=True, slots=True)
class Rolling:
    """Find these blocks anywhere in the local file at `path` (core.blocks.RollingMatcher) and
    copy each found one, verified."""

    path: str
    indices: tuple[int, ...]


Step = Verify | Truncate | Copy | Rolling


class Plan:
    """The reuse steps of one file (see the module docstring). `same`: a local path whose index
    entry has the record's content hash; `find_block(hash)`: (path, offset) of a local file
    holding that block, or None. `archive_empty`: the archive held no version when the carrier
    last looked (at the start of a batch): step 3 is skipped, a lookup per new file saved (step
    6 still looks, for what was archived since)."""

    def __init__(self, rec: FileRecord, entry: IndexEntry | None, *, resumed: bool,
                 same: str | None, find_block: Callable[[bytes], tuple[str, int] | None],
                 archive_empty: bool = False) -> None:
        self.rec = rec
        self.have: set[int] = set()
        self._archive_gave = False
        self._archive_empty = archive_empty
        self._steps = self._generate(entry, resumed, same, find_block)
        self._last: Step | None = None

    def next_step(self) -> Step | None:
        """The next thing to try, or None once every source was tried or nothing is missing."""
        self._last = next(self._steps, None)
        return self._last

    def got(self, indices) -> None:
        """The blocks the last step wrote (verified)."""
        indices = set(indices) - self.have
        if isinstance(self._last, Copy) and self._last.source is ARCHIVE and indices:
            self._archive_gave = True
        self.have |= indices

    def missing(self) -> list[int]:
        return [i for i in range(len(self.rec.blocks)) if i not in self.have]

    def delta_bases(self, entry: IndexEntry | None) -> dict[int, tuple[int, int]]:
        """Old bytes (offset, size at the path) each missing block is asked for against."""
        return transfer.delta_bases(self.rec, entry, self.missing())

    def _whole(self) -> dict[int, int]:
        return {i: i * self.rec.block_size for i in self.missing()}

    def _generate(self, entry, resumed, same, find_block):
        rec = self.rec
        if resumed and rec.blocks:
            yield Verify(tuple(range(len(rec.blocks))))
        if resumed:
            yield Truncate(rec.size)
        if rec.hash and not self._archive_empty and self.missing():
            yield Copy(ARCHIVE, rec.hash, self._whole(), whole=not self.have)
        read_local = False  # a second look at the archive finds only what a source read left
        if same is not None and self.missing():
            read_local = True
            yield Copy(same, None, self._whole(), whole=not self.have)
        by_source: dict[str, dict[int, int]] = {}
        for i in self.missing():
            found = find_block(rec.blocks[i].hash)
            if found is not None:
                by_source.setdefault(found[0], {})[i] = found[1]
        for path, offsets in by_source.items():
            wanted = {i: off for i, off in offsets.items() if i not in self.have}
            if wanted:
                read_local = True
                yield Copy(path, None, wanted)
        if rec.hash and not self._archive_gave and self.missing() and read_local:
            yield Copy(ARCHIVE, rec.hash, self._whole(), whole=not self.have)
        if entry is not None and entry.kind == FILE and self.missing() and not self._in_place(entry):
            yield Rolling(rec.path, tuple(self.missing()))

    def _in_place(self, entry: IndexEntry) -> bool:
        """Is every missing block asked for as a delta against the old bytes in its place? Then
        the edit stayed where it was (an overwrite, or a few blocks around an insertion) and
        the deltas find whatever of the old bytes it kept: a rolling match would read the whole
        old file again for nothing (and its buffers were most of a receiver's peak memory)."""
        return set(self.delta_bases(entry)) >= set(self.missing())


def block_length(rec: FileRecord, i: int) -> int:
    return min(rec.block_size, rec.size - i * rec.block_size)


def reads(step: Copy, rec: FileRecord) -> list[tuple[int, int, int]]:
    """(block index, source offset, length) of a Copy, in the order of the source's bytes."""
    return [(i, off, block_length(rec, i))
            for i, off in sorted(step.offsets.items(), key=lambda kv: kv[1])]


def is_block(rec: FileRecord, i: int, data: bytes, hasher: Callable[[bytes], bytes]) -> bool:
    """Do `data` (read from some source) make block i of `rec`?"""
    return len(data) == block_length(rec, i) and hasher(data) == rec.blocks[i].hash


class LocalBlocks:
    """Which local file holds a block, or a whole content, by the local index (what the last
    scans saw): the lookups `Plan` and `serving.serve_sources` take. Built on first use after
    `forget()` (call it whenever the index changes); a hit names a row the index still has."""

    def __init__(self, index: Mapping[str, IndexEntry]) -> None:
        self.index = index
        self._blocks: dict[bytes, tuple[str, int]] | None = None
        self._files: dict[bytes, str] | None = None

    def forget(self) -> None:
        self._blocks = self._files = None

    def _build(self) -> None:
        if self._blocks is not None:
            return
        self._blocks, self._files = {}, {}
        for e in self.index.values():
            if e.kind == FILE and e.hash is not None:
                self._files.setdefault(e.hash, e.path)
                for i, b in enumerate(e.blocks):
                    self._blocks.setdefault(b.hash, (e.path, i * e.block_size))

    def find_block(self, block_hash: bytes) -> tuple[str, int] | None:
        self._build()
        return self._blocks.get(block_hash)

    def find_file(self, content_hash: bytes) -> str | None:
        self._build()
        return self._files.get(content_hash)
