"""node_footprint.py follows a node's RSS over time: a jump after the settled reading shows in
`settled_max_rss_bytes` and `rss_at` (a reading at one moment hid a jump 25 s later). A real
process that grows its memory after a while."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import node_footprint  # noqa: E402

GROWS = "import time; time.sleep(1.0); b = bytearray(64 << 20); b[::4096] = b'x' * (16 << 10); time.sleep(30)"


def test_a_jump_after_the_settled_reading_is_seen():
    p = subprocess.Popen([sys.executable, "-c", GROWS])
    try:
        time.sleep(0.2)
        seen = node_footprint.follow(p.pid, settle=0.3, watch=2.5, at=[0.5, 2.5])
    finally:
        p.kill()
        p.wait()
    assert seen["settled_max_rss_bytes"] >= seen["settled_rss_bytes"] + (60 << 20)
    assert seen["rss_at"]["2.5"] >= seen["rss_at"]["0.5"] + (60 << 20)


def test_rss_at_takes_the_first_reading_at_or_after_the_second():
    samples = [(0.0, 10), (0.5, 20), (1.0, 30)]
    assert node_footprint.rss_at(samples, 0.4) == 20
    assert node_footprint.rss_at(samples, 5.0) == 30
