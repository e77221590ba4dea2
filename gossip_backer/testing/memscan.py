"""`disk.scan` for a MemRoot: what is there, what changed, what is gone (see memdisk.py).

The same rules as the real scan, on an in-memory tree, and the same code for them (disk/scan.py's
`TreeScan`: names, revisits, what is gone, files known unchanged or moved; `record`, `finish`,
`to_revisit`): a file is hashed only when its size, mtime or inode moved and no other known path
had it (a rename); ignored paths, `.backer` and temp files are never listed nor "deleted";
refused names are skipped; a missing root raises RootUnavailable, never a mass deletion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from gossip_backer.core.blocks import hash_bytes
from gossip_backer.core.record import DIR, FILE
from gossip_backer.disk.ignore import IgnoreMatcher
from gossip_backer.disk.scan import (FileHash, RootUnavailable, ScanEntry, ScanResult, TreeScan,
                                     record, same_entry, to_revisit)

if TYPE_CHECKING:
    from gossip_backer.testing.memdisk import MemRoot, _Entry

__all__ = ["scan", "scan_paths", "root_state", "hash_memory", "locate_entry", "MemHashFile"]


def hash_memory(data: bytes | bytearray) -> FileHash:
    """(hash, block size, blocks) of in-memory content: `disk.scan.hash_file` for a MemRoot."""
    file_hash, size, blocks = hash_bytes(bytes(data))
    return FileHash(file_hash, size, tuple(blocks))


MemHashFile = Callable[[str, int], FileHash]


def root_state(root: MemRoot, *, require_state_dir: bool = False) -> str | None:
    return None if root.present else "missing"


def scan(root: MemRoot, previous: Mapping[str, Any], ignore: IgnoreMatcher, *,
         hash_file: MemHashFile | None = None) -> ScanResult:
    """`disk.scan.scan` of a MemRoot. `hash_file(path, size)` gets the mesh path."""
    sc = _Scanner(root, previous, ignore, hash_file)
    if not root.present:
        raise RootUnavailable(root.name, "missing")
    sc.walk("")
    for path, prev in previous.items():
        if path not in sc.result.entries:
            sc.gone(path, prev)
    return sc.finish()


def scan_paths(root: MemRoot, paths: Iterable[str], previous: Mapping[str, Any],
               ignore: IgnoreMatcher, *, hash_file: MemHashFile | None = None) -> ScanResult:
    """`disk.scan.scan_paths` of a MemRoot."""
    if not root.present:
        raise RootUnavailable(root.name, "missing")
    sc = _Scanner(root, previous, ignore, hash_file)
    for rel in to_revisit(paths, previous):
        if rel not in sc.done:
            sc.revisit(rel)
    return sc.finish()


class _Scanner(TreeScan):
    """disk/scan.py's TreeScan of a MemRoot: the same rules, an in-memory tree."""

    def __init__(self, root: MemRoot, previous: Mapping[str, Any], ignore: IgnoreMatcher,
                 hasher: MemHashFile | None) -> None:
        super().__init__(previous, ignore)
        self.root = root
        self.hash_file = hasher or (lambda path, size: hash_memory(root.entry_at(path).data))

    def walk(self, prefix: str) -> None:
        stack = [prefix]
        while stack:
            folder = stack.pop()
            base = folder + "/" if folder else ""
            seen: set[str] = set()
            for name in self.root.names_in(folder):
                e = self.root.entry_at(base + name)
                rel = self._name(base, name, e.kind == DIR, seen)
                if rel is not None and self.examine(rel, e) == DIR:
                    stack.append(rel)

    def walk_below(self, rel: str, where: _Entry) -> None:
        self.walk(rel)

    def _locate(self, rel: str) -> tuple[_Entry, bool, int] | None:
        e = locate_entry(self.root, rel)
        return None if e is None else (e, e.kind == DIR, e.inode)

    def examine(self, rel: str, e: _Entry) -> str:
        self.done.add(rel)
        prev = self.previous.get(rel)
        if e.kind == FILE:
            entry = self._file(rel, e, prev)
        else:
            entry = ScanEntry(rel, e.size, e.mtime_ns, e.inode, e.mode & 0o7777, e.kind,
                              target=e.target)
            if same_entry(prev, entry):
                entry = prev
        record(self.result, rel, prev, entry)
        return entry.kind

    def _file(self, rel: str, e: _Entry, prev: Any) -> ScanEntry:
        mode = e.mode & 0o7777
        same = self.known_file(rel, prev, e.size, e.mtime_ns, e.inode, mode)
        if same is not None:
            return same
        fh = self.hash_file(rel, e.size)
        self.result.hashed_bytes += e.size
        return ScanEntry(rel, e.size, e.mtime_ns, e.inode, mode, FILE, fh.hash, fh.block_size,
                         tuple(fh.blocks))


def locate_entry(root: MemRoot, rel: str) -> _Entry | None:
    """The entry at `rel`, or None if it or a real folder above it is missing (no link followed)."""
    parts = rel.split("/")
    for i in range(1, len(parts)):
        e = root.entry_at("/".join(parts[:i]))
        if e is None or e.kind != DIR:
            return None
    return root.entry_at(rel)
