"""What does the control socket cost a node that holds many files? A `status` request, and the
`events` stream's encoding, in the node's own process (CPU seconds of the trio thread).

    python benchmarks/control_cost.py [--files N] [--status K] [--events M] [--json]

A root of N (10,000) small files is scanned by a real `Node` (no peers, no watcher); then
1. status: K (20) `node.status()` calls, as the control socket's handler makes them (the
   benchmark's completion checks and a GUI's dashboard poll it about once a second);
2. events: M (20,000) FileUpdated events, as a sync of M files emits them, pushed through a real
   `events` subscriber of the control socket (runtime/control.py, daemon.py's streamer) and read
   back by a client thread that counts the lines.
Figures: milliseconds per status, microseconds per event (CPU time of this process, which runs
the node and the reader: the reader's small share is the same for every build).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from gossip_backer import Node  # noqa: E402
from gossip_backer.daemon import _handler, _streamer  # noqa: E402
from gossip_backer.events import FileUpdated  # noqa: E402
from gossip_backer.runtime import control  # noqa: E402
from gossip_backer.runtime.state import NodeState  # noqa: E402


def make_root(base: Path, files: int) -> Path:
    root = base / "root"
    NodeState.init(root, "bench").close()
    for i in range(files):
        d = root / f"d{i % 100:02d}"
        d.mkdir(exist_ok=True)
        (d / f"file-{i:05d}.txt").write_bytes(b"x" * (100 + i % 900))
    return root


def read_events(path: Path, want: int, got: list) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    sock.sendall(b'{"cmd": "events"}\n')
    with sock, sock.makefile("rb") as f:
        for line in f:  # counted, not parsed here (the last is): the node's cost is measured
            got.append(line)
            if len(got) >= want:
                got[-1] = json.loads(line)
                return


async def measure(root: Path, statuses: int, events: int) -> dict:
    async with Node.open(root, watch=False) as node:
        with trio.fail_after(600):
            while not node.in_sync():
                await trio.sleep(0.05)
        handle = _handler(node)
        t = time.process_time()
        for _ in range(statuses):
            answer = await handle({"cmd": "status"})
            json.dumps({"ok": True, "result": answer})
        status_ms = (time.process_time() - t) / statuses * 1e3
        files = answer["files"]
        sock_path = root / ".backer" / "bench-control.sock"
        async with trio.open_nursery() as nursery:
            await nursery.start(control.serve, sock_path, handle, _streamer(node))
            got: list = []
            reader = threading.Thread(target=read_events, args=(sock_path, events, got))
            reader.start()
            while not node.bus._subscribers:  # the reader's subscription is in place
                await trio.sleep(0.01)
            t = time.process_time()
            wall = time.time()
            for i in range(events):
                node.emit(FileUpdated(wall, f"d{i % 100:02d}/file-{i:05d}.txt", str(node.node_id)))
                if i % 200 == 199:  # the bus drops what a slow subscriber has no room for:
                    while len(got) < i - 400:  # keep within its buffer
                        await trio.sleep(0.001)
            while reader.is_alive():
                await trio.sleep(0.005)
            event_us = (time.process_time() - t) / events * 1e6
            assert len(got) == events and got[-1]["type"] == "file_updated", got[-1:]
            nursery.cancel_scope.cancel()
    return {"files": files, "status_ms": round(status_ms, 2), "events": events,
            "event_us": round(event_us, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--status", type=int, default=20)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_root(Path(tmp), args.files)
        figures = trio.run(measure, root, args.status, args.events)
    print(json.dumps(figures) if args.json else
          "\n".join(f"{k:12} {v}" for k, v in figures.items()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
