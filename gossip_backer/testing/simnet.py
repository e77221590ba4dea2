"""A seeded discrete-event network: links with latency, jitter, bandwidth, loss, duplication and
reordering; partitions that open and heal on a schedule; connections between hosts.

Theory of operation
-------------------
Hosts are small ints. Every ordered pair of hosts has a `LinkSpec`. A packet handed to a link waits
for the link's transmitter (one packet at a time, `size / bandwidth` seconds each), then flies for
`latency` plus up to `jitter`. All randomness comes from the one `random.Random` given, drawn in a
fixed order, so a seed replays the same trace exactly.

Connections model what the product runs over: TCP carrying box-stream frames.
- On a `reliable` link (TCP) a lost packet is sent again after `rto` (costing bandwidth and time
  again), a duplicate costs bandwidth and is discarded, and packets reach the application in the
  order they were sent (head-of-line blocking), whatever the jitter did.
- On an unreliable link packets are delivered as the faults leave them, and the receiving end
  checks each frame's counter the way the box-stream channel checks its nonce: a lost, replayed or
  overtaken frame ends the connection (the product raises RemoteError there). Faults then show up
  as broken connections that the dialer must re-establish.
A partition cuts every link between hosts on different sides. A reliable connection keeps its
packets across a cut (TCP retransmits) and delivers them after the heal, unless an end closes it
meanwhile; an unreliable one loses them. A host that is down neither sends nor receives.

`dial` opens a connection with the cost of the product's handshake (one and a half round trips,
`HANDSHAKE_BYTES`); the acceptor's `accept` callback decides, as the product's `authorize` does.

Measurements: messages and bytes per host and per message kind, and per link a meter of bytes
started per second of simulated time, so a run can show that no link carried more than its
bandwidth (`bandwidth_ok`).
"""

from __future__ import annotations

import abc

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from gossip_backer.crypto.channel import HEADER_SIZE
from gossip_backer.testing.loop import EventLoop

__all__ = ["LinkSpec", "Connection", "Endpoint", "SimNet", "HANDSHAKE_BYTES", "FRAME_OVERHEAD"]

FRAME_OVERHEAD = HEADER_SIZE  # each box-stream frame carries a sealed header
# pre-hello (72) + SHS challenge (64) one way, the same back, then client auth (112) and accept (80)
HANDSHAKE_BYTES = (72 + 64 + 112, 72 + 64 + 80)
CONNECT_TIMEOUT = 5.0  # runtime.dial
_METER_WINDOW = 1.0


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """One direction of a link. Times in seconds, bandwidth in bytes per second."""

    latency: float = 0.02
    jitter: float = 0.0
    bandwidth: float = 12.5e6  # 100 Mbit/s
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0  # probability a packet is held back by up to 4 x latency
    reliable: bool = True
    rto: float = 0.2


class Endpoint(abc.ABC):
    """What a connection end calls; the cluster's node implements it."""

    @abc.abstractmethod
    def on_data(self, conn: "Connection", data: bytes) -> None:
        """Bytes arrived on `conn`."""

    @abc.abstractmethod
    def on_close(self, conn: "Connection", reason: str) -> None:
        """`conn` ended, and why."""

    def on_open(self, conn: "Connection") -> None:  # pragma: no cover - interface
        """The accepting end: the handshake reply is on its way; frames may follow it."""


class _Link:
    __slots__ = ("spec", "free_at", "bytes", "packets", "bucket", "bucket_bytes", "max_excess",
                 "max_backlog")

    def __init__(self, spec: LinkSpec) -> None:
        self.spec = spec
        self.free_at = 0.0
        self.bytes = 0
        self.packets = 0
        self.bucket = -1
        self.bucket_bytes = 0
        self.max_excess = 0.0  # worst (bytes started in a window - one packet) / capacity
        self.max_backlog = 0.0  # longest wait for the transmitter, seconds


@dataclass(eq=False)
class Connection:
    """A duplex connection between hosts `a` (the dialer) and `b`."""

    id: int
    a: int
    b: int
    ends: dict[int, Endpoint] = field(default_factory=dict)
    open: bool = True
    sent: dict[int, int] = field(default_factory=dict)  # frames sent by host
    expect: dict[int, int] = field(default_factory=dict)  # next frame counter expected by host
    last_arrival: dict[int, float] = field(default_factory=dict)  # per receiving host
    held: dict[int, list] = field(default_factory=dict)  # per receiving host: packets cut off
    closed_by: dict[int, str] = field(default_factory=dict)
    reset_sent: bool = False
    ready: set[int] = field(default_factory=set)  # ends whose handshake is complete
    handshake_done: dict[int, float] = field(default_factory=dict)  # when the reply arrives

    def other(self, host: int) -> int:
        return self.b if host == self.a else self.a


class SimNet:
    """The network (see the module docstring)."""

    def __init__(self, loop: EventLoop, rng: random.Random, default: LinkSpec | None = None,
                 on_packet: Callable[[float, int, int, str, bytes], None] | None = None) -> None:
        self.loop = loop
        self.rng = rng
        self.default = default or LinkSpec()
        self.on_packet = on_packet  # (time, src, dst, kind, data): every delivery (for traces)
        self.specs: dict[tuple[int, int], LinkSpec] = {}
        self.links: dict[tuple[int, int], _Link] = {}
        self.down: set[int] = set()
        self.sides: dict[int, int] | None = None  # the current partition, host -> side
        self._held_conns: dict[Connection, None] = {}  # ordered: releases replay in order
        self._held_control: list[tuple] = []  # FIN / RST packets waiting for a heal
        self._next_conn = 0
        self.messages = 0
        self.bytes_total = 0
        self.bytes_out: dict[int, int] = {}
        self.bytes_in: dict[int, int] = {}
        self.kind_bytes: dict[str, int] = {}
        self.kind_count: dict[str, int] = {}
        self.host_kind_bytes: dict[tuple[int, str], int] = {}  # sent + received, per host
        self.dropped = 0
        self.broken = 0  # connections ended by a frame fault (unreliable links)

    # -- configuration -----------------------------------------------------------------------
    def set_link(self, a: int, b: int, spec: LinkSpec, *, both: bool = True) -> None:
        self.specs[(a, b)] = spec
        if both:
            self.specs[(b, a)] = spec
        for key in ((a, b), (b, a)) if both else ((a, b),):
            if key in self.links:
                self.links[key].spec = self.specs[key]

    def spec(self, a: int, b: int) -> LinkSpec:
        return self.specs.get((a, b), self.default)

    def _link(self, a: int, b: int) -> _Link:
        link = self.links.get((a, b))
        if link is None:
            link = self.links[(a, b)] = _Link(self.spec(a, b))
        return link

    def set_up(self, host: int, up: bool) -> None:
        if up:
            self.down.discard(host)
        else:
            self.down.add(host)

    def partition(self, sides: dict[int, int], start: float, end: float | None) -> None:
        """From `start` to `end` (None: forever), hosts on different sides cannot talk. Hosts not
        in `sides` talk to everyone."""
        self.loop.call_at(start, self._cut, dict(sides))
        if end is not None:
            self.loop.call_at(end, self.heal)

    def _cut(self, sides: dict[int, int]) -> None:
        self.sides = sides

    def heal(self) -> None:
        self.sides = None
        for conn in list(self._held_conns):
            self._release(conn)
        self._held_conns.clear()
        held, self._held_control = self._held_control, []
        for src, dst, size, fn in held:
            self.loop.call_later(self.spec(src, dst).rto, self._control, src, dst, size, fn)

    def reachable(self, a: int, b: int) -> bool:
        if a in self.down or b in self.down:
            return False
        sides = self.sides
        if sides is None:
            return True
        sa, sb = sides.get(a), sides.get(b)
        return sa is None or sb is None or sa == sb

    # -- connections -------------------------------------------------------------------------
    def dial(self, a: int, b: int, a_end: Endpoint, accept: Callable[[Connection], Endpoint | None],
             established: Callable[[Connection], None], failed: Callable[[str], None]) -> None:
        """Open a connection a -> b. At b, `accept(conn)` returns b's endpoint (or None: refused,
        a learns it), whose `on_open(conn)` runs once the reply is sent; at a, `established(conn)`
        once the handshake is done, else `failed(why)`."""
        self._next_conn += 1
        conn = Connection(self._next_conn, a, b)
        conn.ends[a] = a_end
        conn.sent = {a: 0, b: 0}
        conn.expect = {a: 0, b: 0}
        conn.last_arrival = {a: 0.0, b: 0.0}
        conn.held = {a: [], b: []}
        state = {"done": False}

        def timeout() -> None:
            if not state["done"]:
                state["done"] = True
                conn.open = False
                failed("connect timed out")

        def at_b() -> None:
            if state["done"] or b in self.down:
                return
            end = accept(conn)
            if end is None:
                self._control(b, a, 64, lambda: refused())
                return
            conn.ends[b] = end
            conn.ready.add(b)
            self._control(b, a, HANDSHAKE_BYTES[1], lambda: at_a(), conn=conn)
            end.on_open(conn)  # b's first frames follow its handshake reply

        def refused() -> None:
            if not state["done"]:
                state["done"] = True
                conn.open = False
                failed("refused")

        def at_a() -> None:
            if state["done"]:
                return
            state["done"] = True
            if not conn.open:
                return
            conn.ready.add(a)
            established(conn)

        self.loop.call_later(CONNECT_TIMEOUT, timeout)
        self._control(a, b, HANDSHAKE_BYTES[0], at_b)
        # b may send on the connection as soon as it accepted: those frames queue behind its
        # handshake reply on the same link, so they reach a after `established`.

    def _control(self, src: int, dst: int, size: int, fn: Callable[[], None], *,
                 hold: bool = False, conn: Connection | None = None) -> None:
        """A handshake or teardown packet. Across a cut it is lost, unless `hold` (a FIN or RST
        on a reliable link, which TCP retransmits): then it gets through after the heal. With
        `conn`, it keeps its place on the connection's stream: it overtakes no earlier frame and
        no later frame overtakes it."""
        if not self.reachable(src, dst):
            self._hold_control(src, dst, size, fn, hold)
            return
        arrival = self._transmit(src, dst, size, "handshake")
        if conn is not None:
            arrival = max(arrival, conn.last_arrival[dst])
            conn.last_arrival[dst] = conn.handshake_done[dst] = arrival
        self.loop.call_at(arrival, self._control_arrive, src, dst, size, fn, hold)

    def _control_arrive(self, src: int, dst: int, size: int, fn: Callable[[], None],
                        hold: bool) -> None:
        if self.reachable(src, dst):
            fn()
        else:
            self._hold_control(src, dst, size, fn, hold)

    def _hold_control(self, src: int, dst: int, size: int, fn: Callable[[], None],
                      hold: bool) -> None:
        if hold and src not in self.down and dst not in self.down and self.spec(src, dst).reliable:
            self._held_control.append((src, dst, size, fn))
        else:
            self.dropped += 1

    def send(self, conn: Connection, src: int, data: bytes, kind: str = "") -> None:
        """Queue one frame from `src` to the other end of `conn`."""
        if not conn.open or src in conn.closed_by:
            return
        dst = conn.other(src)
        counter = conn.sent[src]
        conn.sent[src] = counter + 1
        self.messages += 1
        self.kind_count[kind] = self.kind_count.get(kind, 0) + 1
        size = len(data) + FRAME_OVERHEAD
        packet = (conn, src, dst, data, counter, size, kind)
        if not self.reachable(src, dst):
            self._hold(packet)
            return
        self._fly(packet)

    def _fly(self, packet: tuple) -> None:
        conn, src, dst, data, counter, size, kind = packet
        spec = self._link(src, dst).spec
        rng = self.rng
        arrival = self._transmit(src, dst, size, kind)
        if spec.reliable:
            while spec.loss and rng.random() < spec.loss:  # resent after the timeout
                arrival = self._transmit(src, dst, size, kind, at=arrival + spec.rto)
            if spec.duplicate and rng.random() < spec.duplicate:
                self._transmit(src, dst, size, kind)  # a wasted copy
            arrival = max(arrival, conn.last_arrival[dst])
            conn.last_arrival[dst] = arrival
            self.loop.call_at(arrival, self._arrive, packet)
            return
        if spec.loss and rng.random() < spec.loss:
            self.dropped += 1
            return
        arrival = max(arrival, conn.last_arrival[dst])  # jitter alone does not reorder frames
        conn.last_arrival[dst] = arrival
        if spec.reorder and rng.random() < spec.reorder:  # held back: the next frames overtake
            arrival += rng.uniform(0.0, 4 * spec.latency)
        self.loop.call_at(arrival, self._arrive, packet)
        if spec.duplicate and rng.random() < spec.duplicate:
            again = self._transmit(src, dst, size, kind)
            self.loop.call_at(again, self._arrive, packet)

    def _transmit(self, src: int, dst: int, size: int, kind: str, at: float | None = None) -> float:
        """Occupy the link's transmitter for one packet; return its arrival time."""
        link = self._link(src, dst)
        spec = link.spec
        now = self.loop.now if at is None else at
        start = max(now, link.free_at)
        if start - now > link.max_backlog:
            link.max_backlog = start - now
        tx = size / spec.bandwidth
        link.free_at = start + tx
        link.bytes += size
        link.packets += 1
        self._meter(link, start, size)
        self.bytes_total += size
        self.bytes_out[src] = self.bytes_out.get(src, 0) + size
        self.bytes_in[dst] = self.bytes_in.get(dst, 0) + size
        self.kind_bytes[kind] = self.kind_bytes.get(kind, 0) + size
        hk = self.host_kind_bytes
        hk[(src, kind)] = hk.get((src, kind), 0) + size
        hk[(dst, kind)] = hk.get((dst, kind), 0) + size
        jitter = self.rng.uniform(0.0, spec.jitter) if spec.jitter else 0.0
        return start + tx + spec.latency + jitter

    def _meter(self, link: _Link, start: float, size: int) -> None:
        bucket = int(start / _METER_WINDOW)
        if bucket != link.bucket:
            link.bucket, link.bucket_bytes = bucket, 0
        link.bucket_bytes += size
        capacity = link.spec.bandwidth * _METER_WINDOW
        excess = (link.bucket_bytes - size) / capacity
        if excess > link.max_excess:
            link.max_excess = excess

    def _hold(self, packet: tuple) -> None:
        conn, src, dst = packet[0], packet[1], packet[2]
        if not self._link(src, dst).spec.reliable or src in self.down or dst in self.down:
            self.dropped += 1
            return
        conn.held[dst].append(packet)
        self._held_conns[conn] = None

    def _release(self, conn: Connection) -> None:
        """After a heal, TCP's next retransmission gets the held packets through, in order."""
        for dst in (conn.a, conn.b):
            held, conn.held[dst] = conn.held[dst], []
            for packet in held:
                if conn.open and self.reachable(packet[1], dst):
                    spec = self._link(packet[1], dst).spec
                    self.loop.call_later(spec.rto, self._fly, packet)
                else:
                    self.dropped += 1

    def _arrive(self, packet: tuple) -> None:
        conn, src, dst, data, counter, size, kind = packet
        if dst in conn.closed_by:  # this end is gone: its host answers with a reset
            if src not in conn.closed_by and dst not in self.down and not conn.reset_sent:
                conn.reset_sent = True
                self._control(dst, src, 64, lambda: self._closed_at(conn, src, "connection reset"))
            return
        if not conn.open:
            return
        if not self.reachable(src, dst):
            self._hold(packet)
            return
        end = conn.ends.get(dst)
        if end is None:
            return
        if dst not in conn.ready:  # overtook the handshake (unreliable links): undecryptable
            self.broken += 1
            self.close(conn, dst, "RemoteError: frame before the handshake ended")
            return
        if counter != conn.expect[dst]:  # only unreliable links get here
            self.broken += 1
            why = "replayed frame" if counter < conn.expect[dst] else "frame out of order or lost"
            self.close(conn, dst, f"RemoteError: {why}")
            end.on_close(conn, f"RemoteError: {why}")
            return
        conn.expect[dst] = counter + 1
        if self.on_packet is not None:
            self.on_packet(self.loop.now, src, dst, kind, data)
        end.on_data(conn, data)

    def close(self, conn: Connection, by: int, reason: str = "closed", *, notify: bool = True) -> None:
        """`by` ends the connection; the other end hears it (FIN/RST) after the link's delay, if the
        packet gets through (a crashed machine sends nothing: `notify=False`)."""
        if by in conn.closed_by:
            return
        conn.closed_by[by] = reason
        other = conn.other(by)
        if len(conn.closed_by) == 2 or other not in conn.ends:
            conn.open = False
            return
        if notify:  # the FIN follows the frames sent before it on the stream (a Refuse, an
            # InviteResult sent just before closing reach the peer first)
            self._control(by, other, 64, lambda: self._closed_at(conn, other, reason), hold=True,
                          conn=conn)

    def _closed_at(self, conn: Connection, host: int, reason: str) -> None:
        if host in conn.closed_by:
            return
        conn.closed_by[host] = "peer closed"
        conn.open = False
        end = conn.ends.get(host)
        if end is not None:
            end.on_close(conn, f"peer closed: {reason}")

    # -- measurements ------------------------------------------------------------------------
    def bandwidth_ok(self, slack: float = 1e-9) -> bool:
        """No link started more than its bandwidth's worth of bytes in any one-second window
        (beyond the single packet that straddles the window's end)."""
        return all(link.max_excess <= 1.0 + slack for link in self.links.values())

    def worst_link_utilisation(self) -> float:
        return max((link.max_excess for link in self.links.values()), default=0.0)

    def max_backlog(self) -> float:
        return max((link.max_backlog for link in self.links.values()), default=0.0)
