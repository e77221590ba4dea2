"""A virtual clock driven by a heap of (time, seq, event): the simulator's only scheduler.

Not trio: trio documents that its scheduler is not deterministic, and a simulation must replay
exactly from its seed. Here nothing runs concurrently; `run_until` pops the earliest event and
calls it, and events scheduled for the same instant run in the order they were scheduled (`seq`).
Time is a float of seconds that only moves forward, and only when an event is popped.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

__all__ = ["EventLoop", "Timer"]


class Timer:
    """A handle on a scheduled call; `cancel()` makes it a no-op (it stays in the heap)."""

    __slots__ = ("when", "fn", "args", "cancelled")

    def __init__(self, when: float, fn: Callable[..., Any], args: tuple) -> None:
        self.when = when
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class EventLoop:
    """`call_at` / `call_later` schedule; `run_until` / `run_while` advance the clock."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = 0
        self.events_run = 0

    def call_at(self, when: float, fn: Callable[..., Any], *args: Any) -> Timer:
        if when < self.now:
            when = self.now
        timer = Timer(when, fn, args)
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, timer))
        return timer

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        return self.call_at(self.now + max(0.0, delay), fn, *args)

    def next_time(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def step(self) -> bool:
        """Run the earliest pending event; False when nothing is scheduled."""
        while self._heap:
            when, _seq, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            self.now = when
            self.events_run += 1
            timer.fn(*timer.args)
            return True
        return False

    def run_until(self, deadline: float, stop: Callable[[], bool] | None = None) -> bool:
        """Run events up to `deadline` (inclusive); the clock ends at `deadline` unless `stop()`
        turned true first (checked after every event). Returns True if stopped early."""
        heap = self._heap
        while heap and heap[0][0] <= deadline:
            when, _seq, timer = heapq.heappop(heap)
            if timer.cancelled:
                continue
            self.now = when
            self.events_run += 1
            timer.fn(*timer.args)
            if stop is not None and stop():
                return True
        self.now = max(self.now, deadline)
        return False

    def __len__(self) -> int:
        return len(self._heap)
