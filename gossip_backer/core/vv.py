"""Version vectors: which changes of which node a version has seen.

Counters are keyed by node id bytes. The value is immutable and hashable so records holding it
can be compared and deduplicated. Compact encoding: a list of [key, counter] pairs sorted by key
(msgpack carries it as is).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping


_KEYS: dict[bytes, bytes] = {}
_KEYS_MAX = 4096  # node keys held once (a mesh has a few; a flood of strangers is not kept)


def node_key(key: bytes) -> bytes:
    """One shared bytes object per node key: every record and version vector of 100,000 files
    names the same few nodes, and each decoded copy costs 65 bytes."""
    kept = _KEYS.get(key)
    if kept is not None:
        return kept
    if len(_KEYS) < _KEYS_MAX:
        _KEYS[key] = key
    return key


class Order(enum.Enum):
    EQUAL = "equal"
    GREATER = "greater"
    LESSER = "lesser"
    CONCURRENT = "concurrent"


class VersionVector:
    """An immutable map node -> counter; missing nodes count 0."""

    __slots__ = ("_counters", "_hash")

    def __init__(self, counters: Mapping[bytes, int] | None = None) -> None:
        clean = {k: int(v) for k, v in (counters or {}).items() if v}
        if any(v < 0 for v in clean.values()):
            raise ValueError("version vector counters are non-negative")
        self._counters: dict[bytes, int] = dict(sorted(clean.items()))
        self._hash: int | None = None

    def get(self, node: bytes) -> int:
        return self._counters.get(node, 0)

    def items(self) -> Iterable[tuple[bytes, int]]:
        return self._counters.items()

    def __len__(self) -> int:
        return len(self._counters)

    def bump(self, node: bytes) -> "VersionVector":
        """This vector with `node`'s counter one higher: a new change made on `node`."""
        counters = dict(self._counters)
        counters[node] = counters.get(node, 0) + 1
        return VersionVector(counters)

    def merge(self, other: "VersionVector") -> "VersionVector":
        """The least vector that has seen everything either has seen."""
        counters = dict(self._counters)
        for k, v in other._counters.items():
            if v > counters.get(k, 0):
                counters[k] = v
        return VersionVector(counters)

    def compare(self, other: "VersionVector") -> Order:
        greater = lesser = False
        for k in self._counters.keys() | other._counters.keys():
            a, b = self.get(k), other.get(k)
            if a > b:
                greater = True
            elif a < b:
                lesser = True
            if greater and lesser:
                return Order.CONCURRENT
        if greater:
            return Order.GREATER
        return Order.LESSER if lesser else Order.EQUAL

    def dominates(self, other: "VersionVector") -> bool:
        """True when this vector has seen everything `other` has (greater or equal)."""
        return self.compare(other) in (Order.GREATER, Order.EQUAL)

    def encode(self) -> list[list]:
        return [[k, v] for k, v in self._counters.items()]

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
        return isinstance(other, VersionVector) and self._counters == other._counters

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._counters.items()))
        return self._hash

    def __repr__(self) -> str:
        inner = ", ".join(f"{k[:3].hex()}:{v}" for k, v in self._counters.items())
        return f"VV({inner})"
