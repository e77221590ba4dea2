"""core/paths.py: names that are not UTF-8 (surrogate escapes), their wire and text forms."""

from __future__ import annotations

import os
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossip_backer.core import paths
from gossip_backer.core.record import FileRecord, payload_from_plain, payload_to_plain
from gossip_backer.core.vv import VersionVector
from gossip_backer.wire.codec import pack, unpack

names = st.binary(min_size=1, max_size=60).filter(lambda b: b"/" not in b and b"\0" not in b)


@given(st.binary(max_size=200))
def test_the_escape_round_trips_for_any_bytes(raw):
    path = paths.from_bytes(raw)
    assert paths.to_bytes(path) == raw
    assert paths.from_plain(unpack(pack(paths.to_plain(path)))) == path
    text = paths.escape(path)
    text.encode("utf-8")  # always valid text: JSON, SQLite, a terminal can hold it
    if b"\\" not in raw:  # a mesh path never holds a backslash: the text form is unambiguous
        assert paths.unescape(text) == path


@given(names)
def test_a_name_checks_as_itself_or_its_nfc_form(raw):
    name = paths.from_bytes(raw)
    try:
        checked = paths.check(name)
    except paths.BadPath:
        return
    if paths.is_text(name):
        assert checked == unicodedata.normalize("NFC", name)
    else:
        assert checked == name and paths.to_bytes(checked) == raw  # byte for byte
    assert paths.is_valid(checked)


@given(names, names)
def test_normalising_goes_component_by_component(a, b):
    path = paths.from_bytes(a) + "/" + paths.from_bytes(b)
    parts = [p if not paths.is_text(p) else unicodedata.normalize("NFC", p)
             for p in path.split("/")]
    assert paths.normalise(path) == "/".join(parts)


def test_wire_form_is_text_for_utf8_and_raw_bytes_otherwise():
    assert paths.to_plain("caf\u00e9/a.txt") == "caf\u00e9/a.txt"
    odd = os.fsdecode(b"bad\xffname")
    assert paths.to_plain(odd) == b"bad\xffname"
    with pytest.raises(ValueError):
        paths.from_plain("caf\u00e9".encode())  # a second encoding of a text path
    with pytest.raises(ValueError):
        paths.from_plain(7)


def test_surrogates_no_file_name_gives_are_refused():
    for bad in ("\udcc3\udca9", "a\ud800b", "x\udc41"):  # valid UTF-8 in disguise, or no byte
        with pytest.raises(paths.BadPath):
            paths.check(bad)


def test_escape_is_documented_form():
    odd = os.fsdecode(b"dir\xfe/bad\xffname.txt")
    assert paths.escape(odd) == "dir\\xfe/bad\\xffname.txt"
    assert paths.unescape("dir\\xfe/bad\\xffname.txt") == odd
    assert paths.printable({"p": [odd], odd: 1}) == {"p": ["dir\\xfe/bad\\xffname.txt"],
                                                   "dir\\xfe/bad\\xffname.txt": 1}


def test_a_signed_record_of_an_odd_name_has_one_encoding():
    odd = os.fsdecode(b"bad\xffname.txt")
    rec = FileRecord(path=odd, kind="file", vv=VersionVector({b"\x01" * 32: 1}), origin=b"\x01" * 32)
    body = pack(payload_to_plain(rec))
    assert b"bad\xffname.txt" in body
    assert payload_from_plain(unpack(body)) == rec
    assert pack(payload_to_plain(payload_from_plain(unpack(body)))) == body
    text = FileRecord(path="a.txt", kind="file", vv=rec.vv, origin=rec.origin)
    assert unpack(pack(payload_to_plain(text)))[1][0] == "a.txt"  # unchanged for UTF-8 names
