"""Write-behind saving of the folder's index (path -> what the disk holds) to the store.

The index only caches what the disk holds, so a row lost in a crash costs a re-hash of that file
at the next start (its content then matches the winner: no new version), never data. One commit
per written file would put an fsync on the loop for every tiny file: rows wait INDEX_SAVE_DELAY
to be saved together, in the store's thread, and a batch that fails is tried again.
"""

from __future__ import annotations

import logging

import trio

from gossip_backer.core.record import IndexEntry
from gossip_backer.errors import StoreError
from gossip_backer.protocol.effects import IndexWrite
from gossip_backer.runtime.state import NodeState

log = logging.getLogger(__name__)
INDEX_SAVE_DELAY = 0.05  # seconds index rows wait to be saved together
INDEX_RETRY = 5.0


class IndexSaver:
    """The index rows not yet in the store, and the task that saves them."""

    def __init__(self, state: NodeState) -> None:
        self._state = state
        self._unsaved: dict[str, IndexEntry | None] = {}  # path -> row (None: drop it)
        self._wake = trio.Event()

    def write(self, write: IndexWrite) -> None:
        for e in write.puts:
            self._unsaved[e.path] = e
        for p in write.drops:
            self._unsaved[p] = None
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await trio.sleep(INDEX_SAVE_DELAY)  # gather what the next moments write
            if not await self._save_unsaved():
                await trio.sleep(INDEX_RETRY)
                self._wake.set()

    async def _save_unsaved(self) -> bool:
        """Save the rows waiting, as one batch: False if the store failed (they wait again).
        The batch is not kept once saved: held until the next write came (a first scan's
        100,000 rows), its table stayed in the heap for good."""
        batch, self._unsaved = self._unsaved, {}
        try:
            with trio.CancelScope(shield=True):  # a batch taken is a batch written
                await self._state.store_call(self._save, batch)
        except StoreError as exc:
            log.warning("saving the index failed (%s); retrying", exc)
            for path, row in batch.items():
                self._unsaved.setdefault(path, row)
            return False
        return True

    def save_later(self) -> None:
        """(at a clean stop) Hand what is not saved yet to the store, which state.close() waits
        for."""
        batch, self._unsaved = self._unsaved, {}
        if batch:
            self._state.store_later(self._save, batch)  # in order

    def _save(self, batch: dict[str, IndexEntry | None]) -> None:
        self._state.repo.index_write([e for e in batch.values() if e is not None],
                                     [p for p, e in batch.items() if e is None])
