"""A peer's Delta through the real path (runtime/replicadriver.py): its signatures are checked
once, in a worker thread on the bytes that came, and the map does not check them again; the
messages behind it are answered after it; a forged update beside good ones is still refused by
the map, and the peer is dropped."""

from __future__ import annotations

import trio
import trio.testing

from gossip_backer import Node
from gossip_backer.core.record import FILE, FileRecord
from gossip_backer.core.vv import VersionVector
from gossip_backer.crypto.identity import Identity, make_update, update_to_wire
from gossip_backer.protocol.peer import Authenticated, PeerConnection, Received
from gossip_backer.runtime.replicadriver import CHECK_OFF_LOOP
from gossip_backer.runtime.state import NodeState
from gossip_backer.wire.messages import PROTOCOL_VERSION, Delta, DeltaAck, Hello, Ping, Pong


def _record(me: bytes, path: str) -> FileRecord:
    return FileRecord(path=path, kind=FILE, vv=VersionVector({me: 1}), origin=me, size=1,
                      mtime_ns=1_700_000_000_000_000_000, hash=bytes(32))


class Peer:
    """Node b's side of one connection to node a, driven by the test."""

    def __init__(self, state: NodeState, stream) -> None:
        self.conn = PeerConnection(state.identity, state.mesh_secret, lambda k: True,
                                   initiator=True)
        self.stream = stream
        self.inbox: list = []

    async def connect(self) -> None:
        await self.stream.send_all(self.conn.initial_bytes())
        while not any(isinstance(e, Authenticated) for e in await self.pump()):
            pass
        await self.stream.send_all(self.conn.send(Hello(PROTOCOL_VERSION, "beta", ())))

    async def pump(self) -> list:
        data = await self.stream.receive_some(1 << 20)
        if not data:
            raise trio.EndOfChannel
        events = self.conn.receive_data(data)
        self.inbox += [e.message for e in events if isinstance(e, Received)]
        out = self.conn.data_to_send()
        if out:
            await self.stream.send_all(out)
        return events

    async def send(self, message) -> None:
        await self.stream.send_all(self.conn.send(message))

    async def until_closed(self) -> None:
        try:
            while True:
                await self.pump()
        except (trio.EndOfChannel, trio.BrokenResourceError):
            return


def _updates(root_b, count: int, forge_at: int | None) -> tuple[NodeState, list]:
    state = NodeState.open(root_b)
    me, seq = state.identity.public, state.metamap.seq_of(state.identity.public)
    updates = [make_update(state.identity, state.mesh_id, seq + i + 1, _record(me, f"f{i}.txt"))
               for i in range(count)]
    if forge_at is not None:  # b's name and number, another key's signature
        real = updates[forge_at]
        other = make_update(Identity.generate(), state.mesh_id, real.seq, real.payload)
        updates[forge_at] = type(real)(me, real.seq, real.payload, real.body, other.sig)
    return state, updates


def _exchange(root_a, state_b: NodeState, updates: list, *, wait_for_close: bool):
    """Run node a, send it one Delta of `updates` from b; a's map, its verifier, why it ended."""
    found: dict = {}

    async def main() -> None:
        async with Node.open(root_a, mirror=False) as a:
            left, right = trio.testing.memory_stream_pair()
            peer = Peer(state_b, right)
            async with trio.open_nursery() as nursery:
                async def serve() -> None:
                    found["reason"] = await a.serve_stream(left, initiator=False)
                nursery.start_soon(serve)
                await peer.connect()
                await trio.testing.wait_all_tasks_blocked()
                before = a.state.verifier.checked  # (the peers' hellos and member infos)
                await peer.send(Delta(tuple(update_to_wire(u) for u in updates)))
                await peer.send(Ping(7))  # behind the Delta: answered after it
                with trio.fail_after(20):
                    if wait_for_close:
                        await peer.until_closed()
                        while "reason" not in found:  # a's side of the session ends too
                            await trio.sleep(0.01)
                    else:
                        while not any(isinstance(m, Pong) for m in peer.inbox):
                            await peer.pump()
                found["replies"] = [type(m) for m in peer.inbox if isinstance(m, (DeltaAck, Pong))]
                found["map"] = a.state.metamap
                found["checked"] = a.state.verifier.checked - before
                nursery.cancel_scope.cancel()

    trio.run(main)
    return found


def test_a_deltas_signatures_are_checked_once_off_the_loop(pair):
    root_a, root_b = pair
    state_b, updates = _updates(root_b, CHECK_OFF_LOOP + 6, None)
    state_b.close()
    found = _exchange(root_a, state_b, updates, wait_for_close=False)
    held = {(u.origin, u.seq) for u in found["map"].updates()}
    assert all((u.origin, u.seq) in held for u in updates)
    assert found["checked"] == 0, "the map checked again what the worker thread had checked"
    assert found["replies"] == [DeltaAck, Pong], "a message overtook the Delta before it"


def test_a_forged_update_beside_good_ones_is_refused_and_its_sender_dropped(pair):
    root_a, root_b = pair
    state_b, updates = _updates(root_b, CHECK_OFF_LOOP, forge_at=50)
    state_b.close()
    found = _exchange(root_a, state_b, updates, wait_for_close=True)
    held = {(u.origin, u.seq) for u in found["map"].updates()}
    assert all((u.origin, u.seq) in held for u in updates[:50]), "the good ones before it stay"
    assert not any((u.origin, u.seq) in held for u in updates[50:])
    assert found["checked"] == 1, "the forgery is checked by the map itself"
    assert "bad signature" in found["reason"]


def test_a_small_delta_is_checked_in_the_map_at_once(pair):
    root_a, root_b = pair
    state_b, updates = _updates(root_b, 5, None)
    state_b.close()
    found = _exchange(root_a, state_b, updates, wait_for_close=False)
    held = {(u.origin, u.seq) for u in found["map"].updates()}
    assert all((u.origin, u.seq) in held for u in updates)
    assert found["checked"] == 5
    assert found["replies"] == [DeltaAck, Pong]
