"""Small files' disk work is batched across the tasks that assemble them (runtime/puller.py):
temp files are prepared many to a hop (`_Batcher`), and finished in rounds, one at a time
(`_Finisher`, a group commit): a round writes, seals and renames the files of every group queued
meanwhile, and one sync makes its bytes durable together with the round before's renames. These
tests hold the order that keeps a placed file durable, and that nothing waits when alone."""

from __future__ import annotations

import threading
from pathlib import Path

import trio
import trio.testing

from gossip_backer.core.blocks import FileHasher
from gossip_backer.disk import apply
from gossip_backer.disk.apply import TempFile
from gossip_backer.runtime import puller
from gossip_backer.runtime.puller import _Batcher, _Finisher

MTIME = 1_700_000_000_000_000_000


class _Named:
    """A batch item's work that records its name when the hop runs it."""

    def __init__(self, name: str, ran: list) -> None:
        self.name, self._ran = name, ran

    def __call__(self) -> str:
        self._ran.append(self.name)
        return self.name


def _held_disk(hold_every: bool, hold: str | None = None):
    """A `disk` runner whose hops record what they were given and wait for `release` (the first
    hop only, or the first running function `hold`, unless `hold_every`), then run the hop's
    function."""
    release = threading.Event()
    hops: list = []

    async def disk(fn, *args):
        def run():
            hops.append((fn.__name__, *args))
            if hold_every or [h[0] for h in hops if hold in (None, h[0])] == [fn.__name__]:
                release.wait(10)
            return fn(*args)
        return await trio.to_thread.run_sync(run)

    return disk, hops, release


async def _hop_started(hops: list, n: int = 1) -> None:
    while len(hops) < n:
        await trio.sleep(0.001)


def test_files_queued_during_a_hop_are_prepared_together_in_the_next():
    async def main():
        disk, hops, release = _held_disk(hold_every=False)
        batcher, ran, got = _Batcher(disk, 64, 1), [], []

        async def task(name: str) -> None:
            got.append(await batcher.run(_Named(name, ran)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(batcher.loop)
            nursery.start_soon(task, "first")
            await _hop_started(hops)
            for name in ("a", "b", "c"):
                nursery.start_soon(task, name)
            await trio.testing.wait_all_tasks_blocked()
            release.set()
            with trio.fail_after(10):
                while len(got) < 4:
                    await trio.sleep(0.001)
            nursery.cancel_scope.cancel()
        assert [sorted(item.work.name for item in hop[1]) for hop in hops] == [
            ["first"], ["a", "b", "c"]]
        assert sorted(got) == ["a", "b", "c", "first"]

    trio.run(main)


def test_a_file_cancelled_before_its_hop_is_dropped_and_one_under_way_completes():
    async def main():
        disk, hops, release = _held_disk(hold_every=True)
        batcher, ran = _Batcher(disk, 64, 1), []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(batcher.loop)
            nursery.start_soon(batcher.run, _Named("running", ran))
            await _hop_started(hops)
            with trio.move_on_after(0.05):  # queued behind the running hop, then given up
                await batcher.run(_Named("dropped", ran))
            release.set()
            with trio.fail_after(10):
                await batcher.run(_Named("later", ran))
            nursery.cancel_scope.cancel()
        assert ran == ["running", "later"]

    trio.run(main)


# --- rounds of small files, one sync each -------------------------------------------------------


class _Job:
    """What `_Sealing` reads of a puller job: the record, the temp file, the buffered blocks,
    and the content hash a whole copy made (none here)."""

    class _Need:
        def __init__(self, record) -> None:
            self.record = record

    def __init__(self, root: Path, path: str, data: bytes) -> None:
        hasher = FileHasher()
        hasher.update(data)

        class Record:
            hash, mode, mtime_ns, size = hasher.digest(), 0o644, MTIME, len(data)
        self.need = self._Need(Record)
        self.path = path
        self.tmp = TempFile.create(root, path)
        self.buffered = [(0, data)]
        self.digest = None


def _sealings(root: Path, names: list[str]) -> list:
    return [puller._Sealing(root, _Job(root, f"{name}.txt", name.encode() * 100), None, [])
            for name in names]


    return [puller._Sealing(root, _Job(root, f"{name}.txt", name.encode() * 100), None, [])
            for name in names]


async def _finish(finisher: _Finisher, group: list) -> None:
    """What the puller does with a task's finished files: seal them, then place them."""
    await finisher.seal(group)
    await finisher.place(group)


def test_a_lone_group_is_written_synced_placed_and_its_rename_synced_at_once(tmp_path):
    async def main():
        disk, hops, release = _held_disk(hold_every=False)
        release.set()
        finisher = _Finisher(disk, 64)
        group = _sealings(tmp_path, ["one", "two"])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(finisher.loop)
            with trio.fail_after(10):
                await _finish(finisher, group)
            nursery.cancel_scope.cancel()
        assert [hop[0] for hop in hops] == ["run_batch", "_finish_round", "_sync_renames"]
        assert all(s.error is None and s.result is not None for s in group)
        assert (tmp_path / "one.txt").read_bytes() == b"one" * 100

    trio.run(main)


def test_under_load_one_sync_covers_a_round_and_the_renames_of_the_round_before(tmp_path,
                                                                                  monkeypatch):
    durable_calls = []
    real = apply.make_durable

    def recording(temps, folders=()):
        folders = list(folders)
        durable_calls.append((len(temps), len(folders)))
        return real(temps, folders)

    monkeypatch.setattr(apply, "make_durable", recording)

    async def main():
        disk, hops, release = _held_disk(hold_every=False, hold="_finish_round")
        finisher = _Finisher(disk, 64)
        first, later = _sealings(tmp_path, ["first"]), [_sealings(tmp_path, [n]) for n in "abc"]
        woken = []

        def rounds() -> list:
            return [hop for hop in hops if hop[0] != "run_batch"]  # (not the sealing hops)

        async def task(name, group):
            await _finish(finisher, group)
            woken.append((name, len(rounds())))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(finisher.loop)
            nursery.start_soon(task, "first", first)
            while not rounds():  # the first round is held in its thread
                await trio.sleep(0.001)
            for name, group in zip("abc", later):
                nursery.start_soon(task, name, group)
            with trio.fail_after(10):  # sealed (in hops of their own), then queued for a round
                while not all(s.target for group in later for s in group):
                    await trio.sleep(0.001)
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            release.set()
            with trio.fail_after(10):
                while len(woken) < 4:
                    await trio.sleep(0.001)
            nursery.cancel_scope.cancel()
        # round 1 (first), round 2 (a, b, c: its sync also covers first's rename), then the
        # renames of round 2 synced on their own: nothing else waited
        assert [hop[0] for hop in rounds()] == ["_finish_round", "_finish_round", "_sync_renames"]
        assert [len(hop[1]) for hop in rounds()[:2]] == [1, 3] and len(rounds()[1][2]) == 1
        assert durable_calls == [(1, 0), (3, 1)]
        # first was woken only once round 2's sync had made its rename durable
        assert dict(woken)["first"] >= 2
        for name in ("first", "a", "b", "c"):
            assert (tmp_path / f"{name}.txt").read_bytes() == name.encode() * 100

    trio.run(main)


def test_a_failed_sync_fails_the_round_and_the_renames_it_was_to_make_durable(tmp_path,
                                                                               monkeypatch):
    before, batch = _sealings(tmp_path, ["before"]), _sealings(tmp_path, ["x", "y"])
    puller._seal_all(before + batch)
    puller._finish_round(before, [])
    assert before[0].error is None and before[0].folder == tmp_path

    def failing(temps, folders=()):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(apply, "make_durable", failing)
    puller._finish_round(batch, before)
    assert all(isinstance(s.error, OSError) for s in batch + before)
    assert not (tmp_path / "x.txt").exists() and not (tmp_path / "y.txt").exists()
