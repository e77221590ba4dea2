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


def test_a_batch_opens_each_file_once_and_looks_at_each_folder_once(tmp_path, monkeypatch):
    """Every syscall of the serving hop is a GIL hand-off (~1 ms each while the sender's own scan
    holds the GIL): a batch's blocks of one file cost one open, and its folders one look each."""
    from gossip_backer.runtime import blockserver

    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    data = os.urandom(4 * BLOCK)
    entry = _indexed(tmp_path, "sub/deeper/big.bin", data)
    server = BlockServer(tmp_path, {entry.path: entry})
    opened, looked = [], []
    real_open, real_lstat = os.open, os.lstat
    monkeypatch.setattr(blockserver.os, "open", lambda p, *a, **k: opened.append(p) or
                        real_open(p, *a, **k))
    monkeypatch.setattr(blockserver.os, "lstat", lambda p, *a, **k: looked.append(p) or
                        real_lstat(p, *a, **k))

    async def ask():
        return await server.answer(_batch(entry))

    answer = trio.run(ask)
    assert b"".join(b.data for b in answer.blocks) == data
    assert opened == [str(tmp_path / "sub" / "deeper" / "big.bin")]
    assert sorted(looked) == [str(tmp_path / "sub"), str(tmp_path / "sub" / "deeper")]


def test_a_folder_swapped_for_a_link_or_a_file_for_a_fifo_is_not_served(tmp_path):
    (tmp_path / "sub").mkdir()
    data = os.urandom(2 * BLOCK)
    entry = _indexed(tmp_path, "sub/a.bin", data)
    server = BlockServer(tmp_path, {entry.path: entry})

    async def ask():
        with trio.fail_after(10):  # a fifo must not block the read
            return await server.answer(_batch(entry))

    os.rename(tmp_path / "sub", tmp_path / "elsewhere")  # the same file, through a link now
    os.symlink(tmp_path / "elsewhere", tmp_path / "sub")
    answer = trio.run(ask)
    assert answer.blocks == () and answer.missing == (1, 2)
    os.unlink(tmp_path / "sub")
    os.rename(tmp_path / "elsewhere", tmp_path / "sub")
    assert [b.data for b in trio.run(ask).blocks] == [data[:BLOCK], data[BLOCK:]]
    os.unlink(tmp_path / "sub" / "a.bin")
    os.mkfifo(tmp_path / "sub" / "a.bin")
    answer = trio.run(ask)
    assert answer.blocks == () and answer.missing == (1, 2)
