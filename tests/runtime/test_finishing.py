"""Small files' finishing hops are shared by the tasks that assemble them (runtime/puller.py
`_Batcher` with `_finish_groups`): the groups queued while a hop runs go together in the next, so
a tree of small files costs a syncfs per hop, not per task."""

from __future__ import annotations

import threading

import trio
import trio.testing

from gossip_backer.runtime.puller import _Batcher


async def _disk(fn, *args):
    return await trio.to_thread.run_sync(fn, *args)


def _held_batcher(hold_every: bool) -> tuple[_Batcher, list[list[str]], threading.Event]:
    """A batcher of one hop at a time whose hops record their items' names and wait for
    `release` (the first hop only, unless `hold_every`)."""
    release = threading.Event()
    hops: list[list[str]] = []

    def run_batch(items) -> None:  # (worker thread)
        hops.append([item.work for item in items])
        if hold_every or len(hops) == 1:
            release.wait(10)

    return _Batcher(_disk, 64, 1, run_batch=run_batch), hops, release


async def _hop_started(hops: list) -> None:
    while not hops:
        await trio.sleep(0.001)


def test_groups_queued_during_a_hop_are_finished_together_in_the_next():
    async def main():
        batcher, hops, release = _held_batcher(hold_every=False)
        finished = []

        async def task(name: str) -> None:
            await batcher.run(name)
            finished.append(name)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(batcher.loop)
            nursery.start_soon(task, "first")
            await _hop_started(hops)
            for name in ("a", "b", "c"):
                nursery.start_soon(task, name)
            await trio.testing.wait_all_tasks_blocked()
            release.set()
            with trio.fail_after(10):
                while len(finished) < 4:
                    await trio.sleep(0.001)
            nursery.cancel_scope.cancel()
        # (tasks start in any order)
        assert [sorted(hop) for hop in hops] == [["first"], ["a", "b", "c"]]

    trio.run(main)


def test_a_group_cancelled_before_its_hop_is_dropped_and_one_under_way_completes():
    async def main():
        batcher, hops, release = _held_batcher(hold_every=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(batcher.loop)
            nursery.start_soon(batcher.run, "running")
            await _hop_started(hops)
            with trio.move_on_after(0.05):  # queued behind the running hop, then given up
                await batcher.run("dropped")
            release.set()
            with trio.fail_after(10):
                await batcher.run("later")
            nursery.cancel_scope.cancel()
        assert hops == [["running"], ["later"]]

    trio.run(main)
