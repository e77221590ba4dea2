"""The revision archive: bytes of replaced and deleted files, under ROOT/.backer/versions/.

A content-addressed store: `versions/objects/<first 2 hex>/<hash hex>`, each content once, however
many paths or versions share it. This module stores bytes only. Which path had which content when,
made by which node, lives in the store's `revisions` table; retention (`core.retention`) decides
what to drop and the caller calls `remove_version` for contents no revision row needs any more.

`archive` leaves the source file where it is. Callers archive the old file from the `archive`
callback of `apply.TempFile.finish` / `apply.remove`, i.e. right before that file is atomically
replaced or unlinked, so a crash never leaves a path without its old or its new content. To keep
that cheap the object is a hard link to the old file when the file has no other links, and a
copy otherwise (or when linking fails: another filesystem, no hard links). The bytes are hashed
on the way in (`verify`) so a file edited since its scan is refused (`ArchiveMismatch`) rather
than stored under a wrong hash. Restores go through `TempFile.finish`, which checks the hash again.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from gossip_backer.core.paths import STATE_DIR
from gossip_backer.disk.apply import CHUNK, DEFAULT_HASHER, HasherFactory, disk_error, fsync_dir
from gossip_backer.errors import LocalError

__all__ = [
    "ArchiveMismatch",
    "archive",
    "is_empty",
    "open_version",
    "remove_version",
    "all_versions",
    "object_path",
    "objects_dir",
    "sweep",
]

_HEX = frozenset("0123456789abcdef")
_TMP = "tmp-"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class ArchiveMismatch(LocalError):
    """The file's bytes are not the content the caller named: it changed since it was scanned."""


def objects_dir(root: Path | str) -> Path:
    return Path(os.path.abspath(root)) / STATE_DIR / "versions" / "objects"


def object_path(root: Path | str, content_hash: bytes) -> Path:
    """Where the bytes with `content_hash` are (or would be) stored."""
    return Path(object_file(os.fspath(objects_dir(root)), content_hash))


def object_file(objects: str, content_hash: bytes) -> str:
    """`object_path` as a string, under `objects` (`objects_dir` of the root, as a string): the
    block server names the archive as a source of every block it serves, on its trio loop, where
    pathlib's joins took ~30 us a block (2 us this way)."""
    if not isinstance(content_hash, bytes) or len(content_hash) < 2:
        raise ValueError("a content hash is at least 2 bytes")
    text = content_hash.hex()
    return os.path.join(objects, text[:2], text)


def archive(
    root: Path | str, path_on_disk: Path | str, content_hash: bytes, *,
    verify: bool = True, hasher_factory: HasherFactory = DEFAULT_HASHER,
) -> bool:
    """Keep the bytes of the regular file at `path_on_disk` as version `content_hash`.

    The source is left in place. True if the content was stored now, False if the store already
    had it. ArchiveMismatch (nothing stored) if `verify` finds other bytes; DiskError if the disk
    refuses."""
    final = object_path(root, content_hash)
    if os.path.isfile(final):
        return False
    src = Path(path_on_disk)
    try:
        st = os.lstat(src)
        if not stat.S_ISREG(st.st_mode):
            raise LocalError(f"cannot archive {src}: not a regular file")
        _private_dirs(root, final.parent)
    except OSError as exc:
        raise disk_error(exc, "archive", src) from exc
    tmp = final.parent / f"{_TMP}{secrets.token_hex(8)}"
    try:
        digest = _link_or_copy(src, st, tmp, verify, hasher_factory)
        if digest is not None and digest != content_hash:
            raise ArchiveMismatch(f"{src} changed since it was scanned; not archived")
        os.replace(tmp, final)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise disk_error(exc, "archive", src) from exc
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_dir(final.parent)
    return True


def _private_dirs(root: Path | str, folder: Path) -> None:
    """`versions/`, `versions/objects/` and `folder` below it, each created mode 0700 (like
    `.backer/`: what was replaced or deleted is as private as the rest of the state)."""
    versions = objects_dir(root).parent
    for d in (versions, objects_dir(root), folder):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)  # whatever the umask


def _link_or_copy(
    src: Path, st: os.stat_result, tmp: Path, verify: bool, hasher_factory: HasherFactory
) -> bytes | None:
    """Put src's bytes at tmp; return their hash when verifying (hashed from tmp's bytes)."""
    if st.st_nlink == 1:  # with other links, the user could still edit our object through them
        try:
            os.link(src, tmp, follow_symlinks=False)
        except OSError:
            pass  # another filesystem, or no hard links here: copy instead
        else:
            return _hash_file(tmp, hasher_factory) if verify else None
    return _copy(src, tmp, hasher_factory if verify else None)


def _hash_file(p: Path, hasher_factory: HasherFactory) -> bytes:
    hasher = hasher_factory()
    with open(os.open(p, os.O_RDONLY | _NOFOLLOW), "rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
    return hasher.digest()


def _copy(src: Path, tmp: Path, hasher_factory: HasherFactory | None) -> bytes | None:
    hasher = hasher_factory() if hasher_factory is not None else None
    with open(os.open(src, os.O_RDONLY | _NOFOLLOW), "rb", buffering=0) as fin, open(
        os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600), "wb", buffering=0
    ) as fout:
        while chunk := fin.read(CHUNK):
            if hasher is not None:
                hasher.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[fout.write(view):]
        os.fsync(fout.fileno())
    return hasher.digest() if hasher is not None else None


def open_version(root: Path | str, content_hash: bytes) -> Path | None:
    """The file holding version `content_hash`, or None if this node does not keep it.

    Read it, never write it: several revisions may share it."""
    if not isinstance(content_hash, bytes) or len(content_hash) < 2:
        raise ValueError("a content hash is at least 2 bytes")
    text = content_hash.hex()  # a string path: asked for every file a peer sends us
    p = os.path.join(os.path.abspath(root), STATE_DIR, "versions", "objects", text[:2], text)
    try:
        return Path(p) if stat.S_ISREG(os.lstat(p).st_mode) else None
    except FileNotFoundError:
        return None


def is_empty(root: Path | str) -> bool:
    """Whether the archive holds no version at all: one look at the objects folder (no fan-out
    folder there, or none yet), so a batch of new files skips a lookup per file. A fan-out
    folder emptied by retention counts as not empty: a lookup too many, never one too few."""
    try:
        with os.scandir(objects_dir(root)) as entries:
            return next(entries, None) is None
    except (FileNotFoundError, NotADirectoryError):
        return True


def remove_version(root: Path | str, content_hash: bytes) -> bool:
    """Drop version `content_hash`; True if it was there."""
    p = object_path(root, content_hash)
    try:
        os.unlink(p)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise disk_error(exc, "remove version", p) from exc
    return True


def all_versions(root: Path | str) -> Iterator[bytes]:
    """The hashes of every stored version (for garbage collection against `revisions`)."""
    base = objects_dir(root)
    try:
        fans = sorted(os.listdir(base))
    except FileNotFoundError:
        return
    for fan in fans:
        if len(fan) != 2 or not set(fan) <= _HEX:
            continue
        try:
            names = sorted(os.listdir(base / fan))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            if name.startswith(fan) and len(name) % 2 == 0 and set(name) <= _HEX:
                yield bytes.fromhex(name)


def sweep(root: Path | str) -> int:
    """Delete temp files an interrupted `archive` left behind; returns how many."""
    base, count = objects_dir(root), 0
    if not base.is_dir():
        return 0
    for fan in os.listdir(base):
        folder = base / fan
        if not folder.is_dir():
            continue
        for name in os.listdir(folder):
            if name.startswith(_TMP):
                _unlink_quietly(folder / name)
                count += 1
    return count


def _unlink_quietly(p: Path) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass

