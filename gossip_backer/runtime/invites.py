"""The invites this running node made, held in memory (core.invite.InviteTable), so that the
handshake's gate judges a stranger's key without reading the store on the trio loop.

Theory of operation. The table is read from the store once, off the loop, as the node opens,
and then kept in step with it:
- an invite this node makes (the web GUI; `backer invite`, which asks the running node over the
  control socket) is stored through the store thread, then added;
- a claim spends the invite in the store first (its guarded UPDATE decides which of two racing
  claims wins, and a failed write leaves the invite usable in both), then here;
- a key the table does not know asks for a reload in the background (`state`): an invite written
  into the store by another process (a `backer invite` that found no node running while this one
  was starting) is known by the time the joining node tries again (runtime/dial.py backs off).
A reload is merged in, never replacing (a read made before a claim was stored may arrive after
it: a use known here is kept), and reloads are RELOAD_GAP apart, so strangers knocking with
made-up keys cost a few small reads a second.
"""

from __future__ import annotations

import trio

from gossip_backer.core.invite import Invite, InviteTable
from gossip_backer.runtime.clock import Clock
from gossip_backer.runtime.state import NodeState

RELOAD_GAP = 0.25  # seconds; under a joining node's first retry (session.RETRY_FIRST, jittered)


class Invites:
    """The running node's invites (see the module docstring)."""

    def __init__(self, state: NodeState, clock: Clock) -> None:
        self._state = state
        self._clock = clock
        self._table = InviteTable()
        self._reload = trio.Event()

    async def load(self) -> None:
        """Read every invite of the store into the table (in the store thread)."""
        self._table.merge(await self._state.store_call(self._state.repo.invite_rows))

    async def run(self) -> None:
        """Reload whenever a key was not known, at most once per RELOAD_GAP."""
        while True:
            await self._reload.wait()
            self._reload = trio.Event()
            await self.load()
            await trio.sleep(RELOAD_GAP)

    def state(self, key: bytes, now: float) -> str | None:
        """'usable', 'used', 'expired', or None for a key not known (which asks for a reload)."""
        found = self._table.state(key, now)
        if found is None:
            self._reload.set()
        return found

    async def create(self, addresses: list[str], read_only: bool, seconds: float) -> Invite:
        """A new invite, stored (off the loop) and known to the gate."""
        now = self._clock.wall()
        invite, key = self._state.new_invite(addresses, read_only, seconds, now)
        await self._state.store_call(self._state.repo.add_invite, key, b"", read_only,
                                     invite.expires, now)
        self._table.create(key, read_only, invite.expires)
        return invite

    async def claim(self, key: bytes, now: float) -> bool | None:
        """Spend a usable invite: its role (read_only), or None when it cannot be spent."""
        if self._table.state(key, now) != "usable":
            return None
        row = await self._state.store_call(self._state.repo.claim_invite, key, now)
        self._table.claim(key, now)  # used now, whether this claim or a racing one spent it
        return None if row is None else row.read_only
