"""The web GUI as a Starlette application: the pages, the JSON API and its live event stream.

`create_app(api, token=..., routes=[...])` builds it from a list of routes: the GUI's own
(`base_routes`), then whatever another module contributes (a websocket route is added the same
way: `create_app(node, token=t, routes=[WebSocketRoute("/api/live/{path:path}", endpoint)])`).
Every route sits behind the gates of web/gates.py (headers, Host, origin, token). An unknown route
answers 404 (JSON under /api/), a known route with the wrong method 405 with `Allow`; HEAD rides
on GET.

The app never touches the node's internals: it calls the methods of `WebApi` (runtime.Node).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gossip_backer.core.paths import printable
from gossip_backer.events import Event
from gossip_backer.web.gates import Gates, error_body
from gossip_backer.web.sse import KEEPALIVE_SECONDS, EventStream

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


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


def dumps(obj: object) -> bytes:
    """JSON text for the API and the event stream: compact, ASCII, never a raw newline."""
    return json.dumps(printable(obj), separators=(",", ":"), default=str).encode()


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def error(status: int, message: str, path: str = "/api/",
          headers: dict[str, str] | None = None) -> Response:
    body, content_type = error_body(path, status, message)
    return Response(body, status, headers=headers, media_type=content_type)


def base_routes(api: WebApi, *, keepalive: float = KEEPALIVE_SECONDS) -> list[BaseRoute]:
    """The pages (the dashboard at /, every other static NAME.html at /NAME), their scripts and
    styles under /static/, /api/status, /api/peers and /api/events."""
    static = _load_static()
    routes: list[BaseRoute] = [Route("/", _static_endpoint(*static["index.html"]), methods=["GET"])]
    routes += [Route(f"/{name[:-5]}", _static_endpoint(*item), methods=["GET"])
               for name, item in static.items() if name.endswith(".html") and name != "index.html"]
    routes += [Route(f"/static/{name}", _static_endpoint(*item), methods=["GET"])
               for name, item in static.items() if not name.endswith(".html")]
    routes += [
        Route("/api/status", _json_endpoint(api.status), methods=["GET"]),
        Route("/api/peers", _json_endpoint(api.peers), methods=["GET"]),
        Route("/api/events", _events_endpoint(api, keepalive), methods=["GET"]),
    ]
    return routes


def feature_routes(api: WebApi) -> list[BaseRoute]:
    """The routes of the GUI's features beyond the dashboard, each from its own module: the one
    list `serve_web` adds to `create_app` (a new feature's module adds its routes here)."""
    from gossip_backer.web.api import api_routes
    from gossip_backer.web.live import live_routes
    from gossip_backer.web.share import share_routes

    return [*api_routes(api), *share_routes(api), *live_routes(api)]


def create_app(api: WebApi, *, token: str | None, keepalive: float = KEEPALIVE_SECONDS,
               routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The ASGI application for `api`; `token` None means open to loopback clients only.
    `routes` are added after the GUI's own (a later module's pages, API or websockets)."""
    return Starlette(
        routes=[*base_routes(api, keepalive=keepalive), *routes],
        middleware=[Middleware(Gates, token=token)],
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        message = f"no such route: {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} not allowed here"
        allowed = {m.strip() for m in headers.get("Allow", "").split(",") if m.strip()}
        headers["Allow"] = ", ".join(sorted(allowed))
    else:
        message = exc.detail
    return error(exc.status_code, message, request.url.path, headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # the GUI reports it and stays up; the traceback goes to the log
    log.error("web: %s failed", request.url.path, exc_info=exc)
    return error(500, "internal error", request.url.path)


def _static_endpoint(body: bytes, content_type: str) -> Callable:
    async def serve(request: Request) -> Response:
        return Response(body, media_type=content_type)
    return serve


def _json_endpoint(fn: Callable[[], object]) -> Callable:
    async def call(request: Request) -> Response:
        return JSON(fn())
    return call


def _events_endpoint(api: WebApi, keepalive: float) -> Callable:
    async def events(request: Request) -> EventStream:
        return EventStream(api, keepalive)
    return events


def _load_static() -> dict[str, tuple[bytes, str]]:
    files = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.is_file() and path.suffix in STATIC_TYPES:
            files[path.name] = (path.read_bytes(), STATIC_TYPES[path.suffix])
    return files
