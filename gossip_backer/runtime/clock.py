"""The node's one clock.

Monotonic time is trio's (`trio.current_time()`): every timer of the protocol machines runs on
it, so a test that runs under `trio.testing.MockClock` drives them all, a minute of dead timer in
a millisecond. Wall time (Unix seconds: event times, a deletion's time, invite expiry, retention)
comes from `Clock.wall`. The daemon's is the system's; a test under a MockClock gives the node a
`FollowingTrio` clock, whose wall moves with the mock, so timers and timestamps agree.
"""

from __future__ import annotations

import time

import trio

__all__ = ["Clock", "FollowingTrio"]


class Clock:
    """The system's clock (the daemon's)."""

    def now(self) -> float:
        """Monotonic seconds (trio's clock: a MockClock in tests)."""
        return trio.current_time()

    def wall(self) -> float:
        """Unix seconds."""
        return time.time()


class FollowingTrio(Clock):
    """A wall clock that moves with trio's clock from `start` (Unix seconds) on."""

    def __init__(self, start: float) -> None:
        self._offset = start - trio.current_time()

    def wall(self) -> float:
        return self._offset + trio.current_time()
