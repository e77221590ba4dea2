"""Validate and normalise paths that come from peers (and from users).

A path in the mesh is relative, '/'-separated, NFC-normalised, with no empty, '.' or '..'
component, no NUL or backslash, not inside `.backer/`, and not a temporary file of ours. Anything
else is refused: no name from a peer can write outside ROOT or into `.backer/`.
"""

from __future__ import annotations

import unicodedata

from gossip_backer.errors import RemoteError

STATE_DIR = ".backer"
TMP_PREFIX = ".backer-tmp-"
MAX_PATH = 4096
MAX_COMPONENT = 255
_FORBIDDEN_CHARS = ("\x00", "\\")


class BadPath(RemoteError):
    """A path that must never be written (from a peer: the peer is hostile or broken)."""


def normalise(path: str) -> str:
    return unicodedata.normalize("NFC", path)


def check(path: str) -> str:
    """Return the normalised path, or raise BadPath saying why."""
    if not isinstance(path, str) or not path:
        raise BadPath("empty path")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH:
        raise BadPath("path too long")
    if any(ch in path for ch in _FORBIDDEN_CHARS) or any(ord(ch) < 32 for ch in path):
        raise BadPath(f"forbidden character in {path!r}")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise BadPath(f"absolute path {path!r}")
    norm = normalise(path)
    parts = norm.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise BadPath(f"bad component in {path!r}")
        if len(part.encode("utf-8")) > MAX_COMPONENT:
            raise BadPath("file name too long")
    if parts[0] == STATE_DIR or parts[0].casefold() == STATE_DIR:
        raise BadPath(f"{path!r} is inside {STATE_DIR}/")
    if parts[-1].startswith(TMP_PREFIX):
        raise BadPath(f"{path!r} is a temporary file name")
    return norm


def is_valid(path: str) -> bool:
    """A path as the mesh carries it: acceptable and already in normal form."""
    try:
        return check(path) == path
    except BadPath:
        return False


def case_key(path: str) -> str:
    """Key under which two paths collide on a case-insensitive disk."""
    return normalise(path).casefold()


def parent(path: str) -> str | None:
    return path.rsplit("/", 1)[0] if "/" in path else None
