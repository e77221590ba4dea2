"""A recursive Linux inotify watch of one root that takes any file name the OS allows.

Why: watchfiles (Rust `notify`) turns every path into UTF-8 text, and a folder whose name is not
UTF-8 makes it fail as soon as it starts ("Unable to decode path"), over and over. inotify itself
speaks bytes; `inotify_simple` hands names over as `os.fsdecode` gives them (surrogate escapes),
which is exactly a mesh path (core/paths.py). `disk.watch.Watcher` falls back to this class when
watchfiles fails on such a name (on Linux, where such names exist).

Theory of operation: one inotify watch per folder (never through a symlink, never in `.backer/`),
`wd -> relative folder`. A folder created or moved in gets its watches (its subtree is walked); a
folder moved out loses them. `read()` blocks up to `timeout_ms` for a first event, then collects
for `delay_ms` more, and returns the relative paths named. A full event queue (IN_Q_OVERFLOW) lost
events: then every entry of every watched folder is named, so the caller looks at all of them.
The root itself deleted or moved away: `root_lost`. Synchronous; the caller runs `read()` in a
worker thread.
"""

from __future__ import annotations

import os
import stat

from inotify_simple import INotify, flags

from gossip_backer.core.paths import STATE_DIR

_MASK = (flags.CREATE | flags.DELETE | flags.MODIFY | flags.CLOSE_WRITE | flags.ATTRIB
         | flags.MOVED_FROM | flags.MOVED_TO | flags.DELETE_SELF | flags.MOVE_SELF
         | flags.DONT_FOLLOW | flags.EXCL_UNLINK)
_NEW_DIR = flags.CREATE | flags.MOVED_TO


class TreeWatch:
    """inotify watches on every folder below one root."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._fd = INotify()
        self._dirs: dict[int, str] = {}  # watch descriptor -> relative folder ('' is the root)
        self.root_lost = False
        self.add_tree("")

    def close(self) -> None:
        self._fd.close()

    def add_tree(self, rel: str) -> None:
        """Watch folder `rel` and every folder below it (errors: that folder is not watched)."""
        stack = [rel]
        while stack:
            rel = stack.pop()
            full = os.path.join(self.root, rel) if rel else self.root
            try:
                self._dirs[self._fd.add_watch(full, _MASK)] = rel
                with os.scandir(full) as it:
                    items = list(it)
            except OSError:
                continue
            for item in items:
                if not rel and item.name == STATE_DIR:
                    continue
                try:
                    is_dir = stat.S_ISDIR(item.stat(follow_symlinks=False).st_mode)
                except OSError:
                    continue
                if is_dir:
                    stack.append(f"{rel}/{item.name}" if rel else item.name)

    def _drop_tree(self, rel: str) -> None:
        for wd, folder in list(self._dirs.items()):
            if folder == rel or folder.startswith(rel + "/"):
                del self._dirs[wd]
                try:
                    self._fd.rm_watch(wd)
                except OSError:
                    pass

    def read(self, timeout_ms: int, delay_ms: int) -> set[str]:
        """Relative paths named by the events of the next batch (empty after `timeout_ms`)."""
        out: set[str] = set()
        for event in self._fd.read(timeout=timeout_ms, read_delay=delay_ms):
            if event.mask & flags.Q_OVERFLOW:
                out |= self._everything()
                continue
            base = self._dirs.get(event.wd)
            if base is None:
                continue
            if event.mask & flags.IGNORED:
                self._dirs.pop(event.wd, None)
                continue
            if event.mask & (flags.DELETE_SELF | flags.MOVE_SELF):
                if base == "":
                    self.root_lost = True
                continue
            if not event.name:
                continue
            rel = f"{base}/{event.name}" if base else event.name
            if not base and event.name == STATE_DIR:
                continue
            out.add(rel)
            if event.mask & flags.ISDIR:
                if event.mask & flags.MOVED_FROM:
                    self._drop_tree(rel)
                elif event.mask & _NEW_DIR:
                    self.add_tree(rel)
        return out

    def _everything(self) -> set[str]:
        """Every entry of every watched folder (after lost events)."""
        out = set()
        for rel in list(self._dirs.values()):
            try:
                names = os.listdir(os.path.join(self.root, rel) if rel else self.root)
            except OSError:
                continue
            out.update(f"{rel}/{n}" if rel else n for n in names if rel or n != STATE_DIR)
        return out
