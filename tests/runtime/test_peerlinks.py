"""runtime/peerlinks.py: one link per peer, whichever side dialed, on real nodes over memory
streams: of two links to one peer the one the greater key dialed stays, on both ends."""

from __future__ import annotations

import trio
import trio.testing

from gossip_backer import Node
from gossip_backer.events import PeerConnected


class Sessions:
    """Sessions started between two nodes, each end's reason once it ended."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.reasons: dict[tuple[str, str], str] = {}
        self.ended: dict[str, trio.Event] = {}

    def dial(self, name: str, dialer: Node, other: Node) -> None:
        left, right = trio.testing.memory_stream_pair()
        self.ended[name] = trio.Event()
        self.nursery.start_soon(self._run, name, "dialer", dialer, left, True)
        self.nursery.start_soon(self._run, name, "other", other, right, False)

    async def _run(self, name: str, side: str, node: Node, stream, initiator: bool) -> None:
        self.reasons[(name, side)] = await node.serve_stream(stream, initiator=initiator)
        if (name, "dialer") in self.reasons and (name, "other") in self.reasons:
            self.ended[name].set()


async def _connected(*channels) -> None:
    for channel in channels:
        async for event in channel:
            if isinstance(event, PeerConnected):
                break


def test_of_two_links_to_one_peer_the_one_the_greater_key_dialed_stays(pair):
    root_a, root_b = pair

    async def main():
        async with Node.open(root_a, mirror=False) as a, Node.open(root_b, mirror=False) as b:
            big, small = sorted((a, b), key=lambda n: n.state.identity.public, reverse=True)
            big_key, small_key = big.state.identity.public, small.state.identity.public
            async with trio.open_nursery() as nursery, big.subscribe() as big_events, \
                    small.subscribe() as small_events:
                sessions = Sessions(nursery)
                with trio.fail_after(20):
                    sessions.dial("lesser dials", small, big)
                    await _connected(big_events, small_events)
                    first = big.links[small_key]

                    sessions.dial("greater dials", big, small)  # ranks higher: replaces it
                    await _connected(big_events, small_events)
                    await sessions.ended["lesser dials"].wait()
                    kept = big.links[small_key]
                    assert kept is not first and kept.dialed is True
                    assert small.links[big_key].dialed is False

                    sessions.dial("lesser again", small, big)  # ranks lower: refused as a duplicate
                    await sessions.ended["lesser again"].wait()
                    assert big.links[small_key] is kept and list(big.links) == [small_key]
                    assert list(small.links) == [big_key]
                    await big.wait_in_sync()
                    await small.wait_in_sync()
                reasons = sessions.reasons
                assert "replaced by a newer connection" in {reasons[("lesser dials", s)]
                                                           for s in ("dialer", "other")}, reasons
                assert "duplicate connection" in {reasons[("lesser again", s)]
                                                  for s in ("dialer", "other")}, reasons
                assert big.net()["bytes_in"] > 0 and small.net()["bytes_out"] > 0
                nursery.cancel_scope.cancel()

    trio.run(main)
