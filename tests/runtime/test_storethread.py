"""runtime/storethread.py: store calls run in one worker thread, in the order they were made,
while the trio loop goes on (issue 10: SQLite calls run off the trio loop)."""

from __future__ import annotations

import threading
import time

import pytest
import trio

from gossip_backer.errors import StoreError
from gossip_backer.runtime.storethread import StoreThread
from gossip_backer.store.repo import Repo


@pytest.fixture
def repo(tmp_path):
    r = Repo.open(tmp_path / "store.db")
    yield r
    r.close()


def test_calls_run_in_one_thread_in_the_order_they_were_made(repo):
    store = StoreThread()
    threads, seen = set(), []

    def write(i: int) -> None:
        threads.add(threading.get_ident())
        repo.set_config("n", i)
        seen.append(repo.get_config("n"))

    async def main() -> int:
        for i in range(50):
            store.submit(write, i)
        return await store.call(repo.get_config, "n")

    try:
        assert trio.run(main) == 49
        assert seen == list(range(50)) and len(threads) == 1
        assert threading.get_ident() not in threads
        assert store.wait(repo.get_config, "n") == 49
    finally:
        store.close()


def test_the_loop_runs_on_while_the_store_works(repo):
    """A slow store call (a big commit) holds its caller, not the loop: a heartbeat task keeps
    beating meanwhile."""
    store = StoreThread()
    beats = []

    def slow_commit() -> str:
        time.sleep(0.3)
        repo.set_config("k", "v")
        return "done"

    async def main() -> str:
        async with trio.open_nursery() as nursery:
            async def heartbeat() -> None:
                while True:
                    beats.append(time.perf_counter())
                    await trio.sleep(0.01)
            nursery.start_soon(heartbeat)
            result = await store.call(slow_commit)
            nursery.cancel_scope.cancel()
        return result

    try:
        assert trio.run(main) == "done"
        assert len(beats) >= 10
        assert max(b - a for a, b in zip(beats, beats[1:])) < 0.2
    finally:
        store.close()


def test_errors_reach_the_caller_and_behind_writes_are_noted(repo):
    store = StoreThread()

    def broken() -> None:
        raise StoreError("disk I/O error")

    async def main() -> None:
        with pytest.raises(StoreError):
            await store.call(broken)

    try:
        trio.run(main)
        with pytest.raises(StoreError):
            store.wait(broken)
        store.submit(broken)
        store.submit(repo.set_config, "after", 1)  # later jobs still run
        store.drain()
        assert store.error == "disk I/O error" and repo.get_config("after") == 1
    finally:
        store.close()


def test_a_cancelled_caller_still_waits_for_its_queued_write(repo):
    store = StoreThread()

    def slow_write() -> None:
        time.sleep(0.2)
        repo.set_config("written", True)

    async def main() -> None:
        with trio.move_on_after(0.01):
            await store.call(slow_write)
        assert repo.get_config("written") is True  # never a half-known write

    try:
        trio.run(main)
    finally:
        store.close()


def test_close_writes_what_is_queued(repo):
    store = StoreThread()
    for i in range(20):
        store.submit(repo.set_config, f"k{i}", i)
    store.close()
    assert [repo.get_config(f"k{i}") for i in range(20)] == list(range(20))
    with pytest.raises(RuntimeError):
        store.submit(repo.set_config, "late", 1)


def test_a_job_done_is_not_kept_while_the_thread_waits():
    """The thread keeps nothing of its last job (arguments, result) while it waits for the
    next: the index saver's batch of a first scan's 100,000 rows stayed alive on an idle node."""
    import weakref

    class Batch:
        pass

    store = StoreThread()
    try:
        batch, result = Batch(), Batch()
        batch_ref, result_ref = weakref.ref(batch), weakref.ref(result)

        async def main(b, r) -> None:
            await store.call(lambda b, r: r, b, r)

        trio.run(main, batch, result)
        store.submit(lambda b: None, batch)
        store.drain()
        del batch, result
        assert batch_ref() is None and result_ref() is None
    finally:
        store.close()
