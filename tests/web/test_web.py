"""The web server over real sockets on 127.0.0.1: a fake node behind it, http.client in front.

Each test runs its own trio loop (`trio.run`) with `serve_web` in a nursery; the blocking client
runs in a worker thread. Only the node is a double: hypercorn, the app and the sockets are real.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

import pytest
import trio

from gossip_backer.events import PeerConnected
from gossip_backer.web.app import create_app
from gossip_backer.web.server import serve_app, serve_web

TOKEN = "s3cret-token_value"
STATUS = {
    "node_id": "n1abc", "name": "alpha", "mesh_id": "m1xyz", "running": True,
    "listen": "0.0.0.0:7440", "web": None, "files": 3, "bytes": 1234, "in_sync": False,
    "pending_files": 1, "pending_bytes": 100, "conflicts": ["a.sync-conflict-x.txt"],
    "net": {"bytes_in": 10, "bytes_out": 20},
    "peers": [{"node_id": "n2def", "name": "beta", "read_only": False, "connected": True,
               "address": "10.0.0.2:7440", "last_seen": 1700000000.0}],
}


class FakeNode:
    """A stand-in for runtime.Node: fixed status and peers, events pushed by the test."""

    def __init__(self) -> None:
        self.subscribers: list[trio.MemorySendChannel] = []

    def status(self) -> dict:
        return STATUS

    def peers(self) -> list[dict]:
        return STATUS["peers"]

    @asynccontextmanager
    async def subscribe(self):
        send, receive = trio.open_memory_channel(16)
        self.subscribers.append(send)
        try:
            async with receive:
                yield receive
        finally:
            self.subscribers.remove(send)

    def push(self, event: object) -> None:
        for channel in self.subscribers:
            channel.send_nowait(event)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def fetch(url: str, path: str, method: str = "GET", headers: dict | None = None) -> Reply:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def read_stream(url: str, want: Callable[[bytes], bool], count: int,
                headers: dict | None = None) -> list[bytes]:
    """Open /api/events and return the first `count` lines that `want` accepts."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request("GET", "/api/events", headers=headers or {})
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines: list[bytes] = []
        while len(lines) < count:
            line = resp.readline()
            assert line, "stream ended early"
            if want(line):
                lines.append(line)
        return lines
    finally:
        conn.close()


async def get(url: str, path: str, method: str = "GET", headers: dict | None = None) -> Reply:
    return await trio.to_thread.run_sync(partial(fetch, url, path, method, headers))


def served(test: Callable[[str, FakeNode], Awaitable[None]], token: str | None = None,
           app_factory: Callable | None = None) -> None:
    """Run `test(url, node)` against a live server, then stop it; everything within 10 s."""
    node = FakeNode()

    async def main() -> None:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                if app_factory is None:  # positional token: how runtime/daemon.py calls it
                    url = await nursery.start(serve_web, node, "127.0.0.1", 0, token)
                else:
                    url = await nursery.start(partial(serve_app, app_factory(node), "127.0.0.1", 0))
                await test(url, node)
                nursery.cancel_scope.cancel()

    trio.run(main)


async def wait_for(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await trio.sleep(0.01)


# -- without a token (loopback) -------------------------------------------------------------
def test_started_url_names_the_bound_port() -> None:
    async def check(url: str, node: FakeNode) -> None:
        parts = urlsplit(url)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        assert parts.port and parts.port != 0

    served(check)


def test_status_is_the_status_json_object() -> None:
    async def check(url: str, node: FakeNode) -> None:
        reply = await get(url, "/api/status")
        assert reply.status == 200
        assert reply.headers["content-type"] == "application/json"
        assert reply.headers["cache-control"] == "no-store"
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.json() == STATUS

    served(check)


def test_peers_is_the_peers_json_list() -> None:
    async def check(url: str, node: FakeNode) -> None:
        reply = await get(url, "/api/peers")
        assert reply.status == 200
        assert reply.headers["content-type"] == "application/json"
        assert reply.json() == STATUS["peers"]

    served(check)


def test_dashboard_is_served_with_a_strict_csp() -> None:
    async def check(url: str, node: FakeNode) -> None:
        page = await get(url, "/")
        assert page.status == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        assert b'src="/static/app.js"' in page.body
        script = await get(url, "/static/app.js")
        assert script.status == 200 and script.headers["content-type"].startswith("text/javascript")
        assert b'new EventSource("/api/events")' in script.body and b"/api/status" in script.body
        style = await get(url, "/static/style.css")
        assert style.status == 200 and style.headers["content-type"].startswith("text/css")

    served(check)


def test_unknown_routes_are_404_json_under_api() -> None:
    async def check(url: str, node: FakeNode) -> None:
        reply = await get(url, "/api/nope")
        assert reply.status == 404
        assert reply.headers["content-type"] == "application/json"
        assert "error" in reply.json()
        page = await get(url, "/nope")
        assert page.status == 404 and page.headers["content-type"].startswith("text/html")
        assert (await get(url, "/static/../app.py")).status == 404

    served(check)


def test_wrong_method_is_405_and_head_works() -> None:
    async def check(url: str, node: FakeNode) -> None:
        reply = await get(url, "/api/status", "POST")
        assert reply.status == 405
        assert reply.headers["allow"] == "GET, HEAD"
        assert reply.headers["content-type"] == "application/json"
        assert (await get(url, "/", "DELETE")).status == 405
        head = await get(url, "/api/status", "HEAD")
        assert head.status == 200 and head.body == b""

    served(check)


def test_foreign_host_header_is_refused_without_a_token() -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under its own name: its Host gives it away."""
    async def check(url: str, node: FakeNode) -> None:
        assert (await get(url, "/api/status", headers={"Host": "evil.example:8484"})).status == 403
        assert (await get(url, "/api/status", headers={"Host": "localhost:8484"})).status == 200
        assert (await get(url, "/api/status", headers={"Host": "[::1]:8484"})).status == 200

    served(check)


def test_cross_origin_unsafe_method_is_refused() -> None:
    async def check(url: str, node: FakeNode) -> None:
        host = urlsplit(url).netloc
        evil = await get(url, "/api/status", "POST", {"Origin": "http://evil.example"})
        assert evil.status == 403
        same = await get(url, "/api/status", "POST", {"Origin": f"http://{host}"})
        assert same.status == 405  # past the origin gate; no POST route here

    served(check)


# -- the event stream -----------------------------------------------------------------------
def test_events_stream_pushed_events_as_sse_data_lines() -> None:
    async def check(url: str, node: FakeNode) -> None:
        lines: list[bytes] = []

        async def client() -> None:
            want = lambda line: line.startswith(b"data: ")  # noqa: E731
            lines.extend(await trio.to_thread.run_sync(read_stream, url, want, 2))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(client)
            await wait_for(lambda: len(node.subscribers) == 1)
            node.push({"type": "file_changed", "time": 1.5, "path": "a.txt", "deleted": False})
            node.push(PeerConnected(time=2.0, node_id="n2def", name="beta", address=None))
        assert lines[0] == b'data: {"type":"file_changed","time":1.5,"path":"a.txt","deleted":false}\n'
        assert json.loads(lines[1][len(b"data: "):]) == {
            "type": "peer_connected", "time": 2.0, "node_id": "n2def", "name": "beta",
            "address": None}
        await wait_for(lambda: not node.subscribers)  # the client left: subscription closed

    served(check)


def test_idle_event_stream_sends_keepalive_comments() -> None:
    async def check(url: str, node: FakeNode) -> None:
        want = lambda line: line.startswith(b":")  # noqa: E731
        lines = await trio.to_thread.run_sync(read_stream, url, want, 2)
        assert lines == [b": keepalive\n"] * 2

    served(check, app_factory=lambda node: create_app(node, token=None, keepalive=0.05))


def test_shutdown_is_quick_with_a_stream_open() -> None:
    node = FakeNode()

    async def main() -> float:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_web, node, "127.0.0.1", 0, None)
            nursery.start_soon(partial(trio.to_thread.run_sync, partial(
                read_stream, url, lambda line: False, 1), abandon_on_cancel=True))
            await wait_for(lambda: len(node.subscribers) == 1)
            started = time.monotonic()
            nursery.cancel_scope.cancel()
        return time.monotonic() - started

    assert trio.run(main) < 1.5


def test_port_in_use_raises_the_plain_os_error() -> None:
    async def main() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            async with trio.open_nursery() as nursery:
                with pytest.raises(OSError):
                    await nursery.start(serve_web, FakeNode(), "127.0.0.1", port, None)

    trio.run(main)


# -- with a token ---------------------------------------------------------------------------
def test_token_required_on_every_route() -> None:
    async def check(url: str, node: FakeNode) -> None:
        api = await get(url, "/api/status")
        assert api.status == 401 and api.headers["content-type"] == "application/json"
        assert api.headers["www-authenticate"].startswith("Bearer")
        page = await get(url, "/")
        assert page.status == 401 and page.headers["content-type"].startswith("text/html")
        assert TOKEN.encode() not in page.body
        assert (await get(url, "/api/nope")).status == 401  # routes are not revealed either
        wrong = await get(url, "/api/status", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        # A token makes the Host check moot: a rebinding page cannot know it.
        assert (await get(url, "/api/status", headers={"Authorization": f"Bearer {TOKEN}",
                                                       "Host": "node.lan:8484"})).status == 200

    served(check, token=TOKEN)


def test_bearer_token_is_accepted() -> None:
    async def check(url: str, node: FakeNode) -> None:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        reply = await get(url, "/api/status", headers=auth)
        assert reply.status == 200 and reply.json() == STATUS
        assert (await get(url, "/", headers=auth)).status == 200
        want = lambda line: line.startswith(b"data: ")  # noqa: E731
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.to_thread.run_sync, read_stream, url, want, 1, auth))
            await wait_for(lambda: len(node.subscribers) == 1)
            node.push({"type": "in_sync", "time": 3.0, "files": 3, "bytes": 1234})

    served(check, token=TOKEN)


def test_query_token_sets_a_cookie_and_redirects_without_it() -> None:
    async def check(url: str, node: FakeNode) -> None:
        bad = await get(url, "/?token=wrong")
        assert bad.status == 401 and "set-cookie" not in bad.headers
        hop = await get(url, f"/api/status?a=1&token={TOKEN}&b=two")
        assert hop.status == 303
        assert hop.headers["location"] == "/api/status?a=1&b=two"
        cookie = hop.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert TOKEN not in cookie  # the cookie holds a value derived from the token
        pair = cookie.split(";")[0]
        reply = await get(url, "/api/status?a=1&b=two", headers={"Cookie": f"other=1; {pair}"})
        assert reply.status == 200 and reply.json() == STATUS
        assert (await get(url, "/", headers={"Cookie": pair})).status == 200
        name = pair.split("=")[0]
        forged = await get(url, "/api/status", headers={"Cookie": f"{name}={TOKEN}"})
        assert forged.status == 401

    served(check, token=TOKEN)


def test_dashboard_shows_problems_paused_and_overall_progress() -> None:
    """Issue 11: a paused root read "Syncing"; problems and the overall bar were not shown."""
    async def check(url: str, node: FakeNode) -> None:
        page = (await get(url, "/")).body
        assert b'id="problems-card"' in page and b'id="progress-bar"' in page
        script = (await get(url, "/static/app.js")).body
        assert b'"Paused"' in script and b"s.problems" in script and b"What to do" in script
        assert b"s.progress" in script and b"p.done_bytes" in script and b"p.total_bytes" in script

    served(check)


# -- routes contributed by other modules ----------------------------------------------------
def test_contributed_routes_incl_a_websocket_pass_the_same_gates() -> None:
    """`create_app(..., routes=[...])`: how a feature module (e.g. the live-edit websocket) adds
    its routes; they sit behind the same Host/origin/token gates as the GUI's own."""
    from starlette.routing import WebSocketRoute
    from trio_websocket import HandshakeError, open_websocket_url

    async def echo(websocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(f"{websocket.path_params['path']}:{text}")
        await websocket.close()

    route = WebSocketRoute("/api/echo/{path:path}", echo)

    async def check(url: str, node: FakeNode) -> None:
        ws_url = url.replace("http://", "ws://") + "api/echo/notes/a.md"
        async with open_websocket_url(ws_url) as ws:
            await ws.send_message("hi")
            assert await ws.get_message() == "notes/a.md:hi"
        with pytest.raises(HandshakeError):  # cross-site websocket hijacking
            async with open_websocket_url(ws_url, extra_headers=[("Origin", "http://evil.example")]):
                pass
        with pytest.raises(HandshakeError):
            async with open_websocket_url(url.replace("http://", "ws://") + "api/nope"):
                pass
        assert (await get(url, "/api/status")).status == 200  # the GUI's own routes stay

    served(check, app_factory=lambda node: create_app(node, token=None, routes=[route]))
