"""The writeback of the blocks one worker hop wrote is begun once per run of adjacent blocks of
a file (puller._start_writeback): a call per block cost a submission each. Every written byte
is still covered, and blocks of two files, or with a gap between them, make runs of their own."""

from __future__ import annotations

from pathlib import Path

from gossip_backer.disk.apply import TempFile
from gossip_backer.runtime.puller import _Job, _start_writeback


class _Recorded(TempFile):
    """A real temp file that also notes each writeback it is asked to begin."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[int, int]] = []

    def start_writeback(self, offset: int, length: int) -> None:
        self.asked.append((offset, length))
        super().start_writeback(offset, length)


def _job(root: Path, name: str, size: int) -> _Job:
    return _Job(None, name, size, _Recorded.create(root, name))


def test_one_writeback_per_run_of_adjacent_blocks(tmp_path: Path) -> None:
    (tmp_path / ".backer").mkdir()
    a, b = _job(tmp_path, "a.bin", 1 << 20), _job(tmp_path, "b.bin", 1 << 20)
    block = 64 << 10
    written = [(a, 0, block), (a, block, block), (b, 0, block), (a, 2 * block, block),
               (a, 5 * block, block), (a, 6 * block, 1000), (b, block, block)]
    for job, offset, length in written:
        job.tmp.write_at(offset, bytes(length))
    _start_writeback(written)
    assert a.tmp.asked == [(0, 3 * block), (5 * block, block + 1000)]
    assert b.tmp.asked == [(0, 2 * block)]
    _start_writeback([])  # a hop that wrote nothing asks nothing
    assert len(a.tmp.asked) == 2
    a.tmp.abort()
    b.tmp.abort()
