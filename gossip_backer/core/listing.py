"""What the mesh holds, seen as folders: the entries of one folder and the conflict copies.

Pure functions of the CRDT map's current versions (the winner of each path, deletions left
out). A folder exists when the map has a folder record for it or any path below it, so files
whose parents were never recorded on their own still show up in their folders. The web GUI's
file browser and the share links' listings both read these, so both show the same tree.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gossip_backer.core.conflict import is_conflict_copy, loser_short_id, original_of
from gossip_backer.core.ids import NodeId
from gossip_backer.core.metamap import MetaMap
from gossip_backer.core.record import DIR, FILE, FileRecord


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    path: str
    kind: str
    size: int
    mtime: float
    live: bool

    def to_json(self) -> dict:
        return {"name": self.name, "path": self.path, "kind": self.kind, "size": self.size,
                "mtime": self.mtime, "live": self.live}


def present(metamap: MetaMap) -> Iterator[FileRecord]:
    """The current version of every path that is not deleted."""
    for path in metamap.files:
        rec = metamap.winner(path)
        if rec is not None and not rec.deleted:
            yield rec


def is_folder(metamap: MetaMap, path: str) -> bool:
    """`path` ("" is the root) is a folder of the mesh."""
    if path == "":
        return True
    rec = metamap.winner(path)
    if rec is not None and not rec.deleted:
        return rec.kind == DIR
    prefix = path + "/"
    return any(p.startswith(prefix) for p in metamap.files if not metamap.winner(p).deleted)


def children(metamap: MetaMap, folder: str, live: Callable[[str], bool]) -> list[Entry]:
    """The entries directly in `folder` ("" is the root), sorted by name."""
    prefix = folder + "/" if folder else ""
    found: dict[str, Entry] = {}
    for rec in present(metamap):
        if not rec.path.startswith(prefix):
            continue
        name, sep, _rest = rec.path[len(prefix):].partition("/")
        path = prefix + name
        if sep:  # something deeper: `name` is a folder, recorded or not
            if path not in found:
                folder_rec = metamap.winner(path)
                mtime = folder_rec.mtime_ns / 1e9 if folder_rec is not None else 0.0
                found[path] = Entry(name, path, DIR, 0, mtime, False)
        else:
            found[path] = Entry(name, path, rec.kind, rec.size if rec.kind == FILE else 0,
                                rec.mtime_ns / 1e9, rec.kind == FILE and live(path))
    return sorted(found.values(), key=lambda e: e.name)


def files_below(metamap: MetaMap, folder: str) -> list[FileRecord]:
    """Every current regular file inside `folder` ("" is the root), sorted by path."""
    prefix = folder + "/" if folder else ""
    return sorted((r for r in present(metamap) if r.kind == FILE and r.path.startswith(prefix)),
                  key=lambda r: r.path)


def live_matcher(globs: list[str]) -> Callable[[str], bool]:
    """Does a path match one of the mesh's live-edit globs (matched against the whole path and
    the file name)?"""
    def matches(path: str) -> bool:
        name = posixpath.basename(path)
        return any(fnmatch.fnmatchcase(path, g) or fnmatch.fnmatchcase(name, g) for g in globs)
    return matches


def conflicts(metamap: MetaMap) -> list[dict]:
    """SPEC's `/api/conflicts`: each conflict copy present, with the path it was made for, the
    loser's node id (its 7 characters, or the full id when one member matches them) and the
    copy's modification time."""
    members = list(metamap.membership.members)
    out = []
    for rec in present(metamap):
        if rec.kind != FILE or not is_conflict_copy(rec.path):
            continue
        original = original_of(rec.path)
        if original is None:
            continue
        out.append({"path": rec.path, "original": original,
                    "node_id": _loser_id(rec.path, metamap, members),
                    "time": rec.mtime_ns / 1e9})
    return sorted(out, key=lambda c: c["path"])


def _loser_id(path: str, metamap: MetaMap, members: list[bytes]) -> str:
    short = loser_short_id(path)
    full = [str(NodeId(m)) for m in members if NodeId(m).short() == short]
    return full[0] if len(full) == 1 else short
