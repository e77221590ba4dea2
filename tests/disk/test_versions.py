"""versions: the content-addressed archive of replaced and deleted files (real files)."""

from __future__ import annotations

import errno
import hashlib

from gossip_backer.core.blocks import strong_hash
import os
from pathlib import Path

import pytest

from gossip_backer.disk import versions


def h(data: bytes) -> bytes:
    return strong_hash(data)  # the mesh hash (BLAKE3), as the default hasher


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / ".backer").mkdir(parents=True, mode=0o700)
    return r


def test_round_trip(root: Path) -> None:
    f = root / "doc.txt"
    f.write_bytes(b"version one")
    assert versions.archive(root, f, h(b"version one")) is True
    assert f.read_bytes() == b"version one"  # the source stays: the caller replaces it
    p = versions.open_version(root, h(b"version one"))
    assert p == root / ".backer" / "versions" / "objects" / h(b"version one").hex()[:2] / h(b"version one").hex()
    assert p.read_bytes() == b"version one"
    assert list(versions.all_versions(root)) == [h(b"version one")]
    assert versions.remove_version(root, h(b"version one")) is True
    assert versions.open_version(root, h(b"version one")) is None
    assert versions.remove_version(root, h(b"version one")) is False
    assert list(versions.all_versions(root)) == []


def test_each_content_is_stored_once(root: Path) -> None:
    for name in ("a", "b", "c"):
        (root / name).write_bytes(b"same bytes")
    results = [versions.archive(root, root / n, h(b"same bytes")) for n in ("a", "b", "c")]
    assert results == [True, False, False]
    (root / "d").write_bytes(b"other")
    versions.archive(root, root / "d", h(b"other"))
    assert sorted(versions.all_versions(root)) == sorted([h(b"same bytes"), h(b"other")])


def test_the_stored_bytes_survive_the_source_being_replaced(root: Path) -> None:
    f = root / "f"
    f.write_bytes(b"old")
    versions.archive(root, f, h(b"old"))
    tmp = root / "new"
    tmp.write_bytes(b"new")
    os.replace(tmp, f)  # what apply.finish does next
    assert versions.open_version(root, h(b"old")).read_bytes() == b"old"


def test_a_changed_file_is_not_stored_under_a_wrong_hash(root: Path) -> None:
    f = root / "f"
    f.write_bytes(b"edited since the scan")
    with pytest.raises(versions.ArchiveMismatch):
        versions.archive(root, f, h(b"what the scan saw"))
    assert list(versions.all_versions(root)) == []
    assert versions.sweep(root) == 0  # and no temp file left behind


def test_copies_when_linking_fails(root: Path, monkeypatch) -> None:
    f = root / "f"
    f.write_bytes(b"x" * 3_000_000)

    def no_link(*a, **kw):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    assert versions.archive(root, f, h(b"x" * 3_000_000)) is True
    p = versions.open_version(root, h(b"x" * 3_000_000))
    assert p.read_bytes() == f.read_bytes()
    assert os.stat(p).st_ino != os.stat(f).st_ino


def test_a_file_with_other_links_is_copied(root: Path) -> None:
    f = root / "f"
    f.write_bytes(b"shared inode")
    os.link(f, root / "g")  # the user's own hard link could still edit a linked object
    versions.archive(root, f, h(b"shared inode"))
    assert os.stat(versions.open_version(root, h(b"shared inode"))).st_ino != os.stat(f).st_ino


def test_custom_hasher(root: Path) -> None:
    f = root / "f"
    f.write_bytes(b"abc")
    digest = hashlib.sha256(b"abc").digest()
    assert versions.archive(root, f, digest, hasher_factory=hashlib.sha256) is True
    assert versions.open_version(root, digest).read_bytes() == b"abc"


def test_refuses_symlinks_and_bad_hashes(root: Path) -> None:
    (root / "target").write_bytes(b"t")
    (root / "link").symlink_to("target")
    with pytest.raises(versions.LocalError):
        versions.archive(root, root / "link", h(b"t"))
    with pytest.raises(ValueError):
        versions.open_version(root, b"")


def test_all_versions_skips_strangers_and_sweep_clears_temps(root: Path) -> None:
    objects = versions.objects_dir(root)
    (objects / "ab").mkdir(parents=True)
    (objects / "ab" / "tmp-123").write_bytes(b"")
    (objects / "ab" / "zz-not-hex").write_bytes(b"")
    (objects / "README").write_bytes(b"")
    assert list(versions.all_versions(root)) == []
    assert versions.sweep(root) == 1
    assert list(versions.all_versions(root / "nowhere")) == []


def test_the_archive_folders_are_private(root: Path) -> None:
    """Issue 11: versions/ and versions/objects/ were created 0755; like .backer/ they are 0700."""
    old = os.umask(0o022)
    try:
        data = b"private content"
        src = root / "f.txt"
        src.write_bytes(data)
        assert versions.archive(root, src, strong_hash(data))
    finally:
        os.umask(old)
    obj = versions.object_path(root, strong_hash(data))
    for folder in (versions.objects_dir(root).parent, versions.objects_dir(root), obj.parent):
        assert oct(folder.stat().st_mode & 0o777) == oct(0o700), folder


def test_object_file_is_object_path_as_a_string(tmp_path) -> None:
    """The block server's string form names the same file as object_path (it is read as the
    archive source of every block served)."""
    h = bytes(range(32))
    objects = os.fspath(versions.objects_dir(tmp_path))
    assert versions.object_file(objects, h) == os.fspath(versions.object_path(tmp_path, h))
    assert versions.object_file(objects, h).endswith(os.path.join("00", h.hex()))
    with pytest.raises(ValueError):
        versions.object_file(objects, b"x")
