"""The web GUI as a plain ASGI application: the dashboard, the JSON API and its live event stream.

Theory of operation: `WebApp.__call__` takes one HTTP request through three gates, then a route.

1. Security headers are added to every response by wrapping `send` (so routes added later get
   them too): nosniff and no-referrer everywhere, `Cache-Control: no-store` under /api/, a strict
   Content-Security-Policy on everything else.
2. Who may ask. With a token (the runtime passes one when the web is bound beyond loopback), a
   request needs `Authorization: Bearer TOKEN` or the session cookie; `?token=TOKEN` sets that
   cookie and redirects to the same URL without the token, so it leaves the address bar. Without a
   token, the Host header must be loopback-like (an IP literal or localhost), which stops a DNS
   rebinding page from reading the API; and any state-changing method must come from our origin.
3. The route table maps a path to {method: handler}; HEAD rides on GET (hypercorn drops the body).

The app never touches the node's internals: it calls the three methods of `WebApi`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from html import escape
from ipaddress import ip_address
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import trio

from gossip_backer.core.paths import printable
from gossip_backer.events import Event

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
STATIC_DIR = Path(__file__).with_name("static")
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
COMMON_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
API_HEADERS = [(b"cache-control", b"no-store")]
PAGE_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
                (b"cache-control", b"no-cache")]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class WebApi(Protocol):
    """What the web needs from a running node (runtime.Node satisfies it)."""

    def status(self) -> dict[str, Any]:
        """The object of `backer status --json`."""
        ...

    def peers(self) -> list[dict[str, Any]]:
        """The list of `backer peers --json`."""
        ...

    def subscribe(self) -> AbstractAsyncContextManager[AsyncIterator[Event | dict[str, Any]]]:
        """Events from now on, as `Event` objects or their `to_json()` dicts."""
        ...


@dataclass(frozen=True)
class Request:
    scope: Scope
    receive: Receive
    send: Send

    @property
    def method(self) -> str:
        return str(self.scope["method"]).upper()

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    @property
    def is_api(self) -> bool:
        return self.path == "/api" or self.path.startswith("/api/")

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        for key, value in self.scope.get("headers", []):
            if key.lower() == wanted:
                return bytes(value).decode("latin-1")
        return None

    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(bytes(self.scope.get("query_string", b"")).decode("latin-1"),
                         keep_blank_values=True)

    def cookie(self, name: str) -> str | None:
        for part in (self.header("cookie") or "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None


Handler = Callable[[Request], Awaitable[None]]


async def respond(req: Request, status: int, body: bytes, content_type: str,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Send one whole response."""
    head = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await req.send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await req.send({"type": "http.response.body", "body": body, "more_body": False})


def dumps(obj: object) -> bytes:
    """JSON text for the API and the event stream: compact, ASCII, never a raw newline."""
    return json.dumps(printable(obj), separators=(",", ":"), default=str).encode()


async def respond_json(req: Request, status: int, obj: object,
                       headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await respond(req, status, dumps(obj), "application/json", headers)


async def respond_error(req: Request, status: int, message: str,
                        headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """JSON under /api/, a short HTML page elsewhere."""
    if req.is_api:
        await respond_json(req, status, {"error": message}, headers)
        return
    page = (f"<!doctype html><meta charset=utf-8><title>{status}</title>"
            f"<h1>{status}</h1><p>{escape(message)}</p>\n")
    await respond(req, status, page.encode(), STATIC_TYPES[".html"], headers)


class WebApp:
    """The ASGI callable. `routes` maps a path to {METHOD: handler}; more routes can be added."""

    def __init__(self, api: WebApi, *, token: str | None,
                 keepalive: float = KEEPALIVE_SECONDS) -> None:
        self.api = api
        self.keepalive = keepalive
        self._token = token.encode() if token is not None else None
        self._cookie = (hmac.new(self._token, b"gossip-backer web cookie", hashlib.sha256).hexdigest()
                        if self._token is not None else None)
        self._static = _load_static()
        self.routes: dict[str, dict[str, Handler]] = {
            "/": {"GET": self._static_route("index.html")},
            "/api/status": {"GET": self._status},
            "/api/peers": {"GET": self._peers},
            "/api/events": {"GET": self._events},
        }
        for name in self._static.keys() - {"index.html"}:
            self.routes.setdefault(f"/static/{name}", {"GET": self._static_route(name)})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
        elif scope["type"] == "http":
            req = Request(scope, receive, send)
            req = replace(req, send=_secure(send, api=req.is_api))
            if await self._admit(req):
                await self._route(req)

    # -- gates -----------------------------------------------------------------------------
    async def _admit(self, req: Request) -> bool:
        """True when the request may go on; otherwise a response has been sent."""
        refusal = self._refusal(req)
        if refusal is not None:
            await respond_error(req, 403, refusal)
            return False
        return self._token is None or await self._check_token(req)

    def _refusal(self, req: Request) -> str | None:
        """Why a browser may be tricked into this request (rebinding, cross-site), or None."""
        if self._token is None and not _loopback_host(req.header("host")):
            return "Host not allowed: use the URL printed by `backer run`"
        if req.method not in SAFE_METHODS and not _same_origin(req):
            return "cross-origin request refused"
        return None

    async def _check_token(self, req: Request) -> bool:
        query = req.query()
        offered = [value for key, value in query if key == "token"]
        if offered and self._valid_token(offered[-1]):
            await self._redirect_with_cookie(req, [(k, v) for k, v in query if k != "token"])
            return False
        if self._valid_token(_bearer(req.header("authorization"))) or self._valid_cookie(req):
            return True
        await respond_error(req, 401, "this node's web GUI needs its token: open the URL with "
                            "?token=TOKEN (printed by `backer run`) or send Authorization: Bearer "
                            "TOKEN", [(b"www-authenticate", b'Bearer realm="gossip-backer"')])
        return False

    def _valid_token(self, candidate: str | None) -> bool:
        assert self._token is not None
        return candidate is not None and hmac.compare_digest(candidate.encode(), self._token)

    def _valid_cookie(self, req: Request) -> bool:
        # The cookie holds an HMAC of the token, not the token: always cookie-safe, never echoed.
        cookie = req.cookie(self._cookie_name(req))
        assert self._cookie is not None
        return cookie is not None and hmac.compare_digest(cookie.encode(), self._cookie.encode())

    def _cookie_name(self, req: Request) -> str:
        # Cookies ignore ports: one name per port keeps nodes on one host from clobbering each other.
        server = req.scope.get("server")
        return f"backer_token_{server[1]}" if server else "backer_token"

    async def _redirect_with_cookie(self, req: Request, rest: list[tuple[str, str]]) -> None:
        location = quote(req.path) + (f"?{urlencode(rest)}" if rest else "")
        cookie = f"{self._cookie_name(req)}={self._cookie}; Path=/; HttpOnly; SameSite=Strict"
        status = 303 if req.method in ("GET", "HEAD") else 307
        await respond(req, status, b"", "text/plain; charset=utf-8",
                      [(b"location", location.encode()), (b"set-cookie", cookie.encode())])

    async def _route(self, req: Request) -> None:
        methods = self.routes.get(req.path)
        if methods is None:
            await respond_error(req, 404, f"no such route: {req.path}")
            return
        handler = methods.get("GET" if req.method == "HEAD" else req.method)
        if handler is None:
            allowed = sorted(set(methods) | ({"HEAD"} if "GET" in methods else set()))
            await respond_error(req, 405, f"method {req.method} not allowed here",
                                [(b"allow", ", ".join(allowed).encode())])
            return
        await handler(req)

    # -- routes ----------------------------------------------------------------------------
    def _static_route(self, name: str) -> Handler:
        async def serve(req: Request) -> None:
            body, content_type = self._static[name]
            await respond(req, 200, body, content_type)
        return serve

    async def _status(self, req: Request) -> None:
        await self._json_call(req, self.api.status)

    async def _peers(self, req: Request) -> None:
        await self._json_call(req, self.api.peers)

    async def _json_call(self, req: Request, fn: Callable[[], object]) -> None:
        try:
            result = fn()
        except Exception:  # the GUI reports it and stays up; the traceback goes to the log
            log.exception("web: %s failed", req.path)
            await respond_json(req, 500, {"error": "internal error"})
            return
        await respond_json(req, 200, result)

    async def _events(self, req: Request) -> None:
        """Server-Sent Events: one `data: {json}` per event, a comment when idle for a while."""
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"),
                   (b"x-accel-buffering", b"no")]
        await req.send({"type": "http.response.start", "status": 200, "headers": headers})
        if req.method == "HEAD":
            await req.send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await _chunk(req, b"retry: 3000\n\n")
        async with self.api.subscribe() as events, trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_disconnect, req.receive, nursery.cancel_scope)
            outbox, inbox = trio.open_memory_channel[Event | dict[str, Any]](0)
            # A separate pump: cancelling an async generator's __anext__ would end the generator.
            nursery.start_soon(_pump, events, outbox)
            await self._stream(req, inbox)
            await req.send({"type": "http.response.body", "body": b"", "more_body": False})
            nursery.cancel_scope.cancel()  # the subscription ended (the node is stopping)

    async def _stream(self, req: Request, inbox: trio.MemoryReceiveChannel) -> None:
        async with inbox:
            while True:
                with trio.move_on_after(self.keepalive) as idle:
                    try:
                        item = await inbox.receive()
                    except trio.EndOfChannel:
                        return
                if idle.cancelled_caught:
                    await _chunk(req, b": keepalive\n\n")
                else:
                    data = item.to_json() if isinstance(item, Event) else item
                    await _chunk(req, b"data: " + dumps(data) + b"\n\n")


def create_app(api: WebApi, *, token: str | None,
               keepalive: float = KEEPALIVE_SECONDS) -> WebApp:
    """The ASGI application for `api`; `token` None means open to loopback clients only."""
    return WebApp(api, token=token, keepalive=keepalive)


# -- helpers -------------------------------------------------------------------------------
def _secure(send: Send, *, api: bool) -> Send:
    extra = COMMON_HEADERS + (API_HEADERS if api else PAGE_HEADERS)

    async def secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {bytes(name).lower() for name, _ in headers}
            headers += [(name, value) for name, value in extra if name not in present]
            message = {**message, "headers": headers}
        await send(message)
    return secured


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _chunk(req: Request, body: bytes) -> None:
    await req.send({"type": "http.response.body", "body": body, "more_body": True})


async def _pump(events: AsyncIterator[Event | dict[str, Any]],
                outbox: trio.MemorySendChannel) -> None:
    async with outbox:
        async for item in events:
            await outbox.send(item)


async def _cancel_on_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def _bearer(value: str | None) -> str | None:
    scheme, _, credentials = (value or "").strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def _hostname(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if ":" in host_header else host_header


def _loopback_host(host_header: str | None) -> bool:
    """A Host a DNS-rebinding page cannot send: an IP literal or localhost."""
    if not host_header:
        return True  # HTTP/1.0 clients; browsers always send Host
    name = _hostname(host_header.strip()).lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ip_address(name)
    except ValueError:
        return False
    return True


def _same_origin(req: Request) -> bool:
    origin = req.header("origin")
    if origin is None:
        return True  # not a browser's cross-site request
    return urlsplit(origin).netloc.lower() == (req.header("host") or "").lower()


def _load_static() -> dict[str, tuple[bytes, str]]:
    files = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.is_file() and path.suffix in STATIC_TYPES:
            files[path.name] = (path.read_bytes(), STATIC_TYPES[path.suffix])
    return files

