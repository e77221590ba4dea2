"""A local index row that is a map version's content, held as that version plus an inode.

Nearly every row of a mirrored folder's index says "the disk holds this version": its path, size,
mtime, mode, kind, hash, blocks, target and vv are the map's record's, field for field. As an
IndexEntry such a row cost 128 bytes beside the record (its objects were already shared); as a
`VersionRow` it is 48: the record and the inode. It reads as an IndexEntry (the same attributes,
equal and hashing alike to the IndexEntry of the same fields); `entry_of` gives the IndexEntry
itself where one is changed (`dataclasses.replace`).
"""

from __future__ import annotations

from dataclasses import replace
from operator import attrgetter

from gossip_backer.core.record import FileRecord, IndexEntry
from gossip_backer.core.vv import VersionVector

FIELDS = ("path", "size", "mtime_ns", "inode", "mode", "kind", "hash", "block_size", "blocks",
          "target", "vv")
_SHARED = ("path", "size", "mtime_ns", "mode", "kind", "hash", "block_size", "blocks", "target",
           "vv")
_fields = attrgetter(*FIELDS)
_shared = attrgetter(*_SHARED)
_scanned = attrgetter(*_SHARED[:-1])  # (a scan's entry has no vv)


class VersionRow:
    """An index row whose every field but the inode is `version`'s (see the module docstring)."""

    __slots__ = ("version", "inode")

    def __init__(self, version: FileRecord, inode: int) -> None:
        self.version = version
        self.inode = inode

    path = property(attrgetter("version.path"))
    size = property(attrgetter("version.size"))
    mtime_ns = property(attrgetter("version.mtime_ns"))
    mode = property(attrgetter("version.mode"))
    kind = property(attrgetter("version.kind"))
    hash = property(attrgetter("version.hash"))
    block_size = property(attrgetter("version.block_size"))
    blocks = property(attrgetter("version.blocks"))
    target = property(attrgetter("version.target"))
    vv = property(attrgetter("version.vv"))

    def entry(self) -> IndexEntry:
        v = self.version
        return IndexEntry(v.path, v.size, v.mtime_ns, self.inode, v.mode, v.kind, v.hash,
                          v.block_size, v.blocks, v.target, v.vv)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (IndexEntry, VersionRow)):
            return _fields(self) == _fields(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(_fields(self))  # as the frozen dataclass IndexEntry hashes its fields

    def __repr__(self) -> str:
        return f"VersionRow({self.path!r}, inode={self.inode}, vv={self.vv!r})"


Row = IndexEntry | VersionRow


def entry_of(row: Row) -> IndexEntry:
    """The row as an IndexEntry (to be changed with `dataclasses.replace`)."""
    return row.entry() if isinstance(row, VersionRow) else row


def changed(row: Row, **changes: object) -> IndexEntry:
    """`dataclasses.replace` for a row of either form."""
    return replace(entry_of(row), **changes)


def row_of(scanned: object, vv: VersionVector, version: FileRecord) -> VersionRow | None:
    """The VersionRow of what a scan saw (a ScanEntry: a row's fields but the vv), the disk
    holding `vv`, when that is exactly `version`'s content; else None."""
    if version.deleted or vv != version.vv or _scanned(scanned) != _scanned(version):
        return None
    return VersionRow(version, scanned.inode)


def compact(row: Row, version: FileRecord | None) -> Row:
    """`row` as a VersionRow of `version` when it holds exactly that version's content (a
    tombstone is no content), else `row` as it is."""
    if (version is None or version.deleted or isinstance(row, VersionRow)
            or _shared(row) != _shared(version)):
        return row
    return VersionRow(version, row.inode)
