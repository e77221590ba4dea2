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
