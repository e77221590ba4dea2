"""The revision archive's retention on a running node: at start and then hourly, the revisions
the policy does not keep (core/retention.py decides) are dropped from the store, and their bytes
from .backer/versions/ once no row needs them. Runs in the store's thread."""

from __future__ import annotations

import logging

import trio

from gossip_backer.core.retention import Policy, keep
from gossip_backer.disk import versions
from gossip_backer.runtime.clock import Clock
from gossip_backer.runtime.state import NodeState

log = logging.getLogger(__name__)
RETENTION_INTERVAL = 3600.0


class ArchiveRetention:
    """Applies `policy` to one node's revision archive (see the module docstring)."""

    def __init__(self, state: NodeState, clock: Clock, policy: Policy | None = None) -> None:
        self._state = state
        self._clock = clock
        self.policy = policy or Policy()

    async def run(self) -> None:
        while True:
            dropped = await self._state.store_call(self.apply, self._clock.wall())
            if dropped:
                log.info("retention: dropped %d archived versions", dropped)
            await trio.sleep(RETENTION_INTERVAL)

    def apply(self, now: float) -> int:
        """Drop the revisions the policy does not keep, and their bytes once no row needs them."""
        repo, dropped, freed = self._state.repo, 0, set()
        for path in repo.revision_paths():
            rows = repo.revisions(path)
            kept = keep([r.archived_at for r in rows], now, self.policy)
            for i, row in enumerate(rows):
                if i not in kept:
                    repo.delete_revision(row.id)
                    freed.add(row.hash)
                    dropped += 1
        for h in freed:
            if not repo.revision_hash_used(h):
                versions.remove_version(self._state.root, h)
        return dropped
