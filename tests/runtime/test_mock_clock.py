"""The daemon's timers on trio's MockClock: the node's one clock (runtime/clock.py) lets a test
wait a minute of protocol time in a moment, with real nodes, real SQLite and real sessions."""

from __future__ import annotations

import time

import trio
import trio.testing

from gossip_backer import Node
from gossip_backer.events import PeerConnected, PeerDisconnected
from gossip_backer.protocol.replica import DEAD_AFTER
from gossip_backer.runtime.clock import FollowingTrio


def severable_pair():
    """A duplex memory stream pair whose two directions can be silenced, as when a peer's
    machine dies without a word: nothing arrives any more, and nothing says the link is down."""
    cut = {"on": False}

    def one_way():
        send, receive = trio.testing.memory_stream_one_way_pair()

        async def hook():
            if not cut["on"]:
                trio.testing.memory_stream_pump(send, receive)
        send.send_all_hook = hook
        return send, receive

    a_to_b, b_from_a = one_way()
    b_to_a, a_from_b = one_way()
    left = trio.StapledStream(a_to_b, a_from_b)
    right = trio.StapledStream(b_to_a, b_from_a)
    return left, right, cut


def test_a_peer_that_falls_silent_is_dropped_by_the_dead_timer_in_virtual_time(pair):
    root_a, root_b = pair
    started = time.time()

    async def main():
        start = 1_900_000_000.0  # the nodes' wall clock follows the mock from here
        async with Node.open(root_a, mirror=False, clock=FollowingTrio(start)) as a, \
                Node.open(root_b, mirror=False, clock=FollowingTrio(start)) as b:
            left, right, cut = severable_pair()
            events = []

            async def watch():
                async for event in a.events():
                    events.append(event)
                    if isinstance(event, PeerDisconnected):
                        return
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                nursery.start_soon(a.serve_stream, left)
                nursery.start_soon(b.serve_stream, right)
                with trio.fail_after(10):
                    await b.wait_in_sync()
                silent_at = a.clock.wall()
                cut["on"] = True  # b's machine died: not a byte more either way
                with trio.fail_after(DEAD_AFTER + 30):
                    while b.state.identity.public in a.links:
                        await trio.sleep(1)
                nursery.cancel_scope.cancel()
            (up,) = [e for e in events if isinstance(e, PeerConnected)]
            (down,) = [e for e in events if isinstance(e, PeerDisconnected)]
            assert start <= up.time <= silent_at
            assert DEAD_AFTER <= down.time - silent_at <= DEAD_AFTER + 5  # the dead timer's time

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert time.time() - started < DEAD_AFTER / 2  # a minute of protocol time, in moments
