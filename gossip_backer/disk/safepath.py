"""Where a mesh path lives on this disk, and whether it is safe to write there.

Theory of operation. A mesh path has already passed `core.paths.check` when it reaches here, or
it is refused. `resolve` adds what only the disk can tell: no existing parent component may be a
symlink (we walk them with `os.lstat`, never following links), so nothing a peer names can be
written through a link to elsewhere. With `check` refusing "..", absolute paths and .backer/, that
walk proves the real location is ROOT/<path>, under ROOT and outside ROOT/.backer, at the cost of
one lstat per parent folder (resolving it with realpath as well cost ~16 lstats per call, on
every file written, for a check that could not fail). The last component may be a symlink: it is
the mirrored link itself, which we replace or delete but never follow.

On a case-insensitive disk two mesh paths that differ only by case ("a.txt", "A.txt") would land
in one file, so `case_collision` finds the existing name a new path would clobber and the writers
in `apply` refuse it (`CaseCollision`). Whether a root is case-insensitive is probed once per root,
by creating a lower-case file in ROOT/.backer and looking for its upper-case name.

What is not covered: a local process racing us, swapping a checked folder for a link between the
check and the write. Peers cannot do that; only a local user can, and they own the files anyway.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from gossip_backer.core.paths import STATE_DIR, BadPath, case_key, check, normalise
from gossip_backer.errors import LocalError

__all__ = [
    "CaseCollision",
    "resolve",
    "case_collision",
    "refuse_case_collision",
    "is_case_insensitive",
    "forget",
    "lstat_or_none",
]

_PROBE_PREFIX = "case-probe-"
_insensitive: dict[str, bool] = {}  # realpath(root) -> probe result
_real: dict[str, str] = {}  # abspath(root) -> realpath(root), for the probe cache


class CaseCollision(LocalError):
    """The path differs only by case from an existing one, on a case-insensitive disk.

    Not a RemoteError: a mesh may hold "a" and "A" legitimately (made on case-sensitive nodes);
    this node just cannot hold both, so it skips the newcomer and says so."""

    def __init__(self, path: str, existing: str) -> None:
        super().__init__(f"{path!r} collides with existing {existing!r} on a case-insensitive disk")
        self.path = path
        self.existing = existing


def _root(root: Path | str) -> Path:
    return Path(os.path.abspath(root))


def resolve(root: Path | str, path: str) -> Path:
    """The on-disk location of mesh path `path` under `root`, or BadPath saying why not."""
    norm = check(path)
    base = os.path.abspath(root)  # strings, not Path objects: this runs for every file written
    parts = norm.split("/")
    current = base
    for i, part in enumerate(parts[:-1]):
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except (FileNotFoundError, NotADirectoryError):
            break  # the rest does not exist yet: nothing below can be a link
        if stat.S_ISLNK(st.st_mode):
            raise BadPath(f"{path!r} goes through the symlink {'/'.join(parts[:i + 1])}")
    return Path(os.path.join(base, norm))


def is_case_insensitive(root: Path | str) -> bool:
    """Whether names under `root` ignore case; probed once per root, then cached."""
    given = os.path.abspath(root)  # (a str: a Path made and printed per file cost ~10 us)
    key = _real.get(given)
    if key is None or key not in _insensitive:
        key = _real[given] = os.path.realpath(given)
    if key not in _insensitive:
        if not os.path.isdir(key):
            return True  # no root to probe (yet): be safe, and do not remember it
        _insensitive[key] = _probe(Path(key))
    return _insensitive[key]


def forget(root: Path | str | None = None) -> None:
    """Drop the cached probe result for `root` (all roots when None), e.g. after a remount."""
    if root is None:
        _insensitive.clear()
        _real.clear()
    else:
        _insensitive.pop(os.path.realpath(_root(root)), None)
        _real.pop(os.path.abspath(root), None)


def _probe(root: Path) -> bool:
    """Create a lower-case file in ROOT/.backer and stat its upper-case name.

    If the probe cannot be made we answer True: refusing a case-twin is safe, clobbering is not."""
    state = root / STATE_DIR
    name = _PROBE_PREFIX + secrets.token_hex(6)
    probe = state / name
    try:
        if not os.path.isdir(state):
            os.mkdir(state, 0o700)  # never the root itself: a vanished root stays vanished
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600)
        os.close(fd)
    except OSError:
        return True
    try:
        os.lstat(state / name.upper())
        return True
    except FileNotFoundError:
        return False
    except OSError:
        return True
    finally:
        try:
            os.unlink(probe)
        except OSError:
            pass


def case_collision(
    root: Path | str, path: str, *, insensitive: bool | None = None, allow: str | None = None
) -> str | None:
    """The existing mesh path that `path` would clobber because they differ only by case.

    Walks the components from ROOT down; at the first one whose exact name is missing but a
    case-twin exists, returns the existing path up to that twin ("docs" for "Docs/a.txt" when
    "docs/" exists). None on a case-sensitive disk (`insensitive` overrides the probe) and when
    there is no twin. `allow` names an existing path that is not a collision (the source of a
    case-only rename)."""
    if insensitive is None:
        insensitive = is_case_insensitive(root)
    if not insensitive:
        return None
    norm = check(path)
    allowed = case_key(allow) if allow is not None else None
    current, done = _root(root), []
    for part in norm.split("/"):
        try:
            names = os.listdir(current)
        except (FileNotFoundError, NotADirectoryError):
            return None
        exact = [n for n in names if normalise(n) == part]
        if exact:
            done.append(part)
            current = current / exact[0]
            continue
        twins = [n for n in names if case_key(n) == case_key(part)]
        if not twins:
            return None
        existing = "/".join(done + [normalise(twins[0])])
        key = case_key(existing)
        if allowed is not None and (allowed == key or allowed.startswith(key + "/")):
            done.append(normalise(twins[0]))
            current = current / twins[0]
            continue
        return existing
    return None


def refuse_case_collision(root: Path | str, path: str, *, allow: str | None = None) -> None:
    """Raise CaseCollision if writing `path` would clobber a case-twin (see case_collision)."""
    existing = case_collision(root, path, allow=allow)
    if existing is not None:
        raise CaseCollision(path, existing)


def lstat_or_none(p: Path) -> os.stat_result | None:
    """os.lstat, or None when nothing is there (or a parent is not a folder)."""
    try:
        return os.lstat(p)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise
