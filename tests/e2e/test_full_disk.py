"""A full disk on a real small tmpfs (root only; skipped, with the reason, where mount is refused):
the receiver pauses pulling and says why, keeps every file it had, gives back the room of its
temp files, never drops its peer over it, and resumes by itself once there is room."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import backer, in_sync, mesh, wait_until

MiB = 1 << 20


@pytest.fixture
def small_disk(tmp_path: Path):
    """tmp_path/B on a 24 MiB tmpfs (unmounted after the daemons stopped)."""
    where = tmp_path / "B"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0755", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount refused here: {done.stderr.strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _temps(root: Path) -> list[str]:
    return [str(p) for p in root.rglob(".backer-tmp-*")]


def test_a_full_disk_pauses_pulling_keeps_files_and_resumes_when_there_is_room(
        small_disk, tmp_path, daemons):
    a, b = mesh(tmp_path, daemons, 2)
    (a.root / "keep.txt").write_bytes(b"what B already had")
    in_sync([a, b])
    for i in range(6):  # 48 MiB for a 24 MiB disk
        (a.root / f"big{i}.bin").write_bytes(os.urandom(8 * MiB))
    status = wait_until(lambda: (lambda s: s if s.get("disk_full") else None)(b.status()),
                        timeout=90, what="B says its disk is full")
    assert "disk full" in status["disk_full"] and not status["in_sync"]
    assert any(p["kind"] == "disk_full" for p in status["problems"])  # with what to do
    assert "disk is full" in backer("status", str(b.root)).stdout  # human status too
    assert b.proc.poll() is None and b.connected()  # no crash, the peer is not blamed
    assert (b.root / "keep.txt").read_bytes() == b"what B already had"
    wait_until(lambda: not _temps(b.root), timeout=30, what="B gave back its temp files' room")
    subprocess.run(["mount", "-o", "remount,size=128m", str(small_disk)], check=True)
    in_sync([a, b], timeout=90)  # resumed by itself, no restart
    assert "disk_full" not in b.status()
