"""The gates every request of the private web GUI passes, as one pure ASGI middleware.

Theory of operation, in the order they run:

1. Security headers are added to every HTTP response by wrapping `send` (so every route, present
   or added later, gets them): nosniff and no-referrer everywhere, `Cache-Control: no-store` under
   /api/, a strict Content-Security-Policy on everything else.
2. Who may ask. With a token (the runtime passes one when the web is bound beyond loopback), a
   request needs `Authorization: Bearer TOKEN` or the session cookie; `?token=TOKEN` sets that
   cookie and redirects to the same URL without the token, so it leaves the address bar (a
   websocket cannot follow a redirect: there `?token=TOKEN` is accepted as it is, which is how a
   stock y-websocket client passes `params: {token}`). Without a token, the Host header must be
   loopback-like (an IP literal or localhost), which stops a DNS rebinding page from reading the
   API; and any state-changing method, and every websocket, must come from our own origin.

Share links (/s/...) pass untouched: they are public by design and bring their own headers
(web/share.py). A refusal is answered here; what passes goes on to the Starlette app unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
from html import escape
from ipaddress import ip_address
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
COMMON_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
API_HEADERS = [(b"cache-control", b"no-store")]
PAGE_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
                (b"cache-control", b"no-cache")]
HTML = "text/html; charset=utf-8"


def is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def is_share(path: str) -> bool:
    """Share links (`/s/TOKEN/...`) are the one public part of the GUI (SPEC.md)."""
    return path.startswith("/s/")


def error_body(path: str, status: int, message: str) -> tuple[bytes, str]:
    """An error as JSON under /api/, as a short HTML page elsewhere: (body, content type)."""
    if is_api(path):
        import json

        return json.dumps({"error": message}).encode(), "application/json"
    page = (f"<!doctype html><meta charset=utf-8><title>{status}</title>"
            f"<h1>{status}</h1><p>{escape(message)}</p>\n")
    return page.encode(), HTML


class Gates:
    """Wraps the app: headers on the way out, the host/origin/token checks on the way in."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self._token = token.encode() if token is not None else None
        self._cookie = (hmac.new(self._token, b"gossip-backer web cookie", hashlib.sha256).hexdigest()
                        if self._token is not None else None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and is_share(scope["path"]):
            await self.app(scope, receive, send)  # public by design: web/share.py
            return
        if scope["type"] == "http":
            send = _secure(send, api=is_api(scope["path"]))
        refusal = self._refusal(scope)
        if refusal is not None:
            await _refuse(scope, send, 403, refusal)
            return
        if self._token is not None and not await self._check_token(scope, send):
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> str | None:
        """Why a browser may be tricked into this request (rebinding, cross-site), or None."""
        headers = Headers(scope=scope)
        if self._token is None and not loopback_host(headers.get("host")):
            return "Host not allowed: use the URL printed by `backer run`"
        unsafe = scope["type"] == "websocket" or scope["method"] not in SAFE_METHODS
        if unsafe and not same_origin(headers):
            return "cross-origin request refused"
        return None

    async def _check_token(self, scope: Scope, send: Send) -> bool:
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        offered = [value for key, value in query if key == "token"]
        if offered and self._valid_token(offered[-1]):
            if scope["type"] == "websocket":
                return True
            await self._redirect_with_cookie(scope, send, [(k, v) for k, v in query if k != "token"])
            return False
        headers = Headers(scope=scope)
        if self._valid_token(_bearer(headers.get("authorization"))) or self._valid_cookie(scope):
            return True
        await _refuse(scope, send, 401, "this node's web GUI needs its token: open the URL with "
                      "?token=TOKEN (printed by `backer run`) or send Authorization: Bearer TOKEN",
                      [(b"www-authenticate", b'Bearer realm="gossip-backer"')])
        return False

    def _valid_token(self, candidate: str | None) -> bool:
        assert self._token is not None
        return candidate is not None and hmac.compare_digest(candidate.encode(), self._token)

    def _valid_cookie(self, scope: Scope) -> bool:
        # The cookie holds an HMAC of the token, not the token: always cookie-safe, never echoed.
        cookie = _cookies(scope).get(_cookie_name(scope))
        assert self._cookie is not None
        return cookie is not None and hmac.compare_digest(cookie.encode(), self._cookie.encode())

    async def _redirect_with_cookie(self, scope: Scope, send: Send,
                                    rest: list[tuple[str, str]]) -> None:
        location = quote(scope["path"]) + (f"?{urlencode(rest)}" if rest else "")
        cookie = f"{_cookie_name(scope)}={self._cookie}; Path=/; HttpOnly; SameSite=Strict"
        status = 303 if scope["method"] in ("GET", "HEAD") else 307
        await _respond(send, status, b"", "text/plain; charset=utf-8",
                       [(b"location", location.encode()), (b"set-cookie", cookie.encode())])


def _cookie_name(scope: Scope) -> str:
    # Cookies ignore ports: one name per port keeps nodes on one host from clobbering each other.
    server = scope.get("server")
    return f"backer_token_{server[1]}" if server else "backer_token"


def _cookies(scope: Scope) -> dict[str, str]:
    jar = {}
    for part in (Headers(scope=scope).get("cookie") or "").split(";"):
        key, _, value = part.strip().partition("=")
        jar.setdefault(key, value)
    return jar


async def _refuse(scope: Scope, send: Send, status: int, message: str,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
        return
    body, content_type = error_body(scope["path"], status, message)
    await _respond(send, status, body, content_type, headers)


async def _respond(send: Send, status: int, body: bytes, content_type: str,
                   headers: list[tuple[bytes, bytes]] | None = None) -> None:
    head = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await send({"type": "http.response.body", "body": body, "more_body": False})


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


def _bearer(value: str | None) -> str | None:
    scheme, _, credentials = (value or "").strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def _hostname(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if ":" in host_header else host_header


def loopback_host(host_header: str | None) -> bool:
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


def same_origin(headers: Any) -> bool:
    origin = headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site request
    return urlsplit(origin).netloc.lower() == (headers.get("host") or "").lower()
