"""`Node.serve_stream` over any duplex byte stream: memory, TCP on 127.0.0.1, WebSocket."""

from __future__ import annotations

from functools import partial

import trio
import trio.testing
from trio_websocket import open_websocket_url, serve_websocket

from gossip_backer import Node
from gossip_backer.events import PeerConnected, PeerDisconnected
from gossip_backer.runtime.wsstream import WebSocketStream


async def _in_sync(a: Node, b: Node) -> None:
    with trio.fail_after(20):
        await b.wait_in_sync()
        await a.wait_in_sync()
    assert a.state.metamap.digest() == b.state.metamap.digest()
    # b learned the founder's grant of itself through the session
    assert b.state.is_member() and not b.state.is_read_only()


def test_spec_example_over_memory_streams(pair):
    root_a, root_b = pair

    async def main():
        async with Node.open(root_a) as a, Node.open(root_b) as b:
            left, right = trio.testing.memory_stream_pair()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(a.serve_stream, left)
                nursery.start_soon(b.serve_stream, right)
                await _in_sync(a, b)
                assert set(a.links) == {b.state.identity.public}
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_events_report_connect_and_disconnect(pair):
    root_a, root_b = pair

    async def main():
        async with Node.open(root_a) as a, Node.open(root_b) as b:
            seen = []
            async with trio.open_nursery() as nursery:
                async def watch():
                    async for event in a.events():
                        if isinstance(event, (PeerConnected, PeerDisconnected)):
                            seen.append(event)
                        if isinstance(event, PeerDisconnected):
                            return
                nursery.start_soon(watch)
                await trio.testing.wait_all_tasks_blocked()
                left, right = trio.testing.memory_stream_pair()
                async with trio.open_nursery() as inner:
                    inner.start_soon(a.serve_stream, left)
                    inner.start_soon(b.serve_stream, right)
                    with trio.fail_after(10):
                        await a.wait_connected()
                    await right.aclose()
            kinds = [type(e) for e in seen]
            assert kinds[0] is PeerConnected and kinds[-1] is PeerDisconnected
            assert seen[0].node_id == str(b.node_id) and seen[0].name == "beta"

    trio.run(main)


def test_over_tcp(pair):
    root_a, root_b = pair

    async def main():
        async with Node.open(root_a) as a, Node.open(root_b) as b:
            async with trio.open_nursery() as nursery:
                serve = partial(trio.serve_tcp, host="127.0.0.1")
                listeners = await nursery.start(serve, lambda s: a.serve_stream(s, initiator=False), 0)
                port = listeners[0].socket.getsockname()[1]
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                nursery.start_soon(lambda: b.serve_stream(stream, initiator=True))
                await _in_sync(a, b)
                assert a.net()["bytes_in"] > 0 and b.net()["bytes_out"] > 0
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_over_websocket(pair):
    root_a, root_b = pair

    async def main():
        async with Node.open(root_a) as a, Node.open(root_b) as b:
            async def handler(request):
                ws = await request.accept()
                await a.serve_stream(WebSocketStream(ws), initiator=False)

            async with trio.open_nursery() as nursery:
                server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
                url = f"ws://127.0.0.1:{server.port}/mesh"
                async with open_websocket_url(url) as ws:
                    nursery.start_soon(lambda: b.serve_stream(WebSocketStream(ws), initiator=True))
                    await _in_sync(a, b)
                    nursery.cancel_scope.cancel()

    trio.run(main)


def test_wrong_mesh_is_refused_in_handshake(tmp_path):
    async def main():
        async with Node.open(tmp_path / "x") as x, Node.open(tmp_path / "y") as y:
            left, right = trio.testing.memory_stream_pair()
            async with trio.open_nursery() as nursery:
                reasons = []

                async def run(node, stream):
                    reasons.append(await node.serve_stream(stream))
                nursery.start_soon(run, x, left)
                nursery.start_soon(run, y, right)
            assert not x.links and not y.links
            assert any("mesh secret" in r for r in reasons), reasons

    trio.run(main)


def test_member_events_carry_unix_time(pair):
    """Issue 11: member_added came with the sans-IO monotonic clock (seconds since boot)."""
    import time

    from gossip_backer.events import MemberAdded

    root_a, root_b = pair

    async def main():
        async with Node.open(root_a) as a, Node.open(root_b) as b:
            added = []
            async with trio.open_nursery() as nursery:
                async def watch():
                    async for event in b.events():
                        if isinstance(event, MemberAdded):
                            added.append(event)
                            return
                nursery.start_soon(watch)
                await trio.testing.wait_all_tasks_blocked()
                left, right = trio.testing.memory_stream_pair()
                nursery.start_soon(a.serve_stream, left)
                nursery.start_soon(b.serve_stream, right)
                with trio.fail_after(20):
                    while not added:
                        await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
            assert abs(added[0].time - time.time()) < 60, added[0]

    trio.run(main)
