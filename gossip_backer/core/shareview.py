"""What a share link's URL names, decided from the mesh's map (pure; core/share.py decides the
link's state and the path rules, this module what lies at that path).

`locate` answers with the folder's visible entries, or the file's current version, or None for
anything a link must not reveal: no active link, a path outside it, a path the node's ignore
rules name (`ignored(path, is_dir)`, the caller's matcher), a symlink (never served, nor listed:
one could lead out of the link), a deletion or nothing at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gossip_backer.core import listing
from gossip_backer.core import share as rules
from gossip_backer.core.metamap import MetaMap
from gossip_backer.core.paths import BadPath
from gossip_backer.core.record import DIR, FILE, FileRecord
from gossip_backer.core.share import Share

Ignored = Callable[[str, bool], bool]


@dataclass(frozen=True)
class Located:
    """A folder (its entries) or a file (its current version) inside a link."""

    share: Share
    path: str  # the mesh path ("" is the root)
    rel: str  # the same, relative to the link's own path
    entries: list[listing.Entry] | None = None
    record: FileRecord | None = None

    @property
    def is_folder(self) -> bool:
        return self.entries is not None


def hidden(path: str, ignored: Ignored) -> bool:
    """`path` or one of its folders is named by the ignore rules."""
    if not path:
        return False
    parts = path.split("/")
    return (any(ignored("/".join(parts[:i]), True) for i in range(1, len(parts)))
            or ignored(path, False) or ignored(path, True))


def locate(metamap: MetaMap, share: Share | None, rest: str, now: float,
           ignored: Ignored) -> Located | None:
    if rules.state(share, now) != rules.ACTIVE:
        return None
    try:
        path = rules.target(share, rest)
    except BadPath:
        return None
    if hidden(path, ignored):
        return None
    rel = path[len(share.path):].lstrip("/") if share.path else path
    if listing.is_folder(metamap, path):
        entries = [e for e in listing.children(metamap, path, lambda p: False)
                   if e.kind in (FILE, DIR) and not hidden(e.path, ignored)]
        return Located(share, path, rel, entries=entries)
    rec = metamap.winner(path)
    if rec is None or rec.deleted or rec.kind != FILE:
        return None
    return Located(share, path, rel, record=rec)


def files_to_zip(metamap: MetaMap, located: Located, ignored: Ignored) -> list[FileRecord]:
    """The regular files a folder's zip holds: everything below it the link may reveal."""
    return [r for r in listing.files_below(metamap, located.path) if not hidden(r.path, ignored)]


def counts_as_download(method: str, start: int) -> bool:
    """A GET from byte 0 is a download; HEAD and resumed ranges are not counted again."""
    return method == "GET" and start == 0
