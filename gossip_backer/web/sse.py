"""Server-Sent Events of a node's event stream, as a Starlette response.

Each event is sent as `id: N` (increasing from 1 on each connection) and `data: {json}`; a comment
line keeps an idle stream open through proxies. The subscription ends when the client leaves or
the node stops. A pump task moves events from the subscription into a channel, so that waiting
with a timeout never cancels the subscription's own iterator (cancelling an async generator's
`__anext__` would end the generator).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import trio
from starlette.types import Receive, Scope, Send

from gossip_backer.core.paths import printable
from gossip_backer.events import Event

KEEPALIVE_SECONDS = 15.0


def _dumps(obj: object) -> bytes:
    return json.dumps(printable(obj), separators=(",", ":"), default=str).encode()


class EventStream:
    """An ASGI response streaming `api.subscribe()` until the client disconnects."""

    def __init__(self, api: Any, keepalive: float = KEEPALIVE_SECONDS) -> None:
        self.api = api
        self.keepalive = keepalive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"),
                   (b"x-accel-buffering", b"no")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await _chunk(send, b"retry: 3000\n\n")
        async with self.api.subscribe() as events, trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
            outbox, inbox = trio.open_memory_channel[Event | dict[str, Any]](0)
            nursery.start_soon(_pump, events, outbox)
            await self._stream(send, inbox)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            nursery.cancel_scope.cancel()  # the subscription ended (the node is stopping)

    async def _stream(self, send: Send, inbox: trio.MemoryReceiveChannel) -> None:
        sequence = 0
        async with inbox:
            while True:
                with trio.move_on_after(self.keepalive) as idle:
                    try:
                        item = await inbox.receive()
                    except trio.EndOfChannel:
                        return
                if idle.cancelled_caught:
                    await _chunk(send, b": keepalive\n\n")
                    continue
                sequence += 1
                data = item.to_json() if isinstance(item, Event) else item
                await _chunk(send, b"id: %d\ndata: %s\n\n" % (sequence, _dumps(data)))


async def _chunk(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _pump(events: AsyncIterator[Event | dict[str, Any]],
                outbox: trio.MemorySendChannel) -> None:
    async with outbox:
        async for item in events:
            await outbox.send(item)


async def _cancel_on_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()
