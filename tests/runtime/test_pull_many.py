"""Pulling many small files: what the puller's shortcuts for them must not break.

The puller keeps its queue sorted as it changes, the block index follows index writes instead of
being rebuilt, and index rows are saved behind, in batches. These tests hold the behaviour a user
relies on: everything arrives, a clean stop leaves the index saved, a lost index row costs a
re-hash and never a new version, and a stale block mapping is never used."""

from __future__ import annotations

import os
import random
from pathlib import Path

import trio
import trio.testing

from gossip_backer import Node
from tests.runtime.conftest import joined
from gossip_backer.core.blocks import strong_hash
from gossip_backer.core.record import FILE
from gossip_backer.runtime.state import NodeState

FILES = 240


def _fill(root: Path, n: int, seed: int = 7) -> dict[str, bytes]:
    rng, out = random.Random(seed), {}
    for i in range(n):
        rel = f"d{i % 12:02d}/f{i:04d}.bin"
        data = rng.randbytes(rng.randrange(1, 5000))
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        out[rel] = data
    return out


async def _sync(a: Node, b: Node, timeout: float = 60) -> None:
    left, right = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.serve_stream, left)
        nursery.start_soon(b.serve_stream, right)
        with trio.fail_after(timeout):
            await a.wait_connected()
            while True:
                await b.wait_in_sync()
                if b.status()["files"] == FILES:
                    break
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()


def _mirror_once(root_a: Path, root_b: Path) -> None:
    """Run both nodes until b holds every file, then stop them cleanly."""
    async def main():
        async with Node.open(root_a, watch=False) as a, Node.open(root_b, watch=False) as b:
            await _sync(a, b)

    trio.run(main)


def _updates_by(root: Path) -> tuple[int, bytes]:
    state = NodeState.open(root)
    try:
        return state.repo.count_updates(), state.identity.public
    finally:
        state.close()


def test_many_small_files_arrive_and_a_clean_stop_saves_the_index(pair):
    root_a, root_b = pair
    files = _fill(root_a, FILES)
    _mirror_once(root_a, root_b)
    for rel, data in files.items():
        assert (root_b / rel).read_bytes() == data
    state = NodeState.open(root_b)
    try:
        saved = {e.path: e for e in state.repo.index_all() if e.kind == FILE}
    finally:
        state.close()
    assert set(saved) == set(files)
    for rel, data in files.items():
        st = os.lstat(root_b / rel)
        assert saved[rel].hash == strong_hash(data) and saved[rel].mtime_ns == st.st_mtime_ns


def test_lost_index_rows_cost_a_rehash_not_a_new_version(pair):
    """A crash before the index saver ran loses rows; the next start must hash those files,
    find the mesh's version, and publish nothing."""
    root_a, root_b = pair
    files = _fill(root_a, FILES)
    _mirror_once(root_a, root_b)
    state = NodeState.open(root_b)
    try:
        lost = [e.path for e in state.repo.index_all()][: FILES // 2]
        state.repo.index_write([], lost)  # what a kill -9 before the save leaves
        count_before = state.repo.count_updates()
    finally:
        state.close()

    async def again():
        async with Node.open(root_b, watch=False) as b:
            with trio.fail_after(30):
                await b.folder.scanned.wait()
                while not (set(files) <= set(b.folder.index) and b.folder.in_sync()):
                    await trio.sleep(0.05)

    trio.run(again)
    count_after, _ = _updates_by(root_b)
    assert count_after == count_before, "a re-hashed file was published as a new version"
    for rel, data in files.items():
        assert (root_b / rel).read_bytes() == data


def test_block_index_follows_changes_and_never_serves_a_stale_mapping(tmp_path):
    root = tmp_path / "solo"
    NodeState.init(root, "solo").close()
    for name, byte in (("a.bin", b"A"), ("b.bin", b"B")):
        (root / name).write_bytes(byte * 5000)
        os.utime(root / name, (1e9, 1e9))  # not "just written": no settling delay

    async def main():
        async with Node.open(root, watch=False) as node:
            with trio.fail_after(20):
                await node.folder.scanned.wait()
            server = node.folder.server
            old_a = node.folder.index["a.bin"]
            server.ready()
            assert server.find_block(old_a.blocks[0].hash) == ("a.bin", 0)
            assert server.find_file(old_a.hash) == "a.bin"

            (root / "a.bin").write_bytes(b"C" * 6000)  # the user overwrites it
            os.utime(root / "a.bin", (2e9, 2e9))
            await node.folder.scan_some({"a.bin"}, settle=False)
            new_a = node.folder.index["a.bin"]
            assert new_a.hash != old_a.hash
            server.ready()
            # the new content is found at once, the old one no longer
            assert server.find_block(new_a.blocks[0].hash) == ("a.bin", 0)
            assert server.find_file(new_a.hash) == "a.bin"
            assert server.find_block(old_a.blocks[0].hash) is None
            assert server.find_file(old_a.hash) is None
            assert not node.folder.holds(old_a.hash)  # gone from disk, never archived

            (root / "b.bin").unlink()
            await node.folder.scan_some({"b.bin"}, settle=False)
            server.ready()
            assert server.find_file(strong_hash(b"B" * 5000)) is None

    trio.run(main)


def test_a_moved_file_recut_in_other_blocks_is_copied_locally(pair):
    """A file's block size depends on its history (it keeps the one it had while it grows), so
    a copy of it at a new path, the original then deleted, is cut in bigger blocks when it is
    hashed afresh (a rename keeps the entry as it was: test_scan.py). The receiver must still
    find the content in its own copy, by content hash, and fetch nothing."""
    root_a, root_b = pair
    big = root_a / "data" / "big.bin"
    big.parent.mkdir()
    middle = random.Random(5).randbytes(4096)

    def sparse(path: Path) -> None:  # at the 128 KiB / 256 KiB threshold
        with open(path, "wb") as f:
            f.truncate(256 << 20)
            f.seek(100 << 20)
            f.write(middle)
    sparse(big)

    async def main():
        async with joined(root_a, root_b, watch=False) as (a, b):
            await _until_has(a, b, "data/big.bin", 256 << 20)
            with open(big, "ab") as f:
                f.write(b"x" * 100)  # grows past the threshold, keeps 128 KiB blocks
            await a.folder.scan_some({"data/big.bin"}, settle=False)
            await _until_has(a, b, "data/big.bin", (256 << 20) + 100)
            assert b.folder.index["data/big.bin"].block_size == 128 << 10

            before = _net(b)
            moved = root_a / "data" / "moved.bin"
            sparse(moved)  # the same bytes in a new file (a copy), the original deleted
            with open(moved, "ab") as f:
                f.write(b"x" * 100)
            big.unlink()
            await a.folder.scan_some({"data/big.bin", "data/moved.bin"}, settle=False)
            await _until_has(a, b, "data/moved.bin", (256 << 20) + 100)
            assert a.folder.index["data/moved.bin"].block_size == 256 << 10  # cut anew
            assert _net(b) - before < 256 << 10, "the renamed content crossed the wire"
            assert "data/big.bin" not in b.folder.index

    trio.run(main)
    assert (root_b / "data" / "moved.bin").stat().st_size == (256 << 20) + 100


def test_an_edit_right_after_a_file_is_placed_is_still_seen(pair):
    """The watcher passes over the events of the files the puller placed (their stat is the
    one placed), not over a user's edit made the moment a file arrived: it reaches the other
    node, and nothing else is published by the receiver."""
    from gossip_backer.events import FileUpdated

    root_a, root_b = pair
    files = _fill(root_a, 60)
    edited = b"edited on b the moment it arrived\n"

    async def main():
        async with joined(root_a, root_b) as (a, b):
            with trio.fail_after(60):
                async for event in b.events():
                    if isinstance(event, FileUpdated) and event.path == "d05/f0005.bin":
                        (root_b / event.path).write_bytes(edited)
                        break
                while (root_a / "d05/f0005.bin").read_bytes() != edited:
                    await trio.sleep(0.05)
                while b.status()["files"] < 60 or not b.status()["in_sync"]:
                    await trio.sleep(0.05)

    trio.run(main)
    _, me = _updates_by(root_b)
    state = NodeState.open(root_b)
    try:
        mine = [p for p in state.metamap.files if state.metamap.winner(p).origin == me]
    finally:
        state.close()
    assert mine == ["d05/f0005.bin"]
    for rel, data in files.items():
        if rel != "d05/f0005.bin":
            assert (root_b / rel).read_bytes() == data


def test_small_files_blocks_are_verified_without_a_worker_hop(pair, monkeypatch):
    """Blocks of small files (kept in memory until they are finished) are hashed on the loop: a
    worker hop per BlockBatchData cost more in thread switches than BLAKE3 costs for its ~1 MiB.
    A bad block is still refused (tests/fault): only where the hashing runs changed."""
    from gossip_backer.runtime import puller

    root_a, root_b = pair
    rng, files = random.Random(3), {}
    for i in range(FILES):  # 48-128 KiB each: every BlockBatchData is well over 64 KiB
        rel = f"d{i % 6:02d}/f{i:04d}.bin"
        files[rel] = rng.randbytes(rng.randrange(48 << 10, 128 << 10))
        (root_a / rel).parent.mkdir(parents=True, exist_ok=True)
        (root_a / rel).write_bytes(files[rel])
    hops: list[str] = []
    real_disk = puller.Puller._disk

    async def counting_disk(self, fn, *args):
        hops.append(getattr(fn, "__name__", ""))
        return await real_disk(self, fn, *args)

    monkeypatch.setattr(puller.Puller, "_disk", counting_disk)
    _mirror_once(root_a, root_b)
    for rel, data in files.items():
        assert (root_b / rel).read_bytes() == data
    assert hops, "the pull ran no disk work at all"
    assert "_verify_and_write" not in hops


def _net(node: Node) -> int:
    n = node.status()["net"]
    return n["bytes_in"] + n["bytes_out"]


async def _until_has(a: Node, b: Node, path: str, size: int) -> None:
    with trio.fail_after(120):
        while True:
            e = b.folder.index.get(path)
            if e is not None and e.size == size and b.in_sync() and a.in_sync():
                return
            await trio.sleep(0.05)


def _count_block_copies(monkeypatch) -> list[str]:
    """The sources `Puller._copy_from` (the block-by-block copy) was called with."""
    from gossip_backer.runtime.puller import Puller

    calls, original = [], Puller._copy_from

    def counted(self, source, tmp, rec, step):
        calls.append(Path(source).name)
        return original(self, source, tmp, rec, step)
    monkeypatch.setattr(Puller, "_copy_from", counted)
    return calls


def test_a_renamed_file_is_copied_whole_in_one_pass(pair, monkeypatch):
    """A file renamed on one node is rebuilt on the other from its own copy, read once and
    checked by its content hash (`reuse.Copy.whole`), not block by block; nothing crosses the
    wire but the metadata, and the bytes are the renamed file's."""
    root_a, root_b = pair
    data = random.Random(41).randbytes(24 << 20)
    (root_a / "v").mkdir()
    (root_a / "v" / "film.bin").write_bytes(data)
    copies = _count_block_copies(monkeypatch)

    async def main():
        async with joined(root_a, root_b, watch=False) as (a, b):
            await a.folder.scan_some({"v/film.bin"}, settle=False)
            await _until_has(a, b, "v/film.bin", len(data))
            before = _net(b)
            (root_a / "v" / "film.bin").rename(root_a / "v" / "renamed.bin")
            await a.folder.scan_some({"v/film.bin", "v/renamed.bin"}, settle=False)
            await _until_has(a, b, "v/renamed.bin", len(data))
            assert _net(b) - before < 128 << 10, "the renamed content crossed the wire"

    trio.run(main)
    assert (root_b / "v" / "renamed.bin").read_bytes() == data
    assert not (root_b / "v" / "film.bin").exists()
    assert copies == [], "copied block by block"


def test_a_local_copy_changed_since_its_scan_is_used_block_by_block(pair, monkeypatch):
    """The whole copy checks the content hash: a local file that changed behind the index's
    back (here in one block, not scanned again) fails it, and its blocks are then copied one
    by one, each checked; only the changed one is fetched."""
    root_a, root_b = pair
    data = random.Random(43).randbytes(24 << 20)
    (root_a / "x.bin").write_bytes(data)
    copies = _count_block_copies(monkeypatch)

    async def main():
        async with joined(root_a, root_b, watch=False) as (a, b):
            await a.folder.scan_some({"x.bin"}, settle=False)
            await _until_has(a, b, "x.bin", len(data))
            block = b.folder.index["x.bin"].block_size
            with open(root_b / "x.bin", "r+b") as f:  # behind the index's back
                f.seek(5 * block + 10)
                f.write(b"changed on b, not scanned")
            before = _net(b)
            (root_a / "y.bin").write_bytes(data)
            await a.folder.scan_some({"y.bin"}, settle=False)
            await _until_has(a, b, "y.bin", len(data))
            moved = _net(b) - before
            assert block <= moved < block + (128 << 10), moved

    trio.run(main)
    assert (root_b / "y.bin").read_bytes() == data
    assert "x.bin" in copies, "the changed copy was not used block by block"
