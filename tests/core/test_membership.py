"""Membership through the MetaMap, with real Ed25519 signatures.

Every update here is made by `make_update` and checked by `Verifier(mesh_id)`, exactly as a node
does it. The founder is identity 0; A, B, C, R are other identities.
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


def test_a_grant_by_a_read_only_member_is_ignored(mesh, F, R, C):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(R, read_only=True, clock=2)])
    assert member(m, R).read_only
    before = snapshot(m)
    assert m.apply(R.grant(C, clock=3)) is FORBIDDEN
    assert member(m, C) is None
    assert snapshot(m) == before  # not stored, not relayed
    assert m.apply(file_update(C, "p")) is NOT_YET


def test_a_read_only_grant_makes_a_read_only_member(mesh, F, A, R):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(A, clock=2), A.grant(R, read_only=True, clock=3)])
    assert member(m, R).read_only and not member(m, R).revoked


def test_file_updates_from_read_only_members_are_forbidden(mesh, F, R):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(R, read_only=True, clock=2)])
    before = snapshot(m)
    assert m.apply(file_update(R, "p")) is FORBIDDEN
    assert m.apply(R.sign(LiveGlob("*.md", True, 3))) is FORBIDDEN
    assert m.apply(R.revoke(F, cutoff=0, clock=3)) is FORBIDDEN
    assert snapshot(m) == before
    assert R.public not in m.digest() and m.files == {}


def test_a_read_only_member_publishes_its_own_info_only(mesh, F, A, R):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(A, clock=2), F.grant(R, read_only=True, clock=3)])
    assert m.apply(R.info("laptop", ("10.0.0.2:7440",), clock=4)) is APPLIED
    assert member(m, R).name == "laptop" and member(m, R).addresses == ("10.0.0.2:7440",)
    assert m.apply(R.sign(MemberInfo(A.public, "evil", ("6.6.6.6:1",), 5))) is FORBIDDEN
    assert m.apply(A.sign(MemberInfo(R.public, "renamed", (), 6))) is FORBIDDEN
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
    assert not member(m, F).read_only
    assert m.apply(file_update(F, "p")) is APPLIED


def test_a_later_grant_changes_the_role(mesh, F, A):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(A, read_only=True, clock=2)])
    assert m.apply(file_update(A, "p")) is FORBIDDEN
    m.apply(F.grant(A, read_only=False, clock=3))
    assert not member(m, A).read_only
    assert m.apply(file_update(A, "p")) is APPLIED


def test_an_update_numbered_zero_or_below_is_forbidden(mesh, F):
    m = mesh.new_map()
    m.apply(mesh.genesis)
    for seq in (0, -1):
        u = F.sign(make_record("p", VersionVector({F.public: 1}), F.public), seq=seq)
        assert m.apply(u) is FORBIDDEN
    assert m.files == {}


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
        ("altered-body", replace(genuine, body=other_body, payload=evil_rec)),
        ("one-byte-of-body", replace(genuine, body=genuine.body[:-1] + bytes([genuine.body[-1] ^ 1]))),
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
    assert m.digest()[A.public] == 2
    assert writes[2].seq not in {u.seq for u in m.updates() if u.origin == A.public}
    a = member(m, A)
    assert a.revoked and a.cutoff == 2
    assert m.apply(writes[2]) is FORBIDDEN  # offered again: refused, not stored
    assert m.apply(file_update(A, "p4")) is FORBIDDEN
    assert m.digest()[A.public] == 2


def test_revocation_keeps_updates_at_or_below_the_cutoff_in_any_order(mesh, F, A):
    ups, writes, revoke = _revocation_history(mesh, F, A)
    early = mesh.new_map()
    assert apply_all(early, ups + [revoke] + writes) == [APPLIED] * 3 + [APPLIED, APPLIED, FORBIDDEN]
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


def test_a_version_superseded_by_a_void_one_survives_the_revocation(mesh, F, A):
    """A writes p twice (seq 1, then seq 2 which replaces it in the log); A is revoked with
    cutoff 1. Seq 1 was made while A was trusted: it must stay, whatever the arrival order."""
    ups = [mesh.genesis, F.grant(A, clock=2)]
    v1 = file_update(A, "p", n=1, content=b"v1")
    v2 = file_update(A, "p", n=2, content=b"v2")
    revoke = F.revoke(A, cutoff=1, clock=9)
    in_order = mesh.new_map()
    apply_all(in_order, ups + [v1, v2, revoke])
    revoke_first = mesh.new_map()
    apply_all(revoke_first, ups + [v1, revoke, v2])
    assert revoke_first.versions("p") == (v1.payload,)
    assert in_order.versions("p") == (v1.payload,), "A's seq 1 (<= cutoff) was lost"
    assert in_order.digest() == revoke_first.digest()


def test_a_grant_superseded_by_a_void_one_survives_the_revocation(mesh, F, A, B):
    """The same for membership: A grants B (seq 1), re-grants B read-only (seq 2, same key);
    A is revoked with cutoff 1. B must stay a read-write member everywhere."""
    ups = [mesh.genesis, F.grant(A, clock=2)]
    g1 = A.grant(B, clock=3)
    g2 = A.grant(B, read_only=True, clock=4)
    revoke = F.revoke(A, cutoff=1, clock=9)
    in_order = mesh.new_map()
    apply_all(in_order, ups + [g1, g2, revoke])
    revoke_first = mesh.new_map()
    apply_all(revoke_first, ups + [g1, revoke, g2])
    assert member(revoke_first, B) is not None and not member(revoke_first, B).read_only
    assert member(in_order, B) == member(revoke_first, B), "B's grant (A seq 1 <= cutoff) was lost"


def test_a_revoked_node_cannot_be_granted_again(mesh, F, A, B):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(A, clock=2), F.grant(B, clock=3), file_update(A, "p"),
                  F.revoke(A, cutoff=1, clock=4)])
    assert m.apply(F.grant(A, clock=10)) is APPLIED
    assert m.apply(B.grant(A, clock=11)) is APPLIED
    a = member(m, A)
    assert a.revoked and a.cutoff == 1
    assert m.apply(file_update(A, "q")) is FORBIDDEN
    assert m.apply(A.grant(B, clock=12)) is FORBIDDEN
    assert "q" not in m.files and m.winner("p") is not None


def test_grants_by_a_revoked_node_above_its_cutoff_are_void_with_their_grantees(mesh, F, A, B):
    ups = [mesh.genesis, F.grant(A, clock=2)]
    a1 = file_update(A, "a")
    ab = A.grant(B, clock=3)  # A seq 2 > cutoff 1
    b1 = file_update(B, "b")
    revoke = F.revoke(A, cutoff=1, clock=4)
    late = mesh.new_map()
    assert apply_all(late, ups + [a1, ab, b1]) == [APPLIED] * 5
    late.apply(revoke)
    assert member(late, B) is None
    assert sorted(late.files) == ["a"]
    assert B.public not in late.digest()
    early = mesh.new_map()
    assert apply_all(early, ups + [revoke, a1, ab, b1]) == [APPLIED] * 4 + [FORBIDDEN, NOT_YET]
    assert snapshot(early) == snapshot(late)


def test_a_revocation_by_a_read_only_member_is_ignored(mesh, F, A, R):
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(A, clock=2), F.grant(R, read_only=True, clock=3)])
    assert m.apply(R.revoke(A, cutoff=0, clock=4)) is FORBIDDEN
    assert not member(m, A).revoked
    assert m.apply(file_update(A, "p")) is APPLIED


def test_a_member_may_revoke_itself(mesh, F, A):
    """A leaves: its own revocation is its update number 2, so the cutoff must cover it."""
    m = mesh.new_map()
    apply_all(m, [mesh.genesis, F.grant(A, clock=2), file_update(A, "p")])
    assert m.apply(A.revoke(A, cutoff=2, clock=3)) is APPLIED
    assert member(m, A).revoked and member(m, A).cutoff == 2
    assert m.winner("p") is not None
    assert m.apply(file_update(A, "q")) is FORBIDDEN


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
    ups = [mesh.genesis]
    grant, revoke = F.grant(A, clock=2), F.revoke(A, cutoff=1, clock=3)
    a1, a2 = file_update(A, "p"), file_update(A, "q")
    m = mesh.new_map()
    apply_all(m, ups + [revoke])
    assert member(m, A).revoked
    settle(m, [a1, a2, grant])
    ref = mesh.new_map()
    apply_all(ref, ups + [grant, a1, a2, revoke])
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


def test_a_grantee_of_a_downgraded_member_leaves_with_its_updates(mesh, F, A, B, C):
    """F grants A and C read-write; A grants B; B writes p; C then re-grants A read-only
    (a later clock). A's grant of B no longer counts, so B is no member and its update is void:
    on every node, whatever the order."""
    ups = [mesh.genesis, F.grant(A, clock=2), F.grant(C, clock=3)]
    ab = A.grant(B, clock=4)
    bp = file_update(B, "p")
    ca = C.grant(A, read_only=True, clock=5)
    late = settle(mesh.new_map(), ups + [ab, bp, ca])
    early = settle(mesh.new_map(), ups + [ca, ab, bp])
    assert member(early, B) is None and early.files == {}
    assert member(late, B) is None
    assert late.files == {}, "B (no longer a member) still has its file in the state"
    assert snapshot(late) == snapshot(early)


def test_a_member_that_makes_itself_read_only(mesh, F, A, B):
    """A (read-write) re-grants itself read-only (clock 2), and grants B (its seq 2, clock 1).
    Whatever the order these arrive in, every node must end with the same members and updates,
    and an update reported APPLIED must be held."""
    fa = F.grant(A, clock=1)
    a_ro = A.grant(A, read_only=True, clock=2)
    ab = A.grant(B, clock=1)
    alone = mesh.new_map()
    apply_all(alone, [mesh.genesis, fa])
    assert alone.apply(a_ro) is APPLIED
    assert (a_ro.origin, a_ro.seq, a_ro.sig) in held_updates(alone), "APPLIED but not stored"
    one = settle(mesh.new_map(), [mesh.genesis, fa, a_ro, ab])
    two = settle(mesh.new_map(), [mesh.genesis, fa, ab, a_ro])
    assert one.membership.members == two.membership.members
    assert snapshot(one) == snapshot(two)


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
