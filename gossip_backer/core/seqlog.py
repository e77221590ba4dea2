"""One origin's updates by sequence number, in two flat columns.

The map keeps every update it holds in its origin's log (core/metamap.py). A node holding 100,000
files holds 100,000 of its own updates: as a sorted dict (sortedcontainers.SortedDict: a hash
table and a sorted key list) the log cost about 60 bytes an update beyond the updates
themselves. Here it is a sorted array of sequence numbers beside a list of the updates, 16 bytes
an update. An origin's updates nearly always arrive in sequence order (its own, a peer's `since`,
a reload), so adding one is an append; a dropped update (superseded by a newer one of its key)
leaves a hole, and the columns are compacted once holes outnumber the updates held.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_MIN_HOLES = 64  # fewer holes than this are never worth a compaction


class SeqLog(Generic[T]):
    """seq -> item, iterated in sequence order (the parts of a dict and of SortedDict the map
    uses: get, in, [], del, len, iteration over seqs and items, `after`, copy)."""

    __slots__ = ("_seqs", "_items", "_holes")

    def __init__(self) -> None:
        self._seqs = array("Q")  # ascending, holes included
        self._items: list[T | None] = []  # None: a hole (its update was dropped)
        self._holes = 0

    def _find(self, seq: int) -> int:
        """The position of `seq`'s item, or -1."""
        seqs = self._seqs
        i = bisect_left(seqs, seq)
        if i < len(seqs) and seqs[i] == seq and self._items[i] is not None:
            return i
        return -1

    def get(self, seq: int, default: T | None = None) -> T | None:
        if seq < 0:
            return default
        i = self._find(seq)
        return self._items[i] if i >= 0 else default

    def __getitem__(self, seq: int) -> T:
        i = self._find(seq) if seq >= 0 else -1
        if i < 0:
            raise KeyError(seq)
        return self._items[i]

    def __contains__(self, seq: object) -> bool:
        return isinstance(seq, int) and seq >= 0 and self._find(seq) >= 0

    def __setitem__(self, seq: int, item: T) -> None:
        if item is None:
            raise ValueError("a log holds updates, not None")
        seqs = self._seqs
        if not seqs or seq > seqs[-1]:
            seqs.append(seq)  # (a negative seq raises OverflowError here: the map refuses them)
            self._items.append(item)
            return
        i = bisect_left(seqs, seq)
        if seqs[i] == seq:
            if self._items[i] is None:
                self._holes -= 1
            self._items[i] = item
            return
        seqs.insert(i, seq)
        self._items.insert(i, item)

    def __delitem__(self, seq: int) -> None:
        i = self._find(seq) if seq >= 0 else -1
        if i < 0:
            raise KeyError(seq)
        self._items[i] = None
        self._holes += 1
        if self._holes >= _MIN_HOLES and self._holes > len(self._items) - self._holes:
            self._compact()

    def _compact(self) -> None:
        keep = [i for i, item in enumerate(self._items) if item is not None]
        self._seqs = array("Q", (self._seqs[i] for i in keep))
        self._items = [self._items[i] for i in keep]
        self._holes = 0

    def __len__(self) -> int:
        return len(self._items) - self._holes

    def __iter__(self) -> Iterator[int]:
        """The seqs held, ascending."""
        items = self._items
        return (seq for i, seq in enumerate(self._seqs) if items[i] is not None)

    def values(self) -> Iterator[T]:
        """The items held, in sequence order."""
        return (item for item in self._items if item is not None)

    def after(self, seq: int) -> Iterator[T]:
        """The items numbered above `seq`, in sequence order (the log must not change while
        this is read)."""
        items = self._items
        for i in range(bisect_right(self._seqs, seq) if seq >= 0 else 0, len(items)):
            item = items[i]
            if item is not None:
                yield item

    def copy(self) -> "SeqLog[T]":
        other = SeqLog.__new__(SeqLog)
        other._seqs = array("Q", self._seqs)
        other._items = list(self._items)
        other._holes = self._holes
        return other
