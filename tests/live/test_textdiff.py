"""live/textdiff.py: splices on UTF-8 byte offsets at character boundaries, the smallest edit,
whole words, and fast on a large note."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings, strategies as st

from gossip_backer.live import textdiff
from gossip_backer.live.textdoc import TextDoc

ALPHABET = st.sampled_from(["a", "b", "é", "ж", "漢", "😀", " ", "\n", "w1", "~"])
TEXT = st.lists(ALPHABET, max_size=40).map("".join)
WORD = st.lists(st.sampled_from(["w1", "n1", "😀", "é", "ж", "漢"]), min_size=1,
                max_size=4).map("".join)


@settings(max_examples=300, deadline=None)
@given(TEXT, TEXT)
def test_splices_turn_old_into_new_on_character_boundaries(a: str, b: str) -> None:
    old, new = a.encode(), b.encode()
    splices = textdiff.diff(old, new)
    assert textdiff.apply(old, splices) == new
    for s in splices:
        old[:s.at].decode("utf-8")  # never inside a character
        old[s.at:s.at + s.delete].decode("utf-8")


@settings(max_examples=100, deadline=None)
@given(TEXT, TEXT)
def test_a_document_edited_to_a_text_holds_it(a: str, b: str) -> None:
    doc = TextDoc(7)
    doc.apply(TextDoc.seed(a.encode()))
    doc.edit_to(b.encode())
    assert doc.data() == b.encode()


def test_one_inserted_word_is_one_small_splice() -> None:
    old = "one two three\nfour five\n".encode()
    new = "one two ünï three\nfour five\n".encode()
    assert textdiff.diff(old, new) == [textdiff.Splice(8, 0, "ünï ")]


def test_a_word_put_in_another_word_s_place_is_replaced_whole() -> None:
    splices = textdiff.diff(b"alpha beta gamma", b"alpha w12 gamma")
    assert splices == [textdiff.Splice(6, 4, "w12")]


def test_a_typo_fixed_inside_a_word_keeps_its_letters() -> None:
    assert textdiff.diff(b"the quik fox", b"the quick fox") == [textdiff.Splice(7, 0, "c")]


def test_a_100_kb_note_with_scattered_edits_diffs_in_well_under_a_second() -> None:
    rng = random.Random(1)
    words = ["alpha", "beta", "ünïcode", "😀", "x" * 5]
    lines = [" ".join(rng.choice(words) for _ in range(10)) for _ in range(2000)]
    old = "\n".join(lines).encode()
    for _ in range(20):
        k = rng.randrange(len(lines))
        lines[k] = lines[k][:5] + " EDIT😀 " + lines[k][5:]
    new = "\n".join(lines).encode()
    started = time.perf_counter()
    splices = textdiff.diff(old, new)
    assert time.perf_counter() - started < 1.0
    assert textdiff.apply(old, splices) == new and len(splices) <= 40


@pytest.mark.parametrize("mark", ["😀", "."])
def test_a_word_with_a_symbol_typed_after_its_like_is_inserted_whole_between_words(mark) -> None:
    # "w1" + "😀n1 w6" + "😀n1" gives the same text, but cuts both words (seed 21046); a word
    # with punctuation in it is two words for the diff, and slides to the space
    old = f"base w4n1 alpha beta w1{mark}n1 gamma".encode()  # a save with two more changes
    new = f"w7жn1 base ~ alpha beta w1{mark}n1 w6{mark}n1 gamma".encode()
    splices = textdiff.diff(old, new)
    assert textdiff.apply(old, splices) == new
    assert splices[-1].delete == 0 and splices[-1].insert.strip() == f"w6{mark}n1"


def test_a_word_typed_beside_one_removed_meanwhile_survives_the_merge() -> None:
    """Node A types "w6😀n1" after "w1😀n1" while node B strikes "w1😀n1" out: the merged text
    holds the typed word whole (it held "😀n1 w6~" when the insertion cut the neighbour)."""
    base = TextDoc.seed("base w4n1 alpha beta w1😀n1 gamma".encode())
    a, b = TextDoc(1), TextDoc(2)
    a.apply(base)
    b.apply(base)
    a.edit_to("w7жn1 base ~ alpha beta w1😀n1 w6😀n1 gamma".encode())
    b.edit_to("base w4n1 alpha beta ~ gamma".encode())
    a.apply(b.update_since())
    b.apply(a.update_since())
    assert a.data() == b.data()
    assert "w6😀n1" in a.data().decode().replace("~", " ").split()


def test_a_word_with_a_symbol_in_it_is_one_word() -> None:
    # "😀w1" typed before "w1" was "😀" before it and " w1" after it: two halves of one word
    assert textdiff.diff(b"w1", "😀w1 w1".encode()) == [textdiff.Splice(0, 0, "😀w1 ")]


@settings(max_examples=300, deadline=None)
@given(st.lists(WORD, min_size=1, max_size=8), WORD, st.data())
def test_a_word_typed_between_words_is_inserted_whole_at_a_space(
        words: list[str], word: str, data) -> None:
    k = data.draw(st.integers(0, len(words)))
    old = " ".join(words).encode()
    new = " ".join(words[:k] + [word] + words[k:]).encode()
    (splice,) = textdiff.diff(old, new)
    before, after = old[:splice.at].decode(), old[splice.at:].decode()
    assert splice.delete == 0 and splice.insert.strip() == word
    assert before in ("", before.rstrip() + " ") or splice.insert.startswith(" ")
    assert after in ("", " " + after.lstrip()) or splice.insert.endswith(" ")
