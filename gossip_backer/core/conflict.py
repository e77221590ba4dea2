"""The one winner rule and the conflict-copy name (SPEC.md, "Conflicts").

Among concurrent versions of a path every node picks the same winner: an existing version beats a
deletion (an edit beats a concurrent delete), then the later modification time, then the greater
node id. Each losing version that is not a deletion is kept at
`STEM.sync-conflict-YYYYMMDD-HHMMSS-NODEID7.EXT` (the loser's mtime in UTC and the first 7
characters of the loser's node id). When that name is taken by another loser's copy (one author
lost twice within one second), the copy's name ends `-NODEID7-SUFFIX.EXT`, SUFFIX derived from the
loser's own version: the same on every node.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
import time
from collections.abc import Iterable

from gossip_backer.core.ids import NodeId
from gossip_backer.core.paths import from_bytes, is_text, to_bytes
from gossip_backer.core.record import FileRecord

CONFLICT_MARK = ".sync-conflict-"
MAX_NAME_BYTES = 255


def rank(record: FileRecord) -> tuple:
    """Sort key: the greatest rank wins."""
    return (not record.deleted, record.mtime_ns, record.origin)


def winner(versions: Iterable[FileRecord]) -> FileRecord:
    """The version every node puts at the path."""
    return max(versions, key=rank)


def losers(versions: Iterable[FileRecord]) -> list[FileRecord]:
    """Versions that lose to the winner and carry content worth a conflict copy.

    Versions with the same content as the winner are not conflicts (two nodes made one edit)."""
    versions = list(versions)
    if len(versions) < 2:
        return []
    best = winner(versions)
    return [v for v in versions if v is not best and not v.deleted and not v.same_content(best)]


def conflict_name(path: str, mtime_ns: int, origin: bytes, suffix: str = "") -> str:
    """`dir/STEM.sync-conflict-YYYYMMDD-HHMMSS-NODEID7.EXT` for a loser of `path` (with
    `-SUFFIX` after NODEID7 when that name is taken by another loser)."""
    folder, name = posixpath.split(path)
    stem, ext = posixpath.splitext(name)
    if not stem:  # dotfiles such as ".bashrc": the whole name is the stem
        stem, ext = name, ""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(mtime_ns // 1_000_000_000))
    tail = f"{CONFLICT_MARK}{stamp}-{NodeId(origin).short()}{'-' + suffix if suffix else ''}{ext}"
    room = MAX_NAME_BYTES - len(tail.encode("utf-8"))
    if len(to_bytes(stem)) > room:  # keep the copy's name within the file-name limit
        cut = to_bytes(stem)[:max(room, 1)]  # (a stem that is not UTF-8 keeps its odd bytes)
        stem = cut.decode("utf-8", "ignore") if is_text(stem) else from_bytes(cut)
    new = stem + tail
    return posixpath.join(folder, new) if folder else new


def version_suffix(record: FileRecord) -> str:
    """A short name derived from the version itself (its vector and content), the same on every
    node: what tells two losers apart when one author lost twice within one second."""
    h = hashlib.blake2b(digest_size=5)
    for node, counter in sorted(record.vv.items()):
        h.update(node + counter.to_bytes(8, "big"))
    h.update(record.hash or b"")
    return base64.b32encode(h.digest()).decode().lower()


def conflict_copy(loser: FileRecord, suffixed: bool = False) -> FileRecord:
    """The record of the conflict copy of `loser` (at the suffixed name when `suffixed`).

    It is derived only from the loser (same version vector, content and origin), so every node that
    publishes it publishes the same record, and the copies merge as one version."""
    from dataclasses import replace

    suffix = version_suffix(loser) if suffixed else ""
    return replace(loser, path=conflict_name(loser.path, loser.mtime_ns, loser.origin, suffix))


def is_conflict_copy(path: str) -> bool:
    # the mark anywhere in the path first: one substring search, where splitting off the name
    # of each of 10,000 paths made `status` cost milliseconds
    return CONFLICT_MARK in path and CONFLICT_MARK in posixpath.basename(path)


_COPY = re.compile(r"^(?P<stem>.+?)\.sync-conflict-\d{8}-\d{6}-(?P<node>[^.\-/]+)(?:-[0-9a-z]+)?(?P<ext>\.[^./]*)?$")
KEPT_MARK = ".kept-"


def original_of(path: str) -> str | None:
    """The path a conflict copy was made for (None when `path` is not one, or its name was
    shortened to fit the file-name limit)."""
    folder, name = posixpath.split(path)
    m = _COPY.match(name)
    if m is None:
        return None
    name = m.group("stem") + (m.group("ext") or "")
    return posixpath.join(folder, name) if folder else name


def loser_short_id(path: str) -> str | None:
    """The NODEID7 part of a conflict copy's name."""
    m = _COPY.match(posixpath.basename(path))
    return m.group("node") if m is not None else None


def kept_name(path: str) -> str:
    """Where "keep both" moves a conflict copy: the same name with `.kept-` for the conflict
    mark, an ordinary file from then on (unique, as the copy's name was)."""
    folder, name = posixpath.split(path)
    if CONFLICT_MARK not in name:
        raise ValueError(f"{path!r} is not a conflict copy")
    name = name.replace(CONFLICT_MARK, KEPT_MARK, 1)
    return posixpath.join(folder, name) if folder else name
