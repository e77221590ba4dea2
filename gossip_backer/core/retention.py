"""Which archived revisions to keep: a pure function of (times, now, policy).

SPEC: every version for a day, one a day for 30 days, one a week for a year (configurable).

A version of age `now - t`
- younger than `all_for` is kept (so is a version from the future: another node's clock is ahead);
- younger than `daily_for` is kept if it is the newest version of its UTC day;
- younger than `weekly_for` is kept if it is the newest version of its week (Monday to Sunday, UTC);
- older than that is dropped.

Buckets are calendar days and weeks, not ages, so they do not slide as time passes: a version that
is the newest of its day stays so, and a version dropped once would never be kept later
(keep(now2) is a subset of keep(now1) for now1 <= now2). Days nest in weeks, so "newest of its
week" implies "newest of its day". "Newest" counts every version of the bucket, whatever its range.
Ties on time go to the later index.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DAY", "WEEK", "Policy", "keep", "day_of", "week_of"]

DAY = 86_400.0
WEEK = 7 * DAY
_MONDAY_SHIFT = 3 * DAY  # 1970-01-01 was a Thursday; Monday 1969-12-29 starts week 0


@dataclass(frozen=True, slots=True)
class Policy:
    """Durations in seconds: every version younger than `all_for`, then one a day until
    `daily_for`, then one a week until `weekly_for`, none older."""

    all_for: float = DAY
    daily_for: float = 30 * DAY
    weekly_for: float = 365 * DAY

    def __post_init__(self) -> None:
        for name in ("all_for", "daily_for", "weekly_for"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
                raise ValueError(f"retention {name} must be a number of seconds >= 0")


def day_of(t: float) -> int:
    return math.floor(t / DAY)


def week_of(t: float) -> int:
    return math.floor((t + _MONDAY_SHIFT) / WEEK)


def keep(times: Sequence[float], now: float, policy: Policy = Policy()) -> set[int]:
    """Indices into `times` (the versions' times, Unix seconds, any order) of the ones to keep."""
    kept: set[int] = set()
    days: set[int] = set()  # day buckets that hold a newer version than the current one
    weeks: set[int] = set()
    for i in sorted(range(len(times)), key=lambda i: (times[i], i), reverse=True):
        t = times[i]
        age, day, week = now - t, day_of(t), week_of(t)
        if age < policy.all_for:
            kept.add(i)
        elif age < policy.daily_for:
            if day not in days:
                kept.add(i)
        elif age < policy.weekly_for:
            if week not in weeks:
                kept.add(i)
        days.add(day)
        weeks.add(week)
    return kept
