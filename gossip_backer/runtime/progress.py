"""Overall sync progress: bytes done of bytes total for the current backlog, rate, time left.

A backlog starts when something is pending and ends when nothing is. Its total is what was
pending when it started, grown by whatever is queued later; `done` only moves forward (bytes of
files finished, plus the part of running transfers already in place), so a bar drawn from it
fills instead of shrinking. The rate is measured over the last RATE_WINDOW seconds.
"""

from __future__ import annotations

from collections import deque

RATE_WINDOW = 10.0


class Progress:
    def __init__(self) -> None:
        self.total: int | None = None
        self.done = 0
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, pending_bytes: int, in_flight_done: int, now: float) -> dict | None:
        """The `progress` object of the status (None when nothing is pending)."""
        if pending_bytes <= 0:
            self.total, self.done = None, 0
            self._samples.clear()
            return None
        remaining = max(0, pending_bytes - in_flight_done)
        if self.total is None:
            self.total = pending_bytes
            self.done = 0
        done = self.total - remaining
        if done < self.done:  # more was queued: the total grows, what is done stays done
            self.total += self.done - done
            done = self.done
        self.done = done
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW:
            self._samples.popleft()
        t0, d0 = self._samples[0]
        rate = (done - d0) / (now - t0) if now > t0 else 0.0
        left = self.total - done
        return {"done_bytes": done, "total_bytes": self.total, "rate": round(rate, 1),
                "eta": round(left / rate, 1) if rate > 0 else None}
