"""The `.backerignore` matcher: which local paths are neither sent nor deleted.

Rules, in order:
1. `.backer` (the node's state) and `.backer-tmp-*` (our temporary files) are always ignored, at
   any depth and whatever their kind: a nested root's keys must never be mirrored, and a deleted
   path's kind is unknown to the watcher.
2. `ROOT/.backerignore` itself is never ignored: it is mirrored like any file.
3. Patterns from `ROOT/.backerignore`, gitignore syntax (pathspec's GitIgnoreSpec, which follows
   git's own precedence: the last matching pattern wins, `!` re-includes).
4. As in git, a path below an ignored directory is ignored, whatever a later `!` pattern says:
   `matches()` checks every ancestor as a directory first.

The compiled rules live in one immutable tuple, swapped in a single assignment by `reload()`, so a
scan running in a worker thread never sees half-loaded rules.
"""

from __future__ import annotations

import os
from pathlib import Path

from pathspec import GitIgnoreSpec

from gossip_backer.core.paths import STATE_DIR, TMP_PREFIX

IGNORE_FILE = ".backerignore"

# (file signature or None when absent, compiled spec or None when no pattern)
_State = tuple[tuple[int, int, int] | None, GitIgnoreSpec | None]


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def always_ignored(name: str, is_dir: bool) -> bool:
    """The built-in rule for one path component (no pattern file needed)."""
    return name.startswith(TMP_PREFIX) or name.casefold() == STATE_DIR


class IgnoreMatcher:
    """Answers "is this relative, '/'-separated path ignored?" for one root."""

    def __init__(self, root: Path, patterns: list[str] | None = None) -> None:
        self.root = Path(root)
        self.generation = 0  # bumped on every reload that changed the rules
        self._state: _State = (None, self._compile(patterns or []))

    @classmethod
    def load(cls, root: Path | str) -> "IgnoreMatcher":
        matcher = cls(Path(root))
        matcher.reload()
        matcher.generation = 0
        return matcher

    @property
    def file(self) -> Path:
        return self.root / IGNORE_FILE

    @property
    def has_patterns(self) -> bool:
        return self._state[1] is not None

    # -- loading -------------------------------------------------------------------------------

    @staticmethod
    def _compile(lines: list[str]) -> GitIgnoreSpec | None:
        spec = GitIgnoreSpec.from_lines(lines)
        return spec if any(p.include is not None for p in spec.patterns) else None

    def reload(self) -> None:
        """Read the pattern file again (a missing or unreadable file means: no patterns)."""
        sig = _signature(self.file)
        lines: list[str] = []
        if sig is not None:
            try:
                lines = self.file.read_text("utf-8", errors="replace").splitlines()
            except OSError:
                sig = None
        self._state = (sig, self._compile(lines))
        self.generation += 1

    def reload_if_changed(self) -> bool:
        """Reload when the file's mtime, size or inode changed; True if it did."""
        if _signature(self.file) == self._state[0]:
            return False
        self.reload()
        return True

    # -- matching ------------------------------------------------------------------------------

    def matches(self, path: str, is_dir: bool) -> bool:
        """Whether `path` (relative, '/'-separated, normalised) is ignored, ancestors included."""
        parts = path.split("/")
        spec = self._state[1]
        prefix = ""
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            prefix = name if not prefix else prefix + "/" + name
            if self._match_one(spec, prefix, name, is_dir if last else True):
                return True
        return False

    def matches_entry(self, path: str, name: str, is_dir: bool) -> bool:
        """Like `matches`, for a walk that already knows every ancestor is not ignored."""
        return self._match_one(self._state[1], path, name, is_dir)

    @staticmethod
    def _match_one(spec: GitIgnoreSpec | None, path: str, name: str, is_dir: bool) -> bool:
        if always_ignored(name, is_dir):
            return True
        if spec is None or path == IGNORE_FILE:
            return False
        return spec.match_file(path + "/" if is_dir else path)
