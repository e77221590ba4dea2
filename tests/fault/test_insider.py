"""An insider (an admitted member) that sends malformed payloads and blocks nobody asked for, over
a real connection to a real node: each is a protocol error that drops that peer (never an
"internal error", never the node), and the node carries on with its honest peers."""

from __future__ import annotations

import time

import pytest
import trio

from gossip_backer.crypto.identity import make_update
from gossip_backer.runtime.state import NodeState
from gossip_backer.wire.codec import pack
from gossip_backer.wire.messages import BlockData, Delta
from tests.e2e.conftest import invite, join, mesh, wait_until
from tests.e2e.test_hostile_peer import EvilPeer, _record

pytestmark = pytest.mark.e2e


def test_malformed_payloads_and_unrequested_blocks_drop_the_insider(tmp_path, daemons):
    a, b = mesh(tmp_path, daemons, 2)
    evil_root = tmp_path / "E"
    join(evil_root, invite(a), "evil")
    e = daemons(evil_root).start()
    wait_until(lambda: e.connected(), what="evil member admitted")
    e.stop()
    state = NodeState.open(evil_root)
    me, seq = state.identity.public, state.metamap.seq_of(state.identity.public)
    good = make_update(state.identity, state.mesh_id, seq + 1, _record(me, "x.txt", size=1))
    bodies = [pack([["list", "as", "tag"], []]), pack([{"a": 1}, []]), pack(["file", 7]),
              pack(["file", [None] * 12]), b"\xc1", pack(None)]
    dropped: list[bool] = []

    async def attack() -> None:
        for body in bodies:  # each a signed-looking update whose payload is malformed
            peer = EvilPeer(state)
            await peer.connect(a.listen)
            await peer.send(Delta(((me, seq + 1, body, good.sig),)))
            dropped.append(await peer.closed_by_peer(10))
        peer = EvilPeer(state)
        await peer.connect(a.listen)
        try:
            for i in range(4):  # 4 MiB pushed at A, never requested
                await peer.send(BlockData(10_000 + i, b"\x55" * (1 << 20)))
        except trio.BrokenResourceError:
            dropped.append(True)  # A hung up while we were still pushing
        else:
            dropped.append(await peer.closed_by_peer(10))

    trio.run(attack)
    state.close()
    assert dropped == [True] * (len(bodies) + 1)
    log = (tmp_path / "A.log").read_text()
    assert "internal error" not in log and "Traceback" not in log, log[-3000:]
    time.sleep(0.5)
    assert a.proc.poll() is None and b.proc.poll() is None
    (b.root / "after.txt").write_bytes(b"still working")
    wait_until(lambda: (a.root / "after.txt").exists(), what="honest change after the attack")
