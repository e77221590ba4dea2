"""Serve the web app with hypercorn's trio worker, until cancelled.

We bind the listening socket ourselves and hand hypercorn its file descriptor (`fd://N`): a bind
failure is then a plain OSError raised here, before anything starts (hypercorn would nest it in two
nursery exception groups and leak the unbound socket). stdout belongs to the CLI, so hypercorn logs
nothing there: no access log, and its error log goes to stderr at warning level. Shutdown is quick:
open event streams get one second to finish.
"""

from __future__ import annotations

import socket

import hypercorn.trio
import trio
from hypercorn.config import Config

from gossip_backer.web.app import WebApi, create_app, feature_routes

GRACEFUL_TIMEOUT = 1.0


async def serve_web(api: WebApi, host: str, port: int, token: str | None, *,
                    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the GUI and /api/ for `api` on host:port until cancelled.

    `token` None: no authentication, loopback-like Host headers only. Otherwise every route needs
    the token. Calls `task_status.started(url)` with the bound URL (port 0 -> the real port), e.g.
    'http://127.0.0.1:8484/'. A bind failure (port in use...) raises the plain OSError.
    """
    app = create_app(api, token=token, routes=feature_routes(api))
    await serve_app(app, host, port, task_status=task_status)


async def serve_public(api: WebApi, host: str, port: int, *,
                       task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """The public listener of `run --public`: share links and nothing else."""
    from gossip_backer.web.share import public_app

    await serve_app(public_app(api), host, port, task_status=task_status)


async def serve_app(app: object, host: str, port: int, *,
                    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve any ASGI app as `serve_web` does (tests use it for an app with a short keepalive)."""
    fd = _bound_socket(host, port).detach()  # from here on hypercorn owns and closes it
    await hypercorn.trio.serve(app, web_config(f"fd://{fd}"),  # type: ignore[arg-type]
                               task_status=_UrlStatus(task_status))


def web_config(bind: str) -> Config:
    config = Config()
    config.bind = [bind]
    config.accesslog = None
    config.errorlog = "-"  # stderr
    config.loglevel = "WARNING"
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.include_server_header = False
    return config


def _bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port, not yet listening (as hypercorn's own binds are made)."""
    host = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class _UrlStatus:
    """Turns hypercorn's `started(["http://host:port"])` into our `started("http://host:port/")`."""

    def __init__(self, task_status: trio.TaskStatus[str]) -> None:
        self.task_status = task_status

    def started(self, binds: list[str]) -> None:
        self.task_status.started(f"{binds[0]}/")
