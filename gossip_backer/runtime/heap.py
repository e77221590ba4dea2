"""Giving the heap back to the OS once a bulk transfer is over.

A transfer allocates and frees thousands of block-sized buffers in several worker threads.
glibc keeps what they free in its per-thread arenas (and, after the first block-sized buffer is
freed, serves later ones from the heap rather than mmap), so after sending 512 MiB a node stayed
~35 MiB above its idle size for as long as it ran, and that was most of its peak in the next
case. And during a transfer the opposite hurt: a frame-sized buffer freed at the top of the heap
was handed back to the OS at once (glibc trims past twice its adaptive mmap threshold), and the
next one faulted in fresh pages: 12-17% of a sender's CPU was page faults in perf.

So a daemon `configure`s glibc at start to keep what is freed (`mallopt`: buffers up to MMAP_MAX
come from the heap, which is not trimmed at each free; one arena for all threads, since only the
main arena's free top goes back at `malloc_trim`, and a worker thread's arena kept ~25 MiB), and a
`HeapTrimmer` hands it back in one go after each burst: it watches a counter of bytes moved (the peer links' wire counters), and once at
least BURST bytes went by and then the counter stood (almost) still for QUIET seconds, it calls
glibc's `malloc_trim(0)` once, in a worker thread. Elsewhere than glibc it does nothing at all.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Callable

import trio

log = logging.getLogger(__name__)
QUIET = 1.0  # seconds of (almost) no traffic that end a burst
BURST = 8 << 20  # bytes moved since the last trim before another is worth it
IDLE_BYTES = 256 << 10  # what still counts as quiet in QUIET seconds (gossip, pings)
MMAP_MAX = 16 << 20  # buffers up to this size come from the heap (a frame is at most 2 MiB)
TRIM_AT = 256 << 20  # free memory at the heap's top that glibc hands back at a free by itself
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # malloc.h


@functools.cache
def _glibc():
    """(malloc_trim, mallopt) of glibc, or None elsewhere."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim, opt = libc.malloc_trim, libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    opt.argtypes, opt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return trim, opt


def trim_now() -> None:
    """(worker thread: it walks the heap) Hand glibc's free pages back to the OS now, after a
    burst that is not traffic: a full scan of 100,000 files builds and drops a scan result, its
    entries and the effects judged from them (9-12 MB of such a node's RSS). Elsewhere than
    glibc it does nothing."""
    glibc = _glibc()
    if glibc is not None:
        glibc[0](0)


def configure() -> None:
    """(at a daemon's start, before its threads) glibc keeps freed memory for the trimmer."""
    glibc = _glibc()
    if glibc is not None:
        opt = glibc[1]
        opt(_M_ARENA_MAX, 1)
        opt(_M_MMAP_THRESHOLD, MMAP_MAX)
        opt(_M_TRIM_THRESHOLD, TRIM_AT)


class HeapTrimmer:
    """Trims the heap after each burst of traffic (see the module docstring)."""

    def __init__(self, moved: Callable[[], int], run_sync=trio.to_thread.run_sync) -> None:
        """`run_sync(fn, arg)`: how the trim is run (a worker thread; a test under a MockClock
        runs it inline, so the clock cannot jump while the thread works)."""
        self._moved = moved
        self._run_sync = run_sync
        glibc = _glibc()
        self._trim = glibc[0] if glibc is not None else None
        self.trims = 0

    async def run(self) -> None:
        if self._trim is None:
            return
        last_trim = last = self._moved()
        while True:
            await trio.sleep(QUIET)
            now = self._moved()
            if now - last < IDLE_BYTES and now - last_trim >= BURST:
                await self._run_sync(self._trim, 0)
                self.trims += 1
                last_trim = now
            last = now
