"""The real disk and the in-memory root pass one conformance suite (tests/disk/conformance.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from gossip_backer.disk import apply, safepath, scan, versions
from gossip_backer.disk.ignore import IgnoreMatcher
from gossip_backer.testing import memdisk
from tests.disk.conformance import CASES, Backend

_ERRORS = dict(LocalChanged=apply.LocalChanged, DiskError=apply.DiskError,
               RootUnavailable=scan.RootUnavailable)


def disk_backend(tmp: Path) -> Backend:
    root = tmp / "root"
    (root / ".backer").mkdir(parents=True, mode=0o700)
    parked = tmp / "parked"

    def full(path: str) -> Path:
        return root / path if path else root

    def write(path: str, data: bytes, *, mode: int = 0o644, mtime_ns: int | None = None) -> None:
        p = full(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chmod(p, mode)
        if mtime_ns is not None:
            os.utime(p, ns=(mtime_ns, mtime_ns))

    def symlink(path: str, target: str) -> None:
        full(path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, full(path))

    def delete(path: str) -> None:
        p = full(path)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()

    def read(path: str) -> bytes | None:
        p = full(path)
        return p.read_bytes() if p.is_file() and not p.is_symlink() else None

    def kind(path: str) -> str | None:
        st = safepath.lstat_or_none(full(path))
        return None if st is None else apply.Stat.from_os(st).kind

    api = SimpleNamespace(
        scan=scan.scan, scan_paths=scan.scan_paths, stat_of=apply.stat_of,
        TempFile=apply.TempFile, find_partial=apply.find_partial, make_dir=apply.make_dir,
        make_symlink=apply.make_symlink, remove=apply.remove, set_meta=apply.set_meta,
        rename=apply.rename, archive=versions.archive,
        has_version=lambda r, hsh: versions.open_version(r, hsh) is not None, **_ERRORS)
    return Backend(
        root=root, api=api, write=write,
        mkdir=lambda path: full(path).mkdir(parents=True),
        symlink=symlink, delete=delete, read=read, kind=kind,
        mode=lambda path: os.lstat(full(path)).st_mode & 0o7777,
        mtime=lambda path: os.lstat(full(path)).st_mtime_ns,
        chmod=lambda path, mode: os.chmod(full(path), mode),
        names=lambda path: sorted(n for n in os.listdir(full(path)) if n != ".backer"),
        vanish=lambda: root.rename(parked), restore=lambda: parked.rename(root),
        ignore=lambda patterns: IgnoreMatcher(root, patterns),
        locate=full)


def mem_backend(tmp: Path) -> Backend:
    root = memdisk.MemRoot("conformance")

    def write(path: str, data: bytes, *, mode: int = 0o644, mtime_ns: int | None = None) -> None:
        root.write(path, data, mode=mode, mtime_ns=mtime_ns)

    api = SimpleNamespace(
        scan=memdisk.scan, scan_paths=memdisk.scan_paths, stat_of=memdisk.stat_of,
        TempFile=memdisk.TempFile, find_partial=memdisk.find_partial,
        make_dir=memdisk.make_dir, make_symlink=memdisk.make_symlink, remove=memdisk.remove,
        set_meta=memdisk.set_meta, rename=memdisk.rename, archive=memdisk.archive,
        has_version=memdisk.has_version, **_ERRORS)
    return Backend(
        root=root, api=api, write=write, mkdir=root.mkdir, symlink=root.symlink,
        delete=root.delete, read=root.read, kind=root.kind, mode=root.mode,
        mtime=lambda path: root.lstat(path).mtime_ns, chmod=root.chmod,
        names=lambda path: sorted(p.rsplit("/", 1)[-1] for p in root.paths()
                                  if (p.rsplit("/", 1)[0] if "/" in p else "") == path),
        vanish=root.vanish, restore=root.restore,
        ignore=lambda patterns: IgnoreMatcher(Path("/nonexistent"), patterns),
        locate=lambda path: memdisk.MemPath(root, path))


FACTORIES = {"disk": disk_backend, "memdisk": mem_backend}


@pytest.fixture(autouse=True)
def _fresh_probe():
    safepath.forget()
    yield
    safepath.forget()


@pytest.mark.parametrize("backend", sorted(FACTORIES))
@pytest.mark.parametrize("case", CASES, ids=lambda fn: fn.__name__[len("case_"):])
def test_conformance(case, backend: str, tmp_path: Path) -> None:
    case(FACTORIES[backend](tmp_path))
