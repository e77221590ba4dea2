"""Invites in the simulated mesh: the joining node's claim crosses simnet as bytes and is judged
on arrival by protocol/session.py, as between daemons (runtime/dial.py `_run_claim` on the joining
side, runtime/node.py `_grant_invite` on the inviter's).

- The inviter's invite table (store.repo's `invites` rows: made, spent once, expired) is the
  daemon's own `core.invite.InviteTable`, held by the node's `SimStore`.
- `Claim` is the joining node's side: it dials the inviter authenticated by the invite key, sends
  its InviteClaim (its own key, signed over `session.claim_bytes`), waits for the InviteResult and
  tries again after a seeded back-off when the connection ends without one.
The inviter's side is `SimNode.accept_invite` and `SimNode.grant_invite` (testing/node.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gossip_backer.crypto.identity import Identity
from gossip_backer.protocol import session
from gossip_backer.testing.simnet import Connection, Endpoint
from gossip_backer.wire.messages import InviteClaim, InviteResult, decode, encode

if TYPE_CHECKING:
    from gossip_backer.testing.node import SimNode

__all__ = ["Claim"]


class Claim(Endpoint):
    """A joining node's claim of its invite (see the module docstring). `forge`: sign the claim
    with another key (a forged claim, for tests)."""

    def __init__(self, node: "SimNode", inviter: int, invite_key: Identity, *,
                 forge: bool = False) -> None:
        self.node = node
        self.inviter = inviter
        self.invite_key = invite_key
        self.forge = forge
        self.result: InviteResult | None = None
        self.tries = 0
        self._delay: float | None = None  # the back-off (session.next_retry)
        self._conn: Connection | None = None
        self._cancelled = False
        self._round = 0  # which start of the node's process the dials belong to

    @property
    def cluster(self):
        return self.node.cluster

    def start(self, delay: float = 0.0) -> None:
        round_ = self._round
        self.cluster.loop.call_later(delay, lambda: self._dial(round_))

    def resume(self) -> None:
        """The node's process started again with its invite not answered: it claims anew at
        once, as the daemon does at each start (runtime/dial.py). A dial or back-off of the
        dead process is forgotten: a machine that lost power heard no close of its connection,
        and waiting for one would never claim again."""
        if self.result is None and not self._cancelled:
            self._round += 1
            self._conn = None
            self._delay = None
            self.start()

    def cancel(self) -> None:
        """Try no more (the user gave up on this invite)."""
        self._cancelled = True

    def _dial(self, round_: int) -> None:
        if (self.result is not None or self.node.gone or self._cancelled
                or round_ != self._round):
            return
        if not self.node.alive:
            self._retry()  # a stopped node claims once it runs again
            return
        if session.claim_settled(self.node.metamap.membership.members, self.node.key):
            return  # our grant came by gossip: nothing to claim
        self.tries += 1
        inviter = self.cluster.nodes[self.inviter]
        key = self.invite_key.public
        self.cluster.net.dial(self.node.index, self.inviter, self,
                              lambda conn: inviter.accept_invite(conn, key),
                              self._established, lambda why: self._retry())

    def _established(self, conn: Connection) -> None:
        """The handshake proved the invite key: ask for the grant."""
        self._conn = conn
        mesh_id, me = self.cluster.mesh_id, self.node.identity
        signer = Identity.from_seed(bytes(32)) if self.forge else me
        proof = signer.sign(session.claim_bytes(mesh_id, self.invite_key.public, me.public))
        claim = InviteClaim(me.public, f"n{self.node.index}", proof)
        self.cluster.net.send(conn, self.node.index, encode(claim), "InviteClaim")
        self.cluster.loop.call_later(session.CLAIM_TIMEOUT, self._unanswered, conn)

    def _unanswered(self, conn: Connection) -> None:
        """No answer in `session.CLAIM_TIMEOUT` (the inviter's machine died with the claim on
        its way): close and claim again, as the daemon does (runtime/dial.py)."""
        if conn is not self._conn or self.result is not None or not self.node.alive:
            return
        self._conn = None
        self.cluster.net.close(conn, self.node.index,
                               f"no answer to the invite claim in {session.CLAIM_TIMEOUT:.0f} s")
        self._retry()

    def on_open(self, conn: Connection) -> None:  # pragma: no cover - we always dial
        pass

    def on_data(self, conn: Connection, data: bytes) -> None:
        if not self.node.alive:
            return
        message = decode(data)  # the inviter's Hello comes first: not our business
        if isinstance(message, InviteResult) and self.result is None:
            self.result = message
            self.node.invite_answered(message)
            self.cluster.net.close(conn, self.node.index, "invite answered")

    def on_close(self, conn: Connection, reason: str) -> None:
        if conn is self._conn:
            self._conn = None
            if self.result is None:
                self._retry()

    def _retry(self) -> None:
        if self.result is not None:
            return
        self._delay = session.next_retry(self._delay)
        self.start(session.jittered(self._delay, self.cluster.rng.uniform))
