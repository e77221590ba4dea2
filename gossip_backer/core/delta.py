"""The sub-block delta: a block sent as what changed against the receiver's old bytes.

Theory of operation
-------------------
A block the receiver lacks is often an edit of bytes it holds: a few lines of a source file
changed, 100 bytes inserted into a large file. rsync's idea, inside one block: the receiver cuts
its old bytes (the `base`) into chunks of `chunk_for(len(base))` bytes and sends a `signature`,
per chunk the weak sum folded to 16 bits (core.blocks.fold16) and the first SIG_STRONG bytes of
its BLAKE3 hash (protocol 4; the 32-bit sum before: 6 bytes a chunk, now 4). The sender finds
those chunks anywhere in the block (core.blocks.RollingMatcher, the puller's own matcher, with the
hashes cut short) and answers with `encode`: copy instructions and the other bytes as literals,
deflated with the copied bytes around the first literal as preset dictionary (the receiver has
them before it needs the literals; an edited line of a source file reuses the words around it).
The receiver rebuilds the block with `decode` and checks it against the block's hash like any
block.

Pieces. An edited line leaves most of its chunk unchanged, and sending that chunk as literals
cost ~95% of the literals (edit_text: 527 B a file where the changed lines deflate to ~28 B).
So the signature also carries one byte of BLAKE3 per piece of `piece_for(chunk)` bytes (a
quarter of a chunk). Pieces are never searched for: a gap between two copied chunks starts where
the first one ends in the base, so the sender compares the pieces that follow that chunk in
the base with the bytes that follow the gap's start, one by one until one differs, and likewise
backwards from the next copy (the start and end of the block stand for the base's). Only the
pieces around each edit are then sent. One byte per piece is enough because a piece is compared
at one place only: a false match (~1 in 256 at each edge) makes a block that fails its hash, and
the receiver asks again with the chunks alone (`without_pieces`); a false match of the chunks'
short hashes (about 1 in 2^32 chunk positions: ~1 in 4,000 edited 55 KiB files) only costs a
plain request of that block.

Sizes, measured on benchmarks/compare.py's edit_text stream (654 source files of 10-100 KiB
with 1-3 edits each; signature + delta per file): chunks alone, c nearest sqrt(16 L) (the
previous rule): 894 B; with pieces of c/8, c nearest sqrt(128 L): 651 B; sqrt(64 L) 660 B,
sqrt(256 L) 686 B; pieces of c/4 725 B, c/16 735 B; two bytes a piece 815 B. With 4-byte chunk
entries (protocol 4): 608 B at that rule, 583 B with c nearest sqrt(64 L) and pieces of c/4
(c/8: 615 B; sqrt(32 L) or sqrt(256 L) with c/4 or c/8: 603-699 B, on every other file). So c
is the power of two nearest sqrt(64 L) within 128 B..4 KiB (256 B for 1 KiB, 1 KiB for 10 KiB,
2 KiB for 64 KiB, 4 KiB from 128 KiB) and pieces are c/4 when that is at least 32 B. About 0.8% of those files had a false
piece match (and one more request).

Format of a signature: one byte (log2 of the piece size, 0 for no pieces), the chunk entries,
then one byte per piece. Format of a delta: one byte (0: literals stored, 1: raw deflate with
the preset dictionary), the op count and (literal length, first unit, unit count) per op as
unsigned LEB128 varints, then the literals; a unit is a piece, or a chunk for a signature
without pieces (`unit_of`). Every length is checked against the block size before anything is
allocated.
"""

from __future__ import annotations

import struct
import zlib

from gossip_backer.core.blocks import (RollingMatcher, chunk_weak_sums, fold16, strong_hash,
                                       weak_sum)
from gossip_backer.core.record import Block
from gossip_backer.errors import RemoteError

SIG_WEAK = 2  # bytes of the weak sum per chunk (core.blocks.fold16: its halves mixed)
SIG_STRONG = 2  # bytes of BLAKE3 per chunk in a signature (after the weak sum)
SIG_ENTRY = SIG_WEAK + SIG_STRONG
PIECE_ENTRY = 1  # bytes of BLAKE3 per piece (a false match costs one more delta, see below)
MIN_CHUNK, MAX_CHUNK = 128, 4096
PIECES = 4  # pieces a chunk is cut into
MIN_PIECE = 32
DICT_SIDE = 16 << 10  # copied bytes on each side of the first literal used as zlib dictionary
STORED, DEFLATE = 0, 1

__all__ = ["chunk_for", "piece_for", "signature", "signature_size", "signature_ok",
           "without_pieces", "unit_of", "encode", "decode", "DeltaError", "MIN_CHUNK",
           "MAX_CHUNK"]


class DeltaError(RemoteError):
    """A delta or a signature from a peer that cannot be right (malformed, or lengths that do
    not add up)."""


def chunk_for(base_size: int) -> int:
    """The signature's chunk size for a base of `base_size` bytes (see the module docstring)."""
    chunk = MIN_CHUNK
    while chunk < MAX_CHUNK and (2 * chunk) ** 2 <= 128 * base_size:  # nearest in log scale
        chunk *= 2
    return chunk


def piece_for(chunk: int) -> int:
    """The size of the pieces the edges of an edit are found with (0: chunks too small)."""
    piece = chunk // PIECES
    return piece if piece >= MIN_PIECE else 0


def signature_size(base_size: int, chunk: int, piece: int) -> int:
    """How long the signature of `base_size` bytes cut so must be."""
    pieces = -(-base_size // piece) if piece else 0
    return 1 + -(-base_size // chunk) * SIG_ENTRY + pieces * PIECE_ENTRY


def signature(base: bytes | memoryview, chunk: int, piece: int = 0) -> bytes:
    """One byte (log2 of `piece`, 0 for none); per chunk of `base` the weak sum (4 bytes,
    little-endian) and SIG_STRONG bytes of BLAKE3; per piece PIECE_ENTRY bytes of BLAKE3."""
    view = memoryview(base)
    out = bytearray([piece.bit_length() - 1 if piece else 0])
    full = len(view) // chunk  # their weak sums in a few numpy calls, not a call each
    weaks = [fold16(w) for w in chunk_weak_sums(view, chunk)]
    for at in range(0, len(view), chunk):
        part = view[at: at + chunk]
        weak = weaks[at // chunk] if at // chunk < full else fold16(weak_sum(part))
        out += struct.pack("<H", weak) + strong_hash(part)[:SIG_STRONG]
    if piece:
        for at in range(0, len(view), piece):
            out += strong_hash(view[at: at + piece])[:PIECE_ENTRY]
    return bytes(out)


def unit_of(sig: bytes, chunk: int) -> int:
    """What a delta against a base with this signature copies in: its pieces, else its chunks."""
    return 1 << sig[0] if sig and sig[0] else chunk


def signature_ok(base_size: int, chunk: int, sig: bytes) -> bool:
    """Is `sig` a signature of `base_size` bytes in `chunk`-byte chunks (checked before work)?"""
    try:
        _parse(base_size, chunk, sig)
    except DeltaError:
        return False
    return True


def without_pieces(sig: bytes, base_size: int, chunk: int) -> bytes:
    """The same signature with its chunks only (asked with again after a false piece match)."""
    return bytes([0]) + sig[1: 1 + -(-base_size // chunk) * SIG_ENTRY]


def _parse(base_size: int, chunk: int, sig: bytes) -> tuple[list[Block], int, bytes]:
    """(chunk entries, piece size, piece hashes) of a signature; DeltaError if it cannot be
    the signature of `base_size` bytes in `chunk`-byte chunks."""
    if chunk < 1 or base_size < 0 or not sig or sig[0] > 16:
        raise DeltaError("signature does not match its base size")
    piece = 1 << sig[0] if sig[0] else 0
    if piece and (piece < MIN_PIECE or chunk % piece):
        raise DeltaError("signature pieces do not cut its chunks")
    if len(sig) != signature_size(base_size, chunk, piece):
        raise DeltaError("signature does not match its base size")
    n = -(-base_size // chunk)
    blocks = [Block(sig[k + SIG_WEAK: k + SIG_ENTRY], struct.unpack_from("<H", sig, k)[0])
              for k in range(1, 1 + n * SIG_ENTRY, SIG_ENTRY)]
    return blocks, piece, sig[1 + n * SIG_ENTRY:]

def _varints(values: list[int]) -> bytes:
    out = bytearray()
    for v in values:
        while v >= 0x80:
            out.append(v & 0x7F | 0x80)
            v >>= 7
        out.append(v)
    return bytes(out)


def _read_varint(data: bytes, at: int, limit: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 35:
            raise DeltaError("truncated delta")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    if value > limit:
        raise DeltaError("delta value out of range")
    return value, at


def _dictionary(copied: list[bytes], before: int) -> bytes:
    """The copied bytes around the first literal (`before`: how many precede it)."""
    joined = b"".join(copied)
    return joined[max(0, before - DICT_SIDE): before + DICT_SIDE]


def _chunk_copies(target: bytes, blocks: list[Block], chunk: int, base_size: int) -> list[list[int]]:
    """[target position, base position, length] of the base's chunks found in `target` (the
    rolling match), in target order and not overlapping."""
    if not blocks:
        return []
    last = base_size - (len(blocks) - 1) * chunk
    found = RollingMatcher(blocks, chunk, base_size, strong_len=SIG_STRONG,
                           folded=True).scan(target)
    out, at = [], 0
    for pos, j in sorted((pos, j) for j, pos in found.items()):
        if pos >= at:
            length = last if j == len(blocks) - 1 else chunk
            out.append([pos, j * chunk, length])
            at = pos + length
    return out


def _piece_matches(target: bytes, hashes: bytes, index: int, at: int, n: int) -> bool:
    return strong_hash(target[at: at + n])[:PIECE_ENTRY] == hashes[index * PIECE_ENTRY:
                                                                (index + 1) * PIECE_ENTRY]


def _edge_copies(target: bytes, copies: list[list[int]], piece: int, hashes: bytes,
                 base_size: int) -> list[list[int]]:
    """Pieces copied at the edges of each gap between `copies`: the bytes after a copied chunk
    are compared with the pieces that follow it in the base (and those before the next copy
    with the pieces before it), piece by piece until one differs. The start and the end of
    the target stand for the start and end of the base."""
    out = []
    ends = [(0, 0)] + [(t + n, b + n) for t, b, n in copies]
    starts = [(t, b) for t, b, _ in copies] + [(len(target), base_size)]
    for (g0, bl), (g1, br) in zip(ends, starts):
        while bl < base_size and g0 < g1:
            n = min(piece, base_size - bl)
            if g0 + n > g1 or not _piece_matches(target, hashes, bl // piece, g0, n):
                break
            out.append([g0, bl, n])
            g0, bl = g0 + n, bl + n
        while br > 0 and g0 < g1:
            index = (br - 1) // piece
            n = br - index * piece
            if g1 - n < g0 or not _piece_matches(target, hashes, index, g1 - n, n):
                break
            out.append([g1 - n, index * piece, n])
            g1, br = g1 - n, br - n
    return out


def encode(target: bytes | memoryview, chunk: int, base_size: int, sig: bytes) -> bytes:
    """`target` as copies of the base's chunks and pieces (found by `sig`) and compressed
    literals."""
    blocks, piece, hashes = _parse(base_size, chunk, sig)
    target = bytes(target)
    copies = _chunk_copies(target, blocks, chunk, base_size)
    if piece:
        copies = sorted(copies + _edge_copies(target, copies, piece, hashes, base_size))
    unit = piece or chunk
    ops: list[list[int]] = []  # [literal length, first unit, unit count]
    literals, copied = [], []
    at, before = 0, None
    for pos, start, length in copies:
        first, count = start // unit, -(-length // unit)
        if pos == at and ops and ops[-1][2] and ops[-1][1] + ops[-1][2] == first:
            ops[-1][2] += count  # the next unit of a run
        else:
            literals.append(target[at:pos])
            if pos > at and before is None:
                before = sum(map(len, copied))
            ops.append([pos - at, first, count])
        copied.append(target[pos: pos + length])
        at = pos + length
    if at < len(target) or not ops:
        literals.append(target[at:])
        if before is None and at < len(target):
            before = sum(map(len, copied))
        ops.append([len(target) - at, 0, 0])
    plain = b"".join(literals)
    header = _varints([len(ops)] + [v for op in ops for v in op])
    if plain:
        zdict = _dictionary(copied, before or 0)
        comp = zlib.compressobj(9, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY,
                                **({"zdict": zdict} if zdict else {}))
        packed = comp.compress(plain) + comp.flush()
        if len(packed) < len(plain):
            return bytes([DEFLATE]) + header + packed
    return bytes([STORED]) + header + plain


def decode(base: bytes | memoryview, unit: int, delta: bytes, size: int) -> bytes:
    """The block of `size` bytes that `delta` (from `encode`) describes against `base`, whose
    copies count in `unit`s (`unit_of` its signature). Raises DeltaError when it cannot be
    right."""
    n = -(-len(base) // unit) if unit > 0 else 0
    if not delta or delta[0] not in (STORED, DEFLATE) or unit < 1:
        raise DeltaError("unknown delta format")
    count, at = _read_varint(delta, 1, size + 1)
    ops, literal_total, total = [], 0, 0
    for _ in range(count):
        lit, at = _read_varint(delta, at, size)
        first, at = _read_varint(delta, at, max(n - 1, 0))
        many, at = _read_varint(delta, at, n - first)
        copy_len = min(len(base), (first + many) * unit) - first * unit if many else 0
        ops.append((lit, first * unit, copy_len))
        literal_total += lit
        total += lit + copy_len
        if total > size:
            raise DeltaError("delta longer than its block")
    if total != size:
        raise DeltaError("delta shorter than its block")
    view = memoryview(base)
    if delta[0] == DEFLATE:
        copied, before = [], None
        for lit, start, length in ops:
            if lit and before is None:
                before = sum(map(len, copied))
            copied.append(view[start: start + length])
        decomp = zlib.decompressobj(-15, zdict=_dictionary(copied, before or 0) or b"")
        try:
            plain = decomp.decompress(delta[at:], literal_total + 1)
        except zlib.error as exc:
            raise DeltaError(f"bad literals: {exc}") from None
    else:
        plain = delta[at:]
    if len(plain) != literal_total:
        raise DeltaError("literals do not add up")
    out, taken = bytearray(), 0
    for lit, start, length in ops:
        out += plain[taken: taken + lit]
        taken += lit
        out += view[start: start + length]
    return bytes(out)
