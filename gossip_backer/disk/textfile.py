"""A live file's bytes on disk: read them whole, and put new text in place atomically.

The write goes through a temp file next to the target (disk/apply.TempFile: fsync, then rename)
and only over what the caller last saw there (`expect`): a save by another program that the
scanner has not judged yet is never overwritten; it raises LocalChanged and is merged first.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from gossip_backer.core.paths import TMP_PREFIX
from gossip_backer.disk import safepath
from gossip_backer.disk.apply import (DEFAULT_HASHER, LocalChanged, Stat, TempFile, disk_error,
                                      temp_name)


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


def write_text(root: Path | str, path: str, data: bytes, mode: int, expect: Stat | None,
               archive=None, before_replace=None) -> bytes:
    """Put `data` at `path` (mode `mode`, mtime now) if the disk still holds `expect`; the
    whole-file hash of `data` (the mesh's, as a scan computes it).
    `archive`, if given, keeps the replaced content (disk/apply.TempFile.finish).
    `before_replace()`, if given, is called once the temp file is synced, before the rename
    (after the last look at the target; before the temp file is even made when no file may
    be there).
    Raises apply.LocalChanged when it does not, DiskError when the disk refuses."""
    if before_replace is not None:
        if expect is None:
            before_replace()
        else:  # a file is there (else LocalChanged): the archive hook runs right before the rename
            keep = archive

            def archive(target):
                before_replace()
                if keep is not None:
                    keep(target)
    hasher = DEFAULT_HASHER()
    hasher.update(data)
    target = safepath.resolve(root, path)
    name = TMP_PREFIX + "live-" + temp_name(path)[len(TMP_PREFIX):]  # not the puller's temp file
    tmp_path = target.parent / name.encode("utf-8", "surrogatepass")[:255].decode("utf-8", "ignore")
    try:
        fd = os.open(tmp_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        raise disk_error(exc, "create", tmp_path) from exc
    with TempFile(tmp_path, fd, target=target) as tmp:
        tmp.write_at(0, data)
        try:
            tmp.finish(None, hasher.digest(), mode, time.time_ns(), expect, archive=archive)
        except LocalChanged:
            tmp.abort()  # no partial download to resume here: the text is written again
            raise
    return hasher.digest()


__all__ = ["read_text", "write_text"]
