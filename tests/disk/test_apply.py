"""apply: temp file + verify + fsync + rename, and never over the user's change (real files)."""

from __future__ import annotations

import errno
import hashlib

from gossip_backer.core.blocks import strong_hash
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gossip_backer.core.paths import TMP_PREFIX, BadPath
from gossip_backer.disk import apply, safepath, versions
from gossip_backer.disk.apply import DiskError, LocalChanged, Stat, TempFile
from gossip_backer.errors import IntegrityError, LocalError

REPO = Path(__file__).resolve().parents[2]
MTIME = 1_600_000_000_123_456_789


def h(data: bytes) -> bytes:
    return strong_hash(data)  # the mesh hash (BLAKE3), as the default hasher


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(TMP_PREFIX))


@pytest.fixture(autouse=True)
def _fresh_probe():
    safepath.forget()
    yield
    safepath.forget()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / ".backer").mkdir(parents=True, mode=0o700)
    return r


@pytest.fixture
def insensitive(monkeypatch) -> None:
    """Pretend the disk ignores case (this ext4 does not): exercises the refusal logic."""
    monkeypatch.setattr(safepath, "_probe", lambda r: True)


def put(root: Path, path: str, data: bytes, *, mode: int = 0o644, mtime_ns: int = MTIME,
        expect: Stat | None = None) -> None:
    with TempFile.create(root, path) as t:
        t.write_at(0, data)
        t.finish(None, h(data), mode, mtime_ns, expect)


# --- the happy path ------------------------------------------------------------------------------


def test_round_trip_sets_content_mode_and_exact_mtime(root: Path) -> None:
    t = TempFile.create(root, "docs/deep/report.txt")
    assert t.path.parent == root / "docs" / "deep" and t.path.name.startswith(TMP_PREFIX)
    assert stat.S_IMODE(os.stat(root / "docs").st_mode) == 0o755 & ~_umask()
    t.write_at(6, b"world")  # blocks arrive in any order
    t.write_at(0, b"hello ")
    assert t.size == 11 and t.read_at(0, 5) == b"hello" and t.read_at(6, 100) == b"world"
    t.finish(root / "docs" / "deep" / "report.txt", h(b"hello world"), 0o100751, MTIME, None)
    target = root / "docs" / "deep" / "report.txt"
    st = os.stat(target)
    assert target.read_bytes() == b"hello world"
    assert stat.S_IMODE(st.st_mode) == 0o751
    assert st.st_mtime_ns == MTIME
    assert temps(target.parent) == []


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_truncate_and_custom_hasher(root: Path) -> None:
    t = TempFile.create(root, "a.bin", hasher_factory=hashlib.sha256)
    t.write_at(0, b"abcdefgh")
    t.truncate(3)
    t.finish(None, hashlib.sha256(b"abc").digest(), 0o600, MTIME, None)
    assert (root / "a.bin").read_bytes() == b"abc"


def test_setuid_bits_are_dropped(root: Path) -> None:
    put(root, "x", b"x", mode=0o4755)
    assert stat.S_IMODE(os.stat(root / "x").st_mode) == 0o755


def test_replace_with_expect_archives_the_old_content(root: Path) -> None:
    put(root, "f.txt", b"old")
    before = apply.stat_of(root, "f.txt")
    archived = []

    def keep_old(p: Path) -> None:
        archived.append(versions.archive(root, p, h(b"old")))

    with TempFile.create(root, "f.txt") as t:
        t.write_at(0, b"new content")
        t.finish(None, h(b"new content"), 0o644, MTIME + 1, before, archive=keep_old)
    assert (root / "f.txt").read_bytes() == b"new content"
    assert archived == [True]
    assert versions.open_version(root, h(b"old")).read_bytes() == b"old"


# --- refusals ------------------------------------------------------------------------------------


def test_bad_hash_raises_and_leaves_nothing(root: Path) -> None:
    t = TempFile.create(root, "sub/evil.bin")
    t.write_at(0, b"not what was promised")
    with pytest.raises(IntegrityError):
        t.finish(None, h(b"the real content"), 0o644, MTIME, None)
    assert not (root / "sub" / "evil.bin").exists()
    assert temps(root / "sub") == []


def test_bad_hash_keeps_the_old_file(root: Path) -> None:
    put(root, "f", b"old")
    t = TempFile.create(root, "f")
    t.write_at(0, b"bad")
    with pytest.raises(IntegrityError):
        t.finish(None, h(b"good"), 0o644, MTIME, apply.stat_of(root, "f"))
    assert (root / "f").read_bytes() == b"old" and temps(root) == []


def test_local_change_is_never_overwritten(root: Path) -> None:
    put(root, "notes.txt", b"scanned")
    scanned = apply.stat_of(root, "notes.txt")
    t = TempFile.create(root, "notes.txt")
    t.write_at(0, b"remote")
    (root / "notes.txt").write_bytes(b"the user typed this")  # meanwhile, the user edits
    with pytest.raises(LocalChanged):
        t.finish(None, h(b"remote"), 0o644, MTIME, scanned)
    assert (root / "notes.txt").read_bytes() == b"the user typed this"
    assert apply.find_partial(root, "notes.txt") == t.path  # kept for reuse
    # the caller makes it a conflict copy: the same temp file, finished under another name
    t.finish(root / "notes.sync-conflict.txt", h(b"remote"), 0o644, MTIME, None)
    assert (root / "notes.sync-conflict.txt").read_bytes() == b"remote"
    assert temps(root) == []


def test_same_size_edit_with_restored_mtime_is_still_caught(root: Path) -> None:
    put(root, "f", b"aaaa")
    scanned = apply.stat_of(root, "f")
    tmp = root / "elsewhere"
    tmp.write_bytes(b"bbbb")
    os.utime(tmp, ns=(MTIME, MTIME))
    os.replace(tmp, root / "f")  # same size and mtime, new inode (editors save like this)
    with pytest.raises(LocalChanged):
        put(root, "f", b"remote", expect=scanned)
    assert (root / "f").read_bytes() == b"bbbb"


def test_expect_none_means_nothing_may_be_there(root: Path) -> None:
    t = TempFile.create(root, "new.txt")
    t.write_at(0, b"remote")
    (root / "new.txt").write_bytes(b"user made it first")
    with pytest.raises(LocalChanged):
        t.finish(None, h(b"remote"), 0o644, MTIME, None)
    assert (root / "new.txt").read_bytes() == b"user made it first"
    t.abort()
    assert temps(root) == []


def test_folder_in_the_way_keeps_the_temp(root: Path) -> None:
    (root / "d").mkdir()
    t = TempFile.create(root, "d")
    t.write_at(0, b"x")
    with pytest.raises(DiskError, match="folder"):
        t.finish(None, h(b"x"), 0o644, MTIME, apply.stat_of(root, "d"))
    assert (root / "d").is_dir() and apply.find_partial(root, "d") is not None
    t.abort()


def test_finish_refuses_a_target_in_another_folder(root: Path) -> None:
    t = TempFile.create(root, "a/x")
    t.write_at(0, b"x")
    with pytest.raises(LocalError):
        t.finish(root / "b" / "x", h(b"x"), 0o644, MTIME, None)
    t.abort()


def test_context_manager_discards_on_error(root: Path) -> None:
    with pytest.raises(RuntimeError):
        with TempFile.create(root, "x") as t:
            t.write_at(0, b"half")
            raise RuntimeError("puller died")
    assert temps(root) == []


def test_symlink_parent_is_refused_and_nothing_is_written_through(root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "link").symlink_to(elsewhere)
    with pytest.raises(BadPath):
        TempFile.create(root, "link/x")
    with pytest.raises(BadPath):
        apply.make_dir(root, "link/sub", 0o755, MTIME)
    with pytest.raises(BadPath):
        apply.make_symlink(root, "link/x", "/etc/passwd", None)
    with pytest.raises(BadPath):
        apply.remove(root, "link/x", None)
    with pytest.raises(BadPath):
        apply.stat_of(root, "link/x")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/abs", "a\x00b", "a\\b", ".backer/x",
                                 ".backer", "x/.backer-tmp-0-y", ""])
def test_bad_paths_are_refused(root: Path, bad: str) -> None:
    with pytest.raises(BadPath):
        TempFile.create(root, bad)
    with pytest.raises(BadPath):
        apply.make_dir(root, bad, 0o755, MTIME)
    assert sorted(p.name for p in root.parent.iterdir()) == ["root"]


def test_case_twin_is_refused_on_an_insensitive_disk(root: Path, insensitive) -> None:
    put(root, "Readme.md", b"x")
    with pytest.raises(safepath.CaseCollision):
        TempFile.create(root, "README.md")
    with pytest.raises(safepath.CaseCollision):
        apply.make_dir(root, "readme.md", 0o755, MTIME)
    with pytest.raises(safepath.CaseCollision):
        apply.make_symlink(root, "README.MD", "x", None)
    put(root, "Readme.md", b"y", expect=apply.stat_of(root, "Readme.md"))  # same name is fine


def test_case_twins_coexist_on_a_case_sensitive_disk(root: Path, monkeypatch) -> None:
    monkeypatch.setattr(safepath, "_probe", lambda r: False)
    put(root, "a.txt", b"lower")
    put(root, "A.txt", b"upper")
    assert (root / "a.txt").read_bytes() == b"lower" and (root / "A.txt").read_bytes() == b"upper"


def test_missing_root_is_not_recreated(tmp_path: Path) -> None:
    gone = tmp_path / "unmounted"
    with pytest.raises(DiskError, match="missing"):
        TempFile.create(gone, "a/b")
    assert not gone.exists()


def test_a_file_where_a_folder_should_be(root: Path) -> None:
    (root / "a").write_bytes(b"file")
    with pytest.raises(DiskError, match="not a folder"):
        TempFile.create(root, "a/b")


def test_batch_folders_check_each_folder_once_and_refuse_what_prepare_refuses(
        root: Path, tmp_path: Path, monkeypatch) -> None:
    """A batch's files share their folders' checks (one lstat each, not one per file and
    folder), with `_prepare`'s refusals: a symlinked folder, a file in a folder's place, a
    missing root; and a folder turned into a symlink after one batch is refused by the next."""
    monkeypatch.setattr(safepath, "_probe", lambda r: False)
    folders = apply.BatchFolders(root)
    looked = []
    real = safepath.lstat_or_none
    monkeypatch.setattr(safepath, "lstat_or_none", lambda p: looked.append(p) or real(p))
    for i in range(5):
        t, resumed = TempFile.create_or_resume(root, f"d/e/f{i}", folders=folders)
        assert not resumed and t.target == root / "d" / "e" / f"f{i}"
        t.write_at(0, b"x")
        t.finish(None, h(b"x"), 0o644, MTIME, None)
    assert sorted(p.name for p in (root / "d" / "e").iterdir()) == [f"f{i}" for i in range(5)]
    assert looked.count(os.path.join(root, "d")) == 1
    assert looked.count(os.path.join(root, "d", "e")) == 1
    monkeypatch.setattr(safepath, "lstat_or_none", real)
    elsewhere = tmp_path / "elsewhere"
    (root / "d").rename(elsewhere)
    (root / "d").symlink_to(elsewhere)  # between two batches
    with pytest.raises(BadPath, match="symlink d"):
        apply.BatchFolders(root).target("d/e/g")
    with pytest.raises(BadPath):
        TempFile.create_or_resume(root, "d/g", folders=apply.BatchFolders(root))
    assert sorted(p.name for p in (elsewhere / "e").iterdir()) == [f"f{i}" for i in range(5)]
    (root / "plain").write_bytes(b"file")
    with pytest.raises(DiskError, match="not a folder"):
        apply.BatchFolders(root).target("plain/x")
    with pytest.raises(BadPath):
        apply.BatchFolders(root).target("../x")
    with pytest.raises(DiskError, match="missing"):
        apply.BatchFolders(tmp_path / "unmounted").target("a/b")
    assert not (tmp_path / "unmounted").exists()


def test_batch_folders_refuse_case_twins_on_an_insensitive_disk(root: Path, insensitive) -> None:
    put(root, "Docs/a.txt", b"x")
    with pytest.raises(safepath.CaseCollision):
        apply.BatchFolders(root).target("docs/b.txt")


# --- resuming ------------------------------------------------------------------------------------


CRASHER = textwrap.dedent("""
    import os, sys
    from gossip_backer.disk.apply import TempFile
    t = TempFile.create(sys.argv[1], "big/file.bin")
    t.write_at(0, b"A" * 4096)
    t.write_at(8192, b"C" * 4096)
    os._exit(9)  # power cut: no cleanup
""")


def test_find_partial_after_a_crash(root: Path) -> None:
    assert apply.find_partial(root, "big/file.bin") is None
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", CRASHER, str(root)], env=env, timeout=30)
    assert proc.returncode == 9
    assert not (root / "big" / "file.bin").exists()
    p = apply.find_partial(root, "big/file.bin")
    assert p is not None and p.name == apply.temp_name("big/file.bin")
    t = TempFile.open_existing(p)
    assert t.read_at(0, 4096) == b"A" * 4096 and t.read_at(8192, 4096) == b"C" * 4096
    t.write_at(4096, b"B" * 4096)  # only the missing block is fetched
    data = b"A" * 4096 + b"B" * 4096 + b"C" * 4096
    t.finish(root / "big" / "file.bin", h(data), 0o644, MTIME, None)
    assert (root / "big" / "file.bin").read_bytes() == data
    assert apply.find_partial(root, "big/file.bin") is None


def test_create_or_resume(root: Path) -> None:
    t, resumed = TempFile.create_or_resume(root, "deep/er/f.bin")  # parents made
    assert not resumed and t.path == apply.find_partial(root, "deep/er/f.bin")
    t.write_at(0, b"kept")
    t.close()
    t2, resumed = TempFile.create_or_resume(root, "deep/er/f.bin")  # the leftover, as it was
    assert resumed and t2.read_at(0, 4) == b"kept"
    t2.finish(root / "deep" / "er" / "f.bin", h(b"kept"), 0o644, MTIME, None)
    assert (root / "deep" / "er" / "f.bin").read_bytes() == b"kept"
    os.mkdir(root / "deep" / "er" / apply.temp_name("deep/er/g"))  # not a file: refused
    with pytest.raises(DiskError):
        TempFile.create_or_resume(root, "deep/er/g")


def test_open_existing_refuses_non_temp_files(root: Path) -> None:
    (root / "user.txt").write_bytes(b"mine")
    with pytest.raises(LocalError):
        TempFile.open_existing(root / "user.txt")


def test_temp_name_is_stable_and_fits(root: Path) -> None:
    long = "é" * 127  # 254 bytes
    name = apply.temp_name("dir/" + long)
    assert name == apply.temp_name("dir/" + long) != apply.temp_name("other/" + long)
    assert len(name.encode()) <= 255
    put(root, long, b"x")
    assert (root / long).read_bytes() == b"x"


def test_create_resets_a_stale_partial(root: Path) -> None:
    t = TempFile.create(root, "f")
    t.write_at(0, b"stale stale")
    t.close()
    t2 = TempFile.create(root, "f")
    assert t2.size == 0
    t2.abort()


# --- folders, links, deletions, metadata ---------------------------------------------------------


def test_make_dir_and_set_meta(root: Path) -> None:
    apply.make_dir(root, "a/b/c", 0o750, MTIME)
    st = os.stat(root / "a" / "b" / "c")
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o750 and st.st_mtime_ns == MTIME
    apply.make_dir(root, "a/b/c", 0o700, MTIME + 5)  # existing folder: metadata only
    assert stat.S_IMODE(os.stat(root / "a/b/c").st_mode) == 0o700
    put(root, "file", b"x")
    with pytest.raises(LocalChanged):
        apply.make_dir(root, "file", 0o755, MTIME)
    apply.set_meta(root, "file", 0o600, MTIME + 7)
    st = os.stat(root / "file")
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_mtime_ns == MTIME + 7
    with pytest.raises(LocalChanged):
        apply.set_meta(root, "gone", 0o600, MTIME)


def test_symlinks_are_mirrored_as_links(root: Path) -> None:
    apply.make_symlink(root, "l/abs", "/etc/passwd", None)
    apply.make_symlink(root, "l/dangling", "../../nowhere/at/all", None)
    assert os.readlink(root / "l" / "abs") == "/etc/passwd"
    assert os.readlink(root / "l" / "dangling") == "../../nowhere/at/all"
    assert apply.stat_of(root, "l/abs").kind == "symlink"
    apply.set_meta(root, "l/abs", 0o777, MTIME)  # links: mtime only, never the target's mode
    assert os.lstat(root / "l" / "abs").st_mtime_ns == MTIME
    # replace a link, with expect
    apply.make_symlink(root, "l/abs", "b", apply.stat_of(root, "l/abs"))
    assert os.readlink(root / "l" / "abs") == "b"
    with pytest.raises(LocalChanged):
        apply.make_symlink(root, "l/abs", "c", None)
    assert os.readlink(root / "l" / "abs") == "b" and temps(root / "l") == []


def test_stat_of_kinds(root: Path) -> None:
    put(root, "f", b"12345")
    (root / "d").mkdir()
    (root / "s").symlink_to("f")
    os.mkfifo(root / "p")
    assert apply.stat_of(root, "f") == Stat(5, MTIME, os.lstat(root / "f").st_ino, "file")
    assert [apply.stat_of(root, p).kind for p in ("d", "s", "p")] == ["dir", "symlink", "other"]
    assert apply.stat_of(root, "missing") is None
    assert apply.stat_of(root, "f/under-a-file") is None


def test_remove_with_expect(root: Path) -> None:
    put(root, "f", b"x")
    scanned = apply.stat_of(root, "f")
    (root / "f").write_bytes(b"edited!")
    with pytest.raises(LocalChanged):
        apply.remove(root, "f", scanned)
    assert (root / "f").read_bytes() == b"edited!"
    with pytest.raises(LocalChanged):
        apply.remove(root, "f", None)
    assert apply.remove(root, "f", apply.stat_of(root, "f")) is True
    assert not (root / "f").exists()
    assert apply.remove(root, "f", None) is True  # already gone


def test_remove_archives_files(root: Path) -> None:
    put(root, "f", b"precious")
    seen = []
    apply.remove(root, "f", apply.stat_of(root, "f"),
                 archive=lambda p: seen.append(versions.archive(root, p, h(b"precious"))))
    assert seen == [True] and versions.open_version(root, h(b"precious")).read_bytes() == b"precious"


def test_remove_links_and_folders(root: Path, tmp_path: Path) -> None:
    target = tmp_path / "target.txt"
    target.write_bytes(b"keep me")
    (root / "link").symlink_to(target)
    assert apply.remove(root, "link", apply.stat_of(root, "link")) is True
    assert target.read_bytes() == b"keep me"  # the link went, not what it points to

    apply.make_dir(root, "empty", 0o755, MTIME)
    assert apply.remove(root, "empty", apply.stat_of(root, "empty")) is True
    assert not (root / "empty").exists()

    apply.make_dir(root, "full", 0o755, MTIME)
    (root / "full" / "ignored.log").write_bytes(b"")
    assert apply.remove(root, "full", apply.stat_of(root, "full")) is False
    assert (root / "full" / "ignored.log").exists()

    apply.make_dir(root, "partial", 0o755, MTIME)
    TempFile.create(root, "partial/big").close()  # a leftover download does not keep it alive
    assert apply.remove(root, "partial", apply.stat_of(root, "partial")) is True

    os.mkfifo(root / "fifo")
    assert apply.remove(root, "fifo", apply.stat_of(root, "fifo")) is False


def test_rename(root: Path) -> None:
    put(root, "a/old.txt", b"content")
    apply.rename(root, "a/old.txt", "b/new.txt", apply.stat_of(root, "a/old.txt"))
    assert (root / "b" / "new.txt").read_bytes() == b"content" and not (root / "a/old.txt").exists()
    put(root, "other", b"in the way")
    with pytest.raises(LocalChanged):
        apply.rename(root, "b/new.txt", "other", apply.stat_of(root, "b/new.txt"))
    with pytest.raises(LocalChanged):
        apply.rename(root, "b/new.txt", "c", Stat(1, 2, 3, "file"))
    assert (root / "other").read_bytes() == b"in the way"


@pytest.mark.parametrize("fold", [False, True], ids=["sensitive", "insensitive"])
def test_case_only_rename(root: Path, monkeypatch, fold: bool) -> None:
    monkeypatch.setattr(safepath, "_probe", lambda r: fold)
    put(root, "readme.txt", b"hi")
    apply.rename(root, "readme.txt", "README.txt", apply.stat_of(root, "readme.txt"))
    assert sorted(p.name for p in root.iterdir() if p.name != ".backer") == ["README.txt"]
    assert (root / "README.txt").read_bytes() == b"hi"


# --- the disk says no ----------------------------------------------------------------------------


@pytest.fixture
def tiny(tmp_path: Path):
    """A 1 MiB tmpfs: a real full disk (needs root and permission to mount, else skipped)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        (mnt / ".backer").mkdir()
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full(tiny: Path) -> None:
    put(tiny, "f", b"old")
    t = TempFile.create(tiny, "f")
    with pytest.raises(DiskError, match="disk full") as info:
        for i in range(8):
            t.write_at(i * 256 * 1024, b"x" * (256 * 1024))
    assert "\n" not in str(info.value)
    assert (tiny / "f").read_bytes() == b"old"  # nothing half-written at the target
    assert temps(tiny) == []  # and the temp file is gone, freeing the space
    put(tiny, "f", b"fits", expect=apply.stat_of(tiny, "f"))
    assert (tiny / "f").read_bytes() == b"fits"


def test_permission_error_is_one_clear_line(root: Path, monkeypatch) -> None:
    t = TempFile.create(root, "f")

    def refuse(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "pwrite", refuse)
    with pytest.raises(DiskError, match="permission denied") as info:
        t.write_at(0, b"x")
    assert "\n" not in str(info.value) and temps(root) == [] and not (root / "f").exists()


def test_abandoned_temp_files_are_removed_and_resumable_ones_kept(tmp_path: Path) -> None:
    """Issue 11: at start-up every `.backer-tmp-*` file no download will resume is removed."""
    from gossip_backer.disk.apply import remove_abandoned_temps, temp_name

    (tmp_path / ".backer").mkdir()
    (tmp_path / "sub").mkdir()
    keep = tmp_path / "sub" / temp_name("sub/big.bin")
    keep.write_bytes(b"verified blocks")
    stale = [tmp_path / temp_name("gone.txt"), tmp_path / "sub" / ".backer-tmp-1234abcd-rename",
             tmp_path / ".backer-tmp-conflict"]
    for p in stale:
        p.write_bytes(b"leftover")
    state = tmp_path / ".backer" / ".backer-tmp-state"  # .backer/ is not ours to sweep here
    state.write_bytes(b"x")
    user = tmp_path / "sub" / "backer-tmp-notours.txt"
    user.write_bytes(b"a user's file")
    removed = remove_abandoned_temps(tmp_path, ["sub/big.bin", "gone-too.txt"])
    assert sorted(removed) == sorted(str(p.relative_to(tmp_path)) for p in stale)
    assert keep.exists() and state.exists() and user.exists()
    assert not any(p.exists() for p in stale)


# --- a batch of small files: seal each, one sync, place each, sync the folders ----------------


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "fsync-each"])
def test_a_batch_is_sealed_made_durable_then_placed(root: Path, monkeypatch, syncfs: bool) -> None:
    if not syncfs:
        monkeypatch.setattr(apply, "_SYNCFS", False)  # a system without syncfs(2)
    files = {f"d{i % 3}/f{i}.txt": b"x%d" % i * (i + 1) for i in range(7)}
    sealed = []
    for path, data in files.items():
        t = TempFile.create(root, path)
        t.write_at(0, data)
        sealed.append((t, t.seal(None, h(data), 0o644, MTIME), path))
    assert not any((root / p).exists() for p in files)  # nothing placed before the sync
    apply.make_durable([t for t, _, _ in sealed])
    folders = [t.place(target, None) for t, target, _ in sealed]
    apply.sync_folders(folders)
    for path, data in files.items():
        assert (root / path).read_bytes() == data
        assert os.stat(root / path).st_mtime_ns == MTIME
    assert all(temps(root / f"d{i}") == [] for i in range(3))


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "fsync-each"])
def test_one_sync_makes_a_batch_durable_with_the_renames_before_it(root: Path, monkeypatch,
                                                                  syncfs: bool) -> None:
    """A round of small files (runtime/puller.py `_Finisher`) makes its own bytes and the round
    before's renames durable at once: one syncfs, or an fsync of each file and each folder."""
    synced, dirs = [], []
    real_syncfs, real_fsync_dir = apply._syncfs, apply.fsync_dir
    monkeypatch.setattr(apply, "_syncfs", lambda fd: synced.append(fd) or (
        real_syncfs(fd) if syncfs else False))
    monkeypatch.setattr(apply, "fsync_dir", lambda folder: dirs.append(folder) or
                        real_fsync_dir(folder))
    before = TempFile.create(root, "d0/before.txt")
    before.write_at(0, b"before")
    folder = before.place(before.seal(None, h(b"before"), 0o644, MTIME), None)
    t = TempFile.create(root, "d1/now.txt")
    t.write_at(0, b"now")
    t.seal(None, h(b"now"), 0o644, MTIME)
    synced.clear(), dirs.clear()  # (making the folders synced them too)
    apply.make_durable([t], [folder, folder])
    assert len(synced) == 1  # one temp file alone would be an fsync: the folder asks for more
    assert dirs == ([] if syncfs else [folder])


def test_seal_refuses_bad_content_and_place_a_changed_target(root: Path) -> None:
    t = TempFile.create(root, "a.txt")
    t.write_at(0, b"good")
    with pytest.raises(IntegrityError):
        t.seal(None, h(b"other"), 0o644, MTIME)
    assert temps(root) == [] and not (root / "a.txt").exists()
    t = TempFile.create(root, "a.txt")
    t.write_at(0, b"good")
    target = t.seal(None, h(b"good"), 0o644, MTIME)
    apply.make_durable([t])
    (root / "a.txt").write_bytes(b"the user's")  # appeared meanwhile
    with pytest.raises(LocalChanged):
        t.place(target, None)
    assert (root / "a.txt").read_bytes() == b"the user's" and len(temps(root)) == 1


def test_a_sealed_and_placed_file_looks_at_its_target_once(root: Path, monkeypatch) -> None:
    """`seal` leaves the target to `place`'s last look: one lstat of it per file, not two
    (each is a GIL hand-off of the receiver's worker thread). A folder that appears in the
    way after the seal is still refused by `place`, and the temp file kept."""
    looked = []
    real = apply.safepath.lstat_or_none
    monkeypatch.setattr(apply.safepath, "lstat_or_none", lambda p: looked.append(
        os.fspath(p)) or real(p))
    t = TempFile.create(root, "a.txt")
    t.write_at(0, b"good")
    looked.clear()
    target = t.seal(None, h(b"good"), 0o644, MTIME)
    apply.make_durable([t])
    t.place(target, None)
    assert looked == [os.fspath(root / "a.txt")]
    t = TempFile.create(root, "d")
    t.write_at(0, b"x")
    target = t.seal(None, h(b"x"), 0o644, MTIME)
    (root / "d").mkdir()
    with pytest.raises(DiskError, match="folder"):
        t.place(target, apply.stat_of(root, "d"))
    assert (root / "d").is_dir() and apply.find_partial(root, "d") is not None
    t.abort()


def test_the_sealed_stat_is_the_placed_files(root: Path, monkeypatch) -> None:
    """`seal` takes the file's stat from its descriptor (the puller tells the folder machine,
    so the watcher's event of the rename is known for ours before the round is done); the
    rename keeps it, and `place` takes no other."""
    t = TempFile.create(root, "a.txt")
    t.write_at(0, b"good")
    target = t.seal(None, h(b"good"), 0o644, MTIME)
    assert t.sealed == apply.Stat(4, MTIME, os.fstat(t.descriptor()).st_ino, "file")
    apply.make_durable([t])
    fstats = []
    real = os.fstat
    monkeypatch.setattr(apply.os, "fstat", lambda fd: fstats.append(fd) or real(fd))
    t.place(target, None)
    assert fstats == [] and t.placed == t.sealed == apply.stat_of(root, "a.txt")


def test_writes_beside_the_one_that_met_a_full_disk_report_the_full_disk(tmp_path: Path) -> None:
    """Block writes run in worker threads side by side: the first to meet a full disk drops the
    temp file, and the others must say "disk full" too, not "closed" (status shows why)."""
    tmp = TempFile(tmp_path / ".backer-tmp-x-f", os.open("/dev/full", os.O_WRONLY))
    for _ in range(2):  # the one that met it, then one that came after the drop
        with pytest.raises(DiskError) as err:
            tmp.write_at(0, b"x" * 4096)
        assert err.value.errno == errno.ENOSPC and "disk full" in str(err.value)
