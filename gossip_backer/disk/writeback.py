"""Start writing a range of a file to disk now, without waiting for it (Linux sync_file_range).

Why: a large file arrives much faster than the kernel's background writeback begins (it waits
until a tenth of the memory is dirty, or 30 s), so every byte of a 512 MiB download was still
only in the page cache when `finish` called fsync, and the fsync wrote all of it while the
transfer stood still (~0.3 s for 512 MiB here). Asking for the writeback of each range as it is
written lets the disk work beside the transfer; the fsync before the file is placed still makes
it durable (this call promises nothing about durability). Elsewhere (or where libc lacks the
call) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["start_writeback", "AVAILABLE"]

_SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writeback of dirty pages in the range, no wait


def _load():
    if not os.uname().sysname == "Linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _load()
AVAILABLE = _sync_file_range is not None


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Ask the kernel to start writing `length` bytes at `offset` of `fd` to disk. False when
    it could not (no such call here, or it refused): nothing is lost, the later fsync writes
    them. Ctypes releases the GIL around the call."""
    if _sync_file_range is None or length <= 0:
        return False
    return _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE) == 0
