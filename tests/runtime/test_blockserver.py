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
    return BlockBatch(tuple(BlockRequest(i + 1, b.hash, entry.hash, i * BLOCK,
                                         min(BLOCK, entry.size - i * BLOCK))
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


def _hops(monkeypatch) -> list:
    """The worker-thread hops the block server makes (each counted, then run)."""
    from gossip_backer.runtime import blockserver

    hops = []
    real = trio.to_thread.run_sync
    monkeypatch.setattr(blockserver.trio.to_thread, "run_sync",
                        lambda fn, *a, **k: hops.append(fn) or real(fn, *a, **k))
    return hops


def test_a_batch_the_page_cache_holds_is_read_on_the_loop_without_a_worker_hop(tmp_path,
                                                                                monkeypatch):
    """While the sender scans, its scan thread holds the GIL most of the time and a worker hop
    waited ~4-6 ms to start and ~3-5 ms to get back: blocks the page cache holds (just written
    here) are read on the loop. A short last block (the file's end) is no reason to wait."""
    data = os.urandom(3 * BLOCK + 1000)
    entry = _indexed(tmp_path, "f.bin", data)
    server = BlockServer(tmp_path, {"f.bin": entry})
    hops = _hops(monkeypatch)
    answer = trio.run(server.answer, _batch(entry))
    assert b"".join(b.data for b in answer.blocks) == data and answer.missing == ()
    assert hops == []


def test_blocks_the_page_cache_lacks_are_read_in_a_worker_thread(tmp_path, monkeypatch):
    """A read that would wait for the disk (EAGAIN, or fewer bytes than the file holds there)
    sends that block and the rest of the batch to a worker thread, through the same opened
    files; the blocks read on the loop before it are kept."""
    from gossip_backer.runtime import blockserver

    data = os.urandom(4 * BLOCK)
    entry = _indexed(tmp_path, "f.bin", data)
    server = BlockServer(tmp_path, {"f.bin": entry})
    hops, real = _hops(monkeypatch), os.preadv
    for cold in ("eagain", "short"):
        hops.clear()
        calls = []

        def preadv(fd, buffers, offset, flags, cold=cold):
            calls.append(offset)
            if offset == 2 * BLOCK:  # not in the page cache
                if cold == "eagain":
                    raise BlockingIOError(11, "would block")
                return real(fd, [memoryview(buffers[0])[:100]], offset, flags)
            return real(fd, buffers, offset, flags)

        monkeypatch.setattr(blockserver.os, "preadv", preadv)
        answer = trio.run(server.answer, _batch(entry))
        assert [b.data for b in answer.blocks] == [data[i:i + BLOCK]
                                                   for i in range(0, len(data), BLOCK)]
        assert len(hops) == 1 and calls == [0, BLOCK, 2 * BLOCK]
