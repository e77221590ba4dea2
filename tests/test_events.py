"""events.py: `Event.to_json_line()` is `json.dumps(event.to_json())` to the byte, for every event
kind and any field values (`backer events` prints it; SPEC.md fixes the objects)."""

from __future__ import annotations

import dataclasses
import json
import math

from hypothesis import given
from hypothesis import strategies as st

from gossip_backer import events
from gossip_backer.events import Event, FileUpdated, InSync, PeerConnected

KINDS = [k for k in vars(events).values()
         if isinstance(k, type) and issubclass(k, Event) and k is not Event]
VALUES = st.one_of(st.text(), st.none(), st.booleans(), st.integers(),
                   st.floats(allow_nan=True, allow_infinity=True))


def _line(event: Event) -> str:
    return json.dumps(event.to_json())


@given(st.data())
def test_every_kind_encodes_as_json_dumps_would(data):
    kind = data.draw(st.sampled_from(KINDS))
    values = {f.name: data.draw(VALUES) for f in dataclasses.fields(kind)}
    event = kind(**values)
    assert event.to_json_line() == _line(event)


def test_the_awkward_values_too():
    for value in ["", "ünïcode ☃ 🎉", 'quote " back \\ slash', "ctl \x00\x1f\x7f", "\ud800"]:
        event = FileUpdated(1.5, value, "n")
        assert event.to_json_line() == _line(event)
    for t in [0.0, -0.0, 1e300, 1e-300, 1765050000.123456, math.inf, -math.inf, math.nan, 7, True]:
        event = InSync(t, 10, 2**70)
        assert event.to_json_line() == _line(event)
    event = PeerConnected(1.0, "id", "name", None)
    assert json.loads(event.to_json_line()) == event.to_json()
    assert len(KINDS) >= 15
