"""The node's sign of life on disk: did the previous run end with the machine losing power?

A running node keeps `.backer/alive` up to date (the machine's boot id and the time, written
atomically and fsynced every few seconds) and removes it when it stops cleanly. At the next start
a mark left by another boot of the machine means the previous run ended with a crash of the
machine itself (a power cut, a kernel panic): writes of its last seconds may never have reached
the disk, and the folder machine must not take what the disk lost for the user's doing
(protocol/folder.py, `after_power_loss`). A mark of the same boot is a killed process only: the
kernel kept every write.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

NAME = "alive"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""  # no boot id here: a crash of the machine cannot be told from one of ours


def power_lost_at(state_dir: Path) -> float | None:
    """The last sign of life of a previous run that ended with the machine losing power."""
    try:
        boot, _, when = (state_dir / NAME).read_text().partition(" ")
        last = float(when)
    except (OSError, ValueError):
        return None
    current = boot_id()
    return last if current and boot != current else None


def beat(state_dir: Path, now: float | None = None) -> None:
    """Write the mark (atomically, fsynced: it must survive the power loss it is about)."""
    tmp = state_dir / (NAME + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{boot_id()} {time.time() if now is None else now:.3f}".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, state_dir / NAME)


def clear(state_dir: Path) -> None:
    """A clean stop: no mark."""
    try:
        os.unlink(state_dir / NAME)
    except FileNotFoundError:
        pass
