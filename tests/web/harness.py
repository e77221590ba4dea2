"""Real nodes behind real web servers, in one trio loop, for the API and share-link tests.

`two_nodes(tmp_path)` opens nodes a and b of one mesh (made as init + invite + join make them),
joins them with an in-memory stream, and serves each one's web GUI (and a's public listener) on
127.0.0.1; `http(...)` is a blocking http.client call run in a worker thread.
"""

from __future__ import annotations

import http.client as httpclient
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import trio
import trio.testing

from gossip_backer import Node
from gossip_backer.web.server import serve_public, serve_web
from tests.runtime.conftest import make_pair


@dataclass
class Reply:
    status: int
    headers: httpclient.HTTPMessage
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def fetch(url: str, path: str, method: str = "GET", body: object = None,
          headers: dict | None = None, raw: bytes | None = None) -> Reply:
    parts = urlsplit(url)
    conn = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=20)
    headers = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


async def http(url: str, path: str, method: str = "GET", body: object = None,
               headers: dict | None = None, raw: bytes | None = None) -> Reply:
    return await trio.to_thread.run_sync(partial(fetch, url, path, method, body, headers, raw))


@dataclass
class Pair:
    a: Node
    b: Node
    web_a: str
    web_b: str
    public_a: str
    root_a: Path
    root_b: Path


async def wait_for(predicate, timeout: float = 15.0, what: str = "condition") -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.05)


@asynccontextmanager
async def two_nodes(tmp_path: Path):
    root_a, root_b = make_pair(tmp_path)
    async with Node.open(root_a) as a, Node.open(root_b) as b, trio.open_nursery() as nursery:
        left, right = trio.testing.memory_stream_pair()
        nursery.start_soon(a.serve_stream, left)
        nursery.start_soon(b.serve_stream, right)
        web_a = await nursery.start(serve_web, a, "127.0.0.1", 0, None)
        web_b = await nursery.start(serve_web, b, "127.0.0.1", 0, None)
        public_a = await nursery.start(serve_public, a, "127.0.0.1", 0)
        a.web_url, b.web_url = web_a, web_b
        a.share_links.public_url = public_a
        with trio.fail_after(20):
            await a.wait_in_sync()
            await b.wait_in_sync()
        yield Pair(a, b, web_a, web_b, public_a, root_a, root_b)
        nursery.cancel_scope.cancel()


def _has(node: Node, path: str) -> bool:
    rec = node.state.metamap.winner(path)
    return rec is not None and not rec.deleted


async def settle(p: Pair, *paths: str, timeout: float = 20.0) -> None:
    """Until both nodes hold `paths` (mesh paths just written on a disk), have scanned,
    exchanged and applied everything."""
    await trio.sleep(0.6)  # the watcher's debounce
    with trio.fail_after(timeout):
        while not (all(_has(p.a, x) and _has(p.b, x) for x in paths)
                   and p.a.in_sync() and p.b.in_sync()
                   and p.a.state.metamap.digest() == p.b.state.metamap.digest()):
            await trio.sleep(0.05)
