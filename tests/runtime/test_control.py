"""The control socket keeps serving whatever a client does or whatever a request hits."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from gossip_backer.errors import UserError
from gossip_backer.runtime import control


def _serve_and(path: Path, client) -> None:
    async def handler(req: dict) -> object:
        if req["cmd"] == "boom":
            raise KeyError("a bug")
        return {"echo": req["cmd"]}

    async def streamer(req, s) -> None:
        pass

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(control.serve, path, handler, streamer)
            await trio.to_thread.run_sync(client)
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_hang_ups_garbage_and_internal_errors_leave_it_serving(tmp_path):
    path = tmp_path / "control.sock"

    def client() -> None:
        for _ in range(3):  # connect and hang up at once (what a second `backer run` did)
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(path))
        with socket.socket(socket.AF_UNIX) as s:  # garbage, then hang up before the answer
            s.connect(str(path))
            s.sendall(b"\xff\xfe not json\n")
        with pytest.raises(UserError, match="internal error in the node"):
            control.request(path, {"cmd": "boom"})
        assert control.request(path, {"cmd": "status"}) == {"echo": "status"}
        assert control.is_running(path)

    _serve_and(path, client)


def _umask_now() -> int:
    """The process umask, read without setting it (os.umask can only set; /proc tells)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    pytest.skip("this kernel does not show the umask in /proc/self/status")


def test_binding_never_touches_the_process_umask(tmp_path):
    """The umask is shared by every thread: a worker thread writing a user's file while the
    control socket is bound must not get the socket's 0177. A watcher thread reads the umask the
    whole time the socket is set up, 30 times over; the socket is still 0600."""
    import threading

    normal = _umask_now()
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.add(_umask_now())

    async def handler(req: dict) -> object:
        return None

    async def streamer(req, s) -> None:
        pass

    async def main() -> None:
        for i in range(30):
            path = tmp_path / f"control{i}.sock"
            async with trio.open_nursery() as nursery:
                await nursery.start(control.serve, path, handler, streamer)
                assert path.stat().st_mode & 0o777 == 0o600
                nursery.cancel_scope.cancel()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        trio.run(main)
    finally:
        stop.set()
        watcher.join()
    assert seen == {normal}, f"the umask changed to {sorted(oct(m) for m in seen - {normal})}"


def test_a_root_deeper_than_a_socket_path_may_be_still_has_its_control_socket(tmp_path):
    """A socket's path is at most 107 bytes: a node whose ROOT lay deeper failed to start with
    "AF_UNIX path too long". Its socket is now bound and reached through its folder's descriptor,
    at the same place, mode 0600."""
    deep = tmp_path / ("d" * 60) / ("e" * 60) / ".backer"
    deep.mkdir(parents=True)
    path = deep / "control.sock"
    assert len(str(path)) > control.UNIX_PATH_MAX

    def client() -> None:
        assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
        assert control.request(path, {"cmd": "status"}) == {"echo": "status"}
        assert control.is_running(path)

    _serve_and(path, client)
    assert not path.exists()  # gone when the node stops, as a short one
