"""How far one call for requests walks the files waiting (Scheduler.requests): thousands of
small files wait during a first sync, and the request pump asks after every answer."""

from __future__ import annotations

import hashlib

from gossip_backer.core.record import Block
from gossip_backer.protocol.transfer import SMALL_BLOCK, BlockRequest, Scheduler

P1 = b"\x01" * 32


def hasher(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


class CountingScheduler(Scheduler):
    """Counts the peer choices a call makes (each is a look at one waiting block)."""

    picks = 0

    def _pick(self, f, load, length):
        self.picks += 1
        return super()._pick(f, load, length)


def add(s: Scheduler, path: str, size: int, block_size: int, seed: int) -> None:
    data = bytes([seed % 251]) * size
    blocks = [(i, Block(hasher(data[o:o + block_size]), o))
              for i, o in enumerate(range(0, size, block_size))]
    s.add(path, hasher(data + path.encode()), block_size, size, blocks)


def test_a_full_peer_ends_the_walk_over_small_files() -> None:
    s = CountingScheduler(hasher, per_peer_small_bytes=64 << 10)
    for i in range(2000):
        add(s, f"f{i}", 3000 + i % 7, 128 << 10, i)  # 3-3.0 KiB: never an exact fit
    first = s.requests([P1], now=0.0)
    assert 15 <= len(first) <= 22  # about 64 KiB of them
    s.picks = 0
    assert s.requests([P1], now=0.0) == []  # nothing answered yet: no room
    assert s.picks <= 1  # not a look at each of the ~1,980 files waiting


def test_a_large_file_behind_thousands_of_small_ones_is_still_asked_for() -> None:
    s = Scheduler(hasher, per_peer_small_bytes=64 << 10)
    for i in range(2000):
        add(s, f"f{i}", 3000, 128 << 10, i)
    add(s, "big", 4 * 256 << 10, 256 << 10, 7)
    asked = [r for _, r in s.requests([P1], now=0.0) if isinstance(r, BlockRequest)]
    big = [r for r in asked if r.size > SMALL_BLOCK]
    assert len(big) == 4  # its own room: the small files' full room does not hold it back
