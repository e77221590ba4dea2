"""The seeded network and the event loop: latency, bandwidth, ordering, faults, partitions,
connection set-up, and exact replay from a seed."""

from __future__ import annotations

import random

import pytest

from gossip_backer.testing.loop import EventLoop
from gossip_backer.testing.simnet import FRAME_OVERHEAD, Endpoint, LinkSpec, SimNet


class Recorder(Endpoint):
    def __init__(self, loop: EventLoop) -> None:
        self.loop = loop
        self.got: list[tuple[float, bytes]] = []
        self.closed: list[str] = []
        self.opened = 0

    def on_data(self, conn, data: bytes) -> None:
        self.got.append((self.loop.now, data))

    def on_close(self, conn, reason: str) -> None:
        self.closed.append(reason)

    def on_open(self, conn) -> None:
        self.opened += 1


def pair(spec: LinkSpec, seed: int = 0):
    loop = EventLoop()
    net = SimNet(loop, random.Random(seed), default=spec)
    a, b = Recorder(loop), Recorder(loop)
    conns = []
    net.dial(0, 1, a, lambda conn: b, conns.append, lambda why: conns.append(why))
    loop.run_until(10.0)
    assert conns and not isinstance(conns[0], str), conns
    return loop, net, conns[0], a, b


def test_loop_runs_in_time_then_schedule_order_and_skips_cancelled() -> None:
    loop, seen = EventLoop(), []
    loop.call_at(2.0, seen.append, "late")
    loop.call_at(1.0, seen.append, "first")
    loop.call_at(1.0, seen.append, "second")
    loop.call_at(1.5, seen.append, "cancelled").cancel()
    assert loop.run_until(1.5) is False and seen == ["first", "second"] and loop.now == 1.5
    loop.run_until(5.0)
    assert seen == ["first", "second", "late"] and loop.now == 5.0


def test_latency_and_bandwidth_serialise_frames() -> None:
    loop, net, conn, a, b = pair(LinkSpec(latency=0.1, bandwidth=10_000))
    start = loop.now
    net.send(conn, 0, bytes(1000))
    net.send(conn, 0, bytes(1000))
    loop.run_until(start + 5)
    tx = (1000 + FRAME_OVERHEAD) / 10_000
    assert [round(t - start, 9) for t, _ in b.got] == [round(tx + 0.1, 9), round(2 * tx + 0.1, 9)]
    assert net.bandwidth_ok() and net.messages == 2


def test_reliable_link_keeps_order_through_jitter_and_loss() -> None:
    loop, net, conn, a, b = pair(LinkSpec(latency=0.05, jitter=0.2, loss=0.3, duplicate=0.2))
    for i in range(200):
        net.send(conn, 0, i.to_bytes(2, "big"))
    loop.run_until(100)
    assert [int.from_bytes(d, "big") for _, d in b.got] == list(range(200))
    assert not b.closed


def test_unreliable_link_faults_break_the_connection_like_box_stream() -> None:
    loop, net, conn, a, b = pair(LinkSpec(latency=0.05, reliable=False, duplicate=1.0))
    net.send(conn, 0, b"once")
    loop.run_until(loop.now + 5)
    assert [d for _, d in b.got] == [b"once"]
    assert b.closed and "replayed" in b.closed[0] and net.broken == 1


def test_partition_holds_reliable_frames_until_the_heal() -> None:
    loop, net, conn, a, b = pair(LinkSpec(latency=0.01))
    t0 = loop.now
    net.partition({0: 0, 1: 1}, t0, t0 + 30)
    loop.run_until(t0 + 1)
    net.send(conn, 0, b"across the cut")
    loop.run_until(t0 + 29)
    assert b.got == []
    loop.run_until(t0 + 40)
    assert [d for _, d in b.got] == [b"across the cut"] and b.got[0][0] >= t0 + 30


def test_close_is_heard_after_the_heal_and_data_to_a_closed_end_gets_a_reset() -> None:
    loop, net, conn, a, b = pair(LinkSpec(latency=0.01))
    t0 = loop.now
    net.partition({0: 0, 1: 1}, t0, t0 + 10)
    loop.run_until(t0 + 1)
    net.close(conn, 0, "dead timer")
    loop.run_until(t0 + 9)
    assert b.closed == []
    loop.run_until(t0 + 12)
    assert b.closed and "dead timer" in b.closed[0]

    loop, net, conn, a, b = pair(LinkSpec(latency=0.01))
    net.close(conn, 1, "crashed", notify=False)  # b's machine said nothing
    net.send(conn, 0, b"anyone there?")
    loop.run_until(loop.now + 1)
    assert b.got == [] and a.closed and "reset" in a.closed[0]


def test_dial_refused_and_unreachable() -> None:
    loop = EventLoop()
    net = SimNet(loop, random.Random(1))
    out: list = []
    net.dial(0, 1, Recorder(loop), lambda conn: None, out.append, out.append)
    net.set_up(3, False)
    net.dial(0, 3, Recorder(loop), lambda conn: Recorder(loop), out.append, out.append)
    loop.run_until(20)
    assert out == ["refused", "connect timed out"]


def test_accepting_end_frames_follow_the_handshake() -> None:
    loop = EventLoop()
    net = SimNet(loop, random.Random(2), default=LinkSpec(latency=0.05, jitter=0.05))
    a, got, established = Recorder(loop), [], []

    class Eager(Recorder):
        def on_open(self, conn) -> None:  # speaks at once, before the dialer knows
            net.send(conn, 1, b"hello")

    b = Eager(loop)

    class Dialer(Recorder):
        def on_data(self, conn, data: bytes) -> None:
            got.append((bool(established), data))

    net.dial(0, 1, Dialer(loop), lambda conn: b, established.append, established.append)
    loop.run_until(5)
    assert got == [(True, b"hello")]


@pytest.mark.parametrize("seed", [0, 7])
def test_same_seed_same_arrivals(seed: int) -> None:
    def trace() -> list:
        loop, net, conn, a, b = pair(LinkSpec(latency=0.02, jitter=0.05, loss=0.1), seed)
        for i in range(50):
            net.send(conn, i % 2, bytes([i]))
        loop.run_until(60)
        return a.got + b.got

    assert trace() == trace()
