"""The whole-file hash computed while blocks are written (puller._RunningHash), in any order,
with blocks reused from local files written before it, equals the hash of the finished file."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gossip_backer.core.blocks import strong_hash
from gossip_backer.disk.apply import TempFile
from gossip_backer.runtime.puller import _buffered_digest, _RunningHash


@pytest.mark.parametrize("seed", range(4))
def test_running_hash_of_blocks_in_any_order(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    block, data = 4096, rng.randbytes(4096 * 20 + 123)
    pieces = [(o, data[o:o + block]) for o in range(0, len(data), block)]
    (tmp_path / ".backer").mkdir()
    tmp = TempFile.create(tmp_path, "f.bin")
    reused = rng.sample(pieces, 5)  # in the temp file before any block arrives
    for o, piece in reused:
        tmp.write_at(o, piece)
    running = _RunningHash(tmp, {o: len(p) for o, p in reused})
    rest = [p for p in pieces if p not in reused]
    rng.shuffle(rest)
    for o, piece in rest[:-3]:
        tmp.write_at(o, piece)
        running.wrote(o, piece)
    for o, piece in rest[-3:]:  # the last ones never reported: read back at the end
        tmp.write_at(o, piece)
    assert running.digest(len(data)) == strong_hash(data)
    tmp.abort()


def test_buffered_digest_only_when_the_blocks_cover_the_file() -> None:
    data = bytes(range(256)) * 10
    blocks = [(o, data[o:o + 512]) for o in range(0, len(data), 512)]
    assert _buffered_digest(list(reversed(blocks)), len(data)) == strong_hash(data)
    assert _buffered_digest(blocks[1:], len(data)) is None  # the first one came from the disk
    assert _buffered_digest(blocks[:-1], len(data)) is None
    assert _buffered_digest([], 0) == strong_hash(b"")
