"""Link.spawn: block messages are handled beside the receive loop, a bounded number at once, and a
handler's RemoteError drops the link like the loop's own would. Two real PeerConnections over a
trio memory stream pair."""

from __future__ import annotations

import hashlib

import trio
import trio.testing

from gossip_backer.crypto.identity import Identity
from gossip_backer.errors import RemoteError
from gossip_backer.protocol.peer import PeerConnection, Received
from gossip_backer.runtime.link import CONCURRENT_HANDLERS, Link
from gossip_backer.wire.messages import Ping

KEY = hashlib.sha256(b"link test mesh").digest()


def _links() -> tuple[Link, Link]:
    a, b = (Identity.from_seed(hashlib.sha256(bytes([n])).digest()) for n in (1, 2))
    left, right = trio.testing.memory_stream_pair()
    conn_a = PeerConnection(a, KEY, lambda k: True, initiator=True)
    conn_b = PeerConnection(b, KEY, lambda k: True, initiator=False)
    return Link(left, conn_a, None, True), Link(right, conn_b, None, False)


async def _connected(on_a, body) -> None:
    """Run link A (its events to `on_a`) against link B, and `body(a, b)` once both are open."""
    a, b = _links()

    async def on_b(link: Link, event: object) -> None:
        return None

    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.run, on_a)
        nursery.start_soon(b.run, on_b)
        with trio.fail_after(10):
            while b.peer is None:
                await trio.sleep(0.01)
            await body(a, b)
        nursery.cancel_scope.cancel()


def _spawning(handler):
    async def on_a(link: Link, event: object) -> None:
        if isinstance(event, Received):
            await link.spawn(handler, event.message)
    return on_a


def test_handlers_run_side_by_side_up_to_the_limit():
    sent = 3 * CONCURRENT_HANDLERS
    running, most, handled = [0], [0], []
    release = trio.Event()

    async def handler(message: Ping) -> None:
        running[0] += 1
        most[0] = max(most[0], running[0])
        await release.wait()
        running[0] -= 1
        handled.append(message.nonce)

    async def body(a: Link, b: Link) -> None:
        for n in range(sent):
            b.send(Ping(n))
        while running[0] < CONCURRENT_HANDLERS:
            await trio.sleep(0.01)
        await trio.sleep(0.2)  # the loop must now wait for a slot
        assert running[0] == most[0] == CONCURRENT_HANDLERS
        release.set()
        while len(handled) < sent:
            await trio.sleep(0.01)
        assert sorted(handled) == list(range(sent))

    trio.run(_connected, _spawning(handler), body)


def test_a_handlers_remote_error_drops_the_link():
    async def bad(_message: Ping) -> None:
        raise RemoteError("peer sent a block that fails its hash")

    async def body(a: Link, b: Link) -> None:
        b.send(Ping(1))
        await a.closed.wait()
        await b.closed.wait()
        assert a.close_reason == "peer sent a block that fails its hash"

    trio.run(_connected, _spawning(bad), body)


def test_small_messages_queued_together_share_a_frame_and_keep_their_order():
    """The sender task takes every message queued meanwhile: small ones go out in one frame
    (PeerConnection.send_many), a large one in its own, all in the order queued."""
    from gossip_backer.crypto.channel import FRAME_OVERHEAD
    from gossip_backer.wire.messages import BlockData, DeltaAck, Digest, encode

    got = []

    async def on_a(link: Link, event: object) -> None:
        if isinstance(event, Received):
            got.append(event.message)

    sent = [Digest({b"o" * 32: 3}, False), DeltaAck(1, 1), BlockData(2, b"x" * 50_000),
            Ping(4), Ping(5)]

    async def body(a: Link, b: Link) -> None:
        await trio.sleep(0.1)
        before = b.conn.bytes_out
        for m in sent:
            b.send(m)
        while len(got) < len(sent):
            await trio.sleep(0.01)
        assert got == sent
        apart = sum(len(encode(m)) + FRAME_OVERHEAD for m in sent)
        assert b.conn.bytes_out - before < apart - 2 * FRAME_OVERHEAD + 20  # three frames

    trio.run(_connected, on_a, body)
