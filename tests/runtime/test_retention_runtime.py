"""The retention policy applied to a real node's archive (real files, real SQLite)."""

from __future__ import annotations

import time

import trio

from gossip_backer import Node
from gossip_backer.core.blocks import hash_bytes
from gossip_backer.disk import versions

DAY = 86400.0


def test_old_revisions_are_dropped_and_their_bytes_freed(tmp_path):
    async def main():
        async with Node.open(tmp_path / "r", watch=False) as node:
            await node.folder.scanned.wait()
            now = (time.time() // DAY) * DAY + 0.5 * DAY  # noon UTC: 2.2 and 2.4 days before
            # it fall on one UTC day whatever the hour the test runs at (it failed after 00:00 UTC)
            repo, root = node.state.repo, node.state.root
            ages = [0.1 * DAY, 0.5 * DAY, 2.2 * DAY, 2.4 * DAY, 40 * DAY, 41 * DAY, 400 * DAY]
            hashes = []
            for i, age in enumerate(ages):
                data = f"version {i}".encode()
                h = hash_bytes(data)[0]
                src = tmp_path / f"v{i}"
                src.write_bytes(data)
                versions.archive(root, src, h)
                repo.add_revision("doc.txt", h, len(data), int((now - age) * 1e9), node.state.identity.public, now - age)
                hashes.append(h)
            dropped = node.folder.retention.apply(now)
            kept = {r.hash for r in repo.revisions("doc.txt")}
            # both within a day kept; of days 2.2/2.4 the newer; of 40/41 days: one a week -> one; 400 days: gone
            assert hashes[0] in kept and hashes[1] in kept
            assert hashes[2] in kept and hashes[3] not in kept
            assert hashes[6] not in kept
            assert dropped == len(ages) - len(kept)
            for h in hashes:
                assert (versions.open_version(root, h) is not None) == (h in kept)

    trio.run(main)
