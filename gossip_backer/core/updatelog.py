"""One origin's signed updates by sequence number, held in flat columns.

The map keeps every update it holds in its origin's log (core/metamap.py). A node holding 100,000
files holds 100,000 of its own updates; as objects each cost ~250 bytes beyond its payload (the
SignedUpdate, its 64-byte signature as a bytes object, its sequence number as an int, the log's
slot). Here an update is its payload in a list, its signature in one shared bytearray and its
sequence number and body length in arrays: ~90 bytes. A `SignedUpdate` is made again when one is
read (`get`, `values`, `after`): reads are gossip batches and rare refolds, not per-file work.

An update that cannot be made again exactly (a body kept as it came, an odd signature length,
another encoder) is held whole. An origin's updates nearly always arrive in sequence order (its
own, a peer's `since`, a reload), so adding one is an append; a dropped update (superseded by a
newer one of its key) leaves a hole, and the columns are compacted once holes outnumber the
updates held.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator

from gossip_backer.core.record import Payload, SignedUpdate

SIG = 64  # an Ed25519 signature
_MIN_HOLES = 64  # fewer holes than this are never worth a compaction
_NO_SIG = bytes(SIG)


class UpdateLog:
    """seq -> SignedUpdate of one origin, iterated in sequence order (the parts of a dict the
    map uses: get, in, [], del, len, iteration over seqs and updates, `after`, copy)."""

    __slots__ = ("origin", "_encode", "_seqs", "_items", "_sigs", "_lens", "_holes")

    def __init__(self, origin: bytes) -> None:
        self.origin = origin
        self._encode: Callable[[Payload], bytes] | None = None  # of the updates held in columns
        self._seqs = array("Q")  # ascending, holes included
        self._items: list[Payload | SignedUpdate | None] = []  # a payload, a whole update, a hole
        self._sigs = bytearray()  # SIG bytes per position (zeros for a whole update or a hole)
        self._lens = array("I")  # body length per position (0 for a whole update or a hole)
        self._holes = 0

    # -- one update <-> one position ---------------------------------------------------------
    def _columns(self, update: SignedUpdate) -> tuple[object, bytes, int]:
        """What position holds for `update`: (payload, signature, body length), or the update
        itself when it cannot be made again from those."""
        if update.origin != self.origin:
            raise ValueError("an update of another origin")
        if update.kept_body is None and len(update.sig) == SIG and update.encode is not None:
            if self._encode is None:
                self._encode = update.encode
            if update.encode is self._encode:
                return update.payload, update.sig, update.body_len
        return update, _NO_SIG, 0

    def _update(self, i: int) -> SignedUpdate:
        item = self._items[i]
        if isinstance(item, SignedUpdate):
            return item
        at = i * SIG
        return SignedUpdate(self.origin, self._seqs[i], item, None, bytes(self._sigs[at:at + SIG]),
                            self._encode, self._lens[i])

    def _find(self, seq: int) -> int:
        """The position of `seq`'s update, or -1."""
        if seq < 0:
            return -1
        seqs = self._seqs
        i = bisect_left(seqs, seq)
        if i < len(seqs) and seqs[i] == seq and self._items[i] is not None:
            return i
        return -1

    # -- reading -----------------------------------------------------------------------------
    def get(self, seq: int, default: SignedUpdate | None = None) -> SignedUpdate | None:
        i = self._find(seq)
        return self._update(i) if i >= 0 else default

    def __getitem__(self, seq: int) -> SignedUpdate:
        i = self._find(seq)
        if i < 0:
            raise KeyError(seq)
        return self._update(i)

    def payload(self, seq: int) -> Payload:
        """`self[seq].payload`, without making the update."""
        i = self._find(seq)
        if i < 0:
            raise KeyError(seq)
        item = self._items[i]
        return item.payload if isinstance(item, SignedUpdate) else item

    def holds(self, update: SignedUpdate) -> bool:
        """Is this very update (its seq and signature) the one held for its seq?"""
        i = self._find(update.seq) if update.origin == self.origin else -1
        if i < 0:
            return False
        item = self._items[i]
        if isinstance(item, SignedUpdate):
            return item is update or item == update
        return self._sigs[i * SIG:(i + 1) * SIG] == update.sig and item is update.payload

    def __contains__(self, seq: object) -> bool:
        return isinstance(seq, int) and self._find(seq) >= 0

    def __len__(self) -> int:
        return len(self._items) - self._holes

    def __iter__(self) -> Iterator[int]:
        """The seqs held, ascending."""
        items = self._items
        return (seq for i, seq in enumerate(self._seqs) if items[i] is not None)

    def values(self) -> Iterator[SignedUpdate]:
        """The updates held, in sequence order."""
        return self.after(-1)

    def after(self, seq: int) -> Iterator[SignedUpdate]:
        """The updates numbered above `seq`, in sequence order (the log must not change while
        this is read)."""
        items = self._items
        for i in range(bisect_right(self._seqs, seq) if seq >= 0 else 0, len(items)):
            if items[i] is not None:
                yield self._update(i)

    def matching(self, test: Callable[[Payload], bool]) -> Iterator[SignedUpdate]:
        """The updates whose payload passes `test`, in sequence order (only those are made)."""
        for i, item in enumerate(self._items):
            if item is not None and test(item.payload if isinstance(item, SignedUpdate) else item):
                yield self._update(i)

    # -- writing -----------------------------------------------------------------------------
    def __setitem__(self, seq: int, update: SignedUpdate) -> None:
        if update.seq != seq:
            raise ValueError("an update is held under its own seq")
        item, sig, length = self._columns(update)
        seqs = self._seqs
        if not seqs or seq > seqs[-1]:
            seqs.append(seq)  # (a negative seq raises OverflowError here: the map refuses them)
            self._items.append(item)
            self._sigs += sig
            self._lens.append(length)
            return
        i = bisect_left(seqs, seq)
        if seqs[i] != seq:
            seqs.insert(i, seq)
            self._items.insert(i, None)
            self._sigs[i * SIG:i * SIG] = _NO_SIG
            self._lens.insert(i, 0)
        elif self._items[i] is None:
            self._holes -= 1
        self._items[i] = item
        self._sigs[i * SIG:(i + 1) * SIG] = sig
        self._lens[i] = length

    def __delitem__(self, seq: int) -> None:
        i = self._find(seq)
        if i < 0:
            raise KeyError(seq)
        self._items[i] = None
        self._sigs[i * SIG:(i + 1) * SIG] = _NO_SIG
        self._lens[i] = 0
        self._holes += 1
        if self._holes >= _MIN_HOLES and self._holes > len(self._items) - self._holes:
            self._compact()

    def _compact(self) -> None:
        keep = [i for i, item in enumerate(self._items) if item is not None]
        sigs = self._sigs
        self._seqs = array("Q", (self._seqs[i] for i in keep))
        self._items = [self._items[i] for i in keep]
        self._sigs = bytearray().join(sigs[i * SIG:(i + 1) * SIG] for i in keep)
        self._lens = array("I", (self._lens[i] for i in keep))
        self._holes = 0

    def copy(self) -> "UpdateLog":
        other = UpdateLog(self.origin)
        other._encode = self._encode
        other._seqs = array("Q", self._seqs)
        other._items = list(self._items)
        other._sigs = bytearray(self._sigs)
        other._lens = array("I", self._lens)
        other._holes = self._holes
        return other
