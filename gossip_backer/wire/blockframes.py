"""Block answers read in place: the blocks of a BlockData or BlockBatchData body as views of it.

Why: msgpack copies every bin it decodes into a new bytes object, and a large file's blocks are
nearly every byte a receiving node handles: that copy, on the trio thread and under the GIL,
was a tenth of the receiver's GIL time in a 512 MiB transfer. Here the body's layout (what
`messages.encode` writes: `[10, id, bin]` or `[20, [[id, bin], ...], missing, deltas]`) is
walked by hand and each block becomes a read-only memoryview of the (decrypted, never reused)
body. Only the layout our encoder writes is taken (an array header, then unsigned ints and bins
in their msgpack forms); anything else returns None and is decoded the ordinary way, which
checks it as strictly as before. Every length is checked against the body before it is used.
"""

from __future__ import annotations

__all__ = ["split"]

BLOCK_DATA, BLOCK_BATCH_DATA = 10, 20  # the tags of wire.messages.BlockData / BlockBatchData
_UINT = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_BIN = {0xC4: 1, 0xC5: 2, 0xC6: 4}
_ARRAY = {0xDC: 2, 0xDD: 4}


class _Other(Exception):
    """Not the layout walked here (the ordinary decoder decides what it is)."""


def split(body: bytes | bytearray) -> tuple[int, list[tuple[int, memoryview]], memoryview] | None:
    """(tag, [(request_id, block)], rest) for a block answer, where `rest` holds the msgpack
    values after the blocks (none for a BlockData; `missing` and `deltas` for a batch); None
    for any other body."""
    if len(body) < 3 or body[0] not in (0x93, 0x94) or body[1] not in (BLOCK_DATA,
                                                                       BLOCK_BATCH_DATA):
        return None
    view = memoryview(body).toreadonly()
    try:
        if body[1] == BLOCK_DATA:
            if body[0] != 0x93:
                return None
            block, at = _id_and_bin(view, 2)
            return BLOCK_DATA, [block], view[at:]
        if body[0] != 0x94:
            return None
        count, at = _array(view, 2)
        blocks = []
        for _ in range(count):
            if _byte(view, at) != 0x92:
                raise _Other()
            block, at = _id_and_bin(view, at + 1)
            blocks.append(block)
        return BLOCK_BATCH_DATA, blocks, view[at:]
    except _Other:
        return None


def _byte(view: memoryview, at: int) -> int:
    if at >= len(view):
        raise _Other()
    return view[at]


def _sized(view: memoryview, at: int, n: int) -> int:
    """The n-byte big-endian unsigned number at `at`."""
    if at + n > len(view):
        raise _Other()
    return int.from_bytes(view[at:at + n], "big")


def _array(view: memoryview, at: int) -> tuple[int, int]:
    first = _byte(view, at)
    if 0x90 <= first <= 0x9F:
        return first - 0x90, at + 1
    if first not in _ARRAY:
        raise _Other()
    n = _ARRAY[first]
    return _sized(view, at + 1, n), at + 1 + n


def _id_and_bin(view: memoryview, at: int) -> tuple[tuple[int, memoryview], int]:
    """A request id (an unsigned int) followed by a bin: ((id, view of the bin), next)."""
    first = _byte(view, at)
    if first <= 0x7F:
        rid, at = first, at + 1
    elif first in _UINT:
        n = _UINT[first]
        rid, at = _sized(view, at + 1, n), at + 1 + n
    else:
        raise _Other()
    kind = _byte(view, at)
    if kind not in _BIN:
        raise _Other()
    n = _BIN[kind]
    size, at = _sized(view, at + 1, n), at + 1 + n
    if at + size > len(view):
        raise _Other()
    return (rid, view[at:at + size]), at + size
