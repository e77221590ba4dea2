"""The durable base logs of live files: what each live file held when this node last wrote or read
it, as document updates in order (protocol/live.py merges offline saves against it at a restart).

One file per live path under `.backer/live/` (named by a hash of the path), made of records, each
a 4-byte big-endian length and that many bytes: the first record is the path, the others are
updates. Appending is one write, then an fdatasync that runs in a helper thread while the caller
writes the live file's temp file (two syncs at once cost about one): the caller waits for it
before it renames the file into place, so the log never lags behind the file. A write the disk
then refuses is taken back by cutting the log at its old length. A record cut short by a crash
is ignored when loading. Replacing the log (compaction) writes a temp file and renames it.
"""

from __future__ import annotations

import hashlib
import os
import struct
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

DIR = "live"
_LEN = struct.Struct(">I")


class LiveBases:
    """The base logs of one root's live files (see the module docstring)."""

    def __init__(self, state_dir: Path | str) -> None:
        self.dir = Path(state_dir) / DIR
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="backer-livebase")

    def _file(self, path: str) -> Path:
        name = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()
        return self.dir / f"{name}.log"

    def load(self) -> dict[str, list[bytes]]:
        """Every path's log (updates in order); unreadable or foreign files are skipped."""
        out: dict[str, list[bytes]] = {}
        try:
            files = sorted(self.dir.glob("*.log"))
        except OSError:
            return out
        for file in files:
            try:
                records = _records(file.read_bytes())
            except OSError:
                continue
            if records:
                path = records[0].decode("utf-8", "surrogateescape")
                if self._file(path) == file:
                    out[path] = records[1:]
        return out

    def append(self, path: str, update: bytes) -> int:
        """Add `update` to the log of `path`, durably; the log's length before it."""
        length, synced = self.append_soon(path, update)
        synced.result()
        return length

    def append_soon(self, path: str, update: bytes) -> tuple[int, Future]:
        """Add `update` to the log of `path`: the log's length before it, and the future of its
        fdatasync (done in a helper thread; `.result()` raises what the sync raised)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        file = self._file(path)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            start = os.fstat(fd).st_size
            head = b"" if start else _record(path.encode("utf-8", "surrogateescape"))
            os.write(fd, head + _record(update))
        except BaseException:
            os.close(fd)
            raise
        return start, self._syncer.submit(_sync_and_close, fd)

    def take_back(self, path: str, length: int) -> None:
        """Cut the log of `path` at `length` (an append whose file write was refused)."""
        try:
            os.truncate(self._file(path), length)
        except FileNotFoundError:
            pass

    def drop(self, path: str) -> None:
        """Remove the log of `path` (a file that is no longer live)."""
        try:
            self._file(path).unlink()
        except FileNotFoundError:
            pass

    def replace(self, path: str, update: bytes) -> None:
        """Make `update` the whole log of `path`, atomically."""
        self.dir.mkdir(parents=True, exist_ok=True)
        file = self._file(path)
        tmp = file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, _record(path.encode("utf-8", "surrogateescape")) + _record(update))
            os.fdatasync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, file)


def _sync_and_close(fd: int) -> None:
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _record(data: bytes) -> bytes:
    return _LEN.pack(len(data)) + data


def _records(blob: bytes) -> list[bytes]:
    """The whole records of `blob`, in order (a cut-short last one is left out)."""
    out, at = [], 0
    while at + _LEN.size <= len(blob):
        (n,) = _LEN.unpack_from(blob, at)
        if at + _LEN.size + n > len(blob):
            break
        out.append(blob[at + _LEN.size:at + _LEN.size + n])
        at += _LEN.size + n
    return out


__all__ = ["LiveBases"]
