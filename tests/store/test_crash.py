"""A writer killed with SIGKILL at any moment leaves whole batches only, and every batch it
reported committed. (SIGKILL tests atomicity; power-cut durability rests on synchronous=FULL.)"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gossip_backer.store.db import open_db
from gossip_backer.store.repo import Repo

WRITER = Path(__file__).with_name("crash_writer.py")
ROOT = Path(__file__).resolve().parents[2]
BATCH = 200

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


class Writer:
    def __init__(self, db: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen([sys.executable, str(WRITER), str(db), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, bufsize=0)
        self.buf = b""
        self.committed = 0  # the last count the writer reported

    def wait_for(self, prefix: str, at_least: int = 0, timeout: float = 10.0) -> int:
        """Read lines until one `prefix N` with N >= at_least; return N."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                word, n = line.decode().split()
                if word == "committed":
                    self.committed = int(n)
                if word == prefix and int(n) >= at_least:
                    return int(n)
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.kill()
                pytest.fail(f"writer stalled or died: {self.proc.stderr.read().decode()[-2000:]}")
            if select.select([self.proc.stdout], [], [], left)[0]:
                self.buf += os.read(self.proc.stdout.fileno(), 65536)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


def check_store(db_path: Path, reported: int) -> int:
    with open_db(db_path) as db:
        assert db.integrity_check() == "ok"
        repo = Repo(db)
        count = repo.count_updates()
        assert count % BATCH == 0, f"half a batch survived: {count} updates"
        assert count // BATCH >= reported, "a batch reported committed was lost"
        assert len(repo.load_updates()) == count
    return count // BATCH


def test_sigkill_never_leaves_half_a_batch(tmp_path):
    db_path = tmp_path / "store.db"
    open_db(db_path).close()

    # 1: killed right after it reports a commit (while it builds or saves the next batch)
    w = Writer(db_path)
    w.wait_for("committed", 3)
    w.kill()
    batches = check_store(db_path, w.committed)

    # 2: killed with a transaction certainly open, 100 of its 200 rows inserted
    w = Writer(db_path, "--pause-at", "2")
    w.wait_for("mid")
    w.kill()
    assert check_store(db_path, w.committed) == w.committed == batches + 1

    # 3: killed a few milliseconds into later work
    for delay in (0.002, 0.011):
        batches = check_store(db_path, 0)
        w = Writer(db_path)
        w.wait_for("committed", batches + 2)
        time.sleep(delay)
        w.kill()
        assert check_store(db_path, w.committed) >= batches + 2
