"""Our own updates are signed off the trio loop (runtime/signing.py, NodeState.make_many_off_loop,
Folder._publishing): the loop stays responsive while a first scan's versions are signed, their
sequence numbers stay in order with a change made meanwhile, and a stop in the middle loses
nothing (the scan is redone at the next start)."""

from __future__ import annotations

import os
import sys

import trio

from gossip_backer import Node
from gossip_backer.core.record import FILE, FileRecord
from gossip_backer.core.vv import VersionVector
from gossip_backer.protocol.effects import IndexWrite, Publish
from gossip_backer.runtime import folder as folder_module
from gossip_backer.runtime.state import NodeState

FILES = 10_000


def _records(me: bytes, n: int) -> tuple[FileRecord, ...]:
    """Versions of ours as a first scan makes them (vv and content made up: nothing reads it)."""
    return tuple(FileRecord(path=f"d{i % 100:02d}/f{i}.txt", kind=FILE, vv=VersionVector({me: 1}),
                            origin=me, size=100 + i, mtime_ns=1_700_000_000_000_000_000 + i,
                            mode=0o644, hash=i.to_bytes(32, "big")) for i in range(n))


async def _ticker(latencies: list[float], stop: trio.Event) -> None:
    """How late a task that asks to wake every millisecond is woken."""
    while not stop.is_set():
        t0 = trio.current_time()
        await trio.sleep(0.001)
        latencies.append(trio.current_time() - t0 - 0.001)


def test_loop_stays_responsive_while_10000_updates_are_signed(tmp_path):
    root = NodeState.init(tmp_path / "a", "alpha").root  # (closed below: Node.open reopens it)

    async def main():
        async with Node.open(root, watch=False) as node:
            await node.folder.scanned.wait()
            me = node.state.identity.public
            before = node.state.metamap.seq_of(me)
            spread: list[int] = []
            node.driver.local = lambda updates, local=node.driver.local: (
                spread.extend(u.seq for u in updates), local(updates))
            latencies: list[float] = []
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_ticker, latencies, stop)
                await trio.sleep(0.05)
                node.folder.execute([Publish(_records(me, FILES), user=True)])
                with trio.fail_after(120):
                    while len(spread) < FILES:
                        await trio.sleep(0.01)
                stop.set()
            assert spread == list(range(before + 1, before + FILES + 1))
            print(f"longest wake-up delay {max(latencies):.3f} s")
            assert max(latencies) < 1.0, f"the loop stalled {max(latencies):.3f} s"

    trio.run(main)


def test_a_change_made_while_a_batch_is_signed_numbers_after_it(tmp_path, monkeypatch):
    monkeypatch.setattr(folder_module, "PUBLISH_BATCH", 500)
    root = NodeState.init(tmp_path / "a", "alpha").root

    async def main():
        async with Node.open(root, watch=False) as node:
            await node.folder.scanned.wait()
            state = node.state
            me = state.identity.public
            before = state.metamap.seq_of(me)
            spread: list[int] = []
            node.driver.local = lambda updates, local=node.driver.local: (
                spread.extend(u.seq for u in updates), local(updates))
            node.folder.execute([Publish(_records(me, 3000), user=True)])
            with trio.fail_after(60):
                while state.metamap.seq_of(me) == before:  # until the first batch is in
                    await trio.sleep(0)
            assert state.metamap.seq_of(me) < before + 3000, "no batch left to race with"
            node.set_live("*.md", True)  # a local change, made on the loop meanwhile
            racing = state.metamap.seq_of(me)
            with trio.fail_after(120):
                while state.metamap.seq_of(me) < before + 3001:
                    await trio.sleep(0.01)
            assert spread == list(range(before + 1, before + 3002))
            assert before + 1 < racing < before + 3001 and "*.md" in state.metamap.live_globs()
            files = [p for p in state.metamap.files if p.startswith("d")]
            assert len(files) == 3000

    trio.run(main)
    state = NodeState.open(root)  # what was stored: every number once, in order
    try:
        me = state.identity.public
        seqs = sorted(u.seq for u in state.repo.each_update() if u.origin == me)
        assert seqs == list(range(1, len(seqs) + 1))
        assert len([p for p in state.metamap.files if p.startswith("d")]) == 3000
    finally:
        state.close()


def test_a_stop_while_signing_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(folder_module, "PUBLISH_BATCH", 100)
    root = NodeState.init(tmp_path / "a", "alpha").root
    n = 2000
    for i in range(n):
        d = root / f"d{i % 20:02d}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}.txt").write_bytes(b"x" * (i % 50))
    old = 1_700_000_000
    for p in root.rglob("f*.txt"):
        os.utime(p, (old, old))  # settled: published at once

    async def first_run() -> int:
        async with Node.open(root, watch=False) as node:
            state = node.state
            me = state.identity.public
            with trio.fail_after(120):
                start = state.metamap.seq_of(me)
                while state.metamap.seq_of(me) < start + 300:
                    await trio.sleep(0.001)
            stopped_at = state.metamap.seq_of(me) - start
        return stopped_at

    stopped_at = trio.run(first_run)
    assert 300 <= stopped_at < n + 20, "the stop came after the whole publish: nothing tested"

    async def second_run() -> None:
        async with Node.open(root, watch=False) as node:
            with trio.fail_after(120):
                while not node.folder.in_sync():
                    await trio.sleep(0.01)
            files = {p for p in node.state.metamap.files if p.endswith(".txt")}
            assert len(files) == n
            assert all(not node.state.metamap.winner(p).deleted for p in files)

    trio.run(second_run)


def test_a_published_scan_keeps_none_of_its_effects(tmp_path):
    """Once published, a scan's records and index rows are the map's and the index's: the
    publishing task kept the last tuple of each (100,000 pointers each after a first scan)
    while it waited for the next scan."""
    root = NodeState.init(tmp_path / "a", "alpha").root

    async def main():
        async with Node.open(root, watch=False) as node:
            await node.folder.scanned.wait()
            records = _records(node.state.identity.public, 2000)
            write = IndexWrite((), ("gone.txt",))
            held = sys.getrefcount(records), sys.getrefcount(write)
            node.folder.execute([Publish(records, user=True), write])
            with trio.fail_after(60):
                await node.folder.all_published()
            assert (sys.getrefcount(records), sys.getrefcount(write)) == held

    trio.run(main)
