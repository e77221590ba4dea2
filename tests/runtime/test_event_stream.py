"""`backer events` (daemon._streamer): one JSON line per event, in order, none lost, also when
many are queued at once and go out in one write."""

from __future__ import annotations

import json

import trio
import trio.testing

from gossip_backer import Node
from gossip_backer.daemon import _streamer
from gossip_backer.events import FileUpdated
from gossip_backer.runtime.state import NodeState

EVENTS = 900  # queued at once (the node keeps up to 1,000 for a subscriber)


def test_queued_events_stream_as_lines_in_order(tmp_path):
    root = tmp_path / "solo"
    NodeState.init(root, "solo").close()

    async def main():
        async with Node.open(root, watch=False) as node:
            left, right = trio.socket.socketpair()
            ours, theirs = trio.SocketStream(left), trio.SocketStream(right)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_streamer(node), {}, ours)
                await trio.testing.wait_all_tasks_blocked()
                for i in range(EVENTS):  # all queued before the streamer runs again
                    node.emit(FileUpdated(1.0, f"f{i}", "n"))
                buf = b""
                with trio.fail_after(20):
                    while buf.count(b"\n") < EVENTS:
                        buf += await theirs.receive_some(1 << 16)
                nursery.cancel_scope.cancel()
            lines = [json.loads(x) for x in buf.splitlines()]
            paths = [x["path"] for x in lines if x.get("type") == "file_updated"]
            assert paths == [f"f{i}" for i in range(EVENTS)]

    trio.run(main)
