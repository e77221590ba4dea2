"""Share links over HTTP: `/s/TOKEN/...` on the public listener (`run --public`, which serves
nothing else) and on the web GUI (where these are the only routes that need no token).

Theory of operation. Every request asks the node's ShareService what the URL names (core/share.py
decides: link active, path inside it, nothing ignored, no symlink); anything else is one plain
404, the same for a wrong token, a revoked or expired link and a path outside it, so a URL
reveals nothing. A file is sent with its type, length, ETag (its content hash), Last-Modified and
one byte range on request (206, 416 past the end); a folder as an HTML listing, or with `?zip`
as one zip archive streamed while it is written. A password link answers 401 with a form; the
right password sets a cookie for that link (an HMAC under this process's key, so it proves
nothing elsewhere), a wrong one waits longer each time (core/share.py PasswordGuard). While a
download runs, the link is checked before every piece: a revocation cuts it short.

Served content is foreign to the GUI: it goes out with `Content-Security-Policy: sandbox`, so an
HTML file in a share can never run script on the GUI's origin.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import hashlib
import hmac
import mimetypes
import secrets
from email.utils import formatdate
from html import escape
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote

import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from gossip_backer.core.share import byte_range
from gossip_backer.core.shareview import counts_as_download
from gossip_backer.runtime.shares import LinkEnded

PIECE = 1 << 20
MAX_FORM = 4096
SANDBOX = "sandbox; default-src 'none'"
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'"
HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
           "x-frame-options": "DENY", "cache-control": "private, no-cache"}
STYLE = ("body{font:15px system-ui,sans-serif;margin:2rem auto;max-width:52rem;padding:0 1rem;"
         "color:#1d2330}a{color:#2456c6;text-decoration:none}a:hover{text-decoration:underline}"
         "table{border-collapse:collapse;width:100%}td{padding:.35rem .5rem;border-bottom:1px solid "
         "#e3e7ee}td.n{text-align:right;color:#5c667a;white-space:nowrap}.zip{display:inline-block;"
         "margin:.5rem 0 1rem;padding:.4rem .8rem;background:#2456c6;color:#fff;border-radius:6px}"
         "input,button{font:inherit;padding:.4rem .6rem}.err{color:#b42318}")


def share_routes(api: Any) -> list[BaseRoute]:
    server = ShareServer(api)
    return [Route("/s/{token}", server.bare, methods=["GET"]),
            Route("/s/{token}/{rest:path}", server.serve, methods=["GET", "POST"])]


def public_app(api: Any) -> Starlette:
    """The public listener's app: share links and nothing else (404 for everything else)."""
    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        return _page(status, "Not found", "<p>There is nothing here.</p>")
    return Starlette(routes=share_routes(api), exception_handlers={HTTPException: not_found})


class ShareServer:
    def __init__(self, api: Any) -> None:
        self.api = api
        self._key = secrets.token_bytes(32)  # signs this process's password cookies

    @property
    def links(self) -> Any:
        """The node's ShareService (runtime/shares.py)."""
        return self.api.share_links

    async def bare(self, request: Request) -> Response:
        return RedirectResponse(f"/s/{quote(request.path_params['token'])}/", 308,
                                headers=HEADERS)

    async def serve(self, request: Request) -> Response:
        token, rest = request.path_params["token"], request.path_params["rest"]
        opened = self.links.open(token, rest)
        if opened is None:
            return _not_found()
        if opened.share.password and not self._unlocked(request, opened.share):
            return await self._password(request, opened.share)
        if request.method == "POST":
            return RedirectResponse(request.url.path, 303, headers=HEADERS)
        if opened.is_folder:
            if rest and not rest.endswith("/"):
                return RedirectResponse(request.url.path + "/", 308, headers=HEADERS)
            if "zip" in request.query_params:
                return _ZipDownload(self.links, opened)
            return _listing(opened)
        return await self._file(request, opened)

    # -- passwords -------------------------------------------------------------------------
    def _cookie_name(self, token: str) -> str:
        return "share_" + hashlib.blake2b(token.encode(), digest_size=8).hexdigest()

    def _cookie_value(self, share: Any) -> str:
        return hmac.new(self._key, share.token.encode() + share.password, "sha256").hexdigest()

    def _unlocked(self, request: Request, share: Any) -> bool:
        offered = request.cookies.get(self._cookie_name(share.token), "")
        return hmac.compare_digest(offered.encode(), self._cookie_value(share).encode())

    async def _password(self, request: Request, share: Any) -> Response:
        wrong = False
        if request.method == "POST":
            form = await _form(request)
            if await self.links.check_password(share.token, form.get("password", "")):
                response = RedirectResponse(request.url.path, 303, headers=HEADERS)
                response.set_cookie(self._cookie_name(share.token), self._cookie_value(share),
                                    path=f"/s/{share.token}/", httponly=True, samesite="lax")
                return response
            wrong = True
        note = '<p class="err">Wrong password.</p>' if wrong else ""
        body = (f"<h1>This link needs a password</h1>{note}<form method=post>"
                "<input type=password name=password autofocus required aria-label=Password> "
                "<button>Open</button></form>")
        return _page(401, "Password needed", body)

    # -- files -----------------------------------------------------------------------------
    async def _file(self, request: Request, opened: Any) -> Response:
        rec = opened.record
        if f'"{rec.hash.hex()}"' in _etags(request.headers.get("if-none-match")):
            return Response(status_code=304, headers={**HEADERS, "etag": f'"{rec.hash.hex()}"'})
        file = await trio.to_thread.run_sync(self.links.open_file, rec)
        if file is None:
            return _page(503, "Not here yet", "<p>This node does not hold this file's current "
                         "version yet. Try again in a moment.</p>", {"retry-after": "5"})
        token = opened.share.token
        response = file_response(request, rec, file, lambda: self.links.active(token) is not None)
        if response.status_code in (200, 206) and counts_as_download(request.method, response.start):
            self.links.count_download(token)
        return response


def file_response(request: Request, rec: Any, file: Any, alive: Callable[[], bool], *,
                  attachment: bool = False) -> Any:
    """The open `file` (the current version `rec`) as a response: type, length, ETag (the
    content hash), Last-Modified, one byte range on request (206; 416 past the end)."""
    etag = f'"{rec.hash.hex()}"'
    name = rec.path.rsplit("/", 1)[-1]
    disposition = "attachment" if attachment else "inline"
    headers = {**HEADERS, "etag": etag, "accept-ranges": "bytes",
               "last-modified": formatdate(rec.mtime_ns / 1e9, usegmt=True),
               "content-security-policy": SANDBOX,
               "content-disposition": f"{disposition}; filename*=UTF-8''{quote(name)}"}
    wanted = byte_range(request.headers.get("range"), file.size)
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range != etag:
        wanted = None  # the client's partial copy is of another version: send it whole
    if wanted == "unsatisfiable":
        file.close()
        return _page(416, "Range not satisfiable", "", {"content-range": f"bytes */{file.size}"})
    start, end = wanted if isinstance(wanted, tuple) else (0, file.size - 1)
    status = 206 if isinstance(wanted, tuple) else 200
    if status == 206:
        headers["content-range"] = f"bytes {start}-{end}/{file.size}"
    kind, encoding = mimetypes.guess_type(name)
    headers["content-type"] = (kind or "application/octet-stream") if not encoding \
        else "application/octet-stream"
    if headers["content-type"].startswith("text/"):
        headers["content-type"] += "; charset=utf-8"
    return FileBody(alive, file, start, end, status, headers)


def _etags(header: str | None) -> set[str]:
    return {t.strip().removeprefix("W/") for t in (header or "").split(",") if t.strip()}


async def _form(request: Request) -> dict[str, str]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM:
            break
    return dict(parse_qsl(raw[:MAX_FORM].decode("utf-8", "replace")))


def _not_found() -> Response:
    return _page(404, "Not found", "<p>This link does not exist, has expired or was revoked.</p>")


def _page(status: int, title: str, body: str, extra: dict[str, str] | None = None) -> Response:
    html = (f"<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport "
            f"content='width=device-width, initial-scale=1'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style><body>{body}</body></html>\n")
    return HTMLResponse(html, status, headers={**HEADERS, "content-security-policy": PAGE_CSP,
                                               **(extra or {})})


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _listing(opened: Any) -> Response:
    import time

    crumbs = opened.rel.split("/") if opened.rel else []
    title = "/".join(crumbs) or (opened.path.rsplit("/", 1)[-1] or "Shared folder")
    rows = []
    if crumbs:
        rows.append('<tr><td><a href="../">../</a></td><td></td><td></td></tr>')
    ordered = sorted(opened.entries, key=lambda e: (e.kind != "dir", e.name.lower()))
    for e in ordered:
        href = quote(e.name) + ("/" if e.kind == "dir" else "")
        label = escape(e.name) + ("/" if e.kind == "dir" else "")
        size = "" if e.kind == "dir" else _size(e.size)
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(e.mtime)) if e.mtime else ""
        rows.append(f'<tr><td><a href="{href}">{label}</a></td><td class=n>{size}</td>'
                    f"<td class=n>{when}</td></tr>")
    body = (f"<h1>{escape(title)}</h1><a class=zip href='?zip'>Download all as .zip</a>"
            f"<table>{''.join(rows) or '<tr><td>(empty)</td></tr>'}</table>")
    return _page(200, title, body)


# -- streamed bodies -------------------------------------------------------------------------
class _Streamed(ABC):
    """Sends headers, then pieces from `produce(channel)`; stops when the client leaves."""

    status_code = 200
    headers: dict[str, str] = {}

    @abstractmethod
    async def produce(self, send: trio.MemorySendChannel) -> None:
        """Send the body's pieces into `send` (a subclass says which)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = [(k.encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status_code, "headers": head})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            await self.aclose()
            return
        outbox, inbox = trio.open_memory_channel[bytes](0)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
                nursery.start_soon(self._produce, outbox)
                async with inbox:
                    async for piece in inbox:
                        await send({"type": "http.response.body", "body": piece,
                                    "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                nursery.cancel_scope.cancel()
        except* (_LinkEnded, LinkEnded):
            pass  # no final chunk: the server closes the connection, the download is cut

    async def _produce(self, outbox: trio.MemorySendChannel) -> None:
        try:
            await self.produce(outbox)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        pass


class FileBody(_Streamed):
    """Bytes start..end of an open file; `alive()` is asked before every piece (a link still
    valid): False cuts the response short."""

    def __init__(self, alive: Callable[[], bool], file: Any, start: int, end: int, status: int,
                 headers: dict[str, str]) -> None:
        self.alive, self.file = alive, file
        self.start, self.end, self.status_code = start, end, status
        self.headers = {**headers, "content-length": str(max(0, end - start + 1))}

    async def produce(self, send: trio.MemorySendChannel) -> None:
        async with send:
            offset = self.start
            while offset <= self.end:
                if not self.alive():
                    raise _LinkEnded()
                piece = await trio.to_thread.run_sync(
                    self.file.read, offset, min(PIECE, self.end + 1 - offset))
                if not piece:
                    raise _LinkEnded()  # the file shrank under us: end the response short
                await send.send(piece)
                offset += len(piece)

    async def aclose(self) -> None:
        self.file.close()


class _ZipDownload(_Streamed):
    def __init__(self, links: Any, opened: Any) -> None:
        self.links, self.opened = links, opened
        name = links.zip_name(opened)
        self.headers = {**HEADERS, "content-type": "application/zip",
                        "content-disposition": f"attachment; filename*=UTF-8''{quote(name)}",
                        "content-security-policy": SANDBOX}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if counts_as_download(scope["method"], 0):
            self.links.count_download(self.opened.share.token)
        await super().__call__(scope, receive, send)

    async def produce(self, send: trio.MemorySendChannel) -> None:
        await self.links.write_zip(self.opened, send)


class _LinkEnded(Exception):
    """The link was revoked or expired (or the file changed) mid-download: the connection is
    cut, so the client sees an incomplete download rather than a complete-looking one."""


async def _cancel_on_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()
