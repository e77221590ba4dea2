"""disk.writeback: the kernel is asked to start writing a range now; never an error."""

from __future__ import annotations

import os
import sys

import pytest

from gossip_backer.disk import writeback
from gossip_backer.disk.apply import TempFile


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_writeback_of_a_written_range_is_started(tmp_path) -> None:
    assert writeback.AVAILABLE
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, os.urandom(1 << 20), 0)
        assert writeback.start_writeback(fd, 0, 1 << 20)
        assert not writeback.start_writeback(fd, 0, 0)  # nothing to write
    finally:
        os.close(fd)
    assert not writeback.start_writeback(fd, 0, 1 << 20)  # a closed descriptor: refused, no error


def test_a_temp_file_starts_writeback_and_a_dropped_one_ignores_it(tmp_path) -> None:
    tmp = TempFile.create(tmp_path, "big.bin")
    data = os.urandom(256 << 10)
    tmp.write_at(0, data)
    tmp.start_writeback(0, len(data))
    assert tmp.read_at(0, len(data)) == data  # the content is untouched
    tmp.abort()
    tmp.start_writeback(0, len(data))  # after abort: nothing to do, no error
