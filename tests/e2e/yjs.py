"""A stock Yjs client (web-editor/yclient.mjs: yjs 13 + y-websocket from npm) as a child process,
for the live-edit tests and benchmarks/live.py. `ensure_node_modules()` installs the npm packages
from the committed lockfile (npm ci) when they are missing."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

EDITOR = Path(__file__).resolve().parents[2] / "web-editor"


def ensure_node_modules() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise AssertionError("node and npm are needed (Debian: apt-get install nodejs npm)")
    if not (EDITOR / "node_modules" / "y-websocket").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=EDITOR,
                       check=True, capture_output=True, timeout=600)


def ws_base(web_url: str) -> str:
    """ws://HOST:PORT/api/live from the `web on http://HOST:PORT/` URL."""
    return "ws" + web_url.rstrip("/")[4:] + "/api/live"


class YClient:
    """One Yjs client editing one live file; its output lines arrive on a queue."""

    def __init__(self, base: str, path: str, token: str | None = None) -> None:
        args = ["node", str(EDITOR / "yclient.mjs"), base, path] + ([token] if token else [])
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, encoding="utf-8",
                                     errors="surrogateescape", cwd=EDITOR)
        self.lines: queue.Queue = queue.Queue()
        self.text: str | None = None
        self.length: int | None = None
        self.closed: int | None = None
        self.others: dict = {}  # the other clients' awareness states, by Yjs client id
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def _drain(self, timeout: float = 0.0) -> None:
        try:
            while True:
                msg = self.lines.get(timeout=timeout)
                timeout = 0.0
                if "text" in msg:
                    self.text = msg["text"]
                if "length" in msg:
                    self.length = msg["length"]
                if "closed" in msg:
                    self.closed = msg["closed"]
                if "others" in msg:
                    self.others = msg["others"]
        except queue.Empty:
            pass

    def send(self, **cmd) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def wait_text(self, predicate, timeout: float = 20.0) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            self._drain(0.05)
            if self.text is not None and predicate(self.text):
                return self.text
        raise AssertionError(f"the Yjs client's text never matched (last: {self.text!r})")

    def wait_others(self, predicate, timeout: float = 20.0) -> dict:
        """Wait until the other clients' awareness states satisfy `predicate`."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self._drain(0.05)
            if predicate(self.others):
                return self.others
        raise AssertionError(f"the other clients' awareness never matched (last: {self.others!r})")

    def wait_closed(self, timeout: float = 20.0) -> int | None:
        deadline = time.time() + timeout
        while time.time() < deadline and self.closed is None:
            self._drain(0.05)
        return self.closed

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
