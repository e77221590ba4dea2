"""Membership through the MetaMap, with real Ed25519 signatures.

Every update here is made by `make_update` and checked by `Verifier(mesh_id)`, exactly as a node
does it. The founder is identity 0; A, B, C, R are other identities.

The contract (core/metamap.py): every correctly signed update of a known member is stored and
relayed; one from a read-only signer or numbered beyond a revocation's cutoff is VOID (kept, never
folded into the state); an unknown signer's is NOT_YET (not stored, offered again); a malformed
one FORBIDDEN; a forged one BAD_SIGNATURE. Validity is judged from the membership all nodes end up
agreeing on, so two nodes holding the same updates hold the same state.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gossip_backer.core.membership import INFINITE, Membership, Verdict
from gossip_backer.core.metamap import MetaMap, Outcome
from gossip_backer.core.record import FileRecord, Grant, LiveGlob, MemberInfo, Revoke, SignedUpdate
from gossip_backer.core.vv import VersionVector
from gossip_backer.crypto.identity import make_update
from gossip_backer.wire.codec import pack
from replicas import Mesh, Signer, held_updates, identity, make_record, state_of

APPLIED, HELD, DUPLICATE = Outcome.APPLIED, Outcome.HELD, Outcome.DUPLICATE
NOT_YET, FORBIDDEN, BAD = Outcome.NOT_YET, Outcome.FORBIDDEN, Outcome.BAD_SIGNATURE
VOID = Outcome.VOID  # stored and relayed, but void (read-only signer, beyond a cutoff)


@pytest.fixture
def F(mesh):
    return mesh.founder


@pytest.fixture
def A(mesh):
    return mesh.signer(1)


@pytest.fixture
def B(mesh):
    return mesh.signer(2)


@pytest.fixture
def C(mesh):
    return mesh.signer(3)


@pytest.fixture
def R(mesh):
    return mesh.signer(4)


def file_update(signer: Signer, path: str, n: int = 1, content: bytes = b"x", vv=None):
    vv = vv or VersionVector({signer.public: n})
    return signer.sign(make_record(path, vv, signer.public, content=content))


def apply_all(m: MetaMap, updates) -> list[Outcome]:
    return [m.apply(u) for u in updates]


def snapshot(m: MetaMap):
    return (m.digest(), held_updates(m), state_of(m), dict(m.membership.members), len(m))


def settle(m: MetaMap, updates, max_rounds: int | None = None) -> MetaMap:
    """Apply `updates` in this order, then offer all of them again until nothing changes (a peer
    re-offers what we did not store: NOT_YET and what a later grant makes valid)."""
    rounds = max_rounds or 6
    before = None
    for _ in range(rounds):
        apply_all(m, updates)
        now = snapshot(m)
        if now == before:
            return m
        before = now
    return m


def member(m: MetaMap, s: Signer):
    return m.membership.members.get(s.public)


# -- founder and grants -----------------------------------------------------------------------

def test_the_founder_is_a_read_write_member_by_definition(mesh, F):
    m = mesh.new_map()
    f = member(m, F)
    assert f is not None and not f.read_only and not f.revoked and f.cutoff == INFINITE
    assert m.apply(mesh.genesis) is APPLIED
    assert member(m, F).name == "founder"
    assert m.apply(mesh.genesis) is DUPLICATE
    assert m.digest() == {F.public: 1}


def test_the_founders_self_grant_cannot_be_made_by_anyone_else(mesh, F, A):
    m = mesh.new_map()
    m.apply(mesh.genesis)
    assert m.apply(A.grant(A)) is NOT_YET  # a stranger granting itself
    assert m.apply(A.sign(Grant(F.public, "me", False, 9))) is NOT_YET
    assert member(m, A) is None
    assert A.public not in m.digest()


def test_a_grant_by_the_founder_admits(mesh, F, A):
    m = mesh.new_map()
    assert apply_all(m, [mesh.genesis, F.grant(A, clock=2, name="a")]) == [APPLIED, APPLIED]
    a = member(m, A)
    assert a and not a.read_only and not a.revoked and a.name == "a"
    assert m.apply(file_update(A, "p")) is APPLIED
    assert m.membership.verdict(A.public, 99, make_record("q", VersionVector({A.public: 1}), A.public)) \
        is Verdict.OK


def test_a_grant_by_a_read_write_member_admits(mesh, F, A, B, C):
    m = mesh.new_map()
    assert apply_all(m, [mesh.genesis, F.grant(A, clock=2), A.grant(B, clock=3), B.grant(C, clock=4)]) \
        == [APPLIED] * 4
    assert all(member(m, s) and not member(m, s).read_only for s in (A, B, C))
    assert m.apply(file_update(C, "p")) is APPLIED


def test_a_grant_by_a_read_only_member_is_void(mesh, F, R, C):
    """Stored and relayed (every node keeps every correctly signed update of a known member),
    but it admits nobody."""
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(R, read_only=True, clock=2)])
    assert member(m, R).read_only
    members = dict(m.membership.members)
    g = R.grant(C, clock=3)
    assert m.apply(g) is VOID
    assert (g.origin, g.seq, g.sig) in held_updates(m)
    assert m.membership.members == members
    assert member(m, C) is None
    assert m.apply(file_update(C, "p")) is NOT_YET


def test_a_read_only_grant_makes_a_read_only_member(mesh, F, A, R):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(A, clock=2), A.grant(R, read_only=True, clock=3)])
    assert member(m, R).read_only and not member(m, R).revoked


def test_updates_from_read_only_members_are_not_applied(mesh, F, A, R):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(A, clock=2), F.grant(R, read_only=True, clock=3)])
    state, members = state_of(m), dict(m.membership.members)
    assert m.apply(file_update(R, "p")) is VOID
    assert m.apply(R.sign(LiveGlob("*.md", True, 3))) is VOID
    assert m.apply(R.revoke(A, cutoff=0, clock=3)) is VOID
    assert m.apply(R.grant(R, read_only=False, clock=9)) is VOID  # no self-promotion
    assert state_of(m) == state and m.files == {} and m.live_globs() == []
    assert m.membership.members == members
    assert m.digest()[R.public] == R.seq  # kept for relaying, but void
    assert m.apply(file_update(A, "p")) is APPLIED


def test_a_role_is_fixed_by_the_first_grant(mesh, F, R):
    """SPEC: "Updates made by read-only members are not applied by anyone." R writes p while
    read-only; a later grant does not change R's role (README: the first valid grant fixes it),
    so nothing R wrote while read-only is ever applied."""
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(R, read_only=True, clock=2)])
    assert m.apply(file_update(R, "p", content=b"written while read-only")) is VOID
    m.apply(F.grant(R, read_only=False, clock=3))
    assert member(m, R).read_only
    assert m.apply(file_update(R, "q")) is VOID
    assert "p" not in m.files and "q" not in m.files, "an update of a read-only member applied"


def test_a_read_only_member_publishes_its_own_info_only(mesh, F, A, R):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(A, clock=2), F.grant(R, read_only=True, clock=3)])
    assert m.apply(R.info("laptop", ("10.0.0.2:7440",), clock=4)) is APPLIED
    assert member(m, R).name == "laptop" and member(m, R).addresses == ("10.0.0.2:7440",)
    assert m.apply(R.sign(MemberInfo(A.public, "evil", ("6.6.6.6:1",), 5))) is VOID
    assert m.apply(A.sign(MemberInfo(R.public, "renamed", (), 6))) is VOID
    assert member(m, R).name == "laptop" and member(m, A).addresses == ()


def test_the_newest_member_info_wins(mesh, F, A):
    m = mesh.new_map()
    updates = [mesh.genesis, F.grant(A, clock=2), A.info("old", clock=3), A.info("new", clock=4)]
    apply_all(m, updates)
    assert member(m, A).name == "new"
    m2 = mesh.new_map()
    apply_all(m2, [updates[0], updates[1], updates[3], updates[2]])
    assert member(m2, A).name == "new"
    assert snapshot(m2) == snapshot(m)


def test_nobody_changes_the_founders_role(mesh, F, A):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(A, clock=2)])
    m.apply(A.grant(F, read_only=True, clock=50))
    m.apply(A.grant(F, read_only=True, clock=0))
    assert not member(m, F).read_only
    assert m.apply(file_update(F, "p")) is APPLIED


def test_a_members_role_comes_from_its_first_valid_grant(mesh, F, A, B):
    """Grants of one node by several members: the first in (clock, signer, seq) order counts,
    whatever the arrival order."""
    ups = [mesh.genesis, F.grant(A, clock=2), F.grant(B, clock=3)]
    b_ro = A.grant(B, read_only=True, clock=9)  # later: ignored
    m = settle(mesh.new_map(), ups + [b_ro])
    assert not member(m, B).read_only
    m2 = settle(mesh.new_map(), [b_ro] + ups[::-1])
    assert snapshot(m2) == snapshot(m)


def test_an_update_numbered_zero_or_below_is_forbidden(mesh, F):
    m = mesh.new_map()
    m.apply(mesh.genesis)
    before = snapshot(m)
    for seq in (0, -1):
        u = F.sign(make_record("p", VersionVector({F.public: 1}), F.public), seq=seq)
        assert m.apply(u) is FORBIDDEN
    assert snapshot(m) == before


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", ".backer/key", "a/../../b", "a\\b", "a//b",
                                  "./a", "a/", "c:x", "x/.backer-tmp-1", "a\x00b", "\u212b"])
def test_a_file_record_with_a_hostile_path_is_forbidden(mesh, F, A, path):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(A, clock=2)])
    before = snapshot(m)
    assert m.apply(file_update(A, path)) is FORBIDDEN
    assert snapshot(m) == before


# -- signatures -------------------------------------------------------------------------------

def _forgeries(mesh: Mesh, F: Signer, A: Signer, genuine: SignedUpdate):
    """(name, update) pairs: each claims to be A's update `genuine` (seq 1, path p)."""
    other_mesh = Mesh(founder=7)
    other_body = pack(["f", make_record("evil", VersionVector({A.public: 1}), A.public).to_plain()])
    evil_rec = make_record("evil", VersionVector({A.public: 1}), A.public)
    flipped = bytes([genuine.sig[0] ^ 1]) + genuine.sig[1:]
    return [
        ("zero-signature", replace(genuine, sig=b"\0" * 64)),
        ("empty-signature", replace(genuine, sig=b"")),
        ("short-signature", replace(genuine, sig=genuine.sig[:63])),
        ("flipped-signature-bit", replace(genuine, sig=flipped)),
        ("altered-body", replace(genuine, kept_body=other_body, payload=evil_rec)),
        ("one-byte-of-body", replace(genuine, kept_body=genuine.body[:-1] + bytes([genuine.body[-1] ^ 1]))),
        ("renumbered", replace(genuine, seq=2)),
        ("signed-for-another-mesh", make_update(A.identity, other_mesh.mesh_id, 1, genuine.payload)),
        ("signed-by-someone-else", replace(make_update(F.identity, mesh.mesh_id, 1, genuine.payload),
                                           origin=A.public)),
        ("others-signature", replace(genuine, sig=F.sign(genuine.payload, seq=1).sig)),
    ]


@pytest.mark.parametrize("which", range(10))
def test_forged_updates_are_bad_signatures_and_not_stored(mesh, F, A, which):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(A, clock=2)])
    genuine = file_update(A, "p")
    name, forged = _forgeries(mesh, F, A, genuine)[which]
    before = snapshot(m)
    checked = m._verify.checked
    assert m.apply(forged) is BAD, name
    assert m._verify.checked == checked + 1
    assert snapshot(m) == before, name
    # the genuine update with that number is still welcome afterwards
    assert m.apply(genuine) is APPLIED
    assert m.winner("p").hash == genuine.payload.hash


def test_forged_membership_updates_change_nothing(mesh, F, A, B):
    m = mesh.new_map()
    m.apply(mesh.genesis)
    real = F.grant(A, clock=2)
    assert m.apply(replace(real, sig=bytes(64))) is BAD
    assert member(m, A) is None
    forged_revoke = replace(make_update(A.identity, mesh.mesh_id, 2, Revoke(B.public, 0, 3)), origin=F.public)
    assert m.apply(forged_revoke) is BAD
    genesis_elsewhere = make_update(F.identity, Mesh(founder=0).mesh_id + "x", 1,
                                    Grant(F.public, "", False, 1))
    m2 = mesh.new_map()
    assert m2.apply(genesis_elsewhere) is BAD
    assert m2.digest() == {}


def test_every_stored_update_passed_the_verifier(mesh, F, A):
    m = mesh.new_map()
    updates = [mesh.genesis, F.grant(A, clock=2), file_update(A, "p"), file_update(A, "q")]
    apply_all(m, updates)
    assert m._verify.checked == 4
    apply_all(m, updates)  # duplicates cost no verification
    assert m._verify.checked == 4
    assert all(m._verify(u) for u in m.updates())


# -- unknown signers --------------------------------------------------------------------------

def test_an_unknown_signer_is_not_yet_then_ok_after_its_grant(mesh, F, A):
    m = mesh.new_map()
    m.apply(mesh.genesis)
    u = file_update(A, "p")
    assert m.apply(u) is NOT_YET
    assert A.public not in m.digest() and m.files == {} and len(m) == 1
    assert m.apply(u) is NOT_YET  # still, when offered again
    assert m.apply(F.grant(A, clock=2)) is APPLIED
    assert m.apply(u) is APPLIED
    assert m.winner("p") == u.payload


def test_an_unknown_signer_s_grants_wait_for_its_own_grant(mesh, F, A, B):
    m = mesh.new_map()
    m.apply(mesh.genesis)
    ab, fa, bu = A.grant(B, clock=3), F.grant(A, clock=2), file_update(B, "p")
    assert apply_all(m, [bu, ab, fa]) == [NOT_YET, NOT_YET, APPLIED]
    assert apply_all(m, [bu, ab]) == [NOT_YET, APPLIED]
    assert m.apply(bu) is APPLIED


# -- revocation -------------------------------------------------------------------------------

def _revocation_history(mesh, F, A):
    """F grants A; A writes p1, p2, p3 (seq 1..3); F revokes A with cutoff 2."""
    ups = [mesh.genesis, F.grant(A, clock=2)]
    writes = [file_update(A, f"p{i}") for i in (1, 2, 3)]
    revoke = F.revoke(A, cutoff=2, clock=5)
    return ups, writes, revoke


def test_revocation_voids_updates_above_the_cutoff_already_applied(mesh, F, A):
    ups, writes, revoke = _revocation_history(mesh, F, A)
    m = mesh.new_map()
    assert apply_all(m, ups + writes) == [APPLIED] * 5
    assert sorted(m.files) == ["p1", "p2", "p3"]
    assert m.apply(revoke) is APPLIED
    assert sorted(m.files) == ["p1", "p2"]  # p3 (seq 3 > cutoff 2) is void, folded away
    a = member(m, A)
    assert a.revoked and a.cutoff == 2
    assert m.apply(writes[2]) is DUPLICATE  # still held (void), so relays agree on digests
    assert m.apply(file_update(A, "p4")) is VOID
    assert sorted(m.files) == ["p1", "p2"]


def test_revocation_keeps_updates_at_or_below_the_cutoff_in_any_order(mesh, F, A):
    ups, writes, revoke = _revocation_history(mesh, F, A)
    early = mesh.new_map()
    assert apply_all(early, ups + [revoke] + writes) == [APPLIED] * 3 + [APPLIED, APPLIED, VOID]
    late = mesh.new_map()
    apply_all(late, ups + writes + [revoke])
    mid = mesh.new_map()
    apply_all(mid, ups + writes[:1] + [revoke] + writes[1:])
    assert snapshot(early) == snapshot(late) == snapshot(mid)
    assert sorted(early.files) == ["p1", "p2"]


def test_revocation_refolds_what_a_void_update_had_replaced(mesh, F, A):
    """F writes p; A overwrites it (seq 2); A is revoked with cutoff 1: F's version is back."""
    ups = [mesh.genesis, F.grant(A, clock=2)]
    fp = file_update(F, "p", content=b"founder's")
    a1 = file_update(A, "q")
    a2 = file_update(A, "p", vv=VersionVector({F.public: 1, A.public: 1}), content=b"A's")
    revoke = F.revoke(A, cutoff=1, clock=9)
    m = mesh.new_map()
    apply_all(m, ups + [fp, a1, a2])
    assert m.versions("p") == (a2.payload,)
    m.apply(revoke)
    assert m.versions("p") == (fp.payload,)
    assert m.winner("q") == a1.payload
    other = mesh.new_map()
    apply_all(other, ups + [revoke, a2, a1, fp])
    assert snapshot(other) == snapshot(m)


def test_a_version_superseded_by_a_void_one_is_hidden_in_any_order(mesh, F, A):
    """A writes p twice (seq 1, then seq 2 which replaces seq 1 in every log); A is revoked with
    cutoff 1. Nobody can keep seq 1 (compacted away, never relayed again), so the documented
    rule is: the void seq 2 still hides it, and the path falls back to other origins' versions.
    (Its cost: a change A made while trusted is rolled back too.)"""
    ups = [mesh.genesis, F.grant(A, clock=2)]
    v0 = file_update(F, "p", content=b"v0")
    v1 = file_update(A, "p", vv=VersionVector({F.public: 1, A.public: 1}), content=b"v1")
    v2 = file_update(A, "p", vv=VersionVector({F.public: 1, A.public: 2}), content=b"v2")
    revoke = F.revoke(A, cutoff=1, clock=9)
    orders = [ups + [v0, v1, v2, revoke], ups + [v0, v1, revoke, v2], ups + [revoke, v2, v1, v0],
              ups + [v2, revoke, v0]]
    maps = [settle(mesh.new_map(), o) for o in orders]
    for m in maps[1:]:
        assert snapshot(m) == snapshot(maps[0])
    assert maps[0].versions("p") == (v0.payload,)


def test_a_grant_superseded_by_a_void_one_is_hidden_in_any_order(mesh, F, A, B):
    """The same for membership: A grants B (seq 1), re-grants B read-only (seq 2, same key);
    A is revoked with cutoff 1: every node agrees on B."""
    ups = [mesh.genesis, F.grant(A, clock=2)]
    g1 = A.grant(B, clock=3)
    g2 = A.grant(B, read_only=True, clock=4)
    revoke = F.revoke(A, cutoff=1, clock=9)
    one = settle(mesh.new_map(), ups + [g1, g2, revoke])
    two = settle(mesh.new_map(), ups + [g1, revoke, g2])
    three = settle(mesh.new_map(), ups + [revoke, g2, g1])
    assert snapshot(one) == snapshot(two) == snapshot(three)


def _copied_history(mesh, F, A, B):
    """F grants A and B; A writes p (seq 1) and q (seq 2); B (honest) repeats both of A's
    versions as conflict copies (`source_seq`: the update of A's that carried each)."""
    ups = [mesh.genesis, F.grant(A, clock=2), F.grant(B, clock=3)]
    p, q = file_update(A, "p", content=b"early"), file_update(A, "q", content=b"late")
    copies = [B.sign(replace(u.payload, path=u.payload.path + ".copy", source_seq=u.seq))
              for u in (p, q)]
    return ups + [p, q] + copies


def test_a_copy_of_a_version_published_after_the_cutoff_is_void_with_it(mesh, F, A, B):
    """Churn seed 29128: a node that had seen A's log up to seq 1 removes A. A's q (seq 2) is
    void, and so is B's copy of it, though B signed it while A was trusted: the voided content
    leaves no copy behind. The copy of p (seq 1, within the cutoff) stays, as p does."""
    history = _copied_history(mesh, F, A, B)
    revoke = F.revoke(A, cutoff=1, clock=9)
    m = mesh.new_map()
    apply_all(m, history)
    assert sorted(m.files) == ["p", "p.copy", "q", "q.copy"]
    assert m.apply(revoke) is APPLIED
    assert sorted(m.files) == ["p", "p.copy"]
    early = mesh.new_map()  # the revocation first: the copy is void on arrival
    assert apply_all(early, [revoke] + history)[-2:] == [APPLIED, VOID]
    assert snapshot(early) == snapshot(m)
    assert m.membership.verdict(B.public, 2, history[-1].payload) is Verdict.FORBIDDEN
    assert m.membership.verdict(B.public, 1, history[-2].payload) is Verdict.OK


def test_a_copy_is_kept_when_its_origin_is_revoked_above_its_source(mesh, F, A, B):
    """A revocation that saw both of A's updates voids neither copy: no honest write is lost."""
    m = mesh.new_map()
    apply_all(m, _copied_history(mesh, F, A, B) + [F.revoke(A, cutoff=2, clock=9)])
    assert sorted(m.files) == ["p", "p.copy", "q", "q.copy"]


def test_a_revoked_node_cannot_be_granted_again(mesh, F, A, B):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(A, clock=2), F.grant(B, clock=3), file_update(A, "p"),
                  F.revoke(A, cutoff=1, clock=4)])
    m.apply(F.grant(A, clock=10))
    m.apply(B.grant(A, clock=11))
    a = member(m, A)
    assert a.revoked and a.cutoff == 1
    assert m.apply(file_update(A, "q")) is VOID
    assert m.apply(A.grant(B, read_only=True, clock=1)) is VOID
    assert "q" not in m.files and m.winner("p") is not None
    assert not member(m, B).read_only


def test_a_revoked_granters_grants_above_its_cutoff_are_void_with_their_grantees(mesh, F, A, B):
    """A's grant of B is numbered above A's cutoff, so B was never (validly) a member: its
    updates count nowhere, and every node ends holding the same updates, whatever the order."""
    ups = [mesh.genesis, F.grant(A, clock=2)]
    a1 = file_update(A, "a")
    ab = A.grant(B, clock=3)  # A seq 2 > cutoff 1
    b1 = file_update(B, "b")
    revoke = F.revoke(A, cutoff=1, clock=4)
    late = settle(mesh.new_map(), ups + [a1, ab, b1, revoke])
    assert member(late, B) is None
    assert sorted(late.files) == ["a"]
    early = settle(mesh.new_map(), ups + [revoke, a1, ab, b1])
    assert member(early, B) is None and sorted(early.files) == ["a"]
    assert early.digest() == late.digest(), (
        "B's update is held (void) where it came before the revocation, refused NOT_YET where "
        "it came after: the digests never agree and gossip offers it forever")
    assert snapshot(early) == snapshot(late)


def test_a_copy_of_a_version_by_a_node_whose_grant_turned_void_is_void(mesh, F, A, B, C):
    """B's grant was numbered above its granter's cutoff: B's own updates are forgotten, and an
    honest copy of B's version (by C, made before the revocation) goes with them, in any order;
    a copy naming a read-only origin counts no more than that origin's own update would."""
    ups = [mesh.genesis, F.grant(A, clock=2), F.grant(C, clock=3)]
    a1, ab, b1 = file_update(A, "a"), A.grant(B, clock=4), file_update(B, "b")
    copy = C.sign(replace(b1.payload, path="b.copy", source_seq=b1.seq))
    revoke = F.revoke(A, cutoff=1, clock=5)
    late = settle(mesh.new_map(), ups + [a1, ab, b1, copy])
    assert sorted(late.files) == ["a", "b", "b.copy"]
    settle(late, [revoke])
    early = settle(mesh.new_map(), ups + [revoke, copy, b1, ab, a1])
    assert sorted(late.files) == sorted(early.files) == ["a"]
    assert snapshot(early) == snapshot(late)
    m = settle(mesh.new_map(), [mesh.genesis, F.grant(C, clock=2), F.grant(B, read_only=True, clock=3)])
    assert m.apply(copy) is VOID


def test_a_revocation_by_a_read_only_member_is_void(mesh, F, A, R):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(A, clock=2), F.grant(R, read_only=True, clock=3)])
    assert m.apply(R.revoke(A, cutoff=0, clock=4)) is VOID
    assert not member(m, A).revoked
    assert m.apply(file_update(A, "p")) is APPLIED


def test_a_member_may_leave_by_revoking_itself(mesh, F, A):
    """A leaves: its own revocation is its update number 2 and covers it."""
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(A, clock=2), file_update(A, "p")])
    assert m.apply(A.revoke(A, cutoff=2, clock=3)) is APPLIED
    assert member(m, A).revoked and member(m, A).cutoff == 2
    assert m.winner("p") is not None
    assert m.apply(file_update(A, "q")) is VOID


def test_a_read_only_member_may_leave_too(mesh, F, R):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(R, read_only=True, clock=2)])
    assert m.apply(R.revoke(R, cutoff=1, clock=3)) is APPLIED
    assert member(m, R).revoked


def test_a_self_revocation_does_not_depend_on_unrelated_revocations(mesh, F, A, B, C):
    """A leaves with cutoff = its log so far (1), so the revocation (its seq 2) lies beyond its
    own cutoff. Whether that counts is a choice; it must not flip with the number of OTHER
    revocations in the mesh (F revoking B, then C)."""
    base = [mesh.genesis, F.grant(A, clock=2), F.grant(B, clock=3), F.grant(C, clock=4),
            file_update(A, "p"), A.revoke(A, cutoff=1, clock=5)]
    others = [F.revoke(B, cutoff=0, clock=6), F.revoke(C, cutoff=0, clock=7)]
    seen = []
    for k in range(3):
        m = settle(mesh.new_map(), base + others[:k])
        seen.append(member(m, A).revoked)
    assert len(set(seen)) == 1, f"A revoked with 0, 1, 2 other revocations: {seen}"


def test_the_lowest_cutoff_of_several_revocations_counts(mesh, F, A, B):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(A, clock=2), F.grant(B, clock=3)]
              + [file_update(A, f"p{i}") for i in range(1, 5)])
    apply_all(m, [F.revoke(A, cutoff=3, clock=5), B.revoke(A, cutoff=1, clock=6)])
    assert member(m, A).cutoff == 1
    assert sorted(m.files) == ["p1"]


def test_a_revocation_that_arrives_before_the_grant(mesh, F, A):
    """The revoked node is known as revoked before we learn it was ever granted; its updates
    at or below the cutoff still count once the grant arrives."""
    grant, revoke = F.grant(A, clock=2), F.revoke(A, cutoff=1, clock=3)
    a1, a2 = file_update(A, "p"), file_update(A, "q")
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, revoke])
    assert member(m, A).revoked
    settle(m, [a1, a2, grant])
    ref = mesh.new_map()
    apply_all(ref, [mesh.genesis, grant, a1, a2, revoke])
    assert snapshot(m) == snapshot(ref)
    assert sorted(m.files) == ["p"]


def test_mutual_revocations_give_one_result_whatever_the_order(mesh, F, A, B):
    """A and B, both read-write, revoke each other at the same moment (two admins racing)."""
    ups = [mesh.genesis, F.grant(A, clock=2), F.grant(B, clock=3)]
    a_revokes_b = A.revoke(B, cutoff=0, clock=4)
    b_revokes_a = B.revoke(A, cutoff=0, clock=4)
    one = settle(mesh.new_map(), ups + [a_revokes_b, b_revokes_a])
    two = settle(mesh.new_map(), ups + [b_revokes_a, a_revokes_b])
    assert one.membership.members == two.membership.members
    assert snapshot(one) == snapshot(two)


def test_mutual_revocations_do_not_depend_on_unrelated_revocations(mesh, F, A, B, C, R):
    """A and B revoke each other (each revocation lies beyond the other's cutoff, so each would
    void the other). Whatever the answer, it must not flip with the number of unrelated
    revocations (F revoking C, then R) held by the node."""
    ups = [mesh.genesis] + [F.grant(s, clock=2 + i) for i, s in enumerate((A, B, C, R))]
    mutual = [A.revoke(B, cutoff=0, clock=9), B.revoke(A, cutoff=0, clock=9)]
    others = [F.revoke(C, cutoff=0, clock=10), F.revoke(R, cutoff=0, clock=11)]
    seen = []
    for k in range(3):
        m = settle(mesh.new_map(), ups + mutual + others[:k])
        seen.append((member(m, A).revoked, member(m, B).revoked))
    assert len(set(seen)) == 1, f"(A revoked, B revoked) with 0, 1, 2 other revocations: {seen}"


def test_a_grantee_of_a_member_made_read_only_in_any_order(mesh, F, A, B, C):
    """F grants A and C read-write; A grants B; B writes p; C grants A read-only at an earlier
    clock than F did (so C's grant is A's first). Every order gives the same members and state."""
    ups = [mesh.genesis, F.grant(C, clock=1), F.grant(A, clock=5)]
    ca = C.grant(A, read_only=True, clock=2)
    ab = A.grant(B, clock=6)
    bp = file_update(B, "p")
    orders = [ups + [ab, bp, ca], ups + [ca, ab, bp], [bp, ab, ca] + ups[::-1]]
    maps = [settle(mesh.new_map(), o) for o in orders]
    assert member(maps[0], A).read_only
    assert member(maps[0], B) is None and maps[0].files == {}
    for m in maps[1:]:
        assert snapshot(m) == snapshot(maps[0])


def test_a_member_that_makes_itself_read_only(mesh, F, A, B):
    """A (read-write) grants itself read-only, and grants B. Whatever the order these arrive in,
    every node must end with the same members and updates."""
    fa = F.grant(A, clock=1)
    a_ro = A.grant(A, read_only=True, clock=2)
    ab = A.grant(B, clock=1)
    one = settle(mesh.new_map(), [mesh.genesis, fa, a_ro, ab])
    two = settle(mesh.new_map(), [mesh.genesis, fa, ab, a_ro])
    assert one.membership.members == two.membership.members
    assert snapshot(one) == snapshot(two)


def test_a_grant_cycle_settles_the_same_everywhere(mesh, F, A, B):
    """F grants A read-write (clock 3); A grants B (clock 1); B grants A read-only (clock 2),
    which would be A's first grant if B's grant counted, which needs A read-write... Such a
    cycle must still give one answer, whatever the order."""
    fa = F.grant(A, clock=3)
    ab = A.grant(B, clock=1)
    ba = B.grant(A, read_only=True, clock=2)
    orders = [[mesh.genesis, fa, ab, ba], [mesh.genesis, ba, ab, fa], [ba, ab, fa, mesh.genesis],
              [mesh.genesis, fa, ba, ab]]
    maps = [settle(mesh.new_map(), o) for o in orders]
    for m in maps[1:]:
        assert snapshot(m) == snapshot(maps[0])


# -- order independence (Hypothesis) ------------------------------------------------------------

N_SIGNERS = 3  # F = 0 (founder), A = 1, B = 2: few signers, so histories collide often


def _history(draw_ops, mesh: Mesh, with_revokes: bool):
    signers = [mesh.founder] + [mesh.signer(i) for i in range(1, N_SIGNERS)]
    updates = [mesh.genesis]
    file_counts: dict[tuple[int, str], int] = {}
    for op in draw_ops:
        kind, s, t, ro, cutoff, clock, path = op
        signer = signers[s]
        target = signers[t]
        if kind == "grant":
            updates.append(signer.grant(target, read_only=ro, clock=clock))
        elif kind == "revoke" and with_revokes:
            updates.append(signer.revoke(target, cutoff=cutoff, clock=clock))
        elif kind == "info":
            updates.append(signer.info(f"n{clock}", clock=clock))
        elif kind == "file":
            n = file_counts[(s, path)] = file_counts.get((s, path), 0) + 1
            updates.append(file_update(signer, path, n=n, content=b"%d" % n))
    return updates


ops = st.tuples(
    st.sampled_from(["grant", "revoke", "info", "file", "file"]),
    st.integers(0, N_SIGNERS - 1),  # signer
    st.integers(1, N_SIGNERS - 1),  # target (never the founder)
    st.booleans(),  # read_only
    st.integers(0, 3),  # cutoff
    st.integers(1, 4),  # clock (ties on purpose)
    st.sampled_from(["p", "q"]),
)
# 1500 examples find each known order bug (seen after 80 to 1450 examples, ~2 ms each); the
# explain phase (slow on these examples) is off, shrinking stays on.
membership_orders = settings(
    max_examples=1500, deadline=None, report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _check_order_independence(data, with_revokes):
    op_list = data.draw(st.lists(ops, max_size=10), label="ops")
    mesh = Mesh()
    updates = _history(op_list, mesh, with_revokes)
    seeds = data.draw(st.lists(st.integers(0, 2**32), min_size=1, max_size=2), label="shuffle seeds")
    orders = [updates, updates[::-1]]
    for seed in seeds:
        order = list(updates)
        random.Random(seed).shuffle(order)
        orders.append(order)
    maps = [settle(mesh.new_map(cached=True), order) for order in orders]
    ref = snapshot(maps[0])
    for i, m in enumerate(maps[1:], 1):
        assert m.membership.members == maps[0].membership.members, f"order {i}: members differ"
        assert snapshot(m) == ref, f"order {i}: state differs"
    for i, order in enumerate(orders):  # a reload: one apply_all, membership judged per pass
        reloaded = mesh.new_map(cached=True)
        reloaded.apply_all(order)
        assert snapshot(reloaded) == ref, f"apply_all of order {i}: state differs"


@membership_orders
@given(st.data())
def test_membership_without_revocations_is_the_same_whatever_the_arrival_order(data):
    _check_order_independence(data, with_revokes=False)


@membership_orders
@given(st.data())
def test_membership_with_revocations_is_the_same_whatever_the_arrival_order(data):
    _check_order_independence(data, with_revokes=True)


# -- Membership on its own (no signatures) --------------------------------------------------------

def test_rebuild_is_deterministic_for_a_set_in_any_order():
    f, a, b = (identity(i).public for i in range(3))
    ups = [(f, 1, Grant(f, "", False, 1)), (f, 2, Grant(a, "a", False, 2)),
           (a, 1, Grant(b, "b", True, 3)), (f, 3, Revoke(b, 1, 4)), (b, 1, MemberInfo(b, "bee", (), 5)),
           (b, 2, MemberInfo(b, "void", (), 6))]
    results = []
    for order in (ups, ups[::-1], ups[2:] + ups[:2]):
        ms = Membership(f)
        ms.rebuild(order)
        results.append(ms.members)
    assert results[0] == results[1] == results[2]
    assert results[0][b].revoked and results[0][b].cutoff == 1 and results[0][b].name == "bee"


def test_verdicts():
    f, a, r, x = (identity(i).public for i in range(4))
    ms = Membership(f)
    ms.rebuild([(f, 1, Grant(a, "", False, 1)), (f, 2, Grant(r, "", True, 2))])
    rec = FileRecord("p", "file", VersionVector({a: 1}), a)
    assert ms.verdict(a, 1, rec) is Verdict.OK
    assert ms.verdict(r, 1, rec) is Verdict.FORBIDDEN
    assert ms.verdict(x, 1, rec) is Verdict.NOT_YET
    assert ms.verdict(f, 5, Grant(f, "", False, 1)) is Verdict.OK
    assert ms.verdict(r, 1, MemberInfo(r, "", (), 1)) is Verdict.OK
    assert ms.verdict(r, 1, MemberInfo(a, "", (), 1)) is Verdict.FORBIDDEN
    assert ms.is_rw_at(a, 10**9) and not ms.is_rw_at(r, 1) and not ms.is_rw_at(x, 1)
