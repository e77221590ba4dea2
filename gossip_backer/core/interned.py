"""One shared object per equal value, for the few values that 100,000 records repeat (node keys,
modes, block sizes): each decoded copy would cost its own memory. A table keeps at most `limit`
values, so a flood of distinct ones (strangers' keys, odd modes) is used but not kept."""

from __future__ import annotations

from typing import Generic, Hashable, TypeVar

T = TypeVar("T", bound=Hashable)


class Interned(Generic[T]):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept: dict[T, T] = {}

    def __call__(self, value: T) -> T:
        kept = self.kept.get(value)
        if kept is not None:
            return kept
        if len(self.kept) < self.limit:
            self.kept[value] = value
        return value
