"""The JSON API of SPEC.md "Web GUI and API" beyond status, peers and events: files, history,
restore, conflicts, shares, and the GUI's invites and peer removal.

Each endpoint reads its input, calls one method of the node and answers with the same object as
the matching `--json` command. Bad input (a missing or mistyped field, a body that is not a JSON
object, a path the mesh does not have) answers 400 with one line; nothing is changed then.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gossip_backer.core.ids import NodeId
from gossip_backer.errors import UserError

MAX_BODY = 64 * 1024


class BadInput(UserError):
    """The request itself is malformed."""


def api_routes(api: Any) -> list[BaseRoute]:
    async def files(request: Request) -> object:
        return api.files(request.query_params.get("path", ""))

    async def history(request: Request) -> object:
        return await api.history(_query(request, "path"))

    async def restore(request: Request) -> object:
        body = await _body(request)
        return await api.restore(_field(body, "path", str),
                                 _field(body, "version", str, required=False))

    async def conflicts(request: Request) -> object:
        return api.conflicts()

    async def resolve(request: Request) -> object:
        body = await _body(request)
        return await api.resolve_conflict(_field(body, "path", str), _field(body, "keep", str))

    async def shares(request: Request) -> object:
        return api.shares()

    async def share(request: Request) -> object:
        body = await _body(request)
        return await api.share(_field(body, "path", str), _seconds(body, "expires"),
                               _field(body, "password", str, required=False) or None)

    async def revoke(request: Request) -> object:
        return api.revoke_share(request.path_params["token"])

    async def diff(request: Request) -> object:
        q = request.query_params
        return await api.diff(_query(request, "path"), q.get("left") or None,
                              q.get("right") or None, q.get("other") or None)

    async def download(request: Request) -> Response:
        return await _download(api, request)

    async def invite(request: Request) -> object:
        body = await _body(request)
        read_only = _field(body, "read_only", bool, required=False) or False
        expires = _seconds(body, "expires")
        return await (api.invite(read_only, expires) if expires else api.invite(read_only))

    async def remove_peer(request: Request) -> object:
        try:
            node = NodeId.parse(request.path_params["node_id"])
        except ValueError as exc:
            raise BadInput(f"not a node id: {exc}") from None
        return api.remove_peer(node)

    return [
        Route("/api/files", _endpoint(files), methods=["GET"]),
        Route("/api/history", _endpoint(history), methods=["GET"]),
        Route("/api/restore", _endpoint(restore), methods=["POST"]),
        Route("/api/conflicts", _endpoint(conflicts), methods=["GET"]),
        Route("/api/conflicts", _endpoint(resolve), methods=["POST"]),
        Route("/api/shares", _endpoint(shares), methods=["GET"]),
        Route("/api/shares", _endpoint(share), methods=["POST"]),
        Route("/api/shares/{token}", _endpoint(revoke), methods=["DELETE"]),
        Route("/api/invites", _endpoint(invite), methods=["POST"]),
        Route("/api/diff", _endpoint(diff), methods=["GET"]),
        Route("/api/download", _endpoint(download), methods=["GET"]),
        Route("/api/peers/{node_id}", _endpoint(remove_peer), methods=["DELETE"]),
    ]


def _endpoint(fn: Callable[[Request], Awaitable[object]]) -> Callable:
    async def call(request: Request) -> Response:
        from gossip_backer.web.app import JSON, error

        try:
            result = await fn(request)
        except UserError as exc:
            return error(400, _one_line(str(exc)))
        return result if isinstance(result, Response) or callable(result) else JSON(result)
    return call


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "bad request"


def _query(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise BadInput(f"missing query parameter: {name}")
    return value


async def _body(request: Request) -> dict:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise BadInput(f"request body larger than {MAX_BODY} bytes")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadInput("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise BadInput("the request body must be a JSON object")
    return body


def _field(body: dict, name: str, kind: type, *, required: bool = True) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise BadInput(f"missing field: {name}")
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise BadInput(f"field {name} must be a {kind.__name__}")
    return value


def _seconds(body: dict, name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise BadInput(f"field {name} must be a positive number of seconds")
    return float(value)


async def _download(api: Any, request: Request) -> Any:
    """The current version of a file, as an attachment (ranges as for share links)."""
    import trio

    from gossip_backer.web.share import file_response

    path = _query(request, "path")
    rec, opened = await trio.to_thread.run_sync(api.open_file, path)
    return file_response(request, rec, opened, lambda: True, attachment=True)
