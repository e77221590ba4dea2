"""core/share.py: share links as CRDT records and the decisions about serving them."""

from __future__ import annotations

import pytest

from gossip_backer.core import share as rules
from gossip_backer.core.metamap import MetaMap
from gossip_backer.core.paths import BadPath
from gossip_backer.core.record import Grant, SignedUpdate, payload_from_plain, payload_to_plain
from gossip_backer.core.share import Share, ShareCount

A, B = b"\xaa" * 32, b"\xbb" * 32
TOKEN = "t" * 32


def update(origin: bytes, seq: int, payload) -> SignedUpdate:
    return SignedUpdate(origin, seq, payload, b"body", b"sig")


def two_member_map() -> MetaMap:
    m = MetaMap(A)
    m.apply(update(A, 1, Grant(A, "a", False, 1)))
    m.apply(update(A, 2, Grant(B, "b", False, 2)))
    return m


def link(revoked: bool = False, clock: int = 3, path: str = "photos") -> Share:
    return Share(TOKEN, path, 0, b"", revoked, 100, clock)


def test_records_round_trip_and_refuse_malformed_ones() -> None:
    for payload in (link(), ShareCount(TOKEN, 7)):
        assert payload_from_plain(payload_to_plain(payload)) == payload
    for bad in (["s", ["short", "p", 0, b"", False, 1, 1]],  # token under 128 bits
                ["s", [TOKEN, "../x", 0, b"", False, 1, 1]],
                ["s", [TOKEN, "p", -1, b"", False, 1, 1]],
                ["c", [TOKEN, -1]]):
        with pytest.raises(ValueError):
            payload_from_plain(bad)


def test_revocation_wins_whatever_the_order_and_counts_add_up() -> None:
    made, revoked = update(A, 3, link()), update(B, 3, link(revoked=True))
    for order in ([made, revoked], [revoked, made]):
        m = two_member_map()
        for u in order:
            m.apply(u)
        assert m.share(TOKEN).revoked  # same clock: the revocation wins the tie
    m = two_member_map()
    m.apply(update(A, 3, ShareCount(TOKEN, 2)))
    m.apply(update(B, 3, ShareCount(TOKEN, 5)))
    m.apply(update(A, 4, ShareCount(TOKEN, 3)))
    assert m.downloads(TOKEN) == 8


def test_state_follows_revocation_and_expiry() -> None:
    assert rules.state(None, 0) == rules.MISSING
    assert rules.state(link(), 10**10) == rules.ACTIVE
    assert rules.state(link(revoked=True), 0) == rules.REVOKED
    expiring = Share(TOKEN, "p", 200, b"", False, 100, 1)
    assert rules.state(expiring, 199.9) == rules.ACTIVE
    assert rules.state(expiring, 200) == rules.EXPIRED


@pytest.mark.parametrize("rest", ["..", "../x", "a/../../x", "a\\..\\x", "./a", "a//b",
                                  ".backer/identity", "\x00"])
def test_target_refuses_anything_outside_the_link(rest: str) -> None:
    with pytest.raises(BadPath):
        rules.target(link(path=""), rest)
    if not rest.startswith(".backer"):  # only ROOT/.backer is ours; photos/.backer is a name
        with pytest.raises(BadPath):
            rules.target(link(), rest)


def test_target_inside_a_folder_link_and_a_file_link() -> None:
    assert rules.target(link(), "") == "photos"
    assert rules.target(link(), "2026/a.jpg/") == "photos/2026/a.jpg"
    assert rules.target(link(path=""), "%2e%2e") == "%2e%2e"  # a literal name, nothing more
    assert rules.target(link(path="a.txt"), "") == "a.txt"


def test_byte_range() -> None:
    assert rules.byte_range(None, 10) is None
    assert rules.byte_range("bytes=2-5", 10) == (2, 5)
    assert rules.byte_range("bytes=7-", 10) == (7, 9)
    assert rules.byte_range("bytes=-3", 10) == (7, 9)
    assert rules.byte_range("bytes=5-100", 10) == (5, 9)
    assert rules.byte_range("bytes=10-", 10) == "unsatisfiable"
    assert rules.byte_range("bytes=0-1,4-5", 10) is None  # several ranges: the whole file
    assert rules.byte_range("items=0-1", 10) is None
    assert rules.byte_range("bytes=5-2", 10) is None


def test_password_and_its_guard() -> None:
    hashed = rules.hash_password("pw", b"s" * 16)
    locked = Share(TOKEN, "p", 0, hashed, False, 1, 1)
    assert rules.password_matches(locked, "pw") and not rules.password_matches(locked, "PW")
    guard = rules.PasswordGuard()
    assert guard.delay(TOKEN, 0) == 0
    delays = []
    for t in range(8):
        guard.failed(TOKEN, t)
        delays.append(guard.delay(TOKEN, t))
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert guard.delay(TOKEN, 7 + guard.FORGET + 1) == 0
    guard.succeeded(TOKEN)
    assert guard.delay(TOKEN, 8) == 0
