"""The block server on real files: a batch of a large file's blocks is served from the file the
index names, and a file that changed since it was scanned is not served as the old version."""

from __future__ import annotations

import os

import trio

from gossip_backer.core.blocks import hash_bytes
from gossip_backer.core.record import FILE, IndexEntry
from gossip_backer.runtime.blockserver import BlockServer
from gossip_backer.wire.messages import BlockBatch, BlockRequest

BLOCK = 128 << 10


def _indexed(root, name: str, data: bytes) -> IndexEntry:
    path = root / name
    path.write_bytes(data)
    st = os.lstat(path)
    file_hash, size, blocks = hash_bytes(data, BLOCK)
    return IndexEntry(name, st.st_size, st.st_mtime_ns, st.st_ino, 0o644, FILE, file_hash, size,
                      blocks)


def _batch(entry: IndexEntry) -> BlockBatch:
    return BlockBatch(tuple(BlockRequest(i + 1, b.hash, entry.hash, i * BLOCK, BLOCK)
                            for i, b in enumerate(entry.blocks)))


def test_a_batch_is_served_while_the_file_is_as_scanned_and_missing_once_it_changed(tmp_path):
    data = os.urandom(4 * BLOCK)
    entry = _indexed(tmp_path, "big.bin", data)
    server = BlockServer(tmp_path, {"big.bin": entry})

    async def ask():
        return await server.answer(_batch(entry))

    answer = trio.run(ask)
    assert [b.data for b in answer.blocks] == [data[i:i + BLOCK] for i in range(0, len(data), BLOCK)]
    assert answer.missing == ()
    changed = bytearray(data)
    changed[BLOCK:BLOCK + 4] = b"edit"  # same size, new mtime: no longer the scanned version
    (tmp_path / "big.bin").write_bytes(changed)
    os.utime(tmp_path / "big.bin", ns=(entry.mtime_ns + 10**9, entry.mtime_ns + 10**9))
    answer = trio.run(ask)
    assert answer.blocks == () and answer.missing == (1, 2, 3, 4)
