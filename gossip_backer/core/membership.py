"""Who belongs to the mesh, derived from the signed Grant / Revoke / MemberInfo updates.

Theory of operation: membership is not a register that updates overwrite in arrival order; it is
recomputed from the whole set of membership updates every node holds, so two nodes holding the
same updates agree on it whatever order they arrived in. The founder is a read-write member by
definition (its id is part of the mesh's identity). A grant counts when signed by a read-write
member; a revocation counts when signed by a read-write member, and voids the revoked node's
updates numbered above its cutoff (the revoker's view of that node's log when it revoked), so
changes the node made while still trusted stay valid everywhere (but a path it changed again
after the cutoff falls back to its other versions: only its newest update per path is kept).
A record repeating a node's version (a conflict copy, whoever signed it) is judged by the
update that carried that version (`FileRecord.source_seq`) as well, as if the node had signed
it.
Revocation is final. A member's role is fixed by its first valid grant.

Validity and revocation depend on each other, so the computation alternates grants and
revocations until it is stable (at most a fixed number of rounds), each round in a deterministic
order (sorted by clock, then signer, then sequence number): two nodes holding the same updates
always compute the same table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gossip_backer.core.record import FileRecord, Grant, LiveGlob, MemberInfo, Payload, Revoke
from gossip_backer.core.share import ShareCount

INFINITE = 1 << 62
PASSES = 8  # grant/revocation rounds; each round is deterministic, so is the bound


class Verdict(enum.Enum):
    OK = "ok"
    NOT_YET = "not_yet"  # the signer is not (yet) known as a member: retry when grants arrive
    FORBIDDEN = "forbidden"  # read-only signer, revoked beyond cutoff, or not entitled


@dataclass(frozen=True, slots=True)
class Member:
    node: bytes
    name: str
    read_only: bool
    addresses: tuple[str, ...]
    revoked: bool
    cutoff: int  # updates of this node numbered above this are void (INFINITE when not revoked)


Signed = tuple[bytes, int, Payload]  # (signer, seq, payload)


class Membership:
    """The member table, recomputed from membership updates by `rebuild`."""

    def __init__(self, founder: bytes) -> None:
        self.founder = founder
        self.members: dict[bytes, Member] = {
            founder: Member(founder, "", False, (), False, INFINITE)
        }

    def cutoff(self, node: bytes) -> int:
        m = self.members.get(node)
        return m.cutoff if m else INFINITE

    def is_rw_at(self, signer: bytes, seq: int) -> bool:
        m = self.members.get(signer)
        return m is not None and not m.read_only and seq <= m.cutoff

    def known(self, signer: bytes) -> bool:
        """Is `signer` in the table (granted, or revoked)? Only then are its updates kept."""
        return signer in self.members

    def verdict(self, signer: bytes, seq: int, payload: Payload) -> Verdict:
        """Does `signer`'s update number `seq` carrying `payload` count?"""
        m = self.members.get(signer)
        if isinstance(payload, Grant) and payload.node == self.founder == signer:
            return Verdict.OK  # the genesis grant
        if m is None:
            return Verdict.NOT_YET
        if seq > m.cutoff or _repeats_void(self, payload):
            return Verdict.FORBIDDEN
        if isinstance(payload, MemberInfo):
            return Verdict.OK if payload.node == signer else Verdict.FORBIDDEN
        if isinstance(payload, Revoke) and payload.node == signer:
            return Verdict.OK  # a member may leave on its own, read-only or not
        if isinstance(payload, ShareCount):
            return Verdict.OK  # a read-only node serving links counts its own downloads
        return Verdict.FORBIDDEN if m.read_only else Verdict.OK

    def rebuild(self, updates: list[Signed]) -> None:
        """Recompute the table from every membership update held (see the module docstring)."""
        grants = sorted(
            ((p.clock, s, q, p) for s, q, p in updates if isinstance(p, Grant)),
            key=lambda t: (t[0], t[1], t[2]),
        )
        revokes = sorted(
            ((p.clock, s, q, p) for s, q, p in updates if isinstance(p, Revoke)),
            key=lambda t: (t[0], t[1], t[2]),
        )
        infos = [(s, q, p) for s, q, p in updates if isinstance(p, MemberInfo)]
        events = sorted(grants + revokes, key=lambda t: (t[0], t[1], t[2]))
        cutoffs: dict[bytes, int] = {}
        table: dict[bytes, Grant] = {}
        for _ in range(PASSES):  # a fixed bound: the result is a function of the set alone
            table, new_cutoffs = self._sweep(events, cutoffs)
            if new_cutoffs == cutoffs:
                break
            cutoffs = new_cutoffs
        self.members = self._assemble(table, cutoffs, infos)

    def _sweep(self, events: list, known_cutoffs: dict[bytes, int]) -> tuple[dict, dict]:
        """One pass over grants and revocations in (clock, signer, seq) order; Lamport clocks
        make that order follow causality (a member is granted before it grants or revokes).
        A grant counts when its signer holds a read-write grant counted before it and signed it
        within its cutoff, and its node has no counted grant yet (the first grant fixes the
        role). A revocation counts under the same signer rule (a member may always revoke
        itself). `known_cutoffs` (the previous pass) catches a signer revoked later in the order
        with a cutoff below what it signed."""
        table: dict[bytes, Grant] = {self.founder: Grant(self.founder, "", False, 0)}
        cutoffs: dict[bytes, int] = {}

        def may_sign(signer: bytes, seq: int) -> bool:
            limit = min(cutoffs.get(signer, INFINITE), known_cutoffs.get(signer, INFINITE))
            return signer in table and seq <= limit

        for _clock, signer, seq, item in events:
            if not may_sign(signer, seq):
                continue
            if isinstance(item, Revoke):
                if table[signer].read_only and item.node != signer:
                    continue
                cutoffs[item.node] = min(cutoffs.get(item.node, INFINITE), item.cutoff)
            elif item.node == self.founder:
                if signer == self.founder:
                    table[self.founder] = Grant(self.founder, item.name, False, item.clock)
            elif not table[signer].read_only and item.node not in table:
                table[item.node] = item
        return table, cutoffs

    def _assemble(self, table: dict, cutoffs: dict, infos: list) -> dict[bytes, Member]:
        latest: dict[bytes, MemberInfo] = {}
        for signer, seq, info in infos:
            if signer != info.node or signer not in table or seq > cutoffs.get(signer, INFINITE):
                continue
            cur = latest.get(signer)
            if cur is None or cur.clock <= info.clock:
                latest[signer] = info
        members = {}
        for node, grant in table.items():
            info = latest.get(node)
            name = info.name if info and info.name else grant.name
            addresses = info.addresses if info else ()
            cutoff = cutoffs.get(node, INFINITE)
            members[node] = Member(node, name, grant.read_only, addresses, node in cutoffs, cutoff)
        for node, cutoff in cutoffs.items():  # revoked before any grant we know of
            if node not in members:
                members[node] = Member(node, "", True, (), True, cutoff)
        return members


def _repeats_void(membership: Membership, payload: Payload) -> bool:
    """Does `payload` repeat a version (a conflict copy) that would be void signed by its
    origin: published after its revocation's cutoff, or by a node that is no read-write member
    (read-only, or its grant turned void)? The repeat is void with it, whoever signed it: else
    a copy made by an honest node before the revocation would keep a voided write on every
    disk."""
    return (isinstance(payload, FileRecord) and payload.source_seq > 0
            and not membership.is_rw_at(payload.origin, payload.source_seq))


def is_membership(payload: Payload) -> bool:
    return isinstance(payload, (Grant, Revoke, MemberInfo))


def is_data(payload: Payload) -> bool:
    return isinstance(payload, (FileRecord, LiveGlob))
