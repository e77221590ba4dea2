"""Admission of a proved peer (protocol/session.py): what the daemon and the simulator both decide
once the handshake is done. Real keys, real signatures, real messages."""

from __future__ import annotations

import pytest

from gossip_backer.core.membership import INFINITE, Member
from gossip_backer.crypto.identity import Identity
from gossip_backer.errors import RemoteError
from gossip_backer.protocol import session
from gossip_backer.wire.messages import PROTOCOL_VERSION, Digest, Hello, InviteClaim, Refuse

A, B = sorted([Identity.generate().public, Identity.generate().public])  # A < B


def member(key: bytes, *, revoked: bool = False) -> Member:
    return Member(key, "x", False, (), revoked, 0 if revoked else INFINITE)


def test_a_trusted_peer_in_our_version_is_admitted_anything_else_refused_with_why() -> None:
    admission = session.Admission("me", ["127.0.0.1:7440"], False, lambda key: key == A)
    assert admission.hello() == Hello(PROTOCOL_VERSION, "me", ("127.0.0.1:7440",), False)
    hello = Hello(PROTOCOL_VERSION, "peer", (), False)
    assert admission.first(A, hello) == session.Admit(hello)
    assert "not a member" in admission.first(B, hello).reason
    older = admission.first(A, Hello(PROTOCOL_VERSION + 1, "peer", ()))
    assert isinstance(older, session.Reject) and isinstance(older.reply, Refuse)
    assert "incompatible protocol version" in older.reply.reason  # the peer learns why
    assert "expected Hello" in admission.first(A, Digest({}, True)).reason
    assert admission.first(A, Refuse("removed")).reason == "peer refused: removed"
    claim = InviteClaim(B, "new", b"sig")
    assert admission.first(B, claim) == session.ClaimGrant(claim)


def test_trust_is_membership_or_the_inviter_until_the_membership_names_it() -> None:
    assert session.trusted({}, [A], A) and not session.trusted({}, [A], B)
    members = {A: member(A, revoked=True)}
    assert not session.trusted(members, [A], A)  # removed: the bootstrap does not save it


def test_of_two_connections_the_greater_dialer_s_stays_and_of_one_dialer_the_newer() -> None:
    # both ends judge alike: at A the connection A dialed is "dialed by me", at B "by the peer"
    assert session.keep_old(False, True, A, B) and session.keep_old(True, False, B, A)
    assert not session.keep_old(True, False, A, B) and not session.keep_old(False, True, B, A)
    for dialed in (True, False, None):  # the same end dialed again: the old one is likely dead
        assert not session.keep_old(dialed, dialed, A, B)


def test_an_invite_claim_needs_the_claimed_key_s_signature_and_a_live_invite() -> None:
    joiner, invite_key = Identity.generate(), Identity.generate().public
    proof = joiner.sign(session.claim_bytes("mesh", invite_key, joiner.public))
    claim = InviteClaim(joiner.public, "laptop" * 50, proof)
    session.check_claim("mesh", invite_key, claim)
    with pytest.raises(RemoteError):
        session.check_claim("another mesh", invite_key, claim)
    result, grant = session.judge_claim(claim, True, None, {}, clock=7)
    assert result.accepted and grant.node == joiner.public and grant.read_only and grant.clock == 8
    assert len(grant.name) == session.NAME_LIMIT
    result, grant = session.judge_claim(claim, None, "used", {}, 7)
    assert (result.accepted, result.reason, grant) == (False, "this invite was already used", None)
    result, grant = session.judge_claim(claim, None, "expired", {}, 7)
    assert (result.accepted, result.reason, grant) == (False, "this invite has expired", None)
    removed = {joiner.public: member(joiner.public, revoked=True)}
    result, grant = session.judge_claim(claim, False, None, removed, 7)
    assert grant is None and "removed" in result.reason


def test_an_invite_is_usable_once_and_until_it_expires() -> None:
    """The state the inviter's store and the simulator's invite table both name
    (core.invite.invite_state): the claim spends only a usable invite."""
    from gossip_backer.core.invite import invite_state

    assert invite_state(None, 100.0, 99.0) == "usable"
    assert invite_state(None, 100.0, 100.0) == "expired"
    assert invite_state(50.0, 100.0, 60.0) == "used"
    assert invite_state(50.0, 100.0, 160.0) == "used"


def test_a_claim_by_a_member_needs_no_invite_and_a_member_claims_no_more() -> None:
    """A joining node whose answer was lost (it crashed just after claiming) claims again: it
    is welcome without spending an invite; once its grant reached it, it stops claiming."""
    joiner = Identity.generate()
    claim = InviteClaim(joiner.public, "laptop", b"")
    assert session.answer_without_invite(claim, {}) is None  # a stranger: judge by the invite
    granted = {joiner.public: member(joiner.public)}
    result = session.answer_without_invite(claim, granted)
    assert result.accepted and "already a member" in result.reason
    removed = {joiner.public: member(joiner.public, revoked=True)}
    result = session.answer_without_invite(claim, removed)
    assert not result.accepted and "removed" in result.reason
    assert not session.claim_settled({}, joiner.public)
    assert session.claim_settled(granted, joiner.public)
    assert not session.claim_settled(removed, joiner.public)


def test_retry_back_off_doubles_from_one_second_to_a_minute_with_jitter():
    delays, delay = [], None
    for _ in range(9):
        delay = session.next_retry(delay)
        delays.append(delay)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert session.jittered(8.0, lambda lo, hi: lo) == 4.0
    assert session.jittered(8.0, lambda lo, hi: hi) == 8.0


def test_the_lesser_key_waits_before_its_first_dial() -> None:
    """Both ends dial; the greater key at once, the lesser after LESSER_DELAY, so that usually
    the connection keep_old would keep is the only one made (daemon and simulator alike)."""
    low, high = bytes(32), b"\x01" * 32
    assert session.first_dial_delay(high, low) == 0.0
    assert session.first_dial_delay(low, high) == session.LESSER_DELAY > 0
