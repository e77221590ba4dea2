"""An in-memory root with the API of `disk/` (scan, apply, versions), for the simulator and tests.

Theory of operation
-------------------
`MemRoot` is a folder tree held in a dict: mesh path -> entry (file bytes, folder or symlink,
with mode, mtime and inode), plus the versions archive. It has two faces:
- the *user's hands* (`write`, `mkdir`, `symlink`, `delete`, `chmod`, `touch`, `vanish`...): what a
  person or another program does to the folder, with no safety checks, as on a real disk;
- module functions with the same names, arguments and rules as `disk.scan`, `disk.apply` and
  `disk.versions`, taking a `MemRoot` where those take a path. The runtime's decisions can run
  against either; `tests/disk/conformance.py` holds both to the same behaviour.
Where the real module hands out a filesystem path (a temp file, an archive callback's argument)
this one hands out a `MemPath` (root + mesh path). Every operation is atomic (no crash can
interleave with it: the simulator's events are atomic), mtimes come from the root's `clock`, and
inodes from a counter, so a run replays exactly. Case-sensitive, like ext4.

Faults
------
- *Durability* (`power_cut`). Like a real disk, a change is durable only once synced. The
  module functions sync where `disk.apply` and `disk.versions` call fsync (a finished temp file,
  folders, links, removals and renames, archived versions); the user's writes, a temp file being
  filled and `set_meta` are not synced, but the kernel writes dirty data back after
  `writeback_s` (Linux's dirty_expire, 30 s). Every path changed since it was last durable keeps
  a copy of its durable state; a power cut decides, path by path with the caller's seeded rng,
  whether the change reached the disk or is lost (parents before children, so the tree stays a
  tree: a journaled file system never shows a file in a folder whose creation was lost).
- *A vanished root* (`vanish` / `restore`): an unmounted disk; `root_state` says "missing".
- *An emptied root* (`empty` / `restore`): the mount point of an unmounted disk, present but
  empty; restoring brings the tree back (what was written into the bare mount point is hidden).
- *A full disk* (`quota`): file bytes plus archived versions may not exceed it; a write that
  would raises `DiskFull` (a `DiskError` and an `OSError` with errno ENOSPC, as `disk.apply`
  turns the real ENOSPC into a DiskError). Archiving is a hard link: it never needs space, but
  the archived bytes stay counted.
"""

from __future__ import annotations

import errno
import hashlib
import posixpath
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gossip_backer.core.paths import TMP_PREFIX, BadPath, check
from gossip_backer.core.record import DIR, FILE, SYMLINK
from gossip_backer.disk.apply import (DEFAULT_HASHER, DiskError, HasherFactory, KeptUnlessFailed,
                                      LocalChanged, Stat, temp_name)
from gossip_backer.disk.scan import RootUnavailable, ScanEntry, ScanResult
from gossip_backer.disk.versions import ArchiveMismatch
from gossip_backer.errors import IntegrityError, LocalError
from gossip_backer.testing.memscan import locate_entry, hash_memory, root_state, scan, scan_paths

__all__ = [
    "MemRoot", "MemPath", "Stat", "LocalChanged", "DiskError", "DiskFull", "PowerCut",
    "RootUnavailable", "ScanEntry",
    "ScanResult", "ArchiveMismatch", "scan", "scan_paths", "root_state", "stat_of", "TempFile",
    "find_partial", "make_dir", "make_symlink", "remove", "set_meta", "rename", "temp_name",
    "archive", "has_version", "read_version", "remove_version", "all_versions", "hash_memory",
]  # scan, scan_paths, root_state and hash_memory live in memscan.py


class DiskFull(DiskError, OSError):
    """No space left on the MemRoot (its `quota`): what `disk.apply` makes of ENOSPC."""

    def __init__(self, message: str) -> None:
        DiskError.__init__(self, message, errno.ENOSPC)


@dataclass(frozen=True, slots=True)
class PowerCut:
    """What a power cut did to one regular file: its bytes before and after (None: absent)."""

    path: str
    before: bytes | None
    after: bytes | None


class _Entry:
    __slots__ = ("kind", "mode", "mtime_ns", "inode", "data", "target")

    def __init__(self, kind: str, mode: int, mtime_ns: int, inode: int,
                 data: bytearray | None = None, target: str | None = None) -> None:
        self.kind = kind
        self.mode = mode
        self.mtime_ns = mtime_ns
        self.inode = inode
        self.data = data
        self.target = target

    @property
    def size(self) -> int:
        if self.kind == FILE:
            return len(self.data)
        if self.kind == SYMLINK:
            return len(self.target.encode("utf-8", "surrogateescape"))
        return 0

    def stat(self) -> Stat:
        return Stat(self.size, self.mtime_ns, self.inode, self.kind)

    def copy(self) -> "_Entry":
        return _Entry(self.kind, self.mode, self.mtime_ns, self.inode,
                      None if self.data is None else bytearray(self.data), self.target)


@dataclass(frozen=True, slots=True)
class MemPath:
    """A location in a MemRoot: what the real module's `Path` values are here."""

    root: "MemRoot"
    rel: str

    @property
    def name(self) -> str:
        return posixpath.basename(self.rel)

    @property
    def parent(self) -> str:
        return posixpath.dirname(self.rel)

    def __str__(self) -> str:
        return f"{self.root.name}:/{self.rel}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MemPath) and other.root is self.root and other.rel == self.rel

    def __hash__(self) -> int:
        return hash((id(self.root), self.rel))


class MemRoot:
    """One root folder in memory (see the module docstring)."""

    def __init__(self, name: str = "mem", clock: Callable[[], int] | None = None) -> None:
        self.name = name
        self.present = True
        self._entries: dict[str, _Entry] = {}
        self._children: dict[str, dict[str, None]] = {"": {}}
        self._inode = 0
        self._tick = 1_600_000_000 * 10**9
        self.clock = clock or self._counter
        self.objects: dict[bytes, bytes] = {}  # the versions archive: content hash -> bytes
        self._fingerprint: bytes | None = None
        self.quota: int | None = None  # bytes of files and archived versions; None: unlimited
        self.writeback_s = 30.0  # unsynced changes older than this reached the disk anyway
        self._durable: dict[str, _Entry | None] = {}  # path -> its last durable state
        self._dirty_at: dict[str, int] = {}  # path -> when (clock ns) it first changed since
        self._tracking = True
        self._hidden: tuple | None = None  # the tree behind an emptied root (empty/restore)

    def _counter(self) -> int:
        self._tick += 1_000_000
        return self._tick

    def __repr__(self) -> str:
        return f"MemRoot({self.name!r}, {len(self._entries)} entries)"

    # -- the user's hands --------------------------------------------------------------------
    def write(self, path: str, data: bytes, *, mode: int = 0o644, mtime_ns: int | None = None,
              new_inode: bool = False) -> None:
        """Create or overwrite a regular file (in place, as most programs do; `new_inode`: by
        writing a new file and renaming it over, as editors do). Missing folders are made."""
        e = self._entries.get(path)
        old = len(e.data) if e is not None and e.kind == FILE else 0
        self.need_space(len(data) - old, path)
        self._parents(path)
        mtime = self.clock() if mtime_ns is None else mtime_ns
        if e is None or e.kind != FILE or new_inode:
            if e is not None and e.kind == DIR:
                raise IsADirectoryError(path)
            self.put_entry(path, _Entry(FILE, mode, mtime, self.next_inode(), bytearray(data)))
            return
        self.mark_changed(path)
        e.data, e.mode, e.mtime_ns = bytearray(data), mode, mtime
        self._fingerprint = None

    def mkdir(self, path: str, mode: int = 0o755, mtime_ns: int | None = None) -> None:
        self._parents(path)
        if path in self._entries:
            raise FileExistsError(path)
        self.put_entry(path, _Entry(DIR, mode, self.clock() if mtime_ns is None else mtime_ns,
                               self.next_inode()))

    def symlink(self, path: str, target: str, mtime_ns: int | None = None) -> None:
        self._parents(path)
        if path in self._entries:
            raise FileExistsError(path)
        self.put_entry(path, _Entry(SYMLINK, 0o777, self.clock() if mtime_ns is None else mtime_ns,
                               self.next_inode(), target=target))

    def delete(self, path: str) -> None:
        """Remove an entry and everything below it (rm -rf)."""
        for child in list(self._children.get(path, ())):
            self.delete(f"{path}/{child}" if path else child)
        self.remove_entry(path)

    def chmod(self, path: str, mode: int) -> None:
        self.mark_changed(path)
        self._entries[path].mode = mode & 0o7777
        self._fingerprint = None

    def touch(self, path: str, mtime_ns: int) -> None:
        self.mark_changed(path)
        self._entries[path].mtime_ns = mtime_ns
        self._fingerprint = None

    def read(self, path: str) -> bytes | None:
        e = self._entries.get(path)
        return None if e is None or e.kind != FILE else bytes(e.data)

    def kind(self, path: str) -> str | None:
        e = self._entries.get(path)
        return None if e is None else e.kind

    def lstat(self, path: str) -> Stat | None:
        e = self._entries.get(path)
        return None if e is None else e.stat()

    def mode(self, path: str) -> int:
        return self._entries[path].mode

    def target(self, path: str) -> str | None:
        return self._entries[path].target

    def exists(self, path: str) -> bool:
        return path in self._entries

    def paths(self) -> list[str]:
        """Every path, sorted, temporary files included."""
        return sorted(self._entries)

    def vanish(self) -> None:
        """The root disappears (an unmounted disk); `restore()` brings it back as it was."""
        self.present = False

    def empty(self) -> None:
        """The root is still there but empty (the bare mount point of an unmounted disk);
        `restore()` brings the tree back as it was."""
        if self._hidden is not None:
            return
        self._hidden = (self._entries, self._children, self._durable, self._dirty_at)
        self._entries, self._children, self._durable, self._dirty_at = {}, {"": {}}, {}, {}
        self._fingerprint = None

    def restore(self) -> None:
        """Undo `vanish` or `empty`."""
        self.present = True
        if self._hidden is not None:
            self._entries, self._children, self._durable, self._dirty_at = self._hidden
            self._hidden = None
            self._fingerprint = None

    @property
    def emptied(self) -> bool:
        return self._hidden is not None

    # -- faults: space and durability --------------------------------------------------------
    def used(self) -> int:
        """Bytes taken: regular files (temporary ones too) and archived versions."""
        return (sum(len(e.data) for e in self._entries.values() if e.kind == FILE)
                + sum(len(d) for d in self.objects.values()))

    def need_space(self, more: int, path: str) -> None:
        """Raise DiskFull if `more` bytes would go beyond the quota."""
        if self.quota is not None and more > 0 and self.used() + more > self.quota:
            raise DiskFull(f"cannot write {self.name}:/{path}: disk full")

    def unsynced(self) -> list[str]:
        """Paths whose latest change is not durable yet (a power cut may undo it)."""
        cutoff = self._now() - int(self.writeback_s * 1e9)
        return sorted(p for p, t in self._dirty_at.items() if t > cutoff)

    def sync(self, path: str | None = None) -> None:
        """fsync `path` (and its folder entry), or `sync(1)` everything (None)."""
        if path is None:
            self._durable.clear()
            self._dirty_at.clear()
        else:
            self._durable.pop(path, None)
            self._dirty_at.pop(path, None)

    def power_cut(self, rng: random.Random, *, keep: float = 0.5) -> list[PowerCut]:
        """The machine loses power. Each change not yet durable reached the disk with
        probability `keep`, else the path is back to its last durable state. Returns the regular
        files whose bytes differ from before the cut."""
        pending = self.unsynced()
        if not pending:
            self.sync()
            return []
        before = {p: self.read(p) for p in pending}
        self._tracking = False
        try:
            for path in pending:
                if rng.random() < keep:
                    continue
                self._revert(path, self._durable[path])
        finally:
            self._tracking = True
        self.sync()
        out = []
        for path in pending:
            after = self.read(path)
            if after != before[path] and (after is not None or before[path] is not None):
                out.append(PowerCut(path, before[path], after))
        return out

    def _revert(self, path: str, state: "_Entry | None") -> None:
        e = self._entries.get(path)
        if e is not None and state is not None and e.kind == DIR == state.kind:
            e.mode, e.mtime_ns, e.inode = state.mode, state.mtime_ns, state.inode
            self._fingerprint = None
            return  # its entries are decided one by one
        if e is not None:
            self.delete(path)
        if state is None:
            return
        parent = posixpath.dirname(path)
        if parent and (parent not in self._entries or self._entries[parent].kind != DIR):
            return  # its folder's creation was lost (or the folder's removal reached the disk)
        self.put_entry(path, state)

    def state(self, path: str) -> "_Entry | None":
        """A copy of the entry at `path` (opaque), for `set_state`."""
        e = self._entries.get(path)
        return None if e is None else e.copy()

    def set_state(self, path: str, state: "_Entry | None") -> None:
        """Put back an entry taken by `state` (None: remove it), as it was, with no new mtime or
        inode and no effect on durability: the simulator's way to show a scanner an older view."""
        self._tracking = False
        try:
            if path in self._entries:
                self.delete(path)
            if state is not None:
                self._parents(path)
                self.put_entry(path, state.copy())
        finally:
            self._tracking = True

    def _now(self) -> int:
        return self._tick if self.clock == self._counter else self.clock()

    def mark_changed(self, path: str) -> None:
        """`path` is about to change: remember its durable state (a copy) if not done yet."""
        if not self._tracking:
            return
        now = self._now()
        since = self._dirty_at.get(path)
        if since is not None and now - since <= int(self.writeback_s * 1e9):
            return  # already dirty: its durable state is already kept
        e = self._entries.get(path)
        self._durable[path] = None if e is None else e.copy()
        self._dirty_at[path] = now

    @staticmethod
    def own_mtime(path: str) -> bool:
        """Does each node give this file its own mtime (a live file, testing/simlive.py)?"""
        return False

    def fingerprint(self) -> bytes:
        """A hash of everything a peer would see (temp files and folder mtimes left out)."""
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=16)
            for path in sorted(self._entries):
                e = self._entries[path]
                if posixpath.basename(path).startswith(TMP_PREFIX):
                    continue
                h.update(path.encode("utf-8", "surrogateescape") + b"\0" + e.kind.encode())
                if e.kind == FILE:
                    h.update(hashlib.blake2b(e.data, digest_size=16).digest())
                    mtime = -1 if self.own_mtime(path) else e.mtime_ns  # live files: each node's
                    h.update(b"%d %d" % (e.mode & 0o777, mtime))  # writes have its own times
                elif e.kind == SYMLINK:
                    h.update(e.target.encode("utf-8", "surrogateescape"))
                else:
                    h.update(b"%d" % (e.mode & 0o777))
            self._fingerprint = h.digest()
        return self._fingerprint

    # -- internals ---------------------------------------------------------------------------
    def next_inode(self) -> int:
        """A fresh inode number for a new entry of this disk."""
        self._inode += 1
        return self._inode

    def _parents(self, path: str) -> None:
        parts = path.split("/")
        for i in range(1, len(parts)):
            p = "/".join(parts[:i])
            e = self._entries.get(p)
            if e is None:
                self.put_entry(p, _Entry(DIR, 0o755, self.clock(), self.next_inode()))
            elif e.kind != DIR:
                raise NotADirectoryError(p)

    def put_entry(self, path: str, entry: _Entry) -> None:
        """Place `entry` at `path`, replacing what was there (rename's and create's last step)."""
        if path in self._entries:
            self.remove_entry(path)
        self.mark_changed(path)
        self._entries[path] = entry
        parent, name = posixpath.split(path)
        self._children[parent][name] = None
        if entry.kind == DIR:
            self._children[path] = {}
        self._fingerprint = None

    def remove_entry(self, path: str) -> None:
        """Take `path` out of its folder (the caller checked it may)."""
        if path not in self._entries:
            return
        self.mark_changed(path)
        e = self._entries.pop(path)
        parent, name = posixpath.split(path)
        self._children[parent].pop(name, None)
        if e.kind == DIR:
            del self._children[path]
        self._fingerprint = None

    def names_in(self, folder: str) -> list[str]:
        """The names in `folder` (a copy: callers change the folder while they walk it)."""
        return list(self._children.get(folder, ()))

    def entry_at(self, path: str) -> _Entry | None:
        """The entry at `path` as it is (no copy: the disk's own files write through it)."""
        return self._entries.get(path)


# --- disk.apply -------------------------------------------------------------------------------

def _resolve(root: MemRoot, path: str) -> str:
    """`safepath.resolve`: the checked path; BadPath if an existing parent is a symlink."""
    norm = check(path)
    parts = norm.split("/")
    for i in range(1, len(parts)):
        e = root.entry_at("/".join(parts[:i]))
        if e is None or e.kind == FILE:
            break
        if e.kind == SYMLINK:
            raise BadPath(f"{path!r} goes through the symlink {'/'.join(parts[:i])}")
    return norm


def _lstat(root: MemRoot, rel: str) -> _Entry | None:
    return locate_entry(root, rel)


def stat_of(root: MemRoot, path: str) -> Stat | None:
    e = _lstat(root, _resolve(root, path))
    return None if e is None else e.stat()


def _need_root(root: MemRoot) -> None:
    if not root.present:
        raise DiskError(f"the root folder {root.name} is missing")


def _same(expect: Stat | None, now: Stat | None) -> bool:
    if expect is None or now is None:
        return expect is None and now is None
    if expect.kind == DIR or now.kind == DIR:
        return (expect.kind, expect.inode) == (now.kind, now.inode)
    return expect == now


def _check_expect(root: MemRoot, rel: str, expect: Stat | None) -> _Entry | None:
    e = _lstat(root, rel)
    if not _same(expect, None if e is None else e.stat()):
        raise LocalChanged(MemPath(root, rel))
    return e


def _prepare(root: MemRoot, path: str) -> str:
    rel = _resolve(root, path)
    _need_root(root)
    parts = rel.split("/")
    for i in range(1, len(parts)):
        p = "/".join(parts[:i])
        e = root.entry_at(p)
        if e is None:
            root.put_entry(p, _Entry(DIR, 0o755, root.clock(), root.next_inode()))
            root.sync(p)  # disk.apply fsyncs the folders it makes
        elif e.kind == SYMLINK:
            raise BadPath(f"{p} became a symlink")
        elif e.kind != DIR:
            raise DiskError(f"cannot create {rel}: {p} is not a folder")
    return rel


def _refuse_folder(rel: str, e: _Entry | None) -> None:
    if e is not None and e.kind == DIR:
        raise DiskError(f"cannot replace {rel}: a folder is in the way (remove it first)")


def _temp_rel(rel: str) -> str:
    folder = posixpath.dirname(rel)
    name = temp_name(rel)
    return f"{folder}/{name}" if folder else name


class TempFile(KeptUnlessFailed):
    """`disk.apply.TempFile` in memory: blocks written at offsets, verified, moved into place."""

    def __init__(self, path: MemPath, *, target: MemPath | None = None,
                 hasher_factory: HasherFactory = DEFAULT_HASHER) -> None:
        self.path = path
        self.target = target
        self._open = True
        self._hasher_factory = hasher_factory

    @classmethod
    def create(cls, root: MemRoot, path: str, *,
               hasher_factory: HasherFactory = DEFAULT_HASHER) -> "TempFile":
        rel = _prepare(root, path)
        tmp = _temp_rel(rel)
        old = root.entry_at(tmp)
        if old is not None and old.kind == DIR:
            raise DiskError(f"cannot use temporary name {tmp}: a folder is there")
        root.put_entry(tmp, _Entry(FILE, 0o600, root.clock(), root.next_inode(), bytearray()))
        return cls(MemPath(root, tmp), target=MemPath(root, rel), hasher_factory=hasher_factory)

    @classmethod
    def open_existing(cls, p: MemPath, *, target: MemPath | None = None,
                      hasher_factory: HasherFactory = DEFAULT_HASHER) -> "TempFile":
        if not p.name.startswith(TMP_PREFIX):
            raise LocalError(f"{p} is not a temporary file of ours")
        e = p.root.entry_at(p.rel)
        if e is None:
            raise DiskError(f"cannot open {p}: no such file")
        if e.kind != FILE:
            raise LocalError(f"{p} is not a regular file")
        return cls(p, target=target, hasher_factory=hasher_factory)

    def _data(self) -> bytearray:
        if not self._open:
            raise LocalError(f"{self.path} is closed")
        e = self.path.root.entry_at(self.path.rel)
        if e is None or e.kind != FILE:
            raise DiskError(f"cannot write {self.path}: it vanished")
        return e.data

    def write_at(self, offset: int, data: bytes) -> None:
        buf = self._data()
        self.path.root.need_space(offset + len(data) - len(buf), self.path.rel)
        self.path.root.mark_changed(self.path.rel)
        if len(buf) < offset:
            buf.extend(bytes(offset - len(buf)))
        buf[offset:offset + len(data)] = data

    def read_at(self, offset: int, size: int) -> bytes:
        return bytes(self._data()[offset:offset + size])

    @property
    def size(self) -> int:
        return len(self._data())

    def truncate(self, size: int) -> None:
        buf = self._data()
        self.path.root.need_space(size - len(buf), self.path.rel)
        self.path.root.mark_changed(self.path.rel)
        if size < len(buf):
            del buf[size:]
        else:
            buf.extend(bytes(size - len(buf)))

    def _check_target(self, target: MemPath | None) -> MemPath:
        if target is None and self.target is None:
            raise LocalError(f"{self.path}: no target given")
        target = target if target is not None else self.target
        if target.root is not self.path.root or target.parent != self.path.parent:
            raise LocalError(f"{target} is not in the temp file's folder {self.path.parent}")
        if target.name.startswith(TMP_PREFIX):
            raise LocalError(f"{target} is a temporary file name")
        return target

    def finish(self, target: MemPath | None, expected_hash: bytes, mode: int, mtime_ns: int,
               expect: Stat | None, *, archive: Callable[[MemPath], object] | None = None) -> None:
        data = self._data()
        target = self._check_target(target)
        root = target.root
        _refuse_folder(target.rel, root.entry_at(target.rel))
        hasher = self._hasher_factory()
        hasher.update(bytes(data))
        if hasher.digest() != expected_hash:
            self.abort()
            raise IntegrityError(f"{target.name}: content does not match the version's hash")
        current = _check_expect(root, target.rel, expect)  # LocalChanged: the temp file stays
        _refuse_folder(target.rel, current)
        if archive is not None and current is not None and current.kind == FILE:
            archive(target)
        e = root.entry_at(self.path.rel)
        root.remove_entry(self.path.rel)
        e.mode, e.mtime_ns = mode & 0o777, mtime_ns
        root.put_entry(target.rel, e)
        root.sync(self.path.rel)  # fsync of the file, rename, fsync of the folder
        root.sync(target.rel)
        self._open = False

    def close(self) -> None:
        self._open = False

    def abort(self) -> None:
        self._open = False
        e = self.path.root.entry_at(self.path.rel)
        if e is not None and e.kind == FILE:
            self.path.root.remove_entry(self.path.rel)


def find_partial(root: MemRoot, path: str) -> MemPath | None:
    tmp = _temp_rel(_resolve(root, path))
    e = _lstat(root, tmp)
    return MemPath(root, tmp) if e is not None and e.kind == FILE else None


def make_dir(root: MemRoot, path: str, mode: int, mtime_ns: int) -> None:
    rel = _prepare(root, path)
    e = root.entry_at(rel)
    if e is not None and e.kind != DIR:
        raise LocalChanged(MemPath(root, rel), "is not a folder")
    if e is None:
        root.put_entry(rel, _Entry(DIR, 0o755, root.clock(), root.next_inode()))
    set_meta(root, rel, mode, mtime_ns)
    root.sync(rel)


def make_symlink(root: MemRoot, path: str, target: str, expect: Stat | None, *,
                 archive: Callable[[MemPath], object] | None = None) -> None:
    rel = _prepare(root, path)
    current = _check_expect(root, rel, expect)
    _refuse_folder(rel, current)
    if archive is not None and current is not None and current.kind == FILE:
        archive(MemPath(root, rel))
    root.put_entry(rel, _Entry(SYMLINK, 0o777, root.clock(), root.next_inode(), target=target))
    root.sync(rel)


def remove(root: MemRoot, path: str, expect: Stat | None, *,
           archive: Callable[[MemPath], object] | None = None) -> bool:
    rel = _resolve(root, path)
    e = _check_expect(root, rel, expect)
    if e is None:
        return True
    if e.kind == DIR:
        names = root.names_in(rel)
        if any(not n.startswith(TMP_PREFIX) for n in names):
            return False
        if any(root.entry_at(f"{rel}/{n}").kind == DIR for n in names):
            return False
        for n in names:
            root.remove_entry(f"{rel}/{n}")
            root.sync(f"{rel}/{n}")
        root.remove_entry(rel)
        root.sync(rel)
        return True
    if archive is not None and e.kind == FILE:
        archive(MemPath(root, rel))
    root.remove_entry(rel)
    root.sync(rel)
    return True


def set_meta(root: MemRoot, path: str, mode: int, mtime_ns: int, *,
             expect: Stat | None = None) -> None:
    rel = _resolve(root, path)
    e = _lstat(root, rel) if expect is None else _check_expect(root, rel, expect)
    if e is None:
        raise LocalChanged(MemPath(root, rel), "vanished")
    root.mark_changed(rel)  # utime and chmod: not synced
    if e.kind != SYMLINK:
        e.mode = mode & 0o777
    e.mtime_ns = mtime_ns
    root._fingerprint = None


def rename(root: MemRoot, src: str, dst: str, expect: Stat) -> None:
    s, d = _resolve(root, src), _resolve(root, dst)
    _need_root(root)
    _prepare(root, d)
    e = _check_expect(root, s, expect)
    if e is None:
        raise LocalChanged(MemPath(root, s), "vanished")
    if root.entry_at(d) is not None:
        raise LocalChanged(MemPath(root, d), "is in the way")
    moved = {p: root.entry_at(p) for p in root.paths() if p == s or p.startswith(s + "/")}
    for p in sorted(moved, reverse=True):
        root.remove_entry(p)
        root.sync(p)
    for p in sorted(moved):
        root.put_entry(d + p[len(s):], moved[p])
        root.sync(d + p[len(s):])


# --- disk.versions ----------------------------------------------------------------------------

def archive(root: MemRoot, path_on_disk: MemPath, content_hash: bytes, *, verify: bool = True,
            hasher_factory: HasherFactory = DEFAULT_HASHER) -> bool:
    """Keep the bytes of the file at `path_on_disk` as version `content_hash` (True: stored now)."""
    if content_hash in root.objects:
        return False
    e = path_on_disk.root.entry_at(path_on_disk.rel)
    if e is None or e.kind != FILE:
        raise LocalError(f"cannot archive {path_on_disk}: not a regular file")
    data = bytes(e.data)
    if verify:
        h = hasher_factory()
        h.update(data)
        if h.digest() != content_hash:
            raise ArchiveMismatch(f"{path_on_disk} changed since it was scanned; not archived")
    root.objects[content_hash] = data
    return True


def has_version(root: MemRoot, content_hash: bytes) -> bool:
    return content_hash in root.objects


def read_version(root: MemRoot, content_hash: bytes) -> bytes | None:
    return root.objects.get(content_hash)


def remove_version(root: MemRoot, content_hash: bytes) -> bool:
    return root.objects.pop(content_hash, None) is not None


def all_versions(root: MemRoot) -> Iterator[bytes]:
    yield from sorted(root.objects)

