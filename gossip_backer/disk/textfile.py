"""A live file's bytes on disk: read them whole, and put new text in place atomically.

The write goes through a temp file next to the target (disk/apply.TempFile: fsync, then rename)
and only over what the caller last saw there (`expect`): a save by another program that the
scanner has not judged yet is never overwritten; it raises LocalChanged and is merged first.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from gossip_backer.disk import safepath
from gossip_backer.disk.apply import DEFAULT_HASHER, LocalChanged, Stat, TempFile, stat_of


def read_text(root: Path | str, path: str, limit: int) -> bytes | None:
    """The file's bytes, at most `limit` + 1 of them (so that a larger file shows it is); None
    when it is gone, not a regular file, or unreadable."""
    full = safepath.resolve(root, path)
    try:
        fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            return f.read(limit + 1)
    except OSError:
        return None


def write_text(root: Path | str, path: str, data: bytes, mode: int, expect: Stat | None) -> Stat | None:
    """Put `data` at `path` (mode `mode`, mtime now) if the disk still holds `expect`.
    Raises apply.LocalChanged when it does not, DiskError when the disk refuses."""
    hasher = DEFAULT_HASHER()
    hasher.update(data)
    with TempFile.create(root, path) as tmp:
        tmp.write_at(0, data)
        try:
            tmp.finish(None, hasher.digest(), mode, time.time_ns(), expect)
        except LocalChanged:
            tmp.abort()  # no partial download to resume here: the text is written again
            raise
    return stat_of(root, path)


__all__ = ["read_text", "write_text"]
