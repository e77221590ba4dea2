"""Put versions from the mesh onto the disk: whole, atomically, and never over a user's edit.

Theory of operation. A file arrives in a temporary file next to its target
(`.backer-tmp-<tag>-<name>`, where `tag` is 8 hex digits of a hash of the mesh path, so the same
target always gets the same temp name and a crashed download is found again by `find_partial`).
The puller writes verified blocks into it in any order; `finish` then

  1. re-hashes the whole temp file against the version's hash (mismatch: IntegrityError, the temp
     file is deleted, nothing changes at the target),
  2. sets permission bits and mtime and fsyncs the file (a round of small files: `seal` each,
     one `make_durable` for all and the renames of the round before, then `place` each; the
     last round's renames get a `sync_folders` of their own; a large file's
     writeback was begun as its blocks were written, `start_writeback`, so little is left),
  3. looks at the target one last time: if it is not what the caller last scanned (`expect`, a
     `Stat`, or None for "nothing there") the user changed it meanwhile, so `LocalChanged` is raised
     and the temp file is kept (the caller turns the situation into a conflict and may still
     `finish` the same temp file at the conflict-copy name),
  4. hands the old file to the optional `archive` callback (the caller links it into
     `.backer/versions/`), renames the temp file over the target with os.replace, and fsyncs the
     folder.

So at every instant the target holds its old or its new whole content (SPEC: crash safety).
Folders, symlinks and deletions follow the same rule: check `expect`, then one atomic step.

Errors: a path that must never be written raises `core.paths.BadPath`; a local condition the user
must fix (disk full, permissions, read-only disk) raises `DiskError` with a one-line message and
leaves nothing behind; a user's concurrent change raises `LocalChanged`. The temp file is removed
when its content is bad or I/O fails, and kept when a precondition fails (LocalChanged, a folder in
the way), since its verified blocks are still good.

Synchronous: the runtime calls this module from a worker thread.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import secrets
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gossip_backer.core.blocks import FileHasher
from gossip_backer.core.paths import (STATE_DIR, TMP_PREFIX, BadPath, case_key, check, escape,
                                     is_text, to_bytes)
from gossip_backer.core.record import DIR, FILE, SYMLINK
from gossip_backer.disk import safepath, writeback
from gossip_backer.errors import IntegrityError, LocalError

__all__ = [
    "DEFAULT_HASHER",
    "DiskError",
    "LocalChanged",
    "BatchFolders",
    "NameRefused",
    "Stat",
    "TempFile",
    "find_partial",
    "make_dir",
    "make_durable",
    "make_symlink",
    "remove",
    "remove_abandoned_temps",
    "rename",
    "set_meta",
    "stat_of",
    "sync_folders",
    "temp_name",
]

OTHER = "other"
CHUNK = 1 << 20
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class Hasher(Protocol):
    def update(self, data: bytes, /) -> object: ...
    def digest(self) -> bytes: ...


HasherFactory = Callable[[], Hasher]
Archive = Callable[[Path], object]


def DEFAULT_HASHER() -> Hasher:  # noqa: N802 - a factory constant, used like a class
    """The whole-file hash of the mesh (core.blocks.FileHasher, BLAKE3-256)."""
    return FileHasher()


class DiskError(LocalError):
    """The disk refused: full, read-only, permission denied... One line saying what and where."""

    def __init__(self, message: str, errno_: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_


class LocalChanged(LocalError):
    """The entry at the target is no longer what the caller scanned: the user changed it.

    Never overwrite it; the caller turns this into a conflict."""

    def __init__(self, where: Path | str, why: str = "changed since it was scanned") -> None:
        super().__init__(f"{where}: {why}")
        self.where = where


_REASONS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EIO: "input/output error",
}


class NameRefused(DiskError):
    """This disk cannot hold the name (a name that is not UTF-8 on a disk that wants UTF-8, as
    FAT, exFAT, NTFS, APFS or a strict case-folding ext4 do). Nothing was written: the version is
    skipped on this node, listed in `status`, and never taken for a deletion."""


def disk_error(exc: OSError, what: str, where: Path | str) -> DiskError:
    name = os.fsdecode(os.path.basename(os.fspath(where)))
    if exc.errno == errno.EILSEQ or (exc.errno == errno.EINVAL and not is_text(name)):
        return NameRefused(f"cannot {what} {escape(os.fspath(where))}: this disk cannot hold "
                           "the name", exc.errno)
    reason = _REASONS.get(exc.errno or 0) or exc.strerror or str(exc)
    return DiskError(f"cannot {what} {where}: {reason}", exc.errno)


# --- what is on disk now ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stat:
    """What a scan saw at a path; `finish`, `remove`... compare it with the disk before acting."""

    size: int
    mtime_ns: int
    inode: int
    kind: str  # "file" | "dir" | "symlink" | "other"

    @classmethod
    def from_os(cls, st: os.stat_result) -> "Stat":
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, _kind(st.st_mode))


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISLNK(mode):
        return SYMLINK
    return OTHER


def _same(expect: Stat | None, now: Stat | None) -> bool:
    """Folders count as unchanged while they are the same folder (their size and mtime move
    whenever an entry inside changes); everything else must match exactly."""
    if expect is None or now is None:
        return expect is None and now is None
    if expect.kind == DIR or now.kind == DIR:
        return (expect.kind, expect.inode) == (now.kind, now.inode)
    return expect == now


def stat_of(root: Path | str, path: str) -> Stat | None:
    """lstat of mesh path `path` (links are not followed); None when nothing is there."""
    st = safepath.lstat_or_none(safepath.resolve(root, path))
    return None if st is None else Stat.from_os(st)


def _lstat(p: Path) -> os.stat_result | None:
    try:
        return safepath.lstat_or_none(p)
    except OSError as exc:
        raise disk_error(exc, "stat", p) from exc


def _check_expect(target: Path, expect: Stat | None) -> os.stat_result | None:
    """The entry at `target` if it is still what `expect` says, else LocalChanged."""
    st = _lstat(target)
    if not _same(expect, None if st is None else Stat.from_os(st)):
        raise LocalChanged(target)
    return st


# --- helpers -------------------------------------------------------------------------------------


def temp_name(path: str) -> str:
    """`.backer-tmp-<8 hex of hash(path)>-<basename>`, cut to fit a 255-byte file name, without
    the bytes of the name that are not UTF-8."""
    norm = check(path)
    tag = hashlib.blake2b(to_bytes(norm), digest_size=4).hexdigest()
    prefix = f"{TMP_PREFIX}{tag}-"
    budget = 255 - len(prefix.encode("utf-8"))
    base = to_bytes(posixpath.basename(norm))[:budget]
    return prefix + base.decode("utf-8", "ignore")  # always UTF-8: any disk can hold it


def remove_abandoned_temps(root: Path | str, wanted: Iterable[str]) -> list[str]:
    """Delete the `.backer-tmp-*` files below `root` that no download can resume: every one but
    the temp file of a path in `wanted` (mesh paths whose version may still be fetched; their
    verified blocks are kept). Returns the relative paths removed. Run at start-up, before the
    puller; `.backer/` is not looked into."""
    keep = set()
    for path in wanted:
        try:
            keep.add(posixpath.join(posixpath.dirname(path), temp_name(path)))
        except BadPath:
            continue
    root = os.path.abspath(root)
    removed = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir
        if not rel_dir:
            dirnames[:] = [d for d in dirnames if d.casefold() != STATE_DIR]
        for name in filenames + [d for d in dirnames if d.startswith(TMP_PREFIX)]:
            rel = posixpath.join(rel_dir, name)
            if not name.startswith(TMP_PREFIX) or rel in keep:
                continue
            full = os.path.join(dirpath, name)
            try:
                if os.path.isdir(full) and not os.path.islink(full):
                    continue  # not ours to empty
                os.unlink(full)
                removed.append(rel)
            except OSError:
                pass
    return sorted(removed)


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in `folder` durable."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except OSError as exc:
        raise disk_error(exc, "open folder", folder) from exc
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):  # fs without dir fsync
            raise disk_error(exc, "sync folder", folder) from exc
    finally:
        os.close(fd)


def _syncfs(fd: int) -> bool:
    """Linux syncfs(2) on the file system holding `fd`: every dirty byte and name of it made
    durable in one journal commit. False where it does not exist (then sync file by file)."""
    global _SYNCFS
    if _SYNCFS is None:
        try:
            import ctypes

            _SYNCFS = ctypes.CDLL(None, use_errno=True).syncfs
        except (OSError, AttributeError):
            _SYNCFS = False
    if _SYNCFS is False:
        return False
    if _SYNCFS(fd) != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return True


_SYNCFS = None


def make_durable(temps: list["TempFile"], folders: Iterable[Path] = ()) -> None:
    """The written bytes of every temp file (sealed, not yet placed) reach the disk, and with
    them the renames made earlier in `folders`: one syncfs for it all where Linux has it (an
    fsync each costs a journal commit each), else an fsync each and `fsync_dir` each folder. A
    temp file is placed only after this returns."""
    folders = list(dict.fromkeys(folders))
    if not temps:
        sync_folders(folders)
        return
    if len(temps) > 1 or folders:
        try:
            if _syncfs(temps[0].descriptor()):
                return
        except OSError as exc:
            raise disk_error(exc, "sync", temps[0].path) from exc
    for t in temps:
        t.sync()
    for folder in folders:
        fsync_dir(folder)


def sync_folders(folders: Iterable[Path]) -> None:
    """Make the renames of a batch durable: one syncfs for several folders where Linux has it,
    else `fsync_dir` each."""
    folders = list(dict.fromkeys(folders))
    if len(folders) > 1:
        try:
            fd = os.open(folders[0], os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
        except OSError as exc:
            raise disk_error(exc, "open folder", folders[0]) from exc
        try:
            if _syncfs(fd):
                return
        except OSError as exc:
            raise disk_error(exc, "sync folder", folders[0]) from exc
        finally:
            os.close(fd)
    for folder in folders:
        fsync_dir(folder)


def _make_parents(base: Path, full: Path) -> None:
    """Create the missing folders between ROOT and `full` (mode 0755), one by one, no links.

    ROOT itself is never created: a vanished root must pause the node, not be refilled."""
    _need_root(base)
    current = os.fspath(base)  # strings, not Path objects: this runs for every file written
    below = os.fspath(full)[len(current):].strip("/").split("/")  # (`full` is under `base`)
    for part in below[:-1]:
        parent, current = current, os.path.join(current, part)
        st = _folder_or_made(current, parent)
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise BadPath(f"{current} became a symlink")
        if st is not None and not stat.S_ISDIR(st.st_mode):
            raise DiskError(f"cannot create {full}: {current} is not a folder")


def _folder_or_made(current: str, parent: str) -> os.stat_result | None:
    """What is at `current` (lstat), for the caller to refuse a symlink or a non-folder; or None
    when nothing was there and the folder was made (mode 0755, `parent` fsynced)."""
    st = safepath.lstat_or_none(current)
    if st is not None:
        return st
    try:
        os.mkdir(current, 0o755)
    except FileExistsError:
        return os.lstat(current)
    except OSError as exc:
        raise disk_error(exc, "create folder", Path(current)) from exc
    fsync_dir(Path(parent))
    return None


def _prepare(root: Path | str, path: str) -> Path:
    """Check `path` (safety, case-twins) and create its missing parent folders."""
    full, base = safepath.resolve(root, path), Path(os.path.abspath(root))
    safepath.refuse_case_collision(root, path)
    _make_parents(base, full)  # (which first checks the root is there)
    return full


class BatchFolders:
    """The folders of one batch of files, each checked once: a batch of 64 small files shares a
    handful of folders, and the walk that `_prepare` does per file (an lstat per parent folder to
    refuse symlinks, and again to create what is missing) was most of the per-file cost. Each
    folder between ROOT and a file is lstat-ed once per batch: a symlink there is refused
    (BadPath), a missing one is created (mode 0755, its parent fsynced), anything else that is
    not a folder is a DiskError. Keep one only for one batch: between batches the disk may
    change (a checked folder turned into a symlink is found by the next batch's walk). On a
    case-insensitive disk each file goes through `_prepare` (its case-twin check walks the
    names of every folder on the way anyway)."""

    def __init__(self, root: Path | str) -> None:
        self.root = root
        self._base = os.path.abspath(root)
        self._insensitive = safepath.is_case_insensitive(root)
        self._checked: dict[str, str] = {}  # mesh folder ("" for ROOT) -> its checked path

    def target(self, path: str) -> str:
        """The path on disk of mesh path `path` (`safepath.resolve`), its folders checked and
        made as `_prepare` does; an absolute string."""
        if self._insensitive:
            return os.fspath(_prepare(self.root, path))
        norm = check(path)
        folder, _, name = norm.rpartition("/")
        return os.path.join(self._folder(folder, path), name)

    def _folder(self, folder: str, path: str) -> str:
        done = self._checked.get(folder)
        if done is not None:
            return done
        if not folder:
            _need_root(Path(self._base))
            self._checked[""] = self._base
            return self._base
        up, _, name = folder.rpartition("/")
        parent = self._folder(up, path)
        current = os.path.join(parent, name)
        st = _folder_or_made(current, parent)
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise BadPath(f"{path!r} goes through the symlink {folder}")
        if st is not None and not stat.S_ISDIR(st.st_mode):
            raise DiskError(f"cannot create {os.path.join(self._base, path)}: {current} "
                            "is not a folder")
        self._checked[folder] = current
        return current


def _need_root(base: Path) -> None:
    if not os.path.isdir(base):
        raise DiskError(f"the root folder {base} is missing")


def _unlink_quietly(p: Path) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def _clear_temp(tmp: Path) -> None:
    """Remove a stale temp entry of ours (file or link) before reusing its name."""
    st = safepath.lstat_or_none(tmp)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        raise DiskError(f"cannot use temporary name {tmp}: a folder is there")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise disk_error(exc, "remove", tmp) from exc


def _refuse_folder(target: Path, st: os.stat_result | None) -> None:
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise DiskError(f"cannot replace {target}: a folder is in the way (remove it first)")


# --- files ---------------------------------------------------------------------------------------


class KeptUnlessFailed(ABC):
    """A temp file as a context manager: an exception other than LocalChanged discards it
    (`abort`); a clean exit, or a change the user made meanwhile, only closes it (its verified
    blocks are reused by the next attempt). testing/memdisk.py's TempFile shares the rule."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not issubclass(exc_type, LocalChanged):
            self.abort()
        else:
            self.close()

    @abstractmethod
    def abort(self) -> None:
        """Discard the temp file."""

    @abstractmethod
    def close(self) -> None:
        """Close it, keeping what was written."""


class TempFile(KeptUnlessFailed):
    """A file being assembled next to its target; see the module docstring for the life cycle."""

    def __init__(
        self, path: Path, fd: int, *, target: Path | None = None,
        hasher_factory: HasherFactory = DEFAULT_HASHER,
    ) -> None:
        self.path = path
        self.target = target
        self._fd: int | None = fd
        self._hasher_factory = hasher_factory
        self._failure: DiskError | None = None  # why an I/O call dropped it, told to later callers
        self.placed: Stat | None = None  # once `place`d: the file's stat (no path walk again)
        self.sealed: Stat | None = None  # once `seal`ed: its stat, size and mtime final

    @classmethod
    def create(
        cls, root: Path | str, path: str, *, hasher_factory: HasherFactory = DEFAULT_HASHER
    ) -> "TempFile":
        """A fresh, empty temp file for mesh path `path` (a stale one of the same name is reset)."""
        full = _prepare(root, path)
        tmp = full.parent / temp_name(path)
        _clear_temp(tmp)
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
        except OSError as exc:
            raise disk_error(exc, "create", tmp) from exc
        return cls(tmp, fd, target=full, hasher_factory=hasher_factory)

    @classmethod
    def create_or_resume(
        cls, root: Path | str, path: str, *, hasher_factory: HasherFactory = DEFAULT_HASHER,
        folders: BatchFolders | None = None,
    ) -> tuple["TempFile", bool]:
        """The temp file for mesh path `path`: the leftover of an interrupted download when
        there is one (True: its blocks may be reused once verified, see `find_partial`), else a
        fresh, empty one (False). One path check and one open where there is no leftover;
        `folders` checks the folders of a batch of files once for all of them."""
        if folders is None:
            full = os.fspath(_prepare(root, path))
        else:
            full = folders.target(path)
        tmp = Path(os.path.join(os.path.dirname(full), temp_name(path)))
        full = Path(full)
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
        except FileExistsError:
            st = safepath.lstat_or_none(tmp)
            if st is not None and stat.S_ISREG(st.st_mode):
                return cls.open_existing(tmp, target=full, hasher_factory=hasher_factory), True
            return cls.create(root, path, hasher_factory=hasher_factory), False
        except OSError as exc:
            raise disk_error(exc, "create", tmp) from exc
        return cls(tmp, fd, target=full, hasher_factory=hasher_factory), False

    @classmethod
    def open_existing(
        cls, p: Path, *, target: Path | None = None, hasher_factory: HasherFactory = DEFAULT_HASHER
    ) -> "TempFile":
        """Reopen a leftover temp file (from `find_partial`) to verify and reuse its blocks."""
        p = Path(p)
        if not p.name.startswith(TMP_PREFIX):
            raise LocalError(f"{p} is not a temporary file of ours")
        try:
            fd = os.open(p, os.O_RDWR | _NOFOLLOW | _CLOEXEC)
        except OSError as exc:
            raise disk_error(exc, "open", p) from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise LocalError(f"{p} is not a regular file")
        return cls(p, fd, target=target, hasher_factory=hasher_factory)

    def __del__(self) -> None:
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def descriptor(self) -> int:
        """The open file's descriptor (for a syncfs of the whole file system)."""
        return self._need_fd()

    def sync(self) -> None:
        """fsync the written bytes (a full disk or I/O error drops the file, as a write does)."""
        self._io("sync", os.fsync, self._need_fd())

    def _need_fd(self) -> int:
        if self._fd is None:
            raise self._failed_again() or LocalError(f"{self.path} is closed")
        return self._fd

    def _failed_again(self) -> DiskError | None:
        """The error that dropped this file, for the writes under way beside the one that met
        it: they report the full disk, not the "closed" file it left (or a full disk would hide)."""
        failure = self._failure
        return None if failure is None else type(failure)(str(failure), failure.errno)

    def _io(self, what: str, fn, *args):
        """Run one I/O call; on failure drop the temp file and raise DiskError."""
        try:
            return fn(*args)
        except OSError as exc:
            failure = self._failed_again() or disk_error(exc, what, self.path)
            self._failure = self._failure or failure
            self.abort()
            raise failure from exc

    def write_at(self, offset: int, data: bytes) -> None:
        fd, view = self._need_fd(), memoryview(data)
        while view:
            n = self._io("write", os.pwrite, fd, view, offset)
            view, offset = view[n:], offset + n

    def start_writeback(self, offset: int, length: int) -> None:
        """Have the kernel begin writing this written range to disk now (disk/writeback.py), so
        that the fsync before the file is placed finds little left to write."""
        if self._fd is not None:
            writeback.start_writeback(self._fd, offset, length)

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes from `offset` (fewer only at the end of the file)."""
        fd, parts, want = self._need_fd(), [], size
        while want > 0:
            chunk = self._io("read", os.pread, fd, want, offset)
            if not chunk:
                break
            parts.append(chunk)
            offset, want = offset + len(chunk), want - len(chunk)
        return b"".join(parts)

    @property
    def size(self) -> int:
        return self._io("stat", os.fstat, self._need_fd()).st_size

    def truncate(self, size: int) -> None:
        self._io("truncate", os.ftruncate, self._need_fd(), size)

    def _digest(self) -> bytes:
        hasher, offset = self._hasher_factory(), 0
        while chunk := self.read_at(offset, CHUNK):
            hasher.update(chunk)
            offset += len(chunk)
        return hasher.digest()

    def _check_target(self, target: Path | None) -> Path:
        if target is None and self.target is None:
            raise LocalError(f"{self.path}: no target given")
        target = target if target is not None else self.target
        given = os.path.abspath(target)  # (strings: this runs for every file written)
        folder, name = os.path.split(given)
        if folder != os.path.dirname(os.path.abspath(self.path)):
            raise LocalError(f"{given} is not in the temp file's folder {self.path.parent}")
        if name.startswith(TMP_PREFIX):
            raise LocalError(f"{given} is a temporary file name")
        return target if isinstance(target, Path) and os.fspath(target) == given else Path(given)

    def finish(
        self, target: Path | None, expected_hash: bytes, mode: int, mtime_ns: int,
        expect: Stat | None, *, archive: Archive | None = None, sync_dir: bool = True,
        digest: bytes | None = None,
    ) -> Path:
        """Verify, then atomically move into place at `target` (None: the target it was made for).

        `target` must be in the temp file's folder (the conflict-copy name qualifies). `expect` is
        what the caller last scanned there (None: nothing may be there). `archive`, if given, is
        called with `target` when a regular file is about to be replaced, after the last check.
        Returns the folder; `sync_dir=False` leaves its fsync (which makes the rename durable) to
        the caller, who syncs it once for a batch of files. `digest`: the content's hash as the
        caller computed it from the bytes it wrote (else the file is read back and hashed)."""
        target = self.seal(target, expected_hash, mode, mtime_ns, digest=digest)
        self._io("sync", os.fsync, self._need_fd())
        folder = self.place(target, expect, archive=archive)
        if sync_dir:
            fsync_dir(folder)
        return folder

    def seal(self, target: Path | None, expected_hash: bytes, mode: int, mtime_ns: int, *,
             digest: bytes | None = None) -> Path:
        """`finish`'s first half: verify the content, set mode and mtime; the checked target.
        The bytes are not durable yet: `make_durable` (or an fsync) must come before `place`.
        The target is not looked at here: `place` does that once, last (a folder in the way is
        refused there, the temp file kept), and each lstat is a GIL hand-off per file."""
        fd = self._need_fd()
        target = self._check_target(target)
        if (digest if digest is not None else self._digest()) != expected_hash:
            self.abort()
            raise IntegrityError(f"{target.name}: content does not match the version's hash")
        self._io("set mode of", os.fchmod, fd, mode & 0o777)
        if os.utime in os.supports_fd:
            self._io("set mtime of", lambda: os.utime(fd, ns=(mtime_ns, mtime_ns)))
        else:  # pragma: no cover - platforms without futimens
            self._io("set mtime of", lambda: os.utime(self.path, ns=(mtime_ns, mtime_ns)))
        self.sealed = Stat.from_os(self._io("stat", os.fstat, fd))  # the rename keeps it
        return target

    def place(self, target: Path, expect: Stat | None, *, archive: Archive | None = None) -> Path:
        """`finish`'s second half, once the bytes are durable: the last look at the target, then
        the rename; the folder, whose sync (`fsync_dir` or `sync_folders`) makes it durable."""
        current = _check_expect(target, expect)  # raises LocalChanged: the temp file is kept
        _refuse_folder(target, current)
        if archive is not None and current is not None and stat.S_ISREG(current.st_mode):
            archive(target)
        try:
            os.replace(self.path, target)
        except OSError as exc:  # said of the target: its name may be what the disk refuses
            self.abort()
            raise disk_error(exc, "move into place", target) from exc
        try:  # what we put there, from our descriptor: never a later write of the user's
            self.placed = self.sealed or Stat.from_os(os.fstat(self._need_fd()))
        finally:
            self.close()
        return target.parent

    def close(self) -> None:
        """Close the file and keep it on disk (for `find_partial` after a restart)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def abort(self) -> None:
        """Close and delete the temp file."""
        try:
            self.close()
        except OSError:
            pass
        _unlink_quietly(self.path)


def find_partial(root: Path | str, path: str) -> Path | None:
    """The leftover temp file of an interrupted download of `path`, if there is one."""
    full = safepath.resolve(root, path)
    tmp = full.parent / temp_name(path)
    st = safepath.lstat_or_none(tmp)
    return tmp if st is not None and stat.S_ISREG(st.st_mode) else None


# --- folders, links, deletions, metadata, renames -----------------------------------------------


def make_dir(root: Path | str, path: str, mode: int, mtime_ns: int) -> None:
    """Create folder `path` (or update an existing one's mode and mtime).

    An entry of another kind there is the user's: LocalChanged. Set a folder's mtime after its
    children are written (writing inside a folder moves its mtime)."""
    full = _prepare(root, path)
    st = safepath.lstat_or_none(full)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise LocalChanged(full, "is not a folder")
    if st is None:
        try:
            os.mkdir(full, 0o755)
        except FileExistsError as exc:
            raise LocalChanged(full, "appeared meanwhile") from exc
        except OSError as exc:
            raise disk_error(exc, "create folder", full) from exc
        fsync_dir(full.parent)
    set_meta(root, path, mode, mtime_ns)


def make_symlink(
    root: Path | str, path: str, target: str, expect: Stat | None, *, archive: Archive | None = None
) -> None:
    """Put a symlink with text `target` at `path` (made under a temp name, then renamed).

    The target text is stored as-is and never followed by us."""
    full = _prepare(root, path)
    tmp = full.parent / temp_name(path)
    _clear_temp(tmp)
    try:
        os.symlink(target, tmp)
    except OSError as exc:
        raise disk_error(exc, "create symlink", full) from exc
    try:
        current = _check_expect(full, expect)
        _refuse_folder(full, current)
        if archive is not None and current is not None and stat.S_ISREG(current.st_mode):
            archive(full)
        os.replace(tmp, full)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise disk_error(exc, "create symlink", full) from exc
    except BaseException:
        _unlink_quietly(tmp)  # a symlink is cheap to make again
        raise
    fsync_dir(full.parent)


def remove(
    root: Path | str, path: str, expect: Stat | None, *, archive: Archive | None = None
) -> bool:
    """Delete the file, symlink or empty folder at `path`, if it is still what `expect` says.

    True when nothing is left at `path`. False when a folder still holds entries (ignored or
    unknown files, never deleted by us) or the entry is not a file, link or folder; the caller
    reports it. LocalChanged when the entry changed since the scan. `archive` is called with the
    path of a regular file just before it is unlinked."""
    full = safepath.resolve(root, path)
    st = _check_expect(full, expect)
    if st is None:
        return True
    if stat.S_ISDIR(st.st_mode):
        return _remove_dir(full)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        return False
    if archive is not None and stat.S_ISREG(st.st_mode):
        archive(full)
    try:
        os.unlink(full)
    except FileNotFoundError:
        return True
    except OSError as exc:
        raise disk_error(exc, "delete", full) from exc
    fsync_dir(full.parent)
    return True


def _remove_dir(full: Path) -> bool:
    """rmdir; our own leftover temp files do not keep a folder alive, anything else does."""
    try:
        entries = os.listdir(full)
    except OSError as exc:
        raise disk_error(exc, "list", full) from exc
    if any(not name.startswith(TMP_PREFIX) for name in entries):
        return False
    for name in entries:
        st = safepath.lstat_or_none(full / name)
        if st is not None and stat.S_ISDIR(st.st_mode):
            return False
        _unlink_quietly(full / name)
    try:
        os.rmdir(full)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False  # something arrived meanwhile
        raise disk_error(exc, "delete folder", full) from exc
    fsync_dir(full.parent)
    return True


def set_meta(root: Path | str, path: str, mode: int, mtime_ns: int, *,
             expect: Stat | None = None) -> None:
    """Set permission bits (& 0o777) and mtime of the entry at `path`; links get the mtime only.
    With `expect`, only if the entry is still the one last scanned (else LocalChanged)."""
    full = safepath.resolve(root, path)
    st = safepath.lstat_or_none(full) if expect is None else _check_expect(full, expect)
    if st is None:
        raise LocalChanged(full, "vanished")
    try:
        if stat.S_ISLNK(st.st_mode):
            if os.utime in os.supports_follow_symlinks:
                os.utime(full, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
            return
        os.chmod(full, mode & 0o777)
        os.utime(full, ns=(mtime_ns, mtime_ns))
    except OSError as exc:
        raise disk_error(exc, "set metadata of", full) from exc


def rename(root: Path | str, src: str, dst: str, expect: Stat) -> None:
    """Move the entry at `src` to `dst` (a rename whose content is already here costs no transfer).

    `expect` is what the caller scanned at `src`. `dst` must be free (else LocalChanged), except
    for a case-only rename ("a.txt" -> "A.txt"), which on a case-insensitive disk goes through a
    temporary name, since renaming straight onto one's own case-twin is a no-op on some systems."""
    s, d = safepath.resolve(root, src), safepath.resolve(root, dst)
    _need_root(Path(os.path.abspath(root)))
    case_only = case_key(check(src)) == case_key(check(dst)) and check(src) != check(dst)
    safepath.refuse_case_collision(root, dst, allow=src)
    _make_parents(Path(os.path.abspath(root)), d)
    st = _check_expect(s, expect)
    if st is None:
        raise LocalChanged(s, "vanished")
    insensitive = case_only and safepath.is_case_insensitive(root)
    dst_st = safepath.lstat_or_none(d)
    if dst_st is not None and not (insensitive and os.path.samestat(st, dst_st)):
        raise LocalChanged(d, "is in the way")
    try:
        if insensitive:
            tmp = s.parent / f"{TMP_PREFIX}{secrets.token_hex(4)}-rename"
            os.rename(s, tmp)
            try:
                os.rename(tmp, d)
            except OSError:
                os.rename(tmp, s)  # put it back under its old name
                raise
        else:
            os.rename(s, d)
    except OSError as exc:
        raise disk_error(exc, f"rename {s} to", d) from exc
    fsync_dir(d.parent)
    if d.parent != s.parent:
        fsync_dir(s.parent)
