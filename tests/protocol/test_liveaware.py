"""protocol/liveaware.py: awareness (cursors, names) of live editors relayed between nodes, as
pairs of relays with no I/O."""

from __future__ import annotations

import pytest

from gossip_backer.protocol.liveaware import (MAX_CLIENTS, PEER_INTERVAL, STALE, AwarenessError,
                                              AwarenessRelay, ToEditors, ToPeers, decode_update,
                                              encode_update, message, update_of)

ALICE = '{"user":{"name":"Alice","color":"#f00"},"cursor":{"anchor":1,"head":2}}'
A, B = b"A" * 32, b"B" * 32


def _msg(*entries) -> bytes:
    return message(encode_update(list(entries)))


def _editors(effects) -> list[list]:
    return [decode_update(update_of(e.message)) for e in effects if isinstance(e, ToEditors)]


def _peers(effects) -> list[tuple]:
    return [(e.skip, decode_update(e.update)) for e in effects if isinstance(e, ToPeers)]


def test_updates_round_trip_and_garbage_is_refused() -> None:
    entries = [(7, 1, ALICE), (2**32 - 1, 300, "null"), (5, 0, '{"n":"ünï 😀"}')]
    assert decode_update(update_of(message(encode_update(entries)))) == entries
    for bad in (b"", b"\x01\x05ab", b"\x01\x03\x01\x01\x05x", b"\x00\x01\x00"):
        with pytest.raises(AwarenessError):
            decode_update(update_of(bad))


def test_an_editors_state_reaches_the_others_here_and_the_peers_coalesced() -> None:
    relay, me, other = AwarenessRelay(), object(), object()
    out = relay.from_editor("n.md", me, _msg((7, 1, ALICE)), 0.0)
    assert [e.skip for e in out if isinstance(e, ToEditors)] == [me]
    assert _peers(out) == [(None, [(7, 1, ALICE)])]  # the first one goes at once
    out = relay.from_editor("n.md", me, _msg((7, 2, "{}")), 0.01)
    out += relay.from_editor("n.md", me, _msg((7, 3, ALICE)), 0.02)
    assert _editors(out) == [[(7, 2, "{}")], [(7, 3, ALICE)]] and _peers(out) == []
    assert relay.next_due() == pytest.approx(PEER_INTERVAL)
    assert _peers(relay.tick(PEER_INTERVAL)) == [(None, [(7, 3, ALICE)])]  # only the newest
    assert relay.from_editor("n.md", other, _msg((7, 2, "{}")), 0.1) == []  # older: dropped
    assert relay.hello("n.md") == [_msg((7, 3, ALICE))]


def test_a_peers_state_reaches_the_editors_and_the_other_peers_but_not_back() -> None:
    relay = AwarenessRelay()
    out = relay.from_peer(A, "n.md", encode_update([(9, 4, ALICE)]), 0.0)
    assert _editors(out) == [[(9, 4, ALICE)]]
    assert _peers(out) == [(A, [(9, 4, ALICE)])]
    assert relay.from_peer(B, "n.md", encode_update([(9, 4, ALICE)]), 1.0) == []  # the flood ends
    assert relay.from_peer(A, "n.md", b"\x05garbage", 1.0) == []


def test_an_editor_that_leaves_is_removed_everywhere_and_stays_removed() -> None:
    relay, me = AwarenessRelay(), object()
    relay.from_editor("n.md", me, _msg((7, 1, ALICE), (8, 1, ALICE)), 0.0)
    out = relay.editor_left("n.md", me, 1.0)
    assert _editors(out) == [[(7, 2, "null"), (8, 2, "null")]]
    assert _peers(out) == [(None, [(7, 2, "null"), (8, 2, "null")])]
    assert relay.from_peer(A, "n.md", encode_update([(7, 1, ALICE)]), 1.1) == []  # late, older
    assert relay.hello("n.md") == []


def test_a_peer_that_goes_away_takes_its_editors_cursors_along_and_stale_ones_go() -> None:
    relay = AwarenessRelay()
    relay.from_peer(A, "n.md", encode_update([(9, 4, ALICE)]), 0.0)
    relay.from_peer(B, "n.md", encode_update([(10, 1, ALICE)]), 10.0)
    out = relay.peer_gone(A, 11.0)
    assert _editors(out) == [[(9, 5, "null")]] and _peers(out) == []
    assert relay.tick(10.0 + STALE - 1) == []
    assert _editors(relay.tick(10.0 + STALE)) == [[(10, 2, "null")]]
    assert relay.next_due() is None


def test_limits_keep_the_table_bounded() -> None:
    relay = AwarenessRelay()
    relay.from_peer(A, "n.md", encode_update([(c, 1, "{}") for c in range(MAX_CLIENTS + 10)]), 0.0)
    assert len(decode_update(update_of(relay.hello("n.md")[0]))) == MAX_CLIENTS
    assert relay.from_peer(A, "m.md", encode_update([(1, 1, "x" * 20000)]), 0.0) == []


def test_two_nodes_see_each_others_editors() -> None:
    a, b = AwarenessRelay(), AwarenessRelay()
    ed_a, ed_b = object(), object()
    to_b = [e for e in a.from_editor("n.md", ed_a, _msg((1, 1, ALICE)), 0.0) if isinstance(e, ToPeers)]
    got = [out for e in to_b for out in b.from_peer(A, e.path, e.update, 0.01)]
    assert _editors(got) == [[(1, 1, ALICE)]]
    assert b.hello("n.md") == [_msg((1, 1, ALICE))]
    out = b.from_editor("n.md", ed_b, _msg((2, 1, "{}")), 0.02) + b.tick(0.01 + PEER_INTERVAL)
    back = [e for e in out if isinstance(e, ToPeers)]  # (after the forward's interval)
    assert [e.skip for e in back] == [None]
    assert _editors(a.from_peer(B, "n.md", back[0].update, 0.03)) == [[(2, 1, "{}")]]
