"""NodeId text form (base32 + Luhn mod 32 check characters) and mesh ids."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gossip_backer.core.ids import ALPHABET, KEY_BYTES, NodeId, luhn32, mesh_id_of
from gossip_backer.errors import UserError
from replicas import identity, medium, quick

keys = st.binary(min_size=KEY_BYTES, max_size=KEY_BYTES)
TEXT_RE = re.compile(r"^([A-Z2-7]{7}-){7}[A-Z2-7]{7}$")
# positions of the 56 meaningful characters in the dashed text form (8 groups of 7 + 7 dashes)
CHAR_POSITIONS = [g * 8 + i for g in range(8) for i in range(7)]
CHECK_POSITIONS = [CHAR_POSITIONS[i] for i in (13, 27, 41, 55)]
NOT_BASE32 = "0189@!=_.+/"  # digits outside the alphabet, padding, punctuation


def fixed_keys():
    return [b"\0" * 32, b"\xff" * 32, bytes(range(32)), identity(0).public, identity(1).public]


# -- round trip --------------------------------------------------------------------------------

@quick
@given(keys)
def test_text_round_trip(key):
    node = NodeId(key)
    text = str(node)
    assert TEXT_RE.match(text), text
    assert NodeId.parse(text) == node
    assert str(NodeId.parse(text)) == text


@quick
@given(keys)
def test_text_form_is_base32_of_the_key_with_a_check_char_after_every_13(key):
    clean = str(NodeId(key)).replace("-", "")
    runs = [clean[i:i + 14] for i in range(0, 56, 14)]
    data = "".join(run[:13] for run in runs)
    assert data == base64.b32encode(key).decode().rstrip("=")
    for run in runs:
        assert run[13] == luhn32(run[:13])


@quick
@given(keys)
def test_short_is_the_first_group(key):
    node = NodeId(key)
    assert node.short() == str(node)[:7]
    assert len(node.short()) == 7
    assert node.short() in repr(node)


def test_known_text_form():
    # pinned, so an accidental change of the text form (which users store and type) is noticed
    assert str(NodeId(b"\0" * 32)) == "AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA"
    text = str(NodeId(bytes(range(32))))
    assert text.replace("-", "")[:13] == base64.b32encode(bytes(range(32))).decode()[:13]
    assert NodeId.parse(text) == NodeId(bytes(range(32)))


@pytest.mark.parametrize("bad", [b"", b"\0" * 31, b"\0" * 33, "x" * 32, None, bytearray(32)])
def test_node_id_needs_32_bytes(bad):
    with pytest.raises(ValueError):
        NodeId(bad)


@quick
@given(keys, keys)
def test_order_and_equality_follow_the_key_bytes(a, b):
    # the conflict tie-break ("greater node id") relies on this order
    assert (NodeId(a) < NodeId(b)) == (a < b)
    assert (NodeId(a) == NodeId(b)) == (a == b)
    assert (hash(NodeId(a)) == hash(NodeId(b))) or a != b


# -- typos are caught -----------------------------------------------------------------------------

@pytest.mark.parametrize("key", fixed_keys())
def test_every_single_substitution_is_caught_exhaustively(key):
    text = str(NodeId(key))
    for pos in CHAR_POSITIONS:
        for ch in ALPHABET:
            if ch == text[pos]:
                continue
            typo = text[:pos] + ch + text[pos + 1:]
            with pytest.raises(UserError):
                NodeId.parse(typo)


@quick
@given(keys, st.sampled_from(CHAR_POSITIONS), st.sampled_from(ALPHABET), st.booleans())
def test_single_substitution_is_caught(key, pos, ch, lower):
    text = str(NodeId(key))
    assume(ch != text[pos])
    typo = text[:pos] + (ch.lower() if lower else ch) + text[pos + 1:]
    with pytest.raises(UserError):
        NodeId.parse(typo)


@quick
@given(keys, st.sampled_from(CHECK_POSITIONS), st.sampled_from(ALPHABET))
def test_a_wrong_check_character_is_caught(key, pos, ch):
    text = str(NodeId(key))
    assume(ch != text[pos])
    with pytest.raises(UserError, match="typo"):
        NodeId.parse(text[:pos] + ch + text[pos + 1:])


@quick
@given(keys, st.sampled_from(CHAR_POSITIONS), st.sampled_from(NOT_BASE32))
def test_a_character_outside_the_alphabet_is_caught(key, pos, ch):
    text = str(NodeId(key))
    with pytest.raises(UserError):
        NodeId.parse(text[:pos] + ch + text[pos + 1:])


@quick
@given(keys, st.sampled_from(CHAR_POSITIONS), st.sampled_from(ALPHABET))
def test_a_dropped_or_doubled_character_is_caught(key, pos, ch):
    text = str(NodeId(key))
    with pytest.raises(UserError):
        NodeId.parse(text[:pos] + text[pos + 1:])
    with pytest.raises(UserError):
        NodeId.parse(text[:pos] + ch + text[pos:])


@pytest.mark.parametrize("bad", ["", "-", "   ", "A" * 55, "A" * 57, "a" * 100, "AAAAAAA", "\x00" * 56,
                                 "é" * 56])
def test_garbage_is_a_user_error(bad):
    with pytest.raises(UserError):
        NodeId.parse(bad)


# -- tolerant parsing -------------------------------------------------------------------------

@quick
@given(keys)
def test_parse_tolerates_case_spaces_and_dashes(key):
    node = NodeId(key)
    text = str(node)
    compact = text.replace("-", "")
    assert NodeId.parse(text.lower()) == node
    assert NodeId.parse(compact) == node
    assert NodeId.parse(compact.lower()) == node
    assert NodeId.parse(text.replace("-", " ")) == node
    assert NodeId.parse(f"  {text}\n") == node
    assert NodeId.parse(text.swapcase()) == node
    assert NodeId.parse(" - ".join(compact[i:i + 4] for i in range(0, 56, 4))) == node
    assert NodeId.parse("\t".join(compact)) == node


@medium
@given(keys, st.data())
def test_parse_tolerates_separators_anywhere(key, data):
    node = NodeId(key)
    compact = str(node).replace("-", "")
    seps = data.draw(st.lists(st.sampled_from(["", "-", " ", "--", "\t", " - "]),
                              min_size=57, max_size=57))
    cases = data.draw(st.lists(st.booleans(), min_size=56, max_size=56))
    text = seps[0] + "".join((c.lower() if low else c) + s for c, low, s in zip(compact, cases, seps[1:]))
    assert NodeId.parse(text) == node


# -- mesh ids ---------------------------------------------------------------------------------

MESH_RE = re.compile(r"^([A-Z2-7]{6}-){3}[A-Z2-7]{6}$")
secrets = st.binary(min_size=16, max_size=64)


@quick
@given(secrets, keys)
def test_mesh_id_form_and_determinism(secret, founder):
    mid = mesh_id_of(secret, NodeId(founder))
    assert MESH_RE.match(mid), mid
    assert mesh_id_of(secret, NodeId(founder)) == mid


def _forms(data: bytes) -> list[str]:
    b32 = base64.b32encode(data).decode().rstrip("=")
    return [data.hex(), data.hex().upper(), b32, b32.lower(), data.decode("latin-1")]


@quick
@given(secrets, keys)
def test_mesh_id_reveals_neither_secret_nor_founder(secret, founder):
    mid = mesh_id_of(secret, NodeId(founder))
    compact = mid.replace("-", "")
    for form in _forms(secret) + _forms(founder) + [str(NodeId(founder)).replace("-", "")]:
        # no run of 8 characters of any text form of the secret or founder key shows up
        for i in range(0, max(1, len(form) - 8)):
            chunk = form[i:i + 8]
            assert chunk not in mid and chunk not in compact


@quick
@given(secrets, secrets, keys)
def test_mesh_id_differs_per_secret(s1, s2, founder):
    assume(s1 != s2)
    assert mesh_id_of(s1, NodeId(founder)) != mesh_id_of(s2, NodeId(founder))


@quick
@given(secrets, keys, keys)
def test_mesh_id_differs_per_founder(secret, f1, f2):
    assume(f1 != f2)
    assert mesh_id_of(secret, NodeId(f1)) != mesh_id_of(secret, NodeId(f2))


def test_mesh_id_secret_and_founder_do_not_slide_into_each_other():
    # secret + founder concatenated: moving a byte across the boundary must change the id
    f1 = NodeId(b"\x01" + b"\0" * 31)
    f2 = NodeId(b"\0" * 31 + b"\x01")
    assert mesh_id_of(b"secret", f1) != mesh_id_of(b"secret\x01", NodeId(b"\0" * 32))
    assert mesh_id_of(b"secret", f1) != mesh_id_of(b"secret", f2)


# -- the check character itself ---------------------------------------------------------------

@quick
@given(st.text(alphabet=ALPHABET, min_size=1, max_size=20), st.data())
def test_luhn32_catches_every_single_substitution(chars, data):
    pos = data.draw(st.integers(0, len(chars) - 1))
    ch = data.draw(st.sampled_from(ALPHABET).filter(lambda c: c != chars[pos]))
    typo = chars[:pos] + ch + chars[pos + 1:]
    assert luhn32(typo) != luhn32(chars)
    assert luhn32(chars) in ALPHABET
