"""A WebSocket connection as a `trio.abc.Stream`, so a peer session can run over it (for
example through an HTTP reverse proxy). Binary messages carry the byte stream."""

from __future__ import annotations

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection


class WebSocketStream(trio.abc.Stream):
    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self._buffer = b""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.ws.send_message(bytes(data))
        except ConnectionClosed:
            raise trio.BrokenResourceError("websocket closed") from None

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if not self._buffer:
            try:
                message = await self.ws.get_message()
            except ConnectionClosed:
                return b""
            self._buffer = message if isinstance(message, bytes) else message.encode()
        size = len(self._buffer) if max_bytes is None else max_bytes
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    async def aclose(self) -> None:
        await self.ws.aclose()
