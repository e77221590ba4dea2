"""retention: which revisions to keep, as properties over random histories."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip_backer.core.retention import DAY, WEEK, Policy, day_of, keep, week_of

NOW = 1_700_000_000.0
P = Policy()
YEAR = 365 * DAY

ages = st.floats(min_value=-DAY, max_value=2 * YEAR, allow_nan=False)
histories = st.lists(ages, max_size=60).map(lambda a: [NOW - x for x in a])
policies = st.builds(
    Policy,
    all_for=st.floats(0, 10 * DAY),
    daily_for=st.floats(0, 90 * DAY),
    weekly_for=st.floats(0, 2 * YEAR),
)
quick = settings(max_examples=200, deadline=None)


def test_defaults_are_the_spec() -> None:
    assert (P.all_for, P.daily_for, P.weekly_for) == (DAY, 30 * DAY, 365 * DAY)
    with pytest.raises(ValueError):
        Policy(all_for=-1)


def test_a_worked_example() -> None:
    hours = [1, 2, 30, 31, 24 * 10 + 1, 24 * 10 + 2, 24 * 100, 24 * 101, 24 * 400]
    times = [NOW - x * 3600 for x in hours]
    kept = keep(times, NOW, P)
    assert {0, 1} <= kept  # the last day: all
    assert len(kept & {2, 3}) == 1 and len(kept & {4, 5}) <= 1  # one a day
    assert 8 not in kept  # older than a year: gone


def test_empty() -> None:
    assert keep([], NOW, P) == set()


@quick
@given(histories, policies)
def test_every_recent_version_is_kept(times, policy) -> None:
    kept = keep(times, NOW, policy)
    assert {i for i, t in enumerate(times) if NOW - t < policy.all_for} <= kept


@quick
@given(histories, policies)
def test_at_most_one_per_day_in_the_daily_range(times, policy) -> None:
    kept = keep(times, NOW, policy)
    daily = [i for i in kept if policy.all_for <= NOW - times[i] < policy.daily_for]
    assert all(n == 1 for n in Counter(day_of(times[i]) for i in daily).values())


@quick
@given(histories, policies)
def test_at_most_one_per_week_in_the_weekly_range(times, policy) -> None:
    kept = keep(times, NOW, policy)
    weekly = [i for i in kept
              if max(policy.all_for, policy.daily_for) <= NOW - times[i] < policy.weekly_for]
    assert all(n == 1 for n in Counter(week_of(times[i]) for i in weekly).values())


@quick
@given(histories, policies)
def test_nothing_beyond_the_horizon(times, policy) -> None:
    kept = keep(times, NOW, policy)
    horizon = max(policy.all_for, policy.daily_for, policy.weekly_for)
    assert all(NOW - times[i] < horizon for i in kept)


@quick
@given(histories, policies)
def test_the_newest_version_is_kept(times, policy) -> None:
    if not times:
        return
    newest = max(range(len(times)), key=lambda i: (times[i], i))
    if NOW - times[newest] < max(policy.all_for, policy.daily_for, policy.weekly_for):
        assert newest in keep(times, NOW, policy)


@quick
@given(histories)
def test_each_bucket_keeps_its_newest(times) -> None:
    kept = keep(times, NOW, P)
    for i, t in enumerate(times):
        age = NOW - t
        newer = [j for j, u in enumerate(times) if (u, j) > (t, i)]
        if P.all_for <= age < P.daily_for and not any(day_of(times[j]) == day_of(t) for j in newer):
            assert i in kept
        if P.daily_for <= age < P.weekly_for and not any(week_of(times[j]) == week_of(t) for j in newer):
            assert i in kept


@quick
@given(histories, policies, st.floats(0, YEAR))
def test_a_dropped_version_never_comes_back(times, policy, later) -> None:
    assert keep(times, NOW + later, policy) <= keep(times, NOW, policy)


@quick
@given(histories)
def test_order_of_input_does_not_matter(times) -> None:
    kept = keep(times, NOW, P)
    rev = list(reversed(times))
    n = len(times)
    assert {n - 1 - i for i in keep(rev, NOW, P)} == kept or _ties(times)


def _ties(times) -> bool:
    return len(set(times)) != len(times)  # equal times: the later index wins, so kept indices move


def test_weeks_start_on_monday() -> None:
    monday = 1_699_833_600.0  # 2023-11-13 00:00 UTC, a Monday
    assert week_of(monday) == week_of(monday + 6 * DAY + 86399) != week_of(monday - 1)
    assert week_of(monday + WEEK) == week_of(monday) + 1
