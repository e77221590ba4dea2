"""`backer run` (an L4 module, like cli.py: it joins the runtime and the web server): the node in the foreground, with its TCP listener, dialer, control socket and
web server, until SIGINT or SIGTERM, then a clean exit 0."""

from __future__ import annotations

import errno
import gc
import ipaddress
import logging
import os
import secrets
import signal
from pathlib import Path

import trio

from gossip_backer.core.ids import NodeId
from gossip_backer.errors import UserError
from gossip_backer.runtime import control, heap
from gossip_backer.runtime.dial import Dialer, listen, split_address
from gossip_backer.runtime.node import Node
from gossip_backer.runtime.state import DEFAULT_INVITE_SECONDS, NodeState, state_dir

log = logging.getLogger(__name__)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_daemon(root: Path, listen_at: str, web_at: str | None, public_at: str | None = None) -> None:
    root = Path(root).expanduser().absolute()
    NodeState.open(root).close()  # a clear error for a root that is no node
    if control.is_running(state_dir(root) / "control.sock"):
        raise UserError(f"a node is already running at {root}")
    for addr in filter(None, (listen_at, web_at, public_at)):
        try:
            split_address(addr)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    # numpy (weak sums) never calls BLAS, whose OpenBLAS threads otherwise start at its import
    # and spin (2% of a sender's CPU in perf during a 512 MiB transfer)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    heap.configure()
    try:
        trio.run(_main, root, listen_at, web_at, public_at)
    except BaseExceptionGroup as group:  # a UserError raised while starting, inside nurseries
        user = _user_error(group)
        if user is None:
            raise
        raise user from None


def _user_error(exc: BaseException) -> UserError | None:
    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _user_error(inner)
            if found is not None:
                return found
    return None


async def _main(root: Path, listen_at: str, web_at: str | None, public_at: str | None) -> None:
    """The node until a signal. Once it has started, what it loaded (modules, its index and
    map) is moved out of the cyclic GC's sight (`gc.freeze`): a full collection walked all of
    it, 15-27 ms on the loop for a node of one file, and one fell into most large transfers
    between the record's arrival and the first block request (decoding the record of 2,048
    blocks took 27 ms instead of 1.8). Those objects are still freed by their reference counts."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with Node.open(root, create=False) as node:
            async with trio.open_nursery() as nursery:
                await _start(nursery, node, listen_at, web_at)
                if public_at:
                    await _start_public(nursery, node, public_at)
                gc.freeze()  # see _main's docstring
                async for _ in signals:
                    break
                log.info("shutting down")
                nursery.cancel_scope.cancel()


async def _start(nursery: trio.Nursery, node: Node, listen_at: str, web_at: str | None) -> None:
    try:
        await nursery.start(listen, node, listen_at)
    except OSError as exc:
        reason = "address in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise UserError(f"cannot listen on {listen_at}: {reason}") from None
    print(f"listening on {node.listen}", flush=True)
    nursery.start_soon(Dialer(node).run)
    await nursery.start(control.serve, node.state.control_path, _handler(node), _streamer(node))
    if web_at:
        from gossip_backer.web.server import serve_web

        host, port = split_address(web_at)
        token = None if _is_loopback(host) else secrets.token_urlsafe(24)
        try:
            node.web_url = await nursery.start(serve_web, node, host, port, token)
        except OSError as exc:
            raise UserError(f"cannot serve the web GUI on {web_at}: {exc.strerror}") from None
        print(f"web on {node.web_url}", flush=True)
        if token:
            print(f"web token: {token}", flush=True)


async def _start_public(nursery: trio.Nursery, node: Node, public_at: str) -> None:
    """`run --public HOST:PORT`: share links, and nothing else, for anyone who has one."""
    from gossip_backer.web.server import serve_public

    host, port = split_address(public_at)
    try:
        url = await nursery.start(serve_public, node, host, port)
    except OSError as exc:
        raise UserError(f"cannot serve share links on {public_at}: {exc.strerror}") from None
    node.share_links.public_url = _reachable(url, port)
    print(f"public on {node.share_links.public_url}", flush=True)


def _reachable(url: str, port: int) -> str:
    """A listener bound to every address (0.0.0.0) is named by this machine's first address
    in links: `http://0.0.0.0:PORT/` would mean nothing to whoever receives the link."""
    from urllib.parse import urlsplit

    from gossip_backer.runtime.dial import advertised

    parts = urlsplit(url)
    if parts.hostname not in ("0.0.0.0", "::"):
        return url
    return f"{parts.scheme}://{advertised('0.0.0.0', parts.port or port)[0]}/"


def _handler(node: Node):
    async def handle(req: dict) -> object:
        cmd = req.get("cmd")
        if cmd == "ping":
            return "pong"
        if cmd == "status":
            return {**node.status(), "advertise": node.advertise}
        if cmd == "peers":
            return node.peers()
        if cmd == "remove-peer":
            return node.remove_peer(NodeId.parse(str(req.get("node_id", ""))))
        if cmd == "invite":
            addresses = [str(a) for a in req.get("addresses") or []]
            return await node.invite(bool(req.get("read_only", False)),
                                     float(req.get("expires", DEFAULT_INVITE_SECONDS)), addresses)
        if cmd == "live":
            return node.set_live(str(req.get("glob", "")), bool(req.get("on", True)))
        if cmd == "history":
            return await node.history(str(req.get("path", "")))
        if cmd == "restore":
            version = req.get("version")
            return await node.restore(str(req.get("path", "")), None if version is None else str(version))
        if cmd == "share":
            expires, password = req.get("expires"), req.get("password")
            return await node.share(str(req.get("path", "")),
                                    None if expires is None else float(expires),
                                    None if password is None else str(password))
        if cmd == "shares":
            return node.shares()
        if cmd == "revoke-share":
            return node.revoke_share(str(req.get("token", "")))
        raise UserError(f"unknown control command {cmd!r}")

    return handle


EVENT_COALESCE = 0.02  # seconds: a write of the event stream follows the last one after this at
# the earliest; the events of a burst meanwhile go out in that write


def _streamer(node: Node):
    async def stream(req: dict, s: trio.SocketStream) -> None:
        """One line per event; the events queued meanwhile go out in one write (a pull of
        10,000 small files emits tens of thousands: one send each cost the loop ~20% of its
        time). An event after a quiet spell goes out at once; within a burst, a write waits
        until EVENT_COALESCE after the last (a pull of 2,000 files wrote ~10% of the loop's
        busy time into the stream, each write a wake-up of the reader)."""
        last_write = -EVENT_COALESCE
        async with node.subscribe() as events:
            async for event in events:
                wait = last_write + EVENT_COALESCE - trio.current_time()
                if wait > 0:
                    await trio.sleep(wait)
                lines = [event.to_json_line().encode()]
                while len(lines) < 1000:
                    try:
                        lines.append(events.receive_nowait().to_json_line().encode())
                    except trio.WouldBlock:
                        break
                try:
                    await s.send_all(b"\n".join(lines) + b"\n")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                last_write = trio.current_time()

    return stream
