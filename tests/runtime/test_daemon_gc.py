"""A running daemon keeps what it loaded at start-up out of the cyclic GC's full collections
(daemon._main): a full collection that walked every module, the index and the map stalled the
loop 15-27 ms for a node of one file, most often in the middle of a transfer. A real node on a
real root and a real listening socket on 127.0.0.1, in this process."""

from __future__ import annotations

import gc

import trio

from gossip_backer import daemon
from gossip_backer.runtime import control
from gossip_backer.runtime.state import NodeState, state_dir


def test_after_start_up_a_full_collection_no_longer_walks_what_the_node_loaded(tmp_path):
    root = tmp_path / "solo"
    NodeState.init(root, "solo").close()
    seen: dict[str, object] = {}

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon._main, root, "127.0.0.1:0", None, None)
            with trio.fail_after(30):
                while not gc.get_freeze_count():
                    await trio.sleep(0.02)
            seen["frozen"] = gc.get_freeze_count()
            walked = gc.get_objects(generation=2)
            seen["walked"] = len(walked)
            seen["module_walked"] = any(o is vars(daemon) for o in walked)
            del walked
            seen["running"] = await trio.to_thread.run_sync(
                control.is_running, state_dir(root) / "control.sock")
            nursery.cancel_scope.cancel()

    gc.unfreeze()  # whatever an earlier test left: this one counts the daemon's own
    try:
        trio.run(main)
    finally:
        gc.unfreeze()
    assert seen["running"], "the node did not serve its control socket"
    assert not seen["module_walked"], "the daemon module's namespace is still walked"
    assert seen["frozen"] > 10 * max(seen["walked"], 1_000), seen
