"""The local control socket (ROOT/.backer/control.sock, mode 0600): how `backer status`,
`backer events` and commands that change a running node reach it.

Protocol: the client sends one JSON object and a newline ({"cmd": ...}); the server answers with
one JSON line ({"ok": true, "result": ...} or {"ok": false, "error": "..."}), or, for "events", a
JSON line per event until the client hangs up. The client side is synchronous (the CLI is).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

from gossip_backer.errors import UserError

log = logging.getLogger(__name__)
MAX_REQUEST = 64 * 1024
Handler = Callable[[dict], Awaitable[object]]
Streamer = Callable[[dict, trio.SocketStream], Awaitable[None]]


UNIX_PATH_MAX = 107  # bytes of a socket's path the OS takes (108 with its NUL, on Linux)


@contextmanager
def _address(path: Path) -> Iterator[str]:
    """What to bind or connect the socket at `path` by: the path itself when it fits
    UNIX_PATH_MAX, else (Linux) the same file reached through /proc/self/fd of its opened folder,
    so a node whose ROOT lies deep runs (its daemon failed with "AF_UNIX path too long").
    Elsewhere a UserError says why."""
    if len(os.fsencode(path)) <= UNIX_PATH_MAX:
        yield str(path)
        return
    if not os.path.isdir("/proc/self/fd"):
        raise UserError(f"the control socket's path is longer than this OS allows "
                        f"({len(os.fsencode(path))} bytes, at most {UNIX_PATH_MAX}): {path}; "
                        "put the folder at a shorter path")
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{folder}/{path.name}"
    finally:
        os.close(folder)


# -- client (CLI) --------------------------------------------------------------------------
def _connect(path: Path, timeout: float) -> socket.socket | None:
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        with _address(path) as address:
            sock.connect(address)
    except OSError:
        sock.close()
        return None
    except BaseException:  # (a path too long for this OS: the UserError goes on, the socket not)
        sock.close()
        raise
    return sock


def is_running(path: Path) -> bool:
    """Whether a node answers on its control socket (asked politely: a ping, not a hang-up)."""
    try:
        return request(path, {"cmd": "ping"}, timeout=5.0) is not None
    except (OSError, ValueError, UserError):
        return path.exists()  # something is there and listening, though it answered oddly


def request(path: Path, req: dict, timeout: float = 30.0) -> object | None:
    """Ask the running node; None when no node runs there."""
    sock = _connect(path, timeout)
    if sock is None:
        return None
    with sock, sock.makefile("rwb") as f:
        f.write(json.dumps(req).encode() + b"\n")
        f.flush()
        line = f.readline()
    if not line:
        return None
    answer = json.loads(line)
    if not answer.get("ok"):
        raise UserError(answer.get("error", "the running node refused"))
    return answer.get("result")


def stream(path: Path, req: dict) -> Iterator[dict] | None:
    sock = _connect(path, 5.0)
    if sock is None:
        return None
    sock.settimeout(None)

    def lines() -> Iterator[dict]:
        with sock, sock.makefile("rwb") as f:
            f.write(json.dumps(req).encode() + b"\n")
            f.flush()
            for line in f:
                yield json.loads(line)

    return lines()


# -- server (runtime) ----------------------------------------------------------------------
async def serve(path: Path, handler: Handler, streamer: Streamer,
                task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Listen on the control socket until cancelled; one task per client.

    The socket file is made 0600 between bind and listen: until listen() nobody can connect to
    it, whatever its mode, and it sits in .backer/ (0700). The process umask is not touched: it
    is shared by every thread, and a worker thread writing a user's file meanwhile would get it."""
    if path.exists() or path.is_symlink():
        path.unlink()
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    with _address(path) as address:
        await sock.bind(address)
    os.chmod(path, 0o600)
    sock.listen(16)
    listener = trio.SocketListener(sock)
    task_status.started()
    try:
        await trio.serve_listeners(lambda s: _client(s, handler, streamer), [listener])
    finally:
        with trio.CancelScope(shield=True):
            try:
                path.unlink()
            except OSError:
                pass


async def _read_line(s: trio.SocketStream) -> bytes:
    buf = b""
    while b"\n" not in buf:
        chunk = await s.receive_some(4096)
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_REQUEST:
            break
    return buf.split(b"\n", 1)[0]


async def _client(s: trio.SocketStream, handler: Handler, streamer: Streamer) -> None:
    """One client; whatever it does (hang up at once, send garbage) or whatever goes wrong in
    answering it, the node's control socket keeps serving the others."""
    async with s:
        try:
            await _answer(s, handler, streamer)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client hung up: nothing to answer
        except Exception:  # our bug: one failed request, never a dead control socket or node
            log.exception("control request failed")


async def _answer(s: trio.SocketStream, handler: Handler, streamer: Streamer) -> None:
    try:
        req = json.loads(await _read_line(s))
        if not isinstance(req, dict):
            raise ValueError
    except ValueError:
        await s.send_all(b'{"ok": false, "error": "bad request"}\n')
        return
    try:
        if req.get("cmd") == "events":
            await streamer(req, s)
            return
        result = await handler(req)
        answer = {"ok": True, "result": result}
    except UserError as exc:
        answer = {"ok": False, "error": str(exc)}
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        raise
    except Exception as exc:  # our bug: this request fails, in one line; the node carries on
        log.exception("control request %r failed", req.get("cmd"))
        answer = {"ok": False, "error": f"internal error in the node ({type(exc).__name__}: "
                                        f"{exc}); see its log"}
    await s.send_all(json.dumps(answer).encode() + b"\n")
