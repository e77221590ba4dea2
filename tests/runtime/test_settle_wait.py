"""The runtime's wait before it scans a watcher batch (Folder._settle_wait, deciding with
protocol.folder.settle_wait), on a real node and real files: a folder moved in whole, its files
older than the settle, is scanned at once; a save just made waits out the settle; a batch too
large to look at waits the whole settle, as every batch did before."""

from __future__ import annotations

import os
import time

import trio

from gossip_backer import Node
from gossip_backer.disk.watch import STEP_MS
from gossip_backer.protocol.folder import SETTLE
from gossip_backer.runtime.folder import SETTLE_LOOKS


def test_a_folder_moved_in_whole_waits_nothing_and_a_save_waits_the_settle(tmp_path):
    root = tmp_path / "root"
    longest = SETTLE - STEP_MS / 1000

    async def main():
        async with Node.open(root, name="alpha", watch=False) as node:
            hour_ago = time.time() - 3600
            (root / "moved").mkdir()
            (root / "moved" / "a.txt").write_bytes(b"old")
            for path in (root / "moved" / "a.txt", root / "moved"):
                os.utime(path, (hour_ago, hour_ago))
            assert await node.folder._settle_wait({"moved"}) == 0.0
            assert await node.folder._settle_wait({"gone.txt"}) == 0.0  # a deletion
            (root / "saved.txt").write_bytes(b"just now")
            wait = await node.folder._settle_wait({"moved", "saved.txt"})
            assert 0.0 < wait <= longest  # the youngest path decides
            many = {f"f{i}" for i in range(SETTLE_LOOKS + 1)}
            assert await node.folder._settle_wait(many) == longest  # not looked at

    trio.run(main)
