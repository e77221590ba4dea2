"""The heap trimmer (runtime/heap.py): glibc's malloc_trim once after each burst of traffic,
never while bytes are still moving, on trio's MockClock."""

from __future__ import annotations

import trio
import trio.testing

from gossip_backer.runtime import heap


def test_one_trim_after_each_burst_and_none_while_it_runs():
    moved = [0]
    async def inline(fn, *args):  # glibc's malloc_trim itself, on the loop
        return fn(*args)
    trimmer = heap.HeapTrimmer(lambda: moved[0], run_sync=inline)
    seen: list[int] = []

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trimmer.run)
            for _ in range(40):  # a transfer: 1 MiB every quarter of QUIET
                moved[0] += 1 << 20
                await trio.sleep(heap.QUIET / 4)
            seen.append(trimmer.trims)
            await trio.sleep(5 * heap.QUIET)  # quiet: one trim
            seen.append(trimmer.trims)
            moved[0] += heap.IDLE_BYTES // 2  # gossip: not a burst
            await trio.sleep(5 * heap.QUIET)
            seen.append(trimmer.trims)
            moved[0] += 2 * heap.BURST  # a second transfer, then quiet
            await trio.sleep(5 * heap.QUIET)
            seen.append(trimmer.trims)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert seen == [0, 1, 1, 2]
