"""live/textdoc.py: seeding from identical bytes never doubles; eligibility."""

from __future__ import annotations

from gossip_backer.live.textdoc import LIVE_MAX, TextDoc, eligible


def test_three_nodes_seeding_the_same_note_hold_it_once() -> None:
    note = "# plan\nmilk, ünï 😀\n".encode()
    docs = [TextDoc(11 + i) for i in range(3)]
    for d in docs:
        d.apply(TextDoc.seed(note))
    for d in docs:
        for other in docs:
            d.apply(other.update_since())
    assert [d.data() for d in docs] == [note] * 3


def test_different_seeds_both_stay_and_edits_merge() -> None:
    a, b = TextDoc(1), TextDoc(2)
    a.apply(TextDoc.seed(b"x\n"))
    b.apply(a.update_since())
    ua = a.edit_to(b"x A\n")
    ub = b.edit_to(b"B x\n")
    a.apply(ub)
    b.apply(ua)
    assert a.data() == b.data() == b"B x A\n"


def test_eligibility() -> None:
    assert eligible(b"plain text \xc3\xa9") is None
    assert eligible(b"\xff\xfe") == "not UTF-8 text"
    assert "larger than" in eligible(b"a" * (LIVE_MAX + 1))
