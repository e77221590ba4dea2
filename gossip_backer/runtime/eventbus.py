"""The node's notifications: user-visible events (events.py) to every subscriber, and a wake-up
for code waiting until the node's state changes.

Subscribers are `backer events` (through the control socket), the web's event stream and tests.
Emitting never blocks the node: a subscriber more than EVENT_BUFFER events behind misses events
rather than stall it. Every event is also logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from gossip_backer.events import Event

log = logging.getLogger("gossip_backer.runtime.node")  # the name events were always logged under
EVENT_BUFFER = 1000


class EventBus:
    """Fans each emitted event out to the current subscribers (see the module docstring)."""

    def __init__(self) -> None:
        self._subscribers: set[trio.MemorySendChannel] = set()

    def emit(self, event: Event) -> None:
        if log.isEnabledFor(logging.INFO):  # (its JSON is not made for nobody: one per file)
            log.info("%s", event.to_json())
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                pass  # a subscriber that does not keep up misses events rather than stall us
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                self._subscribers.discard(channel)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[trio.MemoryReceiveChannel]:
        """A channel of every event from now on, until the block exits."""
        send, receive = trio.open_memory_channel[Event](EVENT_BUFFER)
        self._subscribers.add(send)
        try:
            async with receive:
                yield receive
        finally:
            self._subscribers.discard(send)

    async def events(self) -> AsyncIterator[Event]:
        """Every event from now on (SPEC.md: the same as `backer events`)."""
        async with self.subscribe() as receive:
            async for event in receive:
                yield event


class Changed:
    """Wakes waiters when links or the map changed; they look again at least every `poll` s."""

    def __init__(self, poll: float = 0.5) -> None:
        self.poll = poll
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        """Until the next change (or `poll` seconds): callers re-check their condition."""
        if self._event.is_set():
            self._event = trio.Event()
        with trio.move_on_after(self.poll):
            await self._event.wait()
