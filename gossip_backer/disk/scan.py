"""Walk ROOT and say what is there, what changed and what is gone since the previous scan.

Theory of operation
-------------------
`scan()` walks the whole root with `os.scandir` and an explicit stack (never `os.walk`, never
following a symlink: a link is recorded with its target, a link to a folder is not descended). A
regular file is hashed only when its size, mtime or inode differ from `previous`; otherwise its
previous hash and blocks are reused, so an unchanged rescan costs one `lstat` per path and opens no
file. A file new at its path whose inode, size and mtime are those of a known file elsewhere was
moved there unchanged (renamed, or moved with its folder): it takes that entry's hash and blocks
(`moved_file`), unread. `scan_paths()` does the same for a few paths named by the watcher (plus the subtree of a
folder that appeared, and the previous subtree of a path that vanished, as deleted).

Safety rules the runtime relies on:
- A file that changes while it is hashed (size, mtime or inode differ before and after) is listed in
  `unstable` and not announced; its previous entry, if any, is kept, so it is not "deleted" either.
- A folder or file that cannot be read is listed in `errors`, and its previous entries are kept.
- An ignored path is never reported as deleted; neither is `.backer/` nor a `.backer-tmp-*` file.
- Names that `core.paths.check` refuses (and names that collide with another name once
  NFC-normalised, and links whose target is not UTF-8) are skipped, listed in `refused`, and their
  subtree is not walked. A name that is not UTF-8 is a mesh path like any other: it is kept as
  `os.fsdecode` gives it (surrogate escapes, see core/paths.py) and mirrored byte for byte.
- A root that cannot be listed raises `RootUnavailable`: a missing root is never a mass deletion.
  (An emptied root, as when a disk is unmounted, is judged by the runtime by comparing counts.)

`entries` holds every examined path that exists (all paths for `scan()`, only the examined ones for
`scan_paths()`); `changed` lists those that are new or differ in something a peer would see
(kind, size, mtime, mode, hash, link target). Paths whose entry moved only in local details (an
inode, a folder's or a link's mtime) are listed in `refreshed`: the runtime stores their new entry,
so that the next scan does not hash them again, but they make no new version.

A `scan_paths()` given `progress` hands over what it found so far while it walks (a folder of
thousands of files copied into the root is published, and fetched by peers, while the rest of it
is still hashed): after `PROGRESS_FIRST` of walking, then every `PROGRESS_SECONDS`, the new or
changed entries seen since the last hand-over go to `progress` as a ScanResult of their own
(only `entries` and `changed`), and leave the final result's `changed`. Deletions, unstable
files and errors come in the final result only.
"""

from __future__ import annotations

import bisect
import collections
import itertools
import time
from abc import ABC, abstractmethod
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from gossip_backer.core.blocks import BlockHasher, FileHasher, block_size_for, one_block
from gossip_backer.core.paths import BadPath, check, is_text, normalise
from gossip_backer.core.record import (DIR, FILE, SYMLINK, Block, common_int,
                                       one_block_as_weak_sum)
from gossip_backer.disk.ignore import IgnoreMatcher
from gossip_backer.errors import LocalError

CHUNK = 1 << 20  # read files in 1 MiB chunks
TWO_THREADS = 8 << 20  # files from this size are hashed on two threads (`_hash_on_two_threads`)
CHUNK_BUFFERS = 2  # chunks in hand at once: one read here while the helper cuts the other (a
# sender rescanning a large file during an in-place edit holds 1 MiB more, not 3)
PROGRESS_SECONDS = 0.25  # a partial scan_paths hands over what it found this often,
PROGRESS_FIRST = 0.05  # the first time this soon: the peers start fetching while the rest is hashed
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0))


@one_block_as_weak_sum
@dataclass(frozen=True, slots=True)
class ScanEntry:
    """What a scan saw of one local path (the runtime converts it to the store's IndexEntry)."""

    path: str
    size: int
    mtime_ns: int
    inode: int
    mode: int  # permission bits only (stat.S_IMODE)
    kind: str  # FILE, DIR or SYMLINK
    hash: bytes | None = None
    block_size: int = 0
    blocks: tuple[Block, ...] = ()
    target: str | None = None  # symlink target, as os.readlink gives it


class FileHash(NamedTuple):
    hash: bytes
    block_size: int
    blocks: tuple[Block, ...]


HashFile = Callable[[str, int, int], FileHash]  # (path, size, block size it had, or 0)


@dataclass(slots=True)
class ScanResult:
    entries: dict[str, ScanEntry] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)  # local details moved: store, no version
    deleted: list[str] = field(default_factory=list)
    unstable: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # path -> why it could not be read
    hashed_bytes: int = 0
    files: int = 0
    dirs: int = 0
    links: int = 0

    @property
    def total(self) -> int:
        return self.files + self.dirs + self.links


class RootUnavailable(LocalError):
    """The root cannot be listed: nothing may be concluded about its files."""

    def __init__(self, root: str, reason: str) -> None:
        super().__init__(f"root {root} is {reason}")
        self.reason = reason


class FileChanged(OSError):
    """The file was replaced by something that is not a regular file while we opened it."""


def hash_file(path: str, size: int, current: int = 0) -> FileHash:
    """Hash one regular file in 1 MiB chunks, never following a symlink nor blocking on a fifo.
    `current` is the block size its last version had: kept while the size allows, so a file
    that grows a little keeps its block boundaries and only its changed blocks move."""
    block_size = block_size_for(size, current)
    fd = os.open(path, _OPEN_FLAGS)
    with open(fd, "rb", buffering=0, closefd=True) as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileChanged(path)
        if size >= TWO_THREADS:
            file_hash, blocks = _hash_on_two_threads(f, block_size)
        else:
            file_hash, blocks = _hash_read(f, size, block_size)
    return FileHash(file_hash, block_size, tuple(blocks))


def _hash_read(f, size: int, block_size: int) -> tuple[bytes, tuple[Block, ...]]:
    """A file under TWO_THREADS read in chunks up to its scanned `size`, no read past it to
    meet the end (a file that grew meanwhile is caught by the caller's second lstat); one that
    fits one block hashed once. Each syscall of the scan thread is a GIL hand-off that the
    loop and the block server wait on."""
    buf = bytearray(min(CHUNK, max(size, 1)))  # each chunk is consumed at once
    view = memoryview(buf)
    if 0 < size <= min(block_size, CHUNK):
        return one_block(view[:f.readinto(buf)])
    hasher, left = BlockHasher(block_size), size
    while left > 0 and (n := f.readinto(buf)):
        hasher.update(view[:n])
        left -= n
    return hasher.finish()


def _hash_on_two_threads(f, block_size: int) -> tuple[bytes, tuple[Block, ...]]:
    """A large file's two passes side by side: this thread reads each chunk and feeds the whole
    hash, a helper thread cuts the same chunk into blocks (strong hash and weak sum). BLAKE3,
    numpy and read() release the GIL, so on two cores a large new file is published in about
    half the time (the scan is what a peer waits for before the first block can travel)."""
    blocks, whole = BlockHasher(block_size, whole=False), FileHasher()
    buffers = [bytearray(CHUNK) for _ in range(CHUNK_BUFFERS)]
    in_use: collections.deque[Future] = collections.deque()  # chunk i holds buffers[i % N]
    with ThreadPoolExecutor(1, thread_name_prefix="scan-blocks") as helper:
        try:
            for i in itertools.count():
                if len(in_use) == CHUNK_BUFFERS:
                    in_use.popleft().result()  # its buffer is free again
                buf = buffers[i % CHUNK_BUFFERS]
                n = f.readinto(buf)
                if not n:
                    break
                view = memoryview(buf)[:n]
                in_use.append(helper.submit(blocks.update, view))
                whole.update(view)
            for done in in_use:
                done.result()
        finally:
            for pending in in_use:
                pending.cancel()
    return blocks.finish(whole.digest())


def root_state(root: Path | str, *, require_state_dir: bool = False) -> str | None:
    """None when the root is usable, else why not: 'missing', 'not a directory', 'unreadable'
    (or, with `require_state_dir`, 'without its .backer folder': the sign of an unmounted disk)."""
    try:
        st = os.stat(root)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError:
        return "unreadable"
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    try:
        with os.scandir(root) as it:
            next(it, None)
    except OSError:
        return "unreadable"
    if require_state_dir and not os.path.isdir(os.path.join(root, ".backer")):
        return "without its .backer folder"
    return None


def scan(root: Path | str, previous: Mapping[str, Any], ignore: IgnoreMatcher, *,
         hash_file: HashFile | None = None) -> ScanResult:
    """Walk the whole root. `previous` maps paths to ScanEntry-like objects (same fields)."""
    sc = _Scanner(root, previous, ignore, hash_file)
    sc.walk("", sc.root, is_root=True)
    for path, prev in previous.items():
        if path not in sc.result.entries:
            sc.gone(path, prev)
    return sc.finish()


def scan_paths(root: Path | str, paths: Iterable[str], previous: Mapping[str, Any],
               ignore: IgnoreMatcher, *, hash_file: HashFile | None = None,
               progress: Callable[[ScanResult], None] | None = None) -> ScanResult:
    """Re-examine only `paths` (relative), the subtree of a folder that appeared or was replaced,
    and any ancestor unknown to `previous` (a folder whose first events the watcher missed).
    `progress` receives what was found so far while a large subtree is walked (see the module
    docstring); the result then holds the rest."""
    sc = _Scanner(root, previous, ignore, hash_file, progress)
    reason = root_state(sc.root)
    if reason is not None:
        raise RootUnavailable(sc.root, reason)
    for rel in to_revisit((normalise(p) for p in paths), previous):
        if rel not in sc.done:
            sc.revisit(rel)
    return sc.finish()


# -- the pure half: what a scan's observations mean (testing/memscan.py shares it) -------------

def to_revisit(paths: Iterable[str], previous: Mapping[str, Any]) -> list[str]:
    """The paths a partial scan looks at: those named, and any ancestor `previous` does not
    know (a folder whose first events the watcher missed), parents first so that a walked
    subtree covers its children."""
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
    return sorted(todo)


def record(result: ScanResult, rel: str, prev: Any, entry: ScanEntry) -> None:
    """Note what the scan saw at `rel`: a change a peer would see, or local details that moved
    (stored, no new version), or nothing new."""
    result.entries[rel] = entry
    if entry is prev:  # unchanged (an index row's fields may cost a call each to read)
        return
    if prev is None or _differs(prev, entry):
        result.changed.append(rel)
    elif _local_moved(prev, entry):
        result.refreshed.append(rel)


def unchanged_file(rel: str, prev: Any, size: int, mtime_ns: int, inode: int,
                   mode: int) -> Any:
    """The entry of a file whose size, mtime and inode did not move since `prev`: its hash and
    blocks stand (a mode change alone needs no hashing). None: the file must be hashed.
    An unchanged file's entry is `prev` itself, whatever its type (the running node's index
    rows have ScanEntry's fields): an unchanged rescan of 100,000 files makes no new entry."""
    if (prev is None or prev.kind != FILE or prev.hash is None
            or (prev.size, prev.mtime_ns, prev.inode) != (size, mtime_ns, inode)):
        return None
    if prev.mode == mode:
        return prev  # unchanged: only stat'ed
    return ScanEntry(rel, size, mtime_ns, inode, mode, FILE, prev.hash, prev.block_size,
                     tuple(prev.blocks))


def moved_file(rel: str, known: Any, size: int, mtime_ns: int, inode: int,
               mode: int) -> ScanEntry | None:
    """The entry of a file at `rel` that is `known` (the entry another path had, with this
    inode) moved here unchanged: renamed, or moved with its folder. Its size and mtime are
    those of `known`, which a rename keeps, so its hash and blocks stand and it is not read
    (a renamed 512 MiB file was hashed again: 0.25 s and 0.4 s of CPU; a moved folder of
    photos, every byte). The same trust as `unchanged_file`'s in size, mtime and inode. Only
    when `known` is cut in the blocks a new file of its size gets (one that grew across a
    size step keeps smaller ones): the entry is then what hashing it would give, and a peer
    gets the shorter block list. None: the file must be hashed."""
    if (known is None or known.path == rel or known.kind != FILE or known.hash is None
            or (known.size, known.mtime_ns, known.inode) != (size, mtime_ns, inode)
            or known.block_size != block_size_for(size)):
        return None
    return ScanEntry(rel, size, mtime_ns, inode, mode, FILE, known.hash, known.block_size,
                     tuple(known.blocks))


def same_entry(prev: Any, entry: ScanEntry) -> bool:
    """Does `prev` (a ScanEntry or an index row) say all that `entry` says? Then it stands."""
    return prev is not None and (prev.path, prev.size, prev.mtime_ns, prev.inode, prev.mode,
                                 prev.kind, prev.hash, prev.block_size, tuple(prev.blocks),
                                 prev.target) == (
        entry.path, entry.size, entry.mtime_ns, entry.inode, entry.mode, entry.kind, entry.hash,
        entry.block_size, entry.blocks, entry.target)


def finish(result: ScanResult, deleted: set[str]) -> ScanResult:
    """Sort the lists, count the kinds; a path seen again is not deleted."""
    result.deleted = sorted(deleted - result.entries.keys())
    result.changed = sorted(set(result.changed) & result.entries.keys())
    result.refreshed = sorted(set(result.refreshed) & result.entries.keys())
    result.unstable.sort()
    result.refused.sort()
    for entry in result.entries.values():
        if entry.kind == FILE:
            result.files += 1
        elif entry.kind == DIR:
            result.dirs += 1
        else:
            result.links += 1
    return result


class TreeScan(ABC):
    """What one scan pass decides whatever the tree is made of (testing/memscan.py scans an
    in-memory tree with it): which names count, what a revisited path means, what is gone.
    A subclass says how to look: `_locate`, `examine`, `walk_below`, and `_refuse_twins`."""

    def __init__(self, previous: Mapping[str, Any], ignore: IgnoreMatcher) -> None:
        self.previous = previous
        self.ignore = ignore
        self.result = ScanResult()
        self.done: set[str] = set()  # examined paths (present or not)
        self.deleted: set[str] = set()
        self._kept_prefixes: list[str] = []  # unreadable folders: keep what we knew below them
        self._sorted_prev: list[str] | None = None
        self._files_by_inode: dict[int, Any] | None = None

    # -- what a subclass provides --------------------------------------------------------------

    @abstractmethod
    def _locate(self, rel: str) -> tuple[Any, bool, int] | None:
        """(where, is a folder, inode) of `rel`; None if it, or a real folder above it, is gone."""

    @abstractmethod
    def examine(self, rel: str, where: Any) -> str | None:
        """Record one path; return its kind, or None if it is not recorded."""

    @abstractmethod
    def walk_below(self, rel: str, where: Any) -> None:
        """Examine everything below the folder `rel`."""

    def _refuse_twins(self, rel: str, where: Any) -> None:
        """Refuse other names of `rel` on disk that are `rel` once normalised (if the tree
        can hold such names)."""

    # -- names ---------------------------------------------------------------------------------

    def _name(self, base: str, name: str, is_dir: bool, seen: set[str]) -> str | None:
        """The mesh path of a directory entry, or None when it is ignored or refused."""
        raw = base + name
        if not name.isascii():
            name = normalise(name)  # a name that is not UTF-8 keeps its bytes (surrogate escapes)
        rel = base + name
        if self.ignore.matches_entry(rel, name, is_dir):
            return None
        if rel not in self.previous:  # a known path passed this check when it was recorded
            try:
                check(rel)
            except BadPath:
                self.result.refused.append(raw)
                return None
        if rel in seen:  # two names on disk, one once NFC-normalised
            self.result.refused.append(raw)
            return None
        seen.add(rel)
        return rel

    # -- files -------------------------------------------------------------------------------

    def known_file(self, rel: str, prev: Any, size: int, mtime_ns: int, inode: int,
                   mode: int) -> Any:
        """The entry of a file that needs no hashing, or None: unchanged at its path
        (`unchanged_file`), or moved here unchanged from another known path (`moved_file`)."""
        same = unchanged_file(rel, prev, size, mtime_ns, inode, mode)
        if same is None and (prev is None or prev.inode != inode):
            same = moved_file(rel, self._files_by_inode_of_previous().get(inode), size, mtime_ns,
                              inode, mode)
        return same

    def _files_by_inode_of_previous(self) -> dict[int, Any]:
        """inode -> the known file entry with it; built once per scan, when a file is new."""
        if self._files_by_inode is None:
            self._files_by_inode = {e.inode: e for e in self.previous.values()
                                    if e.kind == FILE and e.hash is not None and e.inode}
        return self._files_by_inode

    # -- incremental ---------------------------------------------------------------------------

    def revisit(self, rel: str) -> None:
        found = self._locate(rel)
        prev = self.previous.get(rel)
        if found is None:
            self.done.add(rel)
            if prev is not None:
                self.gone(rel, prev)
            self._gone_below(rel)
            return
        where, is_dir, inode = found
        if self.ignore.matches(rel, is_dir):
            self.done.add(rel)
            return
        self._refuse_twins(rel, where)
        if not _acceptable(rel):
            self.result.refused.append(rel)
            return
        kind = self.examine(rel, where)
        if kind is None and rel not in self.result.entries and prev is not None:
            self.gone(rel, prev)  # became a fifo/socket, or vanished while hashed
        replaced = prev is None or prev.kind != DIR or prev.inode != inode
        if kind == DIR and replaced:
            self.walk_below(rel, where)
        if kind != DIR or replaced:
            self._gone_below(rel)

    def _gone_below(self, rel: str) -> None:
        """Report the previous subtree of `rel` that this pass did not see again."""
        if self._sorted_prev is None:
            self._sorted_prev = sorted(self.previous)
        keys, prefix = self._sorted_prev, rel + "/"
        i = bisect.bisect_left(keys, prefix)
        while i < len(keys) and keys[i].startswith(prefix):
            path = keys[i]
            if path not in self.result.entries:
                self.gone(path, self.previous[path])
            i += 1

    def gone(self, path: str, prev: Any) -> None:
        """`path` was known and not seen: deleted, unless ignored or below an unreadable folder."""
        if path in self.result.entries or path in self.result.errors:
            return
        if any(path.startswith(p) for p in self._kept_prefixes):
            self.result.entries[path] = _as_entry(prev)
            return
        if self.ignore.matches(path, prev.kind == DIR):
            return
        self.deleted.add(path)

    def finish(self) -> ScanResult:
        return finish(self.result, self.deleted)


class _Scanner(TreeScan):
    """TreeScan of a real directory: lstat, scandir, never a followed link."""

    def __init__(self, root: Path | str, previous: Mapping[str, Any], ignore: IgnoreMatcher,
                 hasher: HashFile | None,
                 progress: Callable[[ScanResult], None] | None = None) -> None:
        super().__init__(previous, ignore)
        self.root = os.path.abspath(os.fspath(root))
        self.hash_file = hasher or hash_file
        self._progress = progress
        self._handed_at = time.monotonic() - (PROGRESS_SECONDS - PROGRESS_FIRST)

    def _hand_over(self) -> None:
        """Give `progress` the changes found since the last hand-over (see the module
        docstring); they stay in `entries`, so that nothing found is taken for deleted."""
        now = time.monotonic()
        if now - self._handed_at < PROGRESS_SECONDS or not self.result.changed:
            return
        self._handed_at = now
        found, self.result.changed = self.result.changed, []
        entries = self.result.entries
        self._progress(ScanResult(entries={p: entries[p] for p in found}, changed=sorted(found)))

    # -- walking -------------------------------------------------------------------------------

    def walk(self, prefix: str, disk_dir: str, *, is_root: bool = False) -> None:
        """Examine everything below `disk_dir`, whose mesh path is `prefix` ('' for the root)."""
        stack = [(prefix, disk_dir)]
        while stack:
            prefix, disk_dir = stack.pop()
            try:
                with os.scandir(disk_dir) as it:
                    items = list(it)
            except OSError as exc:
                if is_root and not prefix:
                    raise RootUnavailable(self.root, root_state(self.root) or "unreadable") from exc
                self._unlistable(prefix, exc)
                continue
            base = prefix + "/" if prefix else ""
            seen: set[str] = set()
            for item in items:
                rel = self._name(base, item.name, item.is_dir(follow_symlinks=False), seen)
                if rel is None:
                    continue
                try:
                    st = item.stat(follow_symlinks=False)
                except OSError:
                    continue  # vanished between listing and stat: as if never seen
                if self.examine(rel, (item.path, st)) == DIR:
                    stack.append((rel, item.path))
                if self._progress is not None:
                    self._hand_over()

    def _unlistable(self, prefix: str, exc: OSError) -> None:
        if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
            # The folder vanished mid-walk: forget it; its deletion is seen by the caller.
            self.result.entries.pop(prefix, None)
            return
        self.result.errors[prefix] = exc.strerror or str(exc)
        self._kept_prefixes.append(prefix + "/")

    # -- one path ------------------------------------------------------------------------------

    def examine(self, rel: str, where: tuple[str, os.stat_result]) -> str | None:
        """Record one path from its lstat; return its kind, or None if it is not recorded."""
        disk, st = where
        self.done.add(rel)
        prev = self.previous.get(rel)
        fmt = stat.S_IFMT(st.st_mode)
        if fmt == stat.S_IFREG:
            entry = self._file(rel, disk, st, prev)
        elif fmt == stat.S_IFDIR:
            entry = self._plain(rel, st, prev, DIR, None)
        elif fmt == stat.S_IFLNK:
            try:
                target = os.readlink(disk)
            except OSError:
                return None
            if not is_text(target):  # a link's target travels as text only
                self.result.refused.append(rel)
                return None
            entry = self._plain(rel, st, prev, SYMLINK, target)
        else:
            return None  # fifo, socket, device: not mirrored
        if entry is None:
            return None
        record(self.result, rel, prev, entry)
        return entry.kind

    def _plain(self, rel: str, st: os.stat_result, prev: Any, kind: str,
               target: str | None) -> ScanEntry:
        size = 0 if kind == DIR else st.st_size
        entry = ScanEntry(rel, size, st.st_mtime_ns, st.st_ino, common_int(stat.S_IMODE(st.st_mode)),
                          kind, target=target)
        return prev if same_entry(prev, entry) else entry

    def _file(self, rel: str, disk: str, st: os.stat_result, prev: Any) -> Any:
        mode = common_int(stat.S_IMODE(st.st_mode))
        same = self.known_file(rel, prev, st.st_size, st.st_mtime_ns, st.st_ino, mode)
        if same is not None:
            return same
        try:
            current = prev.block_size if prev is not None and prev.kind == FILE else 0
            fh = self.hash_file(disk, st.st_size, current or 0)
            after = os.lstat(disk)
        except FileNotFoundError:
            return None  # gone: reported deleted if it was known
        except OSError as exc:
            if isinstance(exc, FileChanged) or stat.S_ISLNK(_lstat_mode(disk)):
                self._unstable(rel, prev)
            else:
                self.result.errors[rel] = exc.strerror or str(exc)
                self._keep(rel, prev)
            return None
        self.result.hashed_bytes += st.st_size
        if _moved(st, after):
            self._unstable(rel, prev)
            return None
        return ScanEntry(rel, st.st_size, st.st_mtime_ns, st.st_ino, mode, FILE, fh.hash,
                         fh.block_size, tuple(fh.blocks))

    def _unstable(self, rel: str, prev: Any) -> None:
        self.result.unstable.append(rel)
        self._keep(rel, prev)

    def _keep(self, rel: str, prev: Any) -> None:
        if prev is not None:
            self.result.entries[rel] = _as_entry(prev)

    # -- incremental ---------------------------------------------------------------------------

    def walk_below(self, rel: str, where: tuple[str, os.stat_result]) -> None:
        self.walk(rel, where[0])

    def _locate(self, rel: str) -> tuple[tuple[str, os.stat_result], bool, int] | None:
        """((on-disk path, lstat), is a folder, inode) of `rel`; None if it, or a real folder
        above it, is gone."""
        disk = self.root
        parts = rel.split("/")
        st = None
        for i, part in enumerate(parts):
            st, disk = self._child(disk, part)
            if st is None or (i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode)):
                return None  # missing, or a path through a symlink or file
        return (disk, st), stat.S_ISDIR(st.st_mode), st.st_ino

    def _refuse_twins(self, rel: str, where: tuple[str, os.stat_result]) -> None:
        """Refuse the other names of `rel`'s folder that are `rel` once NFC-normalised (a full
        walk refuses them in `_name`; a watcher's event names only the normalised path)."""
        disk = where[0]
        name = os.path.basename(disk)
        if name.isascii():
            return
        base = rel.rpartition("/")[0]
        try:
            with os.scandir(os.path.dirname(disk)) as it:
                twins = [i.name for i in it if i.name != name and not i.name.isascii()
                         and _nfc_or_none(i.name) == normalise(name)]
        except OSError:
            return
        self.result.refused.extend((base + "/" if base else "") + t for t in twins)

    @staticmethod
    def _child(disk_dir: str, name: str) -> tuple[os.stat_result | None, str]:
        path = os.path.join(disk_dir, name)
        try:
            return os.lstat(path), path
        except OSError:
            pass
        if name.isascii():
            return None, path
        try:  # the name may be stored on disk in another normal form (NFD)
            with os.scandir(disk_dir) as it:
                for item in it:
                    if normalise(item.name) == name:
                        return item.stat(follow_symlinks=False), item.path
        except OSError:
            pass
        return None, path


def _nfc_or_none(name: str) -> str | None:
    """The name NFC-normalised; None for a name that is not UTF-8 (it has no other form)."""
    return normalise(name) if is_text(name) else None


def _acceptable(rel: str) -> bool:
    try:
        check(rel)
    except BadPath:
        return False
    return True


def _moved(before: os.stat_result, after: os.stat_result) -> bool:
    """Whether size, mtime or inode differ between two lstats of one file."""
    return (before.st_size, before.st_mtime_ns, before.st_ino) != (
        after.st_size, after.st_mtime_ns, after.st_ino)


def _lstat_mode(path: str) -> int:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return 0


def _differs(prev: Any, entry: ScanEntry) -> bool:
    """Whether a peer would see a difference (a folder's mtime and any inode are local details)."""
    if prev.kind != entry.kind:
        return True
    if entry.kind == DIR:
        return prev.mode != entry.mode
    if entry.kind == SYMLINK:
        return prev.target != entry.target
    return (prev.size, prev.mtime_ns, prev.mode, prev.hash) != (
        entry.size, entry.mtime_ns, entry.mode, entry.hash)


def _local_moved(prev: Any, entry: ScanEntry) -> bool:
    return (prev.inode, prev.mtime_ns, prev.size) != (entry.inode, entry.mtime_ns, entry.size)


def _as_entry(prev: Any) -> ScanEntry:
    if type(prev) is ScanEntry:
        return prev
    return ScanEntry(prev.path, prev.size, prev.mtime_ns, prev.inode, prev.mode, prev.kind,
                     prev.hash, prev.block_size, tuple(prev.blocks), prev.target)
