"""A member that turns hostile, driven by the test over a real connection to a real node:
hostile names, a symlink trick, forged updates and bad blocks. Nothing lands outside ROOT or in
.backer/, the bad peer is dropped, and the node carries on with its honest peers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import trio

from gossip_backer.core.blocks import BlockHasher, block_size_for
from gossip_backer.core.record import FILE, SYMLINK, FileRecord
from gossip_backer.core.vv import VersionVector
from gossip_backer.crypto.identity import Identity, make_update, update_to_wire
from gossip_backer.errors import RemoteError
from gossip_backer.protocol.peer import Authenticated, PeerConnection, Received
from gossip_backer.runtime.state import NodeState
from gossip_backer.wire.messages import (PROTOCOL_VERSION, BlockData, BlockRequest, Delta, Hello)
from tests.e2e.conftest import invite, join, mesh, tree, wait_until

pytestmark = pytest.mark.e2e


class EvilPeer:
    """The evil member's side of one connection, driven step by step."""

    def __init__(self, state: NodeState, identity: Identity | None = None) -> None:
        self.state = state
        self.conn = PeerConnection(identity or state.identity, state.mesh_secret, lambda k: True,
                                   initiator=True)
        self.inbox: list = []

    async def connect(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.stream = await trio.open_tcp_stream(host, int(port))
        await self.stream.send_all(self.conn.initial_bytes())
        while not any(isinstance(e, Authenticated) for e in await self._pump()):
            pass
        await self.send(Hello(PROTOCOL_VERSION, "evil", ()))

    async def _pump(self) -> list:
        data = await self.stream.receive_some(1 << 20)
        if not data:
            raise trio.EndOfChannel
        events = self.conn.receive_data(data)
        out = self.conn.data_to_send()
        if out:
            await self.stream.send_all(out)
        self.inbox += [e.message for e in events if isinstance(e, Received)]
        return events

    async def send(self, msg) -> None:
        await self.stream.send_all(self.conn.send(msg))

    async def wait_for(self, kind, timeout: float = 20.0):
        with trio.fail_after(timeout):
            while True:
                for i, m in enumerate(self.inbox):
                    if isinstance(m, kind):
                        return self.inbox.pop(i)
                await self._pump()

    async def closed_by_peer(self, timeout: float = 20.0) -> bool:
        with trio.move_on_after(timeout):
            try:
                while True:
                    await self._pump()
            except (trio.EndOfChannel, trio.BrokenResourceError, RemoteError):
                return True
        return False


def _record(me: bytes, path: str, **kw) -> FileRecord:
    return FileRecord(path=path, kind=kw.pop("kind", FILE), vv=VersionVector({me: 1}), origin=me,
                      mtime_ns=1_700_000_000_000_000_000, **kw)


def test_hostile_names_symlink_tricks_forgeries_and_bad_blocks(tmp_path, daemons):
    a, b = mesh(tmp_path, daemons, 2)
    evil_root = tmp_path / "E"
    join(evil_root, invite(a), "evil")
    e = daemons(evil_root).start()
    wait_until(lambda: e.connected(), what="evil member admitted")
    e.stop()
    outside = tmp_path / "outside"
    outside.mkdir()
    key_before = (a.root / ".backer" / "identity.key").read_bytes()
    state = NodeState.open(evil_root)
    me, seq = state.identity.public, state.metamap.seq_of(state.identity.public)
    content = os.urandom(300_000)
    hasher = BlockHasher(block_size_for(len(content)))
    hasher.update(content)
    whole, blocks = hasher.finish()
    payloads = [
        _record(me, "../escape.txt", size=5, hash=whole),
        _record(me, "/abs/evil.txt", size=5, hash=whole),
        _record(me, ".backer/identity.key", size=5, hash=whole),
        _record(me, "dir\\..\\..\\x", size=5, hash=whole),
        _record(me, "nul\x00byte", size=5, hash=whole),
        _record(me, "lnk", kind=SYMLINK, target=str(outside)),
        _record(me, "lnk/pwned.bin", size=len(content), hash=whole,
                block_size=block_size_for(len(content)), blocks=blocks),
        _record(me, "data.bin", size=len(content), hash=whole,
                block_size=block_size_for(len(content)), blocks=blocks),
    ]
    updates = [make_update(state.identity, state.mesh_id, seq + i + 1, p) for i, p in enumerate(payloads)]

    async def attack() -> None:
        peer = EvilPeer(state)
        await peer.connect(a.listen)
        await peer.send(Delta(tuple(update_to_wire(u) for u in updates)))
        req = await peer.wait_for(BlockRequest)  # A wants data.bin's (or pwned's) blocks
        await peer.send(BlockData(req.request_id, b"\xaa" * req.size))  # bad data
        assert await peer.closed_by_peer(), "A must drop a peer that sends bad blocks"

        forger = EvilPeer(state)
        await forger.connect(a.listen)
        forged = make_update(Identity.generate(), state.mesh_id, seq + 50, _record(me, "forged.txt"))
        forged = type(forged)(me, forged.seq, forged.payload, forged.body, forged.sig)  # E's name, not E's signature
        await forger.send(Delta((update_to_wire(forged),)))
        assert await forger.closed_by_peer(), "A must drop a peer that relays a forgery"

    trio.run(attack)
    time.sleep(2)
    assert a.proc.poll() is None and b.proc.poll() is None
    assert os.listdir(outside) == [], "nothing written through the symlink"
    assert not (tmp_path / "escape.txt").exists() and not Path("/abs/evil.txt").exists()
    assert (a.root / ".backer" / "identity.key").read_bytes() == key_before
    names = set(tree(a.root))
    assert "lnk" in names and "data.bin" not in names and "forged.txt" not in names
    assert not any("escape" in n or "evil" in n or "nul" in n or "\\" in n for n in names)
    for leftover in a.root.glob(".backer-tmp-*"):  # kept to resume from; verified blocks only
        assert b"\xaa" * 1024 not in leftover.read_bytes()
    status = a.status()
    assert {p["name"]: p["connected"] for p in status["peers"]}["node1"] is True
    # the node carries on: an honest change still spreads
    (b.root / "after.txt").write_bytes(b"still working")
    wait_until(lambda: (a.root / "after.txt").exists(), what="honest change after the attack")
