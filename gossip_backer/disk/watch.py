"""The OS file watcher: sets of changed relative paths, debounced, without ignored paths.

Theory of operation
-------------------
We use the `watchfiles` package (Rust `notify`: inotify on Linux, FSEvents on macOS,
ReadDirectoryChangesW on Windows, polling as a fallback). Its `awatch` runs the blocking Rust wait
in a worker thread through anyio, and anyio runs on trio, so `Watcher.changes()` is an ordinary
async generator that a trio task iterates; this module imports neither trio nor anyio.

Grouping: once a first event arrives, watchfiles keeps collecting until `step_ms` pass with no new
event, or `debounce_ms` pass in all (defaults 50 and 100 ms), then yields the batch.

Cancellation: anyio does not abandon a worker thread on cancel, so a cancelled `changes()` returns
only when the Rust wait does, which we bound with `cancel_ms` (the Rust timeout, default 200 ms;
watchfiles' own default is 5 s). `close()` stops it sooner, within `step_ms`.

Names that are not UTF-8: watchfiles cannot give them as text, and a folder so named makes it fail
as it starts. On Linux the Watcher then goes on with `disk.inotify.TreeWatch` (raw inotify, names
as `os.fsdecode` gives them) for the rest of its life; elsewhere such names do not exist. The
batch watchfiles failed on is replaced by a look at the failing path and its folder.

When the root itself is removed (or moved away), the OS watch is dead: `changes()` ends with
`root_lost` set, without yielding the deletions of everything below it (that is the missing-root
case, never a mass deletion). The runtime pauses the root and starts a new Watcher when it is back.

A watcher sees a write as it starts: the runtime lets a batch's paths become SETTLE old before it
scans them (`mtimes`, protocol.folder.settle_wait), the folder machine holds back a file still
younger, and the scan's before/after stat catches a file that still moves while it is hashed.
Events can be lost (a full inotify queue, a folder created and filled faster than its watch is
added): `scan_paths()` walks the subtree of a folder that appeared, and the periodic rescan is
the safety net.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import anyio.to_thread
import watchfiles

from gossip_backer.core.paths import TMP_PREFIX, normalise
from gossip_backer.disk.ignore import IGNORE_FILE, IgnoreMatcher, always_ignored
from gossip_backer.disk.scan import root_state

DEBOUNCE_MS = 100
STEP_MS = 50
CANCEL_MS = 200


class Watcher:
    """Watches one root; iterate `changes()` from one task at a time."""

    def __init__(self, root: Path | str, ignore: IgnoreMatcher, *, debounce_ms: int = DEBOUNCE_MS,
                 step_ms: int = STEP_MS, cancel_ms: int = CANCEL_MS,
                 force_polling: bool | None = None,
                 own: Callable[[str], tuple[int, int, int, int] | None] | None = None) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.ignore = ignore
        self.own = own  # path -> (size, mtime_ns, inode, permission bits) of a file we just
        #                 wrote there, once
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.cancel_ms = cancel_ms
        self.force_polling = force_polling
        self._prefix = self.root.rstrip(os.sep) + os.sep
        self._stop = threading.Event()  # the Rust side only calls is_set(); safe across threads
        self.root_lost = False
        self._raw = False  # watchfiles failed on a name that is not UTF-8: raw inotify instead

    async def changes(self) -> AsyncIterator[set[str]]:
        """Yield non-empty sets of changed relative paths until `close()`, cancellation, or the
        root itself vanishing (then `root_lost` is true)."""
        self._stop.clear()
        self.root_lost = False
        while not self._stop.is_set():
            if self._raw:
                async for paths in self._inotify_changes():
                    yield paths
                return
            undecodable = None
            try:
                async for batch in watchfiles.awatch(
                    self.root, watch_filter=None, debounce=self.debounce_ms, step=self.step_ms,
                    stop_event=self._stop, rust_timeout=self.cancel_ms,
                    force_polling=self.force_polling, ignore_permission_denied=True,
                ):
                    if (any(path == self.root for _, path in batch)
                            and root_state(self.root) is not None):
                        self.root_lost = True  # nothing below it can be trusted: stop, let the
                        self._stop.set()  # runtime pause the root and start a new Watcher
                        continue
                    paths = self.filter(batch)
                    if paths:
                        yield paths
                return
            except Exception as exc:  # watchfiles' RuntimeError, maybe inside an ExceptionGroup
                undecodable = _undecodable(exc)
                if undecodable is None:
                    raise
            self._raw = _HAVE_INOTIFY
            paths = self._around(undecodable)
            if paths:
                yield paths

    async def _inotify_changes(self) -> AsyncIterator[set[str]]:
        """`changes()` on raw inotify (see the module docstring)."""
        tree = await anyio.to_thread.run_sync(TreeWatch, self.root)
        try:
            while not self._stop.is_set():
                rels = await anyio.to_thread.run_sync(tree.read, self.cancel_ms, self.debounce_ms)
                if tree.root_lost and root_state(self.root) is not None:
                    self.root_lost = True
                    return
                if IGNORE_FILE in rels:
                    self.ignore.reload_if_changed()
                paths = {normalise(r) for r in rels
                         if not self.ignore.matches(r, _is_dir(os.path.join(self.root, r)))}
                if paths:
                    yield paths
        finally:
            tree.close()

    def _around(self, abs_path: str) -> set[str]:
        """After watchfiles died on a name that is not UTF-8 (its whole batch is lost): that
        path (the scan refuses it and lists it) and its folder's other entries, looked at again."""
        rel = self.relative(abs_path)
        out = {rel} if rel else set()
        folder = os.path.dirname(abs_path)
        try:
            names = os.listdir(folder)
        except OSError:
            names = []
        out.update(r for r in (self.relative(os.path.join(folder, n)) for n in names) if r)
        return {r for r in out if not self.ignore.matches(r, _is_dir(os.path.join(self.root, r)))}

    def close(self) -> None:
        """Make a running `changes()` end within `step_ms`."""
        self._stop.set()

    def filter(self, batch: Iterable[tuple[watchfiles.Change, str]]) -> set[str]:
        """Relative, normalised paths of a raw batch, minus ignored ones. Reloads the ignore rules
        first when `.backerignore` is in the batch (`ignore.generation` tells the runtime)."""
        rels = {}
        for change, abs_path in batch:
            if abs_path.rpartition(os.sep)[2].startswith(TMP_PREFIX):
                continue  # our temp files (most of a synced file's events): not even normalised
            rel = self.relative(abs_path)
            if rel is not None:
                rels[rel] = change
        if IGNORE_FILE in rels:
            self.ignore.reload_if_changed()
        out = set()
        for rel, change in rels.items():
            if always_ignored(rel.rpartition("/")[2], False):  # our temp files (a synced file's
                continue  # events are mostly theirs): no lstat
            st = None if change == watchfiles.Change.deleted else _lstat(os.path.join(self.root, rel))
            if st is not None and self._ours(rel, st):
                continue
            if not self.ignore.matches(rel, st is not None and stat.S_ISDIR(st.st_mode)):
                out.add(rel)
        return out

    def _ours(self, rel: str, st: os.stat_result) -> bool:
        """Is the file at `rel` exactly as we just wrote it (`own`: size, mtime, inode and
        permission bits, so a chmod right after is seen)? Then its event is the echo of our
        write, not a change (the rules file always counts: its reload must be seen)."""
        if self.own is None or rel == IGNORE_FILE:
            return False
        wrote = self.own(rel)
        now = (st.st_size, st.st_mtime_ns, st.st_ino, stat.S_IMODE(st.st_mode))
        return wrote is not None and stat.S_ISREG(st.st_mode) and now == tuple(wrote)

    def relative(self, abs_path: str) -> str | None:
        if not abs_path.startswith(self._prefix):
            return None  # the root itself: its state is judged by disk.scan.root_state
        rel = abs_path[len(self._prefix):]
        if os.sep != "/":
            rel = rel.replace(os.sep, "/")
        return normalise(rel) if rel else None


try:
    from gossip_backer.disk.inotify import TreeWatch
    _HAVE_INOTIFY = True
except (ImportError, OSError):  # not Linux
    _HAVE_INOTIFY = False


def _undecodable(exc: BaseException) -> str | None:
    if isinstance(exc, BaseExceptionGroup):
        return next(filter(None, map(_undecodable, exc.exceptions)), None)
    return undecodable_path(str(exc)) if isinstance(exc, RuntimeError) else None


def undecodable_path(message: str) -> str | None:
    """The path in watchfiles' `Unable to decode path "..." to string` (Rust's debug form of a
    path: \\xNN for bytes that are not UTF-8), as `os.fsdecode` gives it; None for another error."""
    prefix, suffix = 'Unable to decode path "', '" to string'
    start = message.find(prefix)
    end = message.rfind(suffix)
    if start < 0 or end < start:
        return None
    text = message[start + len(prefix):end]
    out = bytearray()
    i = 0
    simple = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r", "0": "\0"}
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 == len(text):
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "x":
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        elif nxt == "u" and text[i + 2:i + 3] == "{":
            close = text.index("}", i)
            out += chr(int(text[i + 3:close], 16)).encode("utf-8", "surrogatepass")
            i = close + 1
        else:
            out += simple.get(nxt, nxt).encode("utf-8")
            i += 2
    return os.fsdecode(bytes(out))


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def mtimes(root: Path | str, paths: Iterable[str]) -> list[int | None]:
    """The mtime (ns) of each relative path, not following a symlink; None for one gone (the
    runtime's settle wait reads the ages of a batch's paths with it)."""
    out: list[int | None] = []
    for path in paths:
        st = _lstat(os.path.join(root, path))
        out.append(None if st is None else st.st_mtime_ns)
    return out
