"""`backer events` (daemon._streamer): one JSON line per event, in order, none lost, also when
many are queued at once and go out in one write."""

from __future__ import annotations

import json

import trio
import trio.testing

from gossip_backer import Node
from gossip_backer.daemon import EVENT_COALESCE, _streamer
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


def test_a_burst_goes_out_in_few_writes_and_a_lone_event_at_once(tmp_path):
    """Events emitted one at a time, a millisecond apart, are written together every
    EVENT_COALESCE (each write wakes the reader: one per event cost the loop ~10% of its time in
    a pull of 2,000 files); an event after a quiet spell is written without waiting."""
    root = tmp_path / "solo"
    NodeState.init(root, "solo").close()
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main():
        async with Node.open(root, watch=False) as node:
            left, right = trio.socket.socketpair()
            ours, theirs = trio.SocketStream(left), trio.SocketStream(right)
            chunks: list[tuple[float, bytes]] = []

            async def read() -> None:
                while data := await theirs.receive_some(1 << 16):
                    chunks.append((trio.current_time(), data))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(_streamer(node), {}, ours)
                nursery.start_soon(read)
                await trio.testing.wait_all_tasks_blocked()
                for i in range(100):
                    node.emit(FileUpdated(1.0, f"f{i}", "n"))
                    await trio.sleep(0.001)
                await trio.sleep(1.0)
                burst = len(chunks)
                quiet = trio.current_time()
                node.emit(FileUpdated(1.0, "lone", "n"))
                await trio.sleep(0.001)
                nursery.cancel_scope.cancel()
            lines = [json.loads(x) for x in b"".join(d for _, d in chunks).splitlines()]
            paths = [x["path"] for x in lines if x.get("type") == "file_updated"]
            assert paths == [f"f{i}" for i in range(100)] + ["lone"]
            assert burst <= 100 * 0.001 / EVENT_COALESCE + 2
            assert len(chunks) == burst + 1 and chunks[-1][0] == quiet

    trio.run(main, clock=clock)
