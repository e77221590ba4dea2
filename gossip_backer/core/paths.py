r"""Validate and normalise paths that come from peers (and from users).

A path in the mesh is relative, '/'-separated, NFC-normalised, with no empty, '.' or '..'
component, no NUL or backslash, not inside `.backer/`, and not a temporary file of ours. Anything
else is refused: no name from a peer can write outside ROOT or into `.backer/`.

Names that are not UTF-8 (Linux allows any bytes but NUL and '/') are mirrored byte for byte.
Theory of operation: in memory a path is the `str` that `os.fsdecode` gives on Linux, UTF-8 with
`surrogateescape`: every byte that is not part of valid UTF-8 becomes one lone surrogate
U+DC80..U+DCFF. That mapping is one-to-one and reversible for any bytes (`to_bytes` /
`from_bytes`). A component that carries such escapes is not text, so it is not NFC-normalised
(its bytes are kept exactly); the other components are. Outside memory a path takes one of two
forms, the same on every node:
- on the wire and in signed records (`to_plain` / `from_plain`): a msgpack str when the path is
  valid UTF-8 (as always, so existing records and vectors are unchanged), else a msgpack bin of
  its raw bytes. A bin that would decode as UTF-8 is refused, so every path has one encoding;
- as text for humans, JSON and the store (`escape` / `unescape`): each odd byte is written `\xNN`
  (two lower-case hex digits). Unambiguous because a mesh path never holds a backslash.
"""

from __future__ import annotations

import re
import unicodedata

from gossip_backer.errors import RemoteError

STATE_DIR = ".backer"
TMP_PREFIX = ".backer-tmp-"
MAX_PATH = 4096
MAX_COMPONENT = 255
_FORBIDDEN = re.compile(r"[\x00-\x1f\\]")  # NUL, the other control characters, backslash


class BadPath(RemoteError):
    """A path that must never be written (from a peer: the peer is hostile or broken)."""


def to_bytes(path: str) -> bytes:
    """The raw bytes of a path (UTF-8, odd bytes restored from their surrogate escapes)."""
    return path.encode("utf-8", "surrogateescape")


def from_bytes(raw: bytes) -> str:
    """A path from raw bytes, as `os.fsdecode` gives it on Linux; `to_bytes` reverses it."""
    return raw.decode("utf-8", "surrogateescape")


def is_text(path: str) -> bool:
    """Whether the path is valid UTF-8 (holds no surrogate escape)."""
    return path.isascii() or not any("\ud800" <= ch <= "\udfff" for ch in path)


def to_plain(path: str) -> str | bytes:
    """The wire form: the str itself when it is valid UTF-8, else its raw bytes."""
    return path if is_text(path) else to_bytes(path)


def from_plain(value: object) -> str:
    """A path from its wire form; ValueError for anything but a str or a bin of non-UTF-8 bytes
    (a bin holding valid UTF-8 would be a second encoding of one path)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return from_bytes(value)
        raise ValueError("a path sent as bytes that are valid UTF-8")
    raise ValueError("a path is neither text nor bytes")


def escape(path: str) -> str:
    """The path as printable, valid text: each byte that is not UTF-8 becomes `\\xNN`."""
    if is_text(path):
        return path
    return "".join(f"\\x{ord(ch) - 0xDC00:02x}" if "\udc80" <= ch <= "\udcff" else ch
                   for ch in path)


def printable(value: object) -> object:
    """`value` (JSON-like: dicts, lists, str) with every str escaped: what goes to a terminal,
    a JSON document or a web page never carries a lone surrogate."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable(v) for v in value]
    return value


_ESCAPED = re.compile(r"\\x([0-9a-fA-F]{2})")


def unescape(text: str) -> str:
    """The path that `escape` printed (text without a backslash is returned as it is)."""
    if "\\" not in text:
        return text
    raw = _ESCAPED.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)), text)
    return from_bytes(to_bytes(raw)) if _encodable(raw) else raw


def _encodable(path: str) -> bool:
    try:
        to_bytes(path)
    except UnicodeEncodeError:
        return False
    return True


def normalise(path: str) -> str:
    """NFC, component by component; a component that is not UTF-8 keeps its bytes exactly."""
    if is_text(path):
        return unicodedata.normalize("NFC", path)
    return "/".join(p if not is_text(p) else unicodedata.normalize("NFC", p)
                    for p in path.split("/"))


def check(path: str) -> str:
    """Return the normalised path, or raise BadPath saying why."""
    if not isinstance(path, str) or not path:
        raise BadPath("empty path")
    if not is_text(path) and (not _encodable(path) or from_bytes(to_bytes(path)) != path):
        raise BadPath("a path holds a surrogate that no file name gives")
    ascii = path.isascii()  # (most paths: one byte a character, already NFC)
    if (len(path) if ascii else len(to_bytes(path))) > MAX_PATH:
        raise BadPath("path too long")
    if _FORBIDDEN.search(path):
        raise BadPath(f"forbidden character in {path!r}")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise BadPath(f"absolute path {path!r}")
    norm = path if ascii else normalise(path)
    parts = norm.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise BadPath(f"bad component in {path!r}")
        if (len(part) if ascii else len(to_bytes(part))) > MAX_COMPONENT:
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
