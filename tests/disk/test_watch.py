"""disk.watch on a real folder, driven by trio: the watcher reports creations, edits, deletions and
renames within a second, and never reports `.backer/`, temporary or ignored files.

These tests use real time (a real OS watcher cannot run on a virtual clock), with short polls and
deadlines of one second per expected event."""

from __future__ import annotations

import os
import shutil
import time

import trio
import watchfiles

from gossip_backer.disk.ignore import IgnoreMatcher
from gossip_backer.disk.watch import Watcher, mtimes

DEADLINE = 1.0


class Seen:
    """Batches the watcher yielded, with the time each arrived."""

    def __init__(self) -> None:
        self.batches: list[tuple[float, set[str]]] = []

    def paths_since(self, t0: float) -> set[str]:
        return set().union(*(b for t, b in self.batches if t >= t0))

    async def wait_for(self, path: str, t0: float, deadline: float = DEADLINE) -> float:
        """Seconds from t0 until a batch holding `path` arrived; fails after `deadline`."""
        with trio.move_on_after(deadline):
            while True:
                for t, batch in self.batches:
                    if t >= t0 and path in batch:
                        return t - t0
                await trio.sleep(0.005)
        raise AssertionError(f"{path!r} not reported within {deadline}s: {self.batches}")


def _run(root, scenario, **watcher_args) -> None:
    """Start a Watcher on root, wait until it sees events, run `scenario(root, seen)`, stop."""

    async def main() -> None:
        watcher = Watcher(root, IgnoreMatcher.load(root), **watcher_args)
        seen = Seen()

        async def consume() -> None:
            async for batch in watcher.changes():
                seen.batches.append((time.monotonic(), batch))

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                await _poke_until_ready(root, seen)
                await scenario(root, seen)
                watcher.close()  # consume() then ends by itself, within step_ms

    trio.run(main)


async def _poke_until_ready(root, seen: Seen) -> None:
    """The OS watch is set up in a worker thread: write a file until the watcher reports it."""
    with trio.fail_after(5):
        while not seen.batches:
            (root / "ready").write_text(str(time.monotonic()))
            await trio.sleep(0.05)
    os.remove(root / "ready")
    await trio.sleep(0.15)  # let the removal's batch pass


def test_watchfiles_awatch_runs_under_trio(tmp_path):
    async def main() -> set:
        async def poke() -> None:
            await trio.sleep(0.2)
            (tmp_path / "f.txt").write_text("x")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(poke)
            with trio.fail_after(5):
                async for changes in watchfiles.awatch(tmp_path, debounce=100, step=50,
                                                       rust_timeout=200):
                    return changes
        raise AssertionError("unreachable")

    assert (watchfiles.Change.added, str(tmp_path / "f.txt")) in trio.run(main)


def test_create_modify_delete_rename(tmp_path):
    latencies = {}

    async def scenario(root, seen: Seen) -> None:
        t0 = time.monotonic()
        (root / "new.txt").write_text("one")
        latencies["create"] = await seen.wait_for("new.txt", t0)

        await trio.sleep(0.2)
        t0 = time.monotonic()
        with open(root / "new.txt", "a") as f:
            f.write("two")
        latencies["modify"] = await seen.wait_for("new.txt", t0)

        await trio.sleep(0.2)
        t0 = time.monotonic()
        os.rename(root / "new.txt", root / "renamed.txt")
        latencies["rename"] = max(await seen.wait_for("renamed.txt", t0),
                                  await seen.wait_for("new.txt", t0))

        await trio.sleep(0.2)
        t0 = time.monotonic()
        os.remove(root / "renamed.txt")
        latencies["delete"] = await seen.wait_for("renamed.txt", t0)

        await trio.sleep(0.2)
        t0 = time.monotonic()
        (root / "dir" / "sub").mkdir(parents=True)
        await seen.wait_for("dir", t0)

    _run(tmp_path, scenario)
    assert all(v < DEADLINE for v in latencies.values()), latencies


def test_state_temp_and_ignored_files_are_not_reported(tmp_path):
    (tmp_path / ".backer").mkdir()
    (tmp_path / ".backerignore").write_text("*.log\nbuild/\n")

    async def scenario(root, seen: Seen) -> None:
        t0 = time.monotonic()
        (root / ".backer" / "db").write_text("state")
        (root / ".backer-tmp-1").write_text("partial")
        (root / "build").mkdir()
        (root / "build" / "out.o").write_text("obj")
        (root / "x.log").write_text("log")
        await trio.sleep(0.2)
        (root / "after.txt").write_text("sentinel")
        await seen.wait_for("after.txt", t0)
        assert seen.paths_since(t0) == {"after.txt"}

        t0 = time.monotonic()  # rule changes are picked up at once
        (root / ".backerignore").write_text("*.txt\n")
        await seen.wait_for(".backerignore", t0)
        (root / "y.txt").write_text("now ignored")
        (root / "z.log").write_text("now mirrored")
        await seen.wait_for("z.log", t0)
        assert "y.txt" not in seen.paths_since(t0)

    _run(tmp_path, scenario)


def test_our_own_writes_are_passed_over_and_an_edit_right_after_is_seen(tmp_path):
    """A file placed as the puller does (temp file, rename) whose stat `own` names is the echo
    of our write: not reported. An edit made right after placing (before the event is even
    handled), a rename over it, a chmod, and the next event at the same path are reported."""
    wrote: dict[str, tuple[int, int, int, int]] = {}

    def own(rel: str):
        return wrote.pop(rel, None)

    def place(root, name: str, data: bytes) -> None:
        tmp = root / f".backer-tmp-00000000-{name}"
        tmp.write_bytes(data)
        os.chmod(tmp, 0o644)
        os.utime(tmp, ns=(1_600_000_000_000_000_000,) * 2)
        os.replace(tmp, root / name)
        st = os.lstat(root / name)
        wrote[name] = (st.st_size, st.st_mtime_ns, st.st_ino, 0o644)

    async def scenario(root, seen: Seen) -> None:
        t0 = time.monotonic()
        for i in range(20):
            place(root, f"placed{i}", b"ours %d" % i)
        place(root, "edited", b"ours")
        with open(root / "edited", "ab") as f:  # the user's edit, at once
            f.write(b" and theirs")
        place(root, "replaced", b"ours")
        (root / "other").write_bytes(b"the user's")
        os.replace(root / "other", root / "replaced")  # renamed over ours: another inode
        place(root, "chmodded", b"ours")
        os.chmod(root / "chmodded", 0o600)  # size, mtime and inode stay: the mode tells
        await trio.sleep(0.2)
        (root / "after.txt").write_text("sentinel")
        await seen.wait_for("after.txt", t0)
        reported = seen.paths_since(t0)
        assert {"edited", "replaced", "chmodded", "after.txt"} <= reported
        assert not any(p.startswith("placed") for p in reported)
        assert wrote == {}  # each placed stat was asked for once
        t0 = time.monotonic()
        (root / "placed0").write_bytes(b"edited later")  # no stat handed out any more
        await seen.wait_for("placed0", t0)

    _run(tmp_path, scenario, own=own)


def test_close_and_cancel_end_the_watch_quickly(tmp_path):
    async def main() -> tuple[float, float]:
        watcher = Watcher(tmp_path, IgnoreMatcher.load(tmp_path))

        async def drain() -> None:
            async for _ in watcher.changes():
                pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            await trio.sleep(0.2)
            t0 = time.monotonic()
            watcher.close()
        closed = time.monotonic() - t0

        t0 = time.monotonic()
        with trio.move_on_after(0.2):
            await drain()
        cancelled = time.monotonic() - t0 - 0.2
        return closed, cancelled

    closed, cancelled = trio.run(main)
    assert closed < 0.5 and cancelled < 0.5, (closed, cancelled)


def test_mtimes_of_a_batch(tmp_path):
    """The ages the settle wait reads: a file's and a folder's mtime, a link's own (not its
    target's), None for a path gone."""
    (tmp_path / "f.bin").write_bytes(b"x")
    os.utime(tmp_path / "f.bin", ns=(1, 123_456_789_000))
    (tmp_path / "d").mkdir()
    os.symlink("f.bin", tmp_path / "link")
    os.utime(tmp_path / "link", ns=(1, 5_000_000_000), follow_symlinks=False)
    got = mtimes(tmp_path, ["f.bin", "d", "link", "gone"])
    assert got[0] == 123_456_789_000
    assert got[1] == (tmp_path / "d").stat().st_mtime_ns
    assert got[2] == 5_000_000_000
    assert got[3] is None


def test_a_vanished_root_ends_the_watch(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f").write_text("x")

    async def main() -> tuple[Watcher, list]:
        watcher = Watcher(root, IgnoreMatcher.load(root))
        seen = Seen()

        async def consume() -> None:
            async for batch in watcher.changes():
                seen.batches.append((time.monotonic(), batch))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                await _poke_until_ready(root, seen)
                t0 = time.monotonic()
                shutil.rmtree(root)
        return watcher, [b for t, b in seen.batches if t >= t0]

    watcher, after = trio.run(main)
    assert watcher.root_lost
    assert after == []  # the deletions below a vanished root are not reported


def test_a_name_that_is_not_utf8_does_not_end_the_watch(tmp_path):
    """Issue 11: watchfiles raised "Unable to decode path" out of the watcher and the daemon
    died. Now the odd name is reported (the scan refuses and lists it), with its folder's other
    entries (that batch's events are lost), and the watch goes on."""
    root = str(tmp_path)
    w = Watcher(root, IgnoreMatcher.load(root))
    batches: list[set[str]] = []

    async def main() -> None:
        async def writer() -> None:
            await trio.sleep(0.3)
            with open(os.path.join(os.fsencode(root), b"bad\xffname"), "wb") as f:
                f.write(b"x")
            await trio.sleep(0.5)
            with open(os.path.join(root, "good.txt"), "wb") as f:
                f.write(b"y")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            with trio.move_on_after(15):  # a generous bound for a loaded machine
                async for paths in w.changes():
                    batches.append(paths)
                    if any("good.txt" in p for p in paths):
                        break
            nursery.cancel_scope.cancel()

    trio.run(main)
    seen = set().union(*batches)
    assert os.fsdecode(b"bad\xffname") in seen and "good.txt" in seen, batches


def test_a_folder_whose_name_is_not_utf8_is_watched_with_raw_inotify(tmp_path):
    """watchfiles fails as it starts on such a folder (over and over); the Watcher goes on with
    raw inotify and reports changes below it, byte for byte, and a folder made and renamed
    later, and the root's removal."""
    root = tmp_path / "root"
    root.mkdir()
    odd = os.path.join(os.fsencode(root), b"dir\xfe")
    os.mkdir(odd)

    async def scenario(root, seen: Seen) -> None:
        t0 = time.monotonic()
        with open(os.path.join(odd, b"in\xffside"), "wb") as f:
            f.write(b"x")
        await seen.wait_for(os.fsdecode(b"dir\xfe/in\xffside"), t0, deadline=5)
        t1 = time.monotonic()
        (root / "new").mkdir()  # reported; the scan walks a folder that appeared
        await seen.wait_for("new", t1, deadline=5)
        (root / "new" / "deep.txt").write_text("y")  # and from then on, what happens in it
        await seen.wait_for("new/deep.txt", t1, deadline=5)
        t2 = time.monotonic()
        os.rename(root / "new", root / "moved")
        await seen.wait_for("moved", t2, deadline=5)
        (root / "moved" / "after.txt").write_text("z")
        await seen.wait_for("moved/after.txt", t2, deadline=5)

    _run(root, scenario)


def test_undecodable_path_reads_rusts_debug_form():
    from gossip_backer.disk.watch import undecodable_path

    msg = 'Unable to decode path "/r/a\\xFF\\"q\\\\b\\u{1f600}\\n" to string'
    assert undecodable_path(msg) == os.fsdecode(b'/r/a\xff"q\\b' + "\U0001F600\n".encode())
    assert undecodable_path("another error") is None
