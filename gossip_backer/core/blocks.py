"""Blocks: the strong hash, the block-size rule, weak rolling sums and the rolling matcher.

Theory of operation
-------------------
A file is cut into fixed-size blocks (the last one may be short). Each block carries a strong
hash (BLAKE3-256) and a 32-bit weak checksum (rsync / zsync); the whole file carries the BLAKE3
hash of its content, so `b3sum FILE` prints it. BLAKE3 was chosen by measurement
(benchmarks/hashing.py, 2-CPU AMD EPYC with SHA-NI and AVX-512, best of 5, MB/s for 64 KiB /
128 KiB / 1 MiB blocks and a 256 MiB buffer): BLAKE3 4460 / 4650 / 4790 / 4740, SHA-256 1780 /
1790 / 1740 / 1740, BLAKE2b-256 940 / 940 / 950 / 940. BLAKE3 with max_threads is slower on
blocks (2330 / 3070 / 3140) and only helps whole buffers (5610), so it runs single-threaded.

Block size (`block_size_for`). The smallest power of two in [128 KiB, 1 MiB] that keeps a file
at <= 2,048 blocks: 128 KiB up to 256 MiB, 256 KiB to 512 MiB, 512 KiB to 1 GiB, then 1 MiB
(a block must fit in one 2 MiB frame). Like Syncthing, a file keeps its current block size while
the rule's answer is within a factor of two of it, so a file growing past a threshold keeps
blocks comparable with its previous version. Why ~2,000 blocks: a small edit costs about one
block of data plus the new block list (~40 bytes a block on the wire, and again in every peer's
store), minimal at sqrt(40 x size): 146 KiB for 512 MiB. benchmarks/rolling.py, 100 bytes
inserted at 100 MiB in a 512 MiB file, one block missed in every case, wire = that block + the
list: 128 KiB blocks 288 KiB; 256 KiB (this rule) 336 KiB; 512 KiB (Syncthing's) 552 KiB;
1 MiB 1044 KiB; rsync's sqrt(size) rule (22.6 KiB, 23,173 blocks) 928 KiB, since our per-block
cost is higher than rsync's. So: within 17% of the optimum, with half its rows and record size.

Weak sums (`weak_sum`, `rolling_weak_sums`). For a window x_0..x_{L-1}: a = sum x_i, b =
sum (L - i) x_i, weak = (a mod 2^16) | (b mod 2^16) << 16. With prefix sums P[k] = sum_{i<k} x_i
and R[k] = sum_{i<k} P[i], the window at s has a = P[s+L] - P[s] and b = R[s+L+1] - R[s+1] -
L * P[s]. Only the residues mod 2^16 matter and 2^16 divides 2^32, so uint32 cumsums may wrap
freely (and L * P[s] vanishes when 2^16 divides L, as it does for every block size): two numpy
cumsums and a few vector ops give every offset, ~350 MiB/s, in pieces of 256 Ki positions whose
buffers are reused. A single block's sum uses row and column sums of a 2,048-wide reshape (no
scalar cumsum, ~3 GB/s); with the two BLAKE3 passes the scanner hashes ~1,200 MiB/s.

Matching (`RollingMatcher`). The puller holds the target's block list and scans local data for
it. Positions are examined in order; at each one: does a full block there hash to a target block
(all target blocks with that content are recorded), else does the short last block match there?
A match advances past itself (rsync's rule: windows starting inside a matched block are not
examined); no match advances one byte. Two interchangeable ways compute this same sequence:
 * follow: hash the block at the position, the rsync "same shift" guess; while data is
   unchanged each block costs one hash, so an unchanged file scans at hashing speed;
 * roll: after a miss, weak sums for a stretch of positions (numpy), a bitmap over the low bits
   of the target weak sums, np.searchsorted on the survivors, a strong hash on the candidates
   only; the first confirmed match hands back to follow. Stretches start at one block and
   double while nothing matches (up to 256 Ki positions), so rolling runs only around changes.
Measured on 512 MiB (256 KiB blocks): unchanged, 100 bytes inserted, 1 MiB overwritten all scan
at 2,500-4,300 MiB/s (hash-bound; 0, 1 and 4 blocks missed); nothing in common ~200 MiB/s.
Because the sequence depends on content alone, scanning in chunks (keeping the unexamined tail,
under one block) gives the same result as one scan of the concatenation. `exhaustive=True` rolls
every position without skipping: it also finds a block that lies inside an already matched one
(a pasted copy of nearby content), at full rolling cost; it is meant for small data and tests.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import blake3

from gossip_backer.core.record import Block


class _Numpy:
    """numpy, imported on first use: it adds ~11 MB to a node's RSS, and a node that only
    receives files (strong hashes only) never needs weak sums."""

    def __getattr__(self, name: str):
        import numpy

        globals()["np"] = numpy
        return getattr(numpy, name)


np = _Numpy()

__all__ = [
    "BLOCK_SIZES", "MAX_BLOCK_SIZE", "MIN_BLOCK_SIZE", "TARGET_BLOCKS", "BlockHasher",
    "FileHasher", "RollingMatcher", "block_size_for", "hash_bytes", "plan_reuse",
    "rolling_weak_sums", "strong_hash", "weak_sum", "fold16", "chunk_weak_sums",
]

KIB, MIB = 1 << 10, 1 << 20
MIN_BLOCK_SIZE, MAX_BLOCK_SIZE = 128 * KIB, 1 * MIB
BLOCK_SIZES = (128 * KIB, 256 * KIB, 512 * KIB, 1 * MIB)
TARGET_BLOCKS = 2048
_WIDTH = 2048  # row width of the reshape in weak_sum
_PIECE = 1 << 18  # positions per piece of rolling_weak_sums: cache-sized arrays are faster, and
_MAX_STRETCH = 1 << 18  # the same bound for a stretch of the matcher: its buffers (~25 bytes a
# position) were 35 MiB of a receiver's peak RSS at 1 Mi; at 256 Ki, 14 MiB and no slower
# (a 1 MiB overwrite in 128 MiB, 256 KiB blocks: 0.44/0.41 s -> 0.27/0.34 s)


# --- strong hashes ---------------------------------------------------------------------------


def strong_hash(data: bytes | memoryview) -> bytes:
    """The 32-byte BLAKE3 hash of one block (or of any bytes)."""
    return blake3.blake3(data).digest()


class FileHasher:
    """The whole-content hash, fed incrementally (BLAKE3-256; the same as `b3sum`)."""

    __slots__ = ("_h",)

    def __init__(self) -> None:
        self._h = blake3.blake3()

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()


# --- block size ------------------------------------------------------------------------------


def block_size_for(size: int, current: int = 0) -> int:
    """The block size for a file of `size` bytes; keeps `current` if within a factor of 2."""
    rule = MIN_BLOCK_SIZE
    while rule < MAX_BLOCK_SIZE and size > TARGET_BLOCKS * rule:
        rule *= 2
    if current in BLOCK_SIZES and max(rule, current) <= 2 * min(rule, current):
        return current
    return rule


# --- weak sums -------------------------------------------------------------------------------


def _u8(data: bytes | memoryview | np.ndarray) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


_SMALL = 16 << 10  # bytes: up to this, weak_sum is one dot product in uint16 (it wraps mod 2^16,
# all the sum keeps): 4 KiB 28 -> 10 us, a tiny file's scan (10,000 files: ~0.2 s less)
_SMALL_WEIGHTS = np.arange(_SMALL, 0, -1, dtype=np.uint32).astype(np.uint16)  # n..1 mod 2^16


def weak_sum(block: bytes | memoryview | np.ndarray) -> int:
    """The rsync weak checksum of one block: a | b << 16 (see the module docstring)."""
    x = _u8(block)
    if len(x) <= _SMALL:  # a tiny file, a delta signature's chunk: three numpy calls
        y = x.astype(np.uint16)
        a = int(y.sum(dtype=np.uint16))
        b = int(np.dot(y, _SMALL_WEIGHTS[_SMALL - len(y):]))
        return (a & 0xFFFF) | (b & 0xFFFF) << 16
    n, rows = len(x), len(x) // _WIDTH
    head = rows * _WIDTH
    a = b = 0
    if rows:  # element (r, c) has weight n - r*W - c; row and column sums wrap mod 2^16
        m = x[:head].reshape(rows, _WIDTH)
        rs = m.sum(axis=1, dtype=np.uint16).astype(np.uint64)
        cs = m.sum(axis=0, dtype=np.uint16).astype(np.uint64)
        a = int(rs.sum())
        b = int(np.dot(n - np.arange(rows, dtype=np.uint64) * _WIDTH, rs))
        b -= int(np.dot(np.arange(_WIDTH, dtype=np.uint64), cs))
    tail = x[head:].astype(np.uint64)
    a += int(tail.sum())
    b += int(np.dot(n - head - np.arange(len(tail), dtype=np.uint64), tail))
    return (a & 0xFFFF) | (b & 0xFFFF) << 16


class _Sums:
    """Weak sums of all windows of a piece of data, in buffers reused from piece to piece:
    fresh pages for every piece cost about as much as the arithmetic."""

    def __init__(self) -> None:
        self._p = self._r = self._tmp = self._out = np.empty(0, np.uint32)
        self._idx, self._hit = np.empty(0, np.intp), np.empty(0, bool)

    def load(self, x: np.ndarray) -> None:
        """P[k] = sum x[:k] and R[k] = sum P[:k], both wrapping mod 2^32."""
        n = len(x)
        if len(self._p) < n + 1:
            self._p, self._r = np.empty(n + 1, np.uint32), np.empty(n + 2, np.uint32)
            self._tmp, self._out = np.empty(n, np.uint32), np.empty(n, np.uint32)
            self._idx, self._hit = np.empty(n, np.intp), np.empty(n, bool)
        self.p, self.r = self._p[: n + 1], self._r[: n + 2]
        self.p[0] = self.r[0] = 0
        np.cumsum(x, dtype=np.uint32, out=self.p[1:])
        np.cumsum(self.p, dtype=np.uint32, out=self.r[1:])

    def windows(self, length: int, count: int, out: np.ndarray | None = None) -> np.ndarray:
        """Weak sums of the windows [s, s+length), s < count (valid until the next call)."""
        p, r, tmp = self.p, self.r, self._tmp[:count]
        out = self._out[:count] if out is None else out
        np.subtract(r[length + 1 : length + 1 + count], r[1 : 1 + count], out=out)
        if length & 0xFFFF:  # the L * P[s] term vanishes mod 2^16 for our block sizes
            out -= np.multiply(p[:count], np.uint32(length & 0xFFFF), out=tmp)
        out <<= np.uint32(16)
        np.subtract(p[length : length + count], p[:count], out=tmp)
        tmp &= np.uint32(0xFFFF)
        out |= tmp
        return out

    def in_bitmap(self, weak: np.ndarray, bitmap: np.ndarray, mask: np.uint32) -> np.ndarray:
        """Indices i with bitmap[weak[i] & mask] set."""
        idx, hit = self._idx[: len(weak)], self._hit[: len(weak)]
        np.bitwise_and(weak, mask, out=idx)
        return np.flatnonzero(np.take(bitmap, idx, out=hit))


def fold16(weak):
    """A 32-bit weak sum (an int or a uint32 array) folded to 16 bits, its two halves mixed:
    what a delta signature carries (core.delta; half the bytes, the strong bytes still check)."""
    return (weak ^ (weak >> 16)) & 0xFFFF


def chunk_weak_sums(data: bytes | memoryview | np.ndarray, chunk: int) -> list[int]:
    """weak_sum of each whole `chunk`-byte chunk of `data` (a delta signature's), a few hundred
    KiB of them at a time: mod 2^32 arithmetic keeps a and b right mod 2^16, and no buffer
    grows with the data (rolling_weak_sums' would: ~25 bytes a position)."""
    x = _u8(data)
    full = len(x) // chunk
    rows = x[: full * chunk].reshape(full, chunk)
    weights = np.arange(chunk, 0, -1, dtype=np.uint32)
    step = max(1, (256 << 10) // chunk)
    out: list[int] = []
    for g in range(0, full, step):
        m = rows[g: g + step].astype(np.uint32)
        a = m.sum(axis=1, dtype=np.uint32) & np.uint32(0xFFFF)
        b = (m @ weights) & np.uint32(0xFFFF)
        out += (a | (b << np.uint32(16))).tolist()
    return out


def rolling_weak_sums(data: bytes | memoryview | np.ndarray, block_size: int) -> np.ndarray:
    """weak_sum(data[i:i+block_size]) for every i in [0, len - block_size], as uint32."""
    if block_size <= 0:
        raise ValueError("block_size must be positive")
    x, sums = _u8(data), _Sums()
    count = max(len(x) - block_size + 1, 0)
    out = np.empty(count, np.uint32)
    for s0 in range(0, count, _PIECE):
        s1 = min(count, s0 + _PIECE)
        sums.load(x[s0 : s1 + block_size - 1])
        sums.windows(block_size, s1 - s0, out=out[s0:s1])
    return out


# --- hashing a file into blocks --------------------------------------------------------------


class BlockHasher:
    """Feed a file's bytes in chunks of any size; `finish()` gives (file hash, blocks)."""

    def __init__(self, block_size: int, whole: bool = True) -> None:
        """`whole=False`: blocks only; the caller hashes the whole content (on another thread,
        say) and hands its hash to `finish`."""
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        self.block_size = block_size
        self._file = FileHasher() if whole else None
        self._pending = bytearray()
        self._blocks: list[Block] = []

    def update(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk).cast("B")
        if self._file is not None:
            self._file.update(view)
        start = self._top_up(view)
        whole = start + (len(view) - start) // self.block_size * self.block_size
        for off in range(start, whole, self.block_size):
            self._add(view[off : off + self.block_size])
        self._pending += view[whole:]

    def _top_up(self, view: memoryview) -> int:
        """Complete a pending partial block from `view`; returns how much of it was used."""
        if not self._pending:
            return 0
        take = min(self.block_size - len(self._pending), len(view))
        self._pending += view[:take]
        if len(self._pending) == self.block_size:
            self._add(self._pending)
            self._pending = bytearray()
        return take

    def _add(self, block: bytes | bytearray | memoryview) -> None:
        self._blocks.append(Block(strong_hash(block), weak_sum(block)))

    def finish(self, file_hash: bytes | None = None) -> tuple[bytes, tuple[Block, ...]]:
        """(file hash, blocks); `file_hash` is the caller's when made with `whole=False`."""
        if self._pending:
            self._add(self._pending)
            self._pending = bytearray()
        if self._file is not None:
            file_hash = self._file.digest()
        elif file_hash is None:
            raise ValueError("a BlockHasher made with whole=False needs the file hash")
        if len(self._blocks) == 1 and self._blocks[0].hash == file_hash:  # one block: one hash
            return file_hash, (Block(file_hash, self._blocks[0].weak),)  # object, not two copies
        return file_hash, tuple(self._blocks)


def one_block(data: bytes | bytearray | memoryview) -> tuple[bytes, tuple[Block, ...]]:
    """(file hash, blocks) of non-empty content that fits one block: the file's hash is the
    block's, hashed once (BlockHasher hashes it twice, as the whole and as the block), the
    same result as `BlockHasher.finish`."""
    file_hash = strong_hash(data)
    return file_hash, (Block(file_hash, weak_sum(data)),)


def hash_bytes(
    data: bytes | memoryview, block_size: int | None = None
) -> tuple[bytes, int, tuple[Block, ...]]:
    """(file hash, block size, blocks) of in-memory content; the rule picks the size if None."""
    size = block_size or block_size_for(memoryview(data).nbytes)
    hasher = BlockHasher(size)
    hasher.update(data)
    file_hash, blocks = hasher.finish()
    return file_hash, size, blocks


def plan_reuse(
    target_blocks: Sequence[Block], block_index: Mapping[bytes, tuple[str, int]]
) -> tuple[dict[int, tuple[str, int]], list[int]]:
    """Split target blocks into those some local file already holds (path, offset) and the rest."""
    reusable: dict[int, tuple[str, int]] = {}
    missing: list[int] = []
    for i, block in enumerate(target_blocks):
        where = block_index.get(block.hash)
        if where is None:
            missing.append(i)
        else:
            reusable[i] = where
    return reusable, missing


# --- the rolling matcher ---------------------------------------------------------------------


class RollingMatcher:
    """Finds a target's blocks in local data (zsync style); see the module docstring."""

    def __init__(
        self, target_blocks: Sequence[Block], block_size: int, target_size: int,
        *, exhaustive: bool = False, strong_len: int = 32, folded: bool = False,
    ) -> None:
        """`strong_len`: bytes of the target hashes (cut short in a delta signature); `folded`:
        its weak sums are `fold16` of the real ones."""
        if block_size <= 0 or target_size < 0:
            raise ValueError("block_size must be positive and target_size not negative")
        if len(target_blocks) != -(-target_size // block_size):
            raise ValueError("block count does not match target_size / block_size")
        self.block_size, self.exhaustive = block_size, exhaustive
        self.strong_len = strong_len  # target hashes may be cut short (delta signatures)
        self.fold = fold16 if folded else (lambda weak: weak)
        self.total = len(target_blocks)
        last = target_size - (self.total - 1) * block_size if self.total else 0
        n_full = self.total - (0 < last < block_size)
        self.short_len = last if n_full < self.total else 0
        self.short = target_blocks[-1] if self.short_len else None
        self._by_hash: dict[bytes, tuple[int, ...]] = {}
        for i, block in enumerate(target_blocks[:n_full]):  # duplicates: all their indices
            self._by_hash[block.hash] = self._by_hash.get(block.hash, ()) + (i,)
        self._weaks = [block.weak for block in target_blocks[:n_full]]
        self._weak_filter(self._weaks)

    def _weak_filter(self, weaks: list[int]) -> None:
        """The sorted weak sums, and a bitmap over their low bits (~1/64 full) in front."""
        self._sorted_weak = np.unique(np.array(weaks, dtype=np.uint32))
        bits = min(20, max(10, (len(weaks) * 64).bit_length()))
        self._mask = np.uint32((1 << bits) - 1)
        self._bitmap = np.zeros(1 << bits, dtype=bool)
        self._bitmap[self._sorted_weak & self._mask] = True

    def weak_candidates(self, weak: np.ndarray, sums: _Sums) -> np.ndarray:
        """Indices i where weak[i] equals some full target block's weak sum."""
        weak = self.fold(weak)
        hit = sums.in_bitmap(weak, self._bitmap, self._mask)
        if not len(hit):
            return hit
        w = weak[hit]
        j = np.minimum(np.searchsorted(self._sorted_weak, w), len(self._sorted_weak) - 1)
        return hit[self._sorted_weak[j] == w]

    def full_hits(self, block: memoryview) -> tuple[int, ...]:
        """Target block indices whose content is `block` (a full block's worth of data)."""
        hits = self._by_hash.get(strong_hash(block)[: self.strong_len], ())
        if hits and self.strong_len < 32:  # hashes cut short: the weak sum must agree too
            weak = self.fold(weak_sum(block))
            hits = tuple(k for k in hits if self._weaks[k] == weak)
        return hits

    def scan(self, data: bytes | memoryview | np.ndarray, base_offset: int = 0) -> dict[int, int]:
        """{target block index: base_offset + position where its content is in `data`}."""
        run = _Run(self, base_offset)
        run.feed(data, final=True)
        return run.found

    def scan_chunks(self, chunks: Iterable[tuple[int, bytes | memoryview]]) -> dict[int, int]:
        """Like `scan` over data given as (offset, bytes) pieces; a gap in offsets starts a
        new run (no block spans it). Equal to `scan` of the concatenation when contiguous."""
        found: dict[int, int] = {}
        run: _Run | None = None
        for offset, chunk in chunks:
            if run is None or offset != run.end:
                if run is not None:
                    run.feed(b"", final=True)
                run = _Run(self, offset, found)
            if run.done:
                break
            run.feed(chunk, final=False)
        if run is not None:
            run.feed(b"", final=True)
        return found


class _Run:
    """One pass over contiguous data: the examined-position sequence and what it found."""

    def __init__(self, m: RollingMatcher, start: int, found: dict[int, int] | None = None) -> None:
        self.m, self.pos, self.end = m, start, start
        self.found = {} if found is None else found
        self.carry, self.sums = b"", _Sums()
        self.stretch = self._base_stretch = max(m.block_size, 4096)

    @property
    def done(self) -> bool:
        return len(self.found) == self.m.total

    def feed(self, chunk: bytes | memoryview | np.ndarray, final: bool) -> None:
        """Examine every position that `chunk` completes; keep the unexamined tail (< 1 block).
        The carried positions are examined on carry + the chunk's first block_size - 1 bytes,
        which is all they can reach, so a large chunk is never copied."""
        view, start, bs = memoryview(_u8(chunk)), self.end, self.m.block_size
        if self.carry and len(view) >= bs:
            head = memoryview(b"".join((self.carry, view[: bs - 1])))
            self._window(head, start - len(self.carry), start)
            self.carry = b""
        if self.carry:
            view, start = memoryview(b"".join((self.carry, view))), start - len(self.carry)
        self.end = start + len(view)
        shortest = min(self.m.short_len or bs, bs)
        self._window(view, start, self.end - (shortest if final else bs) + 1)
        done = final or self.done
        self.carry = b"" if done else view[self.pos - start :].tobytes()

    def _window(self, view: memoryview, w0: int, limit: int) -> None:
        """Examine positions below `limit` in `view`, which holds the data from offset w0."""
        self.w0, self.view, self.arr = w0, view, np.frombuffer(view, dtype=np.uint8)
        self._examine_until(limit)
        self.view = self.arr = None

    def _examine_until(self, limit: int) -> None:
        while self.pos < limit and not self.done:
            if not self.m.exhaustive:
                self._follow(limit)
                if self.pos >= limit or self.done:
                    return
            self._roll(limit)

    def _follow(self, limit: int) -> None:
        """Hash position after position while each one matches (the same-shift guess)."""
        while self.pos < limit and not self.done:
            advance = self._examine(self.pos, full=True, short=True)
            self.pos += advance or 1
            if not advance:
                return

    def _examine(self, pos: int, full: bool, short: bool) -> int:
        """Strong checks at `pos`: returns the length matched (0: none); records the hits."""
        m, rel = self.m, pos - self.w0
        got = 0
        if full and rel + m.block_size <= len(self.view):
            hits = m.full_hits(self.view[rel : rel + m.block_size])
            for k in hits:
                self.found.setdefault(k, pos)
            got = m.block_size if hits else 0
        if short and m.short and (m.exhaustive or not got) and rel + m.short_len <= len(self.view):
            piece = self.view[rel : rel + m.short_len]
            if strong_hash(piece)[: m.strong_len] == m.short.hash and (
                    m.strong_len == 32 or m.fold(weak_sum(piece)) == m.short.weak):
                self.found.setdefault(m.total - 1, pos)
                got = got or m.short_len
        return got

    def _roll(self, limit: int) -> None:
        """Weak sums over one stretch of positions; strong checks on the candidates only."""
        start = self.pos
        stop = min(limit, start + self.stretch)
        for pos, full, short in self._candidates(start, stop):
            advance = self._examine(pos, full, short)
            if advance and not self.m.exhaustive:
                self.pos, self.stretch = pos + advance, self._base_stretch
                return
            if self.done:
                return
        self.pos = stop
        self.stretch = min(2 * self.stretch, _MAX_STRETCH)

    def _candidates(self, start: int, stop: int) -> list[tuple[int, bool, bool]]:
        """(position, full possible, short possible) for positions in [start, stop), sorted."""
        m, rel = self.m, start - self.w0
        x = self.arr[rel : min(stop - self.w0 + m.block_size - 1, len(self.arr))]
        self.sums.load(x)
        full = short = np.empty(0, np.intp)
        n_full = min(stop - start, len(x) - m.block_size + 1)
        if m._sorted_weak.size and n_full > 0:
            full = m.weak_candidates(self.sums.windows(m.block_size, n_full), self.sums)
        n_short = min(stop - start, len(x) - m.short_len + 1)
        if m.short and n_short > 0:
            short = np.flatnonzero(m.fold(self.sums.windows(m.short_len, n_short)) == m.short.weak)
        fs, ss = set(full.tolist()), set(short.tolist())
        return [(start + i, i in fs, i in ss) for i in sorted(fs | ss)]
