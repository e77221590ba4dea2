"""Our own writes as the OS watcher reports them back: which events to pass over, sans-IO.

Every file the puller places comes back from the watcher a moment later as a change at its
path. Scanning it again finds what the index already says (the stat the puller took from its
own descriptor), at the cost of a scan per watcher batch: on a first sync of many small files,
about as much work as a scan of each file. `OwnWrites` keeps, for a short while, the stat each
placed file had; the runtime passes over an event whose path still shows exactly that stat
(size, mtime, inode and permission bits, a regular file). Anything else is scanned as before: a
user's edit made since moves the mtime or the inode (a rename over it), a chmod the permission
bits (size, mtime and inode stay), and is seen. A path's stat is handed out once; an event later
than `WINDOW` seconds finds nothing and is scanned. (A file is noted twice, when sealed and when
done, and its event may come between: the second note outlives its event, so the stat must say
everything a user's change could move, or that change would pass for our echo.)
"""

from __future__ import annotations

from typing import NamedTuple

WINDOW = 5.0  # seconds a placed file's stat is kept for its watcher event
MOST = 1 << 16  # stats kept at most (the wall clock may step back)


class Placed(NamedTuple):
    size: int
    mtime_ns: int
    inode: int
    mode: int  # permission bits as we set them (stat.S_IMODE)
    at: float  # wall seconds when it was placed


class OwnWrites:
    """The stats of files placed in the last `window` seconds, by path."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._placed: dict[str, Placed] = {}  # oldest first

    def __len__(self) -> int:
        return len(self._placed)

    def placed(self, path: str, size: int, mtime_ns: int, inode: int, mode: int,
               wall: float) -> None:
        """A file is at `path` with this stat, put there by us with the version's `mode` (of
        which disk.apply sets the permission bits, & 0o777)."""
        self._placed.pop(path, None)  # (to the end: the dict stays in order of time)
        self._placed[path] = Placed(size, mtime_ns, inode, mode & 0o777, wall)
        self._trim(wall)

    def take(self, path: str, wall: float) -> Placed | None:
        """The stat we placed at `path`, once, if recent: an event showing exactly it is ours."""
        self._trim(wall)
        return self._placed.pop(path, None)

    def _trim(self, wall: float) -> None:
        placed = self._placed
        while placed:
            oldest = next(iter(placed))
            if wall - placed[oldest].at <= self.window and len(placed) <= MOST:
                return
            del placed[oldest]
