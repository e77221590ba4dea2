"""One batch of this node's own updates, encoded and signed in a worker thread.

Signing is CPU work (encoding each payload, an Ed25519 signature: ~0.25 ms an update here); a
first scan of 100,000 files signs as many. Done on the trio loop it stalled the node for seconds.
A batch is numbered when it is made (its updates take the sequence numbers after the map's
newest of ours) and signed in a thread; the loop applies, stores and spreads it afterwards, in
order (runtime/state.py `NodeState.make_many_off_loop`). PyNaCl's signing releases the GIL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from gossip_backer.core.record import Payload, SignedUpdate
from gossip_backer.crypto.identity import Identity, make_update


class SigningBatch:
    """`payloads` as our updates numbered `first`, `first + 1`, ...; `then` spreads them once
    they are applied and stored."""

    def __init__(self, first: int, payloads: list[Payload],
                 then: Callable[[list[SignedUpdate]], None]) -> None:
        self.first = first
        self.payloads = payloads
        self.then = then
        self.updates: list[SignedUpdate] = []
        self.error: BaseException | None = None
        self.signed = threading.Event()
        self._taken = threading.Lock()  # held by whoever signs it: the worker, or the loop

    def sign(self, identity: Identity, mesh_id: str) -> None:
        """(worker thread, or the loop when it cannot wait: the worker may not have begun)
        Encode and sign every payload, once; `signed` is set in any case."""
        if not self._taken.acquire(blocking=False):
            return  # signed, or being signed, by the other side
        try:
            first = self.first
            self.updates = [make_update(identity, mesh_id, first + i, p)
                            for i, p in enumerate(self.payloads)]
        except BaseException as exc:  # handed to whoever commits the batch, on the loop
            self.error = exc
        finally:
            self.signed.set()


__all__ = ["SigningBatch"]
