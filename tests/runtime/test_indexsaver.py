"""The index saver (runtime/indexsaver.py) keeps no batch once it is saved: a first scan's batch
of 100,000 rows, held until the next write came, kept its ~4 MB table in the heap for good."""

from __future__ import annotations

import sys

import trio

from gossip_backer.core.record import FILE, IndexEntry
from gossip_backer.protocol.effects import IndexWrite
from gossip_backer.runtime.indexsaver import IndexSaver
from gossip_backer.runtime.state import NodeState


def test_a_saved_batch_is_not_kept(tmp_path):
    state = NodeState.init(tmp_path / "a", "alpha")

    async def main():
        saver = IndexSaver(state)
        row = IndexEntry(path="f.txt", size=1, mtime_ns=1, inode=1, mode=0o644, kind=FILE)
        held = sys.getrefcount(row)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(saver.run)
            saver.write(IndexWrite((row,), ()))
            with trio.fail_after(10):
                while state.repo.index_get("f.txt") is None:  # saved (no store thread: at once)
                    await trio.sleep(0.01)
            assert sys.getrefcount(row) == held, "the saved batch still holds the row"
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        state.close()
