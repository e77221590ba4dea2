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
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gossip_backer.core.blocks import hash_bytes
from gossip_backer.core.paths import TMP_PREFIX, BadPath, check
from gossip_backer.core.record import DIR, FILE, SYMLINK
from gossip_backer.disk.apply import (DEFAULT_HASHER, DiskError, HasherFactory, LocalChanged,
                                      Stat, temp_name)
from gossip_backer.disk.ignore import IgnoreMatcher
from gossip_backer.disk.scan import FileHash, RootUnavailable, ScanEntry, ScanResult
from gossip_backer.disk.versions import ArchiveMismatch
from gossip_backer.errors import IntegrityError, LocalError

__all__ = [
    "MemRoot", "MemPath", "Stat", "LocalChanged", "DiskError", "RootUnavailable", "ScanEntry",
    "ScanResult", "ArchiveMismatch", "scan", "scan_paths", "root_state", "stat_of", "TempFile",
    "find_partial", "make_dir", "make_symlink", "remove", "set_meta", "rename", "temp_name",
    "archive", "has_version", "read_version", "remove_version", "all_versions", "hash_memory",
]


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
        self._parents(path)
        e = self._entries.get(path)
        mtime = self.clock() if mtime_ns is None else mtime_ns
        if e is None or e.kind != FILE or new_inode:
            if e is not None and e.kind == DIR:
                raise IsADirectoryError(path)
            self._put(path, _Entry(FILE, mode, mtime, self._next_inode(), bytearray(data)))
            return
        e.data, e.mode, e.mtime_ns = bytearray(data), mode, mtime
        self._fingerprint = None

    def mkdir(self, path: str, mode: int = 0o755, mtime_ns: int | None = None) -> None:
        self._parents(path)
        if path in self._entries:
            raise FileExistsError(path)
        self._put(path, _Entry(DIR, mode, self.clock() if mtime_ns is None else mtime_ns,
                               self._next_inode()))

    def symlink(self, path: str, target: str, mtime_ns: int | None = None) -> None:
        self._parents(path)
        if path in self._entries:
            raise FileExistsError(path)
        self._put(path, _Entry(SYMLINK, 0o777, self.clock() if mtime_ns is None else mtime_ns,
                               self._next_inode(), target=target))

    def delete(self, path: str) -> None:
        """Remove an entry and everything below it (rm -rf)."""
        for child in list(self._children.get(path, ())):
            self.delete(f"{path}/{child}" if path else child)
        self._drop(path)

    def chmod(self, path: str, mode: int) -> None:
        self._entries[path].mode = mode & 0o7777
        self._fingerprint = None

    def touch(self, path: str, mtime_ns: int) -> None:
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

    def restore(self) -> None:
        self.present = True

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
                    h.update(b"%d %d" % (e.mode & 0o777, e.mtime_ns))
                elif e.kind == SYMLINK:
                    h.update(e.target.encode("utf-8", "surrogateescape"))
                else:
                    h.update(b"%d" % (e.mode & 0o777))
            self._fingerprint = h.digest()
        return self._fingerprint

    # -- internals ---------------------------------------------------------------------------
    def _next_inode(self) -> int:
        self._inode += 1
        return self._inode

    def _parents(self, path: str) -> None:
        parts = path.split("/")
        for i in range(1, len(parts)):
            p = "/".join(parts[:i])
            e = self._entries.get(p)
            if e is None:
                self._put(p, _Entry(DIR, 0o755, self.clock(), self._next_inode()))
            elif e.kind != DIR:
                raise NotADirectoryError(p)

    def _put(self, path: str, entry: _Entry) -> None:
        if path in self._entries:
            self._drop(path)
        self._entries[path] = entry
        parent, name = posixpath.split(path)
        self._children[parent][name] = None
        if entry.kind == DIR:
            self._children[path] = {}
        self._fingerprint = None

    def _drop(self, path: str) -> None:
        e = self._entries.pop(path, None)
        if e is None:
            return
        parent, name = posixpath.split(path)
        self._children[parent].pop(name, None)
        if e.kind == DIR:
            del self._children[path]
        self._fingerprint = None

    def _list(self, folder: str) -> list[str]:
        return list(self._children.get(folder, ()))

    def _get(self, path: str) -> _Entry | None:
        return self._entries.get(path)


def hash_memory(data: bytes | bytearray) -> FileHash:
    """(hash, block size, blocks) of in-memory content: `disk.scan.hash_file` for a MemRoot."""
    file_hash, size, blocks = hash_bytes(bytes(data))
    return FileHash(file_hash, size, tuple(blocks))


# --- disk.scan --------------------------------------------------------------------------------

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
    todo: set[str] = set()
    for raw in paths:
        rel = raw.strip("/")
        if not rel:
            continue
        todo.add(rel)
        parts = rel.split("/")
        for i in range(1, len(parts)):
            anc = "/".join(parts[:i])
            if anc not in previous:
                todo.add(anc)
    for rel in sorted(todo):
        if rel not in sc.done:
            sc.revisit(rel)
    return sc.finish()


def _differs(prev: Any, entry: ScanEntry) -> bool:
    if prev.kind != entry.kind:
        return True
    if entry.kind == DIR:
        return prev.mode != entry.mode
    if entry.kind == SYMLINK:
        return prev.target != entry.target
    return (prev.size, prev.mtime_ns, prev.mode, prev.hash) != (
        entry.size, entry.mtime_ns, entry.mode, entry.hash)


def _acceptable(rel: str) -> bool:
    try:
        check(rel)
    except BadPath:
        return False
    return True


class _Scanner:
    def __init__(self, root: MemRoot, previous: Mapping[str, Any], ignore: IgnoreMatcher,
                 hasher: MemHashFile | None) -> None:
        self.root = root
        self.previous = previous
        self.ignore = ignore
        self.hash_file = hasher or (lambda path, size: hash_memory(root._get(path).data))
        self.result = ScanResult()
        self.done: set[str] = set()
        self.deleted: set[str] = set()

    def walk(self, prefix: str) -> None:
        stack = [prefix]
        while stack:
            folder = stack.pop()
            base = folder + "/" if folder else ""
            for name in self.root._list(folder):
                rel = base + name
                e = self.root._get(rel)
                if self.ignore.matches_entry(rel, name, e.kind == DIR):
                    continue
                if rel not in self.previous and not _acceptable(rel):
                    self.result.refused.append(rel)
                    continue
                if self.examine(rel, e) == DIR:
                    stack.append(rel)

    def examine(self, rel: str, e: _Entry) -> str:
        self.done.add(rel)
        prev = self.previous.get(rel)
        if e.kind == FILE:
            entry = self._file(rel, e, prev)
        else:
            entry = ScanEntry(rel, e.size, e.mtime_ns, e.inode, e.mode & 0o7777, e.kind,
                              target=e.target)
            if type(prev) is ScanEntry and prev == entry:
                entry = prev
        self.result.entries[rel] = entry
        if prev is None or _differs(prev, entry):
            self.result.changed.append(rel)
        elif entry is not prev and (prev.inode, prev.mtime_ns, prev.size) != (
                entry.inode, entry.mtime_ns, entry.size):
            self.result.refreshed.append(rel)
        return entry.kind

    def _file(self, rel: str, e: _Entry, prev: Any) -> ScanEntry:
        mode = e.mode & 0o7777
        if (prev is not None and prev.kind == FILE and prev.hash is not None
                and (prev.size, prev.mtime_ns, prev.inode) == (e.size, e.mtime_ns, e.inode)):
            if type(prev) is ScanEntry and prev.mode == mode:
                return prev
            return ScanEntry(rel, e.size, e.mtime_ns, e.inode, mode, FILE, prev.hash,
                             prev.block_size, tuple(prev.blocks))
        fh = self.hash_file(rel, e.size)
        self.result.hashed_bytes += e.size
        return ScanEntry(rel, e.size, e.mtime_ns, e.inode, mode, FILE, fh.hash, fh.block_size,
                         tuple(fh.blocks))

    def revisit(self, rel: str) -> None:
        e = _locate(self.root, rel)
        prev = self.previous.get(rel)
        if e is None:
            self.done.add(rel)
            if prev is not None:
                self.gone(rel, prev)
            self._gone_below(rel)
            return
        if self.ignore.matches(rel, e.kind == DIR):
            self.done.add(rel)
            return
        if not _acceptable(rel):
            self.result.refused.append(rel)
            return
        kind = self.examine(rel, e)
        if kind == DIR and (prev is None or prev.kind != DIR or prev.inode != e.inode):
            self.walk(rel)
        if kind != DIR or prev is None or prev.kind != DIR or prev.inode != e.inode:
            self._gone_below(rel)

    def _gone_below(self, rel: str) -> None:
        prefix = rel + "/"
        for path in sorted(self.previous):
            if path.startswith(prefix) and path not in self.result.entries:
                self.gone(path, self.previous[path])

    def gone(self, path: str, prev: Any) -> None:
        if path in self.result.entries:
            return
        if self.ignore.matches(path, prev.kind == DIR):
            return
        self.deleted.add(path)

    def finish(self) -> ScanResult:
        res = self.result
        res.deleted = sorted(self.deleted - res.entries.keys())
        res.changed = sorted(set(res.changed) & res.entries.keys())
        res.refreshed = sorted(set(res.refreshed) & res.entries.keys())
        res.refused.sort()
        for entry in res.entries.values():
            if entry.kind == FILE:
                res.files += 1
            elif entry.kind == DIR:
                res.dirs += 1
            else:
                res.links += 1
        return res


def _locate(root: MemRoot, rel: str) -> _Entry | None:
    """The entry at `rel`, or None if it or a real folder above it is missing (no link followed)."""
    parts = rel.split("/")
    for i in range(1, len(parts)):
        e = root._get("/".join(parts[:i]))
        if e is None or e.kind != DIR:
            return None
    return root._get(rel)


# --- disk.apply -------------------------------------------------------------------------------

def _resolve(root: MemRoot, path: str) -> str:
    """`safepath.resolve`: the checked path; BadPath if an existing parent is a symlink."""
    norm = check(path)
    parts = norm.split("/")
    for i in range(1, len(parts)):
        e = root._get("/".join(parts[:i]))
        if e is None or e.kind == FILE:
            break
        if e.kind == SYMLINK:
            raise BadPath(f"{path!r} goes through the symlink {'/'.join(parts[:i])}")
    return norm


def _lstat(root: MemRoot, rel: str) -> _Entry | None:
    return _locate(root, rel)


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
        e = root._get(p)
        if e is None:
            root._put(p, _Entry(DIR, 0o755, root.clock(), root._next_inode()))
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


class TempFile:
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
        old = root._get(tmp)
        if old is not None and old.kind == DIR:
            raise DiskError(f"cannot use temporary name {tmp}: a folder is there")
        root._put(tmp, _Entry(FILE, 0o600, root.clock(), root._next_inode(), bytearray()))
        return cls(MemPath(root, tmp), target=MemPath(root, rel), hasher_factory=hasher_factory)

    @classmethod
    def open_existing(cls, p: MemPath, *, target: MemPath | None = None,
                      hasher_factory: HasherFactory = DEFAULT_HASHER) -> "TempFile":
        if not p.name.startswith(TMP_PREFIX):
            raise LocalError(f"{p} is not a temporary file of ours")
        e = p.root._get(p.rel)
        if e is None:
            raise DiskError(f"cannot open {p}: no such file")
        if e.kind != FILE:
            raise LocalError(f"{p} is not a regular file")
        return cls(p, target=target, hasher_factory=hasher_factory)

    def __enter__(self) -> "TempFile":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not issubclass(exc_type, LocalChanged):
            self.abort()
        else:
            self.close()

    def _data(self) -> bytearray:
        if not self._open:
            raise LocalError(f"{self.path} is closed")
        e = self.path.root._get(self.path.rel)
        if e is None or e.kind != FILE:
            raise DiskError(f"cannot write {self.path}: it vanished")
        return e.data

    def write_at(self, offset: int, data: bytes) -> None:
        buf = self._data()
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
        _refuse_folder(target.rel, root._get(target.rel))
        hasher = self._hasher_factory()
        hasher.update(bytes(data))
        if hasher.digest() != expected_hash:
            self.abort()
            raise IntegrityError(f"{target.name}: content does not match the version's hash")
        current = _check_expect(root, target.rel, expect)  # LocalChanged: the temp file stays
        _refuse_folder(target.rel, current)
        if archive is not None and current is not None and current.kind == FILE:
            archive(target)
        e = root._get(self.path.rel)
        root._drop(self.path.rel)
        e.mode, e.mtime_ns = mode & 0o777, mtime_ns
        root._put(target.rel, e)
        self._open = False

    def close(self) -> None:
        self._open = False

    def abort(self) -> None:
        self._open = False
        e = self.path.root._get(self.path.rel)
        if e is not None and e.kind == FILE:
            self.path.root._drop(self.path.rel)


def find_partial(root: MemRoot, path: str) -> MemPath | None:
    tmp = _temp_rel(_resolve(root, path))
    e = _lstat(root, tmp)
    return MemPath(root, tmp) if e is not None and e.kind == FILE else None


def make_dir(root: MemRoot, path: str, mode: int, mtime_ns: int) -> None:
    rel = _prepare(root, path)
    e = root._get(rel)
    if e is not None and e.kind != DIR:
        raise LocalChanged(MemPath(root, rel), "is not a folder")
    if e is None:
        root._put(rel, _Entry(DIR, 0o755, root.clock(), root._next_inode()))
    set_meta(root, rel, mode, mtime_ns)


def make_symlink(root: MemRoot, path: str, target: str, expect: Stat | None, *,
                 archive: Callable[[MemPath], object] | None = None) -> None:
    rel = _prepare(root, path)
    current = _check_expect(root, rel, expect)
    _refuse_folder(rel, current)
    if archive is not None and current is not None and current.kind == FILE:
        archive(MemPath(root, rel))
    root._put(rel, _Entry(SYMLINK, 0o777, root.clock(), root._next_inode(), target=target))


def remove(root: MemRoot, path: str, expect: Stat | None, *,
           archive: Callable[[MemPath], object] | None = None) -> bool:
    rel = _resolve(root, path)
    e = _check_expect(root, rel, expect)
    if e is None:
        return True
    if e.kind == DIR:
        names = root._list(rel)
        if any(not n.startswith(TMP_PREFIX) for n in names):
            return False
        if any(root._get(f"{rel}/{n}").kind == DIR for n in names):
            return False
        for n in names:
            root._drop(f"{rel}/{n}")
        root._drop(rel)
        return True
    if archive is not None and e.kind == FILE:
        archive(MemPath(root, rel))
    root._drop(rel)
    return True


def set_meta(root: MemRoot, path: str, mode: int, mtime_ns: int) -> None:
    rel = _resolve(root, path)
    e = _lstat(root, rel)
    if e is None:
        raise LocalChanged(MemPath(root, rel), "vanished")
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
    if root._get(d) is not None:
        raise LocalChanged(MemPath(root, d), "is in the way")
    moved = {p: root._get(p) for p in root.paths() if p == s or p.startswith(s + "/")}
    for p in sorted(moved, reverse=True):
        root._drop(p)
    for p in sorted(moved):
        root._put(d + p[len(s):], moved[p])


# --- disk.versions ----------------------------------------------------------------------------

def archive(root: MemRoot, path_on_disk: MemPath, content_hash: bytes, *, verify: bool = True,
            hasher_factory: HasherFactory = DEFAULT_HASHER) -> bool:
    """Keep the bytes of the file at `path_on_disk` as version `content_hash` (True: stored now)."""
    if content_hash in root.objects:
        return False
    e = path_on_disk.root._get(path_on_disk.rel)
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

