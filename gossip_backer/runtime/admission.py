"""The node's gate: who may complete a handshake with us, the Hello we send, and the grants we
give to joining nodes that claim one of our invites.

The rules are protocol/session.py's (trusted keys, Hello, claim checks); this module feeds them
the node's state (members, the inviter we joined through, our invite keys, held in memory by
runtime/invites.py: the handshake asks on the loop) and carries out a grant: sign it, spread it,
answer the claim and close that link.
"""

from __future__ import annotations

from collections.abc import Callable

from gossip_backer.core.record import SignedUpdate
from gossip_backer.protocol import session
from gossip_backer.runtime.clock import Clock
from gossip_backer.runtime.invites import Invites
from gossip_backer.runtime.link import Link
from gossip_backer.runtime.state import NodeState
from gossip_backer.wire.messages import InviteClaim


class Admissions:
    """The gate of one node (see the module docstring)."""

    def __init__(self, state: NodeState, clock: Clock, invites: Invites,
                 bootstrap: dict[bytes, list[str]], addresses: Callable[[], list[str]],
                 spread: Callable[[list[SignedUpdate]], None]) -> None:
        self._state = state
        self._clock = clock
        self._invites = invites
        self._bootstrap = bootstrap
        self._addresses = addresses  # where we listen, as told to peers (runtime/dial.py)
        self._spread = spread

    def authorize(self, key: bytes) -> bool:
        """May `key` connect: a member, the inviter we joined through, or one of our invite keys
        (a used or expired one only hears why it is refused)."""
        return self.trusted(key) or self._invites.state(key, self._clock.wall()) is not None

    def trusted(self, key: bytes) -> bool:
        return session.trusted(self._state.metamap.membership.members, self._bootstrap, key)

    def admission(self) -> session.Admission:
        return session.Admission(self._state.name, self._addresses(), self._state.is_read_only(),
                                 self.trusted)

    async def grant_invite(self, link: Link, claim: InviteClaim) -> None:
        """The joining node authenticated with an invite key asks for its grant."""
        state, invite_key = self._state, link.peer
        session.check_claim(state.mesh_id, invite_key, claim)
        members = state.metamap.membership.members
        result, grant = session.answer_without_invite(claim, members), None
        if result is None:
            now = self._clock.wall()
            read_only = await self._invites.claim(invite_key, now)
            why = None if read_only is not None else self._invites.state(invite_key, now)
            result, grant = session.judge_claim(claim, read_only, why, members,
                                                state.metamap.clock)
        if grant is not None:
            self._spread([state.make(grant)])
        link.send(result)
        link.abort("invite used" if grant is not None else f"invite answered: {result.reason}")
