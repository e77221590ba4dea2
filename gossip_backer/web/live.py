"""The live-edit websocket: `ws://HOST:PORT/api/live/PATH` speaks y-websocket, so a stock Yjs
client (`new WebsocketProvider("ws://HOST:PORT/api/live", "notes/plan.md", ydoc)`) edits the file
like the built-in editor does. The gates of web/gates.py apply as to every route (the token,
`?token=` for a websocket, beyond loopback; same origin). A path that is not a live file on this
node is refused before the websocket opens (HTTP 403). The protocol itself is the node's
(`Node.live_connect`: live/ywire.py); this module only moves the bytes.
"""

from __future__ import annotations

import json
import logging

import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from gossip_backer.errors import UserError

log = logging.getLogger(__name__)
REFUSED = 1008  # policy violation: before accept, the client sees HTTP 403
BAD_DATA = 1003


def live_routes(api) -> list[BaseRoute]:
    """The websocket route, for `create_app(..., routes=...)`."""

    async def endpoint(ws: WebSocket) -> None:
        path = ws.path_params["path"]
        try:
            session = api.live_connect(path)
            conn = await session.__aenter__()
        except UserError as exc:
            log.info("live editor refused for %s: %s", path, exc)
            await ws.close(code=REFUSED)
            return
        try:
            await ws.accept()
            for message in conn.hello():
                await ws.send_bytes(message)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_forward, conn, ws, nursery.cancel_scope)
                await _receive(conn, ws)
                nursery.cancel_scope.cancel()
        except WebSocketDisconnect:
            pass
        finally:
            await session.__aexit__(None, None, None)

    async def listing(request: Request) -> Response:
        """GET /api/live: the files live on this node and the mesh's live globs."""
        body = {"files": api.live_files(), "globs": api.live_globs()}
        return Response(json.dumps(body), media_type="application/json")

    return [Route("/api/live", listing, methods=["GET"]),
            WebSocketRoute("/api/live/{path:path}", endpoint)]


async def _receive(conn, ws: WebSocket) -> None:
    """Client messages in; answers back. Garbage closes this connection only."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        if data is None:
            continue  # y-websocket sends binary frames only
        try:
            replies = conn.receive(data)
        except ValueError as exc:  # YProtocolError, or pycrdt refusing an update
            log.info("live editor of %s sent bad data: %s", conn.path, exc)
            await ws.close(code=BAD_DATA)
            return
        for reply in replies:
            await ws.send_bytes(reply)


async def _forward(conn, ws: WebSocket, scope: trio.CancelScope) -> None:
    """Changes of the document (and other editors' cursors) out to this editor."""
    async for message in conn.outgoing:
        await ws.send_bytes(message)
    scope.cancel()  # dropped as too slow: it reconnects and syncs again


__all__ = ["live_routes"]
