"""Who may stay on a connection once the Secret Handshake proved the peer's key, sans-IO.

Theory of operation. `PeerConnection` proves identities and the mesh secret; what the node then
decides lives here, once, for the daemon (runtime/node.py) and the simulator (testing/node.py):

- `trusted`: a member not removed, or the node we joined through while our grant is on its way.
- `Admission`: each end's first message. We send `hello()` as soon as the peer is proved; the
  peer's first message is judged by `first()`: a `Hello` in our protocol version from a trusted
  key admits the peer (`Admit`), an `InviteClaim` asks for a grant (`ClaimGrant`), anything else
  refuses it (`Reject`, with the `Refuse` to send first when the peer deserves to know why).
- `keep_old`: of two connections to one peer (both dialed at once), the one the greater key
  dialed stays; of two dialed by one end, the newer. Both ends agree without a word.
- `judge_claim`: the answer to an invite claim, given what the invite store said of the invite
  (claimed now, used, expired) and the membership: a `Grant` to publish, or why not.
- `next_retry`, `jittered`: the back-off between tries to reach a peer or the inviter.
- `CLAIM_TIMEOUT`: how long a joining node waits for the answer to its claim before it closes
  the connection and claims again (runtime/dial.py, testing/siminvite.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from gossip_backer.core.membership import Member
from gossip_backer.core.record import Grant
from gossip_backer.crypto.identity import verify
from gossip_backer.errors import RemoteError
from gossip_backer.wire.codec import pack
from gossip_backer.wire.messages import PROTOCOL_VERSION, Hello, InviteClaim, InviteResult, Refuse

NAME_LIMIT = 200  # characters of a peer's name kept in its grant
# The inviter answers a claim at once (a signature check, one store write, a signature). A claim
# link is never admitted, so no keepalive or dead timer watches it: without a limit, a claim
# sent as the inviter's machine lost power (TCP acknowledged it, or the segment was lost with the
# machine) waits for an answer for ever, and the joining node never gets in. Past this, the
# joining node closes the link and claims again after its back-off.
CLAIM_TIMEOUT = 30.0
RETRY_FIRST = 1.0  # seconds before dialing again after a link that worked, or the first failure
RETRY_CAP = 60.0
LESSER_DELAY = 2.0  # seconds the lesser key of a pair waits before its first dial


def first_dial_delay(me: bytes, peer: bytes) -> float:
    """How long after it starts a node first dials `peer`. Both ends dial; the lesser key waits,
    so that usually only the greater key's connection is made (the one `keep_old` would keep)."""
    return LESSER_DELAY if me < peer else 0.0


def next_retry(previous: float | None, first: float = RETRY_FIRST, cap: float = RETRY_CAP) -> float:
    """The back-off after one more failed try: doubling from `first` up to `cap`, so a peer that
    is away for a day costs a dial a minute, and one back in a second is found at once. (The
    simulator passes its own `first` and `cap`: a scenario may shorten them.)"""
    return min(cap, (first / 2 if previous is None else previous) * 2)


def jittered(delay: float, uniform: Callable[[float, float], float]) -> float:
    """Half to all of `delay`, so nodes that failed together do not all retry together."""
    return delay * uniform(0.5, 1.0)


def trusted(members: Mapping[bytes, Member], bootstrap: Iterable[bytes], key: bytes) -> bool:
    """May `key` hold a session: a member not removed, or a node we joined through (until the
    membership names it: then its row decides)."""
    member = members.get(key)
    if member is not None:
        return not member.revoked
    return key in bootstrap


def preferred(dialed_by_me: bool | None, me: bytes, peer: bytes) -> int:
    """Rank of a connection to `peer`: 2 dialed by the greater key, 1 roles unknown (a stream
    handed to `serve_stream`), 0 dialed by the lesser key. Both ends rank alike."""
    if dialed_by_me is None:
        return 1
    dialer = me if dialed_by_me else peer
    return 2 if dialer == max(me, peer) else 0


def keep_old(old_dialed_by_me: bool | None, new_dialed_by_me: bool | None, me: bytes,
             peer: bytes) -> bool:
    """A second connection to `peer` was admitted: does the one we hold stay (and the new one
    go)? Only when it ranks higher. Of two of one rank the newer wins: the same end dialed
    again, so the old one is most likely dead without a word (the peer's machine restarted)
    and would block the peer until the dead timer. Both ends judge alike."""
    return preferred(old_dialed_by_me, me, peer) > preferred(new_dialed_by_me, me, peer)


@dataclass(frozen=True, slots=True)
class Admit:
    hello: Hello


@dataclass(frozen=True, slots=True)
class ClaimGrant:
    claim: InviteClaim


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str  # for our log and the PeerRefused event
    reply: Refuse | None = None  # sent before closing, when the peer deserves to know


Verdict = Admit | ClaimGrant | Reject


class Admission:
    """One connection's first messages (see the module docstring)."""

    def __init__(self, name: str, listen: Iterable[str], read_only: bool,
                 trust: Callable[[bytes], bool], version: int = PROTOCOL_VERSION) -> None:
        self._hello = Hello(version, name, tuple(listen), read_only)
        self._trust = trust
        self.version = version

    def hello(self) -> Hello:
        return self._hello

    def first(self, peer: bytes, message: object) -> Verdict:
        """The peer's first message after the handshake."""
        if isinstance(message, InviteClaim):
            return ClaimGrant(message)
        if isinstance(message, Refuse):
            return Reject(f"peer refused: {message.reason}")
        if not isinstance(message, Hello):
            return Reject(f"expected Hello, got {type(message).__name__}")
        if message.version != self.version:
            return Reject(f"peer speaks protocol version {message.version}, this node speaks "
                          f"{self.version}",
                          Refuse(f"incompatible protocol version {message.version}; "
                                 f"this node speaks {self.version}"))
        if not self._trust(peer):
            return Reject("the peer is not a member of this mesh")
        return Admit(message)


def claim_bytes(mesh_id: str, invite_key: bytes, node: bytes) -> bytes:
    """What a joining node signs to claim an invite: the grant then names a key it controls."""
    return pack(["backer-invite-claim", mesh_id, invite_key, node])


def check_claim(mesh_id: str, invite_key: bytes, claim: InviteClaim) -> None:
    """Raise RemoteError unless `claim.proof` is the claimed node's signature (before the
    invite is spent: a forged claim must not use it up)."""
    if not verify(claim.node, claim_bytes(mesh_id, invite_key, claim.node), claim.proof):
        raise RemoteError("invite claim with a bad proof")


INVITE_REFUSALS = {"used": "this invite was already used", "expired": "this invite has expired"}


def answer_without_invite(claim: InviteClaim, members: Mapping[bytes, Member]) -> InviteResult | None:
    """The answer to a valid claim that needs no invite, so none is spent: a node already
    granted is welcome (its first answer was lost, say it crashed just after claiming: it must
    not be told 'already used' although it is a member), a removed one is refused. None: judge
    the claim by its invite (`judge_claim`)."""
    member = members.get(claim.node)
    if member is None:
        return None
    if member.revoked:
        return InviteResult(False, "this node was removed from the mesh")
    return InviteResult(True, "welcome back: this node is already a member")


def claim_settled(members: Mapping[bytes, Member], me: bytes) -> bool:
    """Is our pending invite moot? Our grant reached us by gossip (the inviter's answer was
    lost): a member claims no more."""
    member = members.get(me)
    return member is not None and not member.revoked


def judge_claim(claim: InviteClaim, read_only: bool | None, state: str | None,
                members: Mapping[bytes, Member], clock: int) -> tuple[InviteResult, Grant | None]:
    """The answer to a valid claim. `read_only`: the role of the invite the store just spent
    for it, None when it could not be spent; `state`: then why ('used', 'expired', None for
    unknown). A node removed from the mesh stays removed, whatever invite it holds."""
    if read_only is None:
        return InviteResult(False, INVITE_REFUSALS.get(state or "", "this invite is not valid")), None
    member = members.get(claim.node)
    if member is not None and member.revoked:
        return InviteResult(False, "this node was removed from the mesh"), None
    return (InviteResult(True, "welcome"),
            Grant(claim.node, claim.name[:NAME_LIMIT], read_only, clock + 1))
