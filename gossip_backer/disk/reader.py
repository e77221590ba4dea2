"""Read a mirrored file for someone outside the mesh (a share link), never through a symlink.

`open_regular` resolves the mesh path with `safepath.resolve` (no parent folder may be a
symlink), opens the last component with O_NOFOLLOW (a symlink there fails to open) and checks
on the open descriptor that it is a regular file: a link planted anywhere on the way, even
between our check and the open, cannot make a share serve something outside the root.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gossip_backer.core.paths import BadPath
from gossip_backer.disk import safepath

_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class NotServable(Exception):
    """The path is not a regular file here (missing, a folder, a link, a device)."""


class OpenFile:
    """An open regular file: `read(offset, size)` by position, from worker threads."""

    def __init__(self, fd: int, size: int, mtime_ns: int) -> None:
        self._fd = fd
        self.size = size
        self.mtime_ns = mtime_ns

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self._fd, size, offset)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "OpenFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_regular(root: Path | str, path: str) -> OpenFile:
    try:
        full = safepath.resolve(root, path)
        fd = os.open(full, _FLAGS)
    except (BadPath, OSError) as exc:
        raise NotServable(str(exc)) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotServable(f"{path} is not a regular file")
    return OpenFile(fd, st.st_size, st.st_mtime_ns)
