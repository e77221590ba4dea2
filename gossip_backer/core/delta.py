"""The sub-block delta: a block sent as what changed against the receiver's old bytes.

Theory of operation
-------------------
A block the receiver lacks is often an edit of bytes it holds: a few lines of a source file
changed, 100 bytes inserted into a large file. rsync's idea, inside one block: the receiver cuts
its old bytes (the `base`) into chunks of `chunk_for(len(base))` bytes and sends a `signature`,
per chunk the 32-bit weak sum and the first SIG_STRONG bytes of its BLAKE3 hash. The sender finds
those chunks anywhere in the block (core.blocks.RollingMatcher, the puller's own matcher, with the
hashes cut short) and answers with `encode`: copy instructions for the matched chunks and the
other bytes as literals, zlib-compressed with the copied bytes around the first literal as preset
dictionary (the receiver has them before it needs the literals; an edited line of a source file
reuses the words around it). The receiver rebuilds the block with `decode` and checks it against
the block's hash like any block: a false match of the short hashes (about 1 in 2^48 chunk
positions) only costs a plain request of that block.

Chunk size (`chunk_for`): with 6 bytes of signature a chunk and about 1.5 chunks of literal an
edit, the cost 6 L / c + 1.5 c h x (h edits of a base of L bytes, literals compressed to x) is
least at c = sqrt(4 L / (h x)). Measured on benchmarks/compare.py's edit_text stream (source files
of 10-100 KiB, 1-3 edits each; signature + delta per file, against the gzip-compressed diff):
256 B 1551 B (5.4x), 512 B 1008 B (3.5x), 1 KiB 931 B (3.2x), 2 KiB 1238 B (4.3x). So c is the
power of two nearest sqrt(16 L), within 128 B..4 KiB: 512 B for 10 KiB, 1 KiB for 64 KiB,
2 KiB for a 256 KiB block (where random bytes do not compress: still within 25% of the optimum).

Format of a delta: one byte (0: literals stored, 1: zlib with the preset dictionary), the op count
and (literal length, first chunk, chunk count) per op as unsigned LEB128 varints, then the
literals. Every length is checked against the block size before anything is allocated.
"""

from __future__ import annotations

import struct
import zlib

from gossip_backer.core.blocks import RollingMatcher, strong_hash, weak_sum
from gossip_backer.core.record import Block
from gossip_backer.errors import RemoteError

SIG_STRONG = 2  # bytes of BLAKE3 per chunk in a signature (after the 4 of the weak sum)
SIG_ENTRY = 4 + SIG_STRONG
MIN_CHUNK, MAX_CHUNK = 128, 4096
DICT_SIDE = 16 << 10  # copied bytes on each side of the first literal used as zlib dictionary
STORED, ZLIB = 0, 1

__all__ = ["chunk_for", "signature", "encode", "decode", "DeltaError", "SIG_ENTRY", "MIN_CHUNK",
           "MAX_CHUNK"]


class DeltaError(RemoteError):
    """A delta or a signature from a peer that cannot be right (malformed, or lengths that do
    not add up)."""


def chunk_for(base_size: int) -> int:
    """The signature's chunk size for a base of `base_size` bytes (see the module docstring)."""
    chunk = MIN_CHUNK
    while chunk < MAX_CHUNK and (2 * chunk) ** 2 <= 2 * 16 * base_size:  # nearest in log scale
        chunk *= 2
    return chunk


def signature(base: bytes | memoryview, chunk: int) -> bytes:
    """Per chunk of `base`: the weak sum (4 bytes, little-endian) and SIG_STRONG bytes of BLAKE3."""
    view = memoryview(base)
    out = bytearray()
    for at in range(0, len(view), chunk):
        piece = view[at: at + chunk]
        out += struct.pack("<I", weak_sum(piece)) + strong_hash(piece)[:SIG_STRONG]
    return bytes(out)


def _chunks(base_size: int, chunk: int, sig: bytes) -> list[Block]:
    n = -(-base_size // chunk)
    if chunk < 1 or base_size < 0 or len(sig) != n * SIG_ENTRY:
        raise DeltaError("signature does not match its base size")
    return [Block(sig[k + 4: k + SIG_ENTRY], struct.unpack_from("<I", sig, k)[0])
            for k in range(0, len(sig), SIG_ENTRY)]


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


def encode(target: bytes | memoryview, chunk: int, base_size: int, sig: bytes) -> bytes:
    """`target` as copies of the base's chunks (found by `sig`) and compressed literals."""
    blocks = _chunks(base_size, chunk, sig)
    last = base_size - (len(blocks) - 1) * chunk if blocks else 0
    target = bytes(target)
    found = RollingMatcher(blocks, chunk, base_size, strong_len=SIG_STRONG).scan(target) \
        if blocks else {}
    ops: list[list[int]] = []  # [literal length, first chunk, chunk count]
    literals, copied = [], []
    at, lit_start, before = 0, 0, None
    for pos, j in sorted((pos, j) for j, pos in found.items()):
        length = last if j == len(blocks) - 1 else chunk
        if pos < at:
            continue
        if pos == at and ops and ops[-1][2] and ops[-1][1] + ops[-1][2] == j and lit_start == at:
            ops[-1][2] += 1  # the next chunk of a run
        else:
            literals.append(target[lit_start:pos])
            if pos > lit_start and before is None:
                before = sum(map(len, copied))
            ops.append([pos - lit_start, j, 1])
        copied.append(target[pos: pos + length])
        at = lit_start = pos + length
    if lit_start < len(target) or not ops:
        literals.append(target[lit_start:])
        if before is None and lit_start < len(target):
            before = sum(map(len, copied))
        ops.append([len(target) - lit_start, 0, 0])
    plain = b"".join(literals)
    header = _varints([len(ops)] + [v for op in ops for v in op])
    if plain:
        zdict = _dictionary(copied, before or 0)
        comp = zlib.compressobj(9, zdict=zdict) if zdict else zlib.compressobj(9)
        packed = comp.compress(plain) + comp.flush()
        if len(packed) < len(plain):
            return bytes([ZLIB]) + header + packed
    return bytes([STORED]) + header + plain


def decode(base: bytes | memoryview, chunk: int, delta: bytes, size: int) -> bytes:
    """The block of `size` bytes that `delta` (from `encode`) describes against `base`.
    Raises DeltaError when it cannot be right."""
    n = -(-len(base) // chunk) if chunk > 0 else 0
    if not delta or delta[0] not in (STORED, ZLIB) or chunk < 1:
        raise DeltaError("unknown delta format")
    count, at = _read_varint(delta, 1, size + 1)
    ops, literal_total, total = [], 0, 0
    for _ in range(count):
        lit, at = _read_varint(delta, at, size)
        first, at = _read_varint(delta, at, max(n - 1, 0))
        many, at = _read_varint(delta, at, n - first)
        copy_len = min(len(base), (first + many) * chunk) - first * chunk if many else 0
        ops.append((lit, first * chunk, copy_len))
        literal_total += lit
        total += lit + copy_len
        if total > size:
            raise DeltaError("delta longer than its block")
    if total != size:
        raise DeltaError("delta shorter than its block")
    view = memoryview(base)
    if delta[0] == ZLIB:
        copied, before = [], None
        for lit, start, length in ops:
            if lit and before is None:
                before = sum(map(len, copied))
            copied.append(view[start: start + length])
        decomp = zlib.decompressobj(zdict=_dictionary(copied, before or 0) or b"")
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
