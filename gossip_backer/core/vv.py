"""Version vectors: which changes of which node a version has seen.

Counters are keyed by node id bytes. The value is immutable and hashable so records holding it
can be compared and deduplicated, and equal vectors are one shared object. Compact encoding: a list of [key, counter] pairs sorted by key
(msgpack carries it as is).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from gossip_backer.core.interned import Interned


# One shared bytes object per node key: every record and version vector of 100,000 files names
# the same few nodes, and each decoded copy costs 65 bytes (a mesh has a few; strangers not kept).
node_key: Interned[bytes] = Interned(4096)


class Order(enum.Enum):
    EQUAL = "equal"
    GREATER = "greater"
    LESSER = "lesser"
    CONCURRENT = "concurrent"


class VersionVector:
    """An immutable map node -> counter; missing nodes count 0.

    Held as a tuple of (node, counter) pairs sorted by node, and interned: a node holding
    100,000 files has two vectors per file (the map's version, the index's), and most of them
    are equal ({me: 1} after a first scan), so equal vectors are one shared object (measured:
    a dict per vector was 9 MiB of a 20,000-file node). Equality stays by value."""

    __slots__ = ("_items", "_hash")
    _items: tuple[tuple[bytes, int], ...]

    def __new__(cls, counters: Mapping[bytes, int] | None = None) -> "VersionVector":
        clean = {k: int(v) for k, v in (counters or {}).items() if v}
        if any(v < 0 for v in clean.values()):
            raise ValueError("version vector counters are non-negative")
        return cls._of(tuple(sorted(clean.items())))

    @classmethod
    def _of(cls, items: tuple[tuple[bytes, int], ...]) -> "VersionVector":
        """The one vector of these sorted, non-zero pairs."""
        kept = _VECTORS.get(items)
        if kept is not None:
            return kept
        vector = object.__new__(cls)
        vector._items = items
        vector._hash = None
        if len(_VECTORS) >= _VECTORS_MAX:  # a long-lived node's table starts afresh
            _VECTORS.clear()
        _VECTORS[items] = vector
        return vector

    def get(self, node: bytes) -> int:
        for k, v in self._items:
            if k == node:
                return v
        return 0

    def items(self) -> tuple[tuple[bytes, int], ...]:
        return self._items

    def __len__(self) -> int:
        return len(self._items)

    def bump(self, node: bytes) -> "VersionVector":
        """This vector with `node`'s counter one higher: a new change made on `node`."""
        counters = dict(self._items)
        counters[node] = counters.get(node, 0) + 1
        return VersionVector(counters)

    def merge(self, other: "VersionVector") -> "VersionVector":
        """The least vector that has seen everything either has seen."""
        if other is self or not other._items:
            return self
        if not self._items:
            return other
        counters = dict(self._items)
        for k, v in other._items:
            if v > counters.get(k, 0):
                counters[k] = v
        return VersionVector._of(tuple(sorted(counters.items())))

    def compare(self, other: "VersionVector") -> Order:
        if other is self:
            return Order.EQUAL
        a, b = self._items, other._items  # both sorted by node: walk them side by side
        i = j = 0
        greater = lesser = False
        while i < len(a) and j < len(b):
            (ka, va), (kb, vb) = a[i], b[j]
            if ka == kb:
                greater, lesser = greater or va > vb, lesser or va < vb
                i, j = i + 1, j + 1
            elif ka < kb:
                greater, i = True, i + 1
            else:
                lesser, j = True, j + 1
        greater, lesser = greater or i < len(a), lesser or j < len(b)
        if greater:
            return Order.CONCURRENT if lesser else Order.GREATER
        return Order.LESSER if lesser else Order.EQUAL

    def dominates(self, other: "VersionVector") -> bool:
        """True when this vector has seen everything `other` has (greater or equal)."""
        return self.compare(other) in (Order.GREATER, Order.EQUAL)

    def encode(self) -> list[list]:
        return [[k, v] for k, v in self._items]

    @classmethod
    def decode(cls, pairs: Iterable) -> "VersionVector":
        counters: dict[bytes, int] = {}
        if not isinstance(pairs, (list, tuple)):
            raise ValueError("malformed version vector")
        for pair in pairs:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ValueError("malformed version vector")
            k, v = pair
            if not isinstance(k, bytes) or type(v) is not int or v < 0 or k in counters:
                raise ValueError("malformed version vector")
            counters[node_key(k)] = v
        return cls(counters)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VersionVector) and (other is self or self._items == other._items)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(self._items)
        return self._hash

    def __reduce__(self) -> tuple:
        return (VersionVector, (dict(self._items),))  # copies and pickles come back interned

    def __repr__(self) -> str:
        inner = ", ".join(f"{k[:3].hex()}:{v}" for k, v in self._items)
        return f"VV({inner})"


_VECTORS: dict[tuple, VersionVector] = {}  # sorted pairs -> the one vector of them
_VECTORS_MAX = 1 << 14  # at most a few MiB of vectors nobody holds any more
