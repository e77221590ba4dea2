"""Giving the heap back to the OS once a bulk transfer is over.

A transfer allocates and frees thousands of block-sized buffers in several worker threads.
glibc keeps what they free in its per-thread arenas (and, after the first block-sized buffer is
freed, serves later ones from the heap rather than mmap), so after sending 512 MiB a node stayed
~35 MiB above its idle size for as long as it ran, and that was most of its peak in the next
case. `HeapTrimmer` watches a counter of bytes moved (the peer links' wire counters); once at
least BURST bytes went by and then the counter stood (almost) still for QUIET seconds, it calls
glibc's `malloc_trim(0)` once, in a worker thread. During a transfer it does nothing, so the
heap keeps serving the buffers it holds. Elsewhere than glibc it does nothing at all.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

import trio

log = logging.getLogger(__name__)
QUIET = 1.0  # seconds of (almost) no traffic that end a burst
BURST = 8 << 20  # bytes moved since the last trim before another is worth it
IDLE_BYTES = 256 << 10  # what still counts as quiet in QUIET seconds (gossip, pings)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class HeapTrimmer:
    """Trims the heap after each burst of traffic (see the module docstring)."""

    def __init__(self, moved: Callable[[], int]) -> None:
        self._moved = moved
        self._trim = _malloc_trim()
        self.trims = 0

    async def run(self) -> None:
        if self._trim is None:
            return
        last_trim = last = self._moved()
        while True:
            await trio.sleep(QUIET)
            now = self._moved()
            if now - last < IDLE_BYTES and now - last_trim >= BURST:
                self.trims += 1  # started (a test's MockClock may jump while it runs)
                await trio.to_thread.run_sync(self._trim, 0)
                last_trim = now
            last = now
