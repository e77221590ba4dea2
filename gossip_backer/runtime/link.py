"""One trio stream <-> one PeerConnection: read bytes, feed the machine, send what it says.

Outgoing messages go through a bounded queue to one sender task, so a slow peer never blocks the
node: when its queue is full it is dropped (it reconnects and catches up by digest).

Block requests and answers are handled beside the receive loop (`spawn`), a few at once: handled
one by one, each waited for its disk read or hash in a worker thread while the link stood still,
and a peer served about 400 small files a second. The loop waits for a free slot, so a peer that
sends faster than we handle is slowed down by TCP, not buffered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from gossip_backer.errors import LocalError, RemoteError
from gossip_backer.protocol.peer import Authenticated, Closed, PeerConnection
from gossip_backer.wire.messages import BUNDLE_COUNT, Message, bundled

log = logging.getLogger(__name__)
READ_SIZE = 1 << 20  # a whole 1 MiB batch in one receive where the socket has it: a trio receive, a feed and a wake-up per 1 MiB instead of four
QUEUE = 1024
CONCURRENT_HANDLERS = 16  # block messages of one link handled at once
HANDSHAKE_TIMEOUT = 15.0


class Link:
    """A live connection to one peer (after the handshake: `peer` is its public key)."""

    def __init__(self, stream: trio.abc.Stream, conn: PeerConnection, address: str | None,
                 dialed: bool | None) -> None:
        self.stream = stream
        self.conn = conn
        self.address = address
        self.dialed = dialed
        self.peer: bytes | None = None
        self.hello = None
        self._send, self._outbox = trio.open_memory_channel[Message | None](QUEUE)
        self.closed = trio.Event()
        self.close_reason = ""
        self._tasks: trio.Nursery | None = None
        self._slots = trio.Semaphore(CONCURRENT_HANDLERS)

    def send(self, message: Message) -> None:
        """Queue a message; a peer whose queue is full is too slow and gets dropped."""
        try:
            self._send.send_nowait(message)
        except trio.WouldBlock:
            self.abort("peer too slow (send queue full)")
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def abort(self, reason: str) -> None:
        """Close after what is queued (best effort), with `reason` logged."""
        if not self.close_reason:
            self.close_reason = reason
        try:
            self._send.send_nowait(None)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self.closed.set()

    async def run(self, on_event: Callable[["Link", object], Awaitable[None]]) -> None:
        """Pump until either side closes; `on_event(link, event)` gets Authenticated/Received."""
        try:
            async with trio.open_nursery() as nursery:
                self._tasks = nursery
                nursery.start_soon(self._sender)
                try:
                    await self._pump(on_event)
                except RemoteError as exc:
                    self.close_reason = self.close_reason or str(exc)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    self.close_reason = self.close_reason or f"connection lost ({type(exc).__name__})"
                except Exception as exc:  # our bug: drop this link, keep the node alive
                    log.exception("internal error on a peer link")
                    self.close_reason = self.close_reason or f"internal error: {exc}"
                nursery.cancel_scope.cancel()
        finally:
            self.closed.set()
            with trio.CancelScope(shield=True):
                with trio.move_on_after(1):
                    await self._goodbye()

    async def spawn(self, fn: Callable[..., Awaitable[None]], *args: object) -> None:
        """Run `fn(*args)` beside the receive loop, once a slot is free. A RemoteError it raises
        drops the link, as if the loop had raised it."""
        await self._slots.acquire()
        if self._tasks is None:  # pragma: no cover - only run() receives
            self._slots.release()
            raise LocalError("spawn outside Link.run")
        self._tasks.start_soon(self._handle, fn, args)

    async def _handle(self, fn, args) -> None:
        try:
            await fn(*args)
        except RemoteError as exc:
            self.abort(str(exc))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.abort(f"connection lost ({type(exc).__name__})")
        except Exception as exc:  # our bug: drop this link, keep the node alive
            log.exception("internal error on a peer link")
            self.abort(f"internal error: {exc}")
        finally:
            self._slots.release()

    async def _pump(self, on_event) -> None:
        await self._send_raw(self.conn.initial_bytes())
        with trio.move_on_after(HANDSHAKE_TIMEOUT) as timeout:
            await self._receive_until(lambda: self.peer is not None, on_event)
        if timeout.cancelled_caught:
            raise RemoteError("handshake timed out")
        await self._receive_until(lambda: False, on_event)

    async def _receive_until(self, done: Callable[[], bool], on_event) -> None:
        while not done() and not self.closed.is_set():
            data = await self.stream.receive_some(READ_SIZE)
            if not data:
                self.conn.receive_eof()
                self.close_reason = self.close_reason or "peer closed the connection"
                return
            events = self.conn.receive_data(data)
            await self._send_raw(self.conn.data_to_send())
            for event in events:
                if isinstance(event, Authenticated):
                    self.peer = event.peer
                elif isinstance(event, Closed):
                    self.close_reason = self.close_reason or "peer said goodbye"
                    return
                await on_event(self, event)

    async def _sender(self) -> None:
        """Sends what is queued; messages queued together go out at once (small ones share a
        frame: PeerConnection.send_many)."""
        held: list[Message | None] = []  # taken from the queue, not bundled: sent next
        try:
            while True:
                message = held.pop() if held else await self._outbox.receive()
                if message is None:
                    break
                batch = [message]
                while bundled(message) and len(batch) < BUNDLE_COUNT:
                    try:
                        message = self._outbox.receive_nowait()
                    except trio.WouldBlock:
                        break
                    if message is None or not bundled(message):
                        held.append(message)
                        break
                    batch.append(message)
                try:
                    await self._send_raw(self.conn.send_many(batch))
                except LocalError:
                    await self._send_one_by_one(batch)
        except trio.EndOfChannel:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.close_reason = self.close_reason or f"connection lost ({type(exc).__name__})"
        self.closed.set()
        await self._goodbye()

    async def _send_one_by_one(self, batch: list[Message]) -> None:
        for message in batch:
            try:
                await self._send_raw(self.conn.send(message))
            except LocalError as exc:
                log.error("cannot send %s: %s", type(message).__name__, exc)

    async def _send_raw(self, data: bytes) -> None:
        if data:
            await self.stream.send_all(data)

    async def _goodbye(self) -> None:
        try:
            data = self.conn.close()
            if data:
                await self.stream.send_all(data)
            await self.stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
