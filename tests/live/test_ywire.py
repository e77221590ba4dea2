"""live/ywire.py: the y-websocket messages of a session, both ways, against a second pycrdt
document playing the client (as a stock Yjs client does)."""

from __future__ import annotations

import pytest
from pycrdt import Decoder, Doc, Text, create_update_message, write_message

from gossip_backer.live.textdoc import TextDoc
from gossip_backer.live.ywire import YProtocolError, YSession


def _parse(message: bytes) -> tuple[int, int, bytes]:
    d = Decoder(message)
    return d.read_var_uint(), d.read_var_uint(), d.read_message()


def _server(text: bytes = b"hello") -> TextDoc:
    doc = TextDoc(5)
    doc.apply(TextDoc.seed(text))
    return doc


def test_client_syncs_then_its_update_is_handed_out() -> None:
    session = YSession(_server(), read_only=False)
    client = Doc(client_id=9)
    ctext = client.get("text", type=Text)
    kind, sub, state = _parse(session.hello()[0])
    assert (kind, sub) == (0, 0) and state == _server().state()
    step1 = bytes([0, 0]) + write_message(client.get_state())
    (reply,) = session.receive(step1).replies
    kind, sub, update = _parse(reply)
    assert (kind, sub) == (0, 1)
    client.apply_update(update)
    assert str(ctext) == "hello"
    before = client.get_state()
    ctext.insert(5, " wörld")
    inbound = session.receive(create_update_message(client.get_update(before)))
    assert inbound.update is not None and not inbound.replies


def test_read_only_drops_step2_and_updates_but_answers_step1() -> None:
    session = YSession(_server(), read_only=True)
    client = Doc(client_id=9)
    client.get("text", type=Text).insert(0, "x")
    assert session.receive(create_update_message(client.get_update())).update is None
    assert session.receive(bytes([0, 1]) + write_message(client.get_update())).update is None
    assert session.receive(bytes([0, 0]) + write_message(b"\x00")).replies


def test_awareness_is_relayed_and_garbage_refused() -> None:
    session = YSession(_server(), read_only=False)
    awareness = bytes([1]) + write_message(b"\x01\x09\x01\x02{}")
    assert session.receive(awareness).awareness == awareness
    for bad in (b"", bytes([0]), bytes([0, 7]) + write_message(b"x")):
        with pytest.raises(YProtocolError):
            session.receive(bad)
