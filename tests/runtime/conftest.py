"""Two nodes of one mesh in temporary roots, made the way `init` + `invite` + `join` make them,
and (`joined`) both running, joined by a trio memory stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from gossip_backer import Node
from gossip_backer.core.invite import Invite
from gossip_backer.core.record import Grant
from gossip_backer.runtime.state import NodeState
from gossip_backer.wire.codec import pack, unpack


def make_pair(tmp_path, read_only: bool = False) -> tuple:
    """Roots a (founder) and b (granted by a, as a claimed invite would do)."""
    a = NodeState.init(tmp_path / "a", "alpha")
    invite = a.create_invite(["127.0.0.1:1"], read_only, 3600)
    b = NodeState.join(tmp_path / "b", Invite.from_text(invite.to_text(pack), unpack), "beta")
    a.make(Grant(b.identity.public, "beta", read_only, a.metamap.clock + 1))
    b.repo.delete_config("invite")
    roots = (a.root, b.root)
    a.close()
    b.close()
    return roots


@pytest.fixture
def pair(tmp_path):
    return make_pair(tmp_path)


@asynccontextmanager
async def joined(root_a, root_b, **options) -> AsyncIterator[tuple[Node, Node]]:
    """Nodes a and b (`Node.open(root, **options)`) in one session over a trio memory stream
    while the block runs; the session ends with the block, then the nodes close."""
    async with Node.open(root_a, **options) as a, Node.open(root_b, **options) as b:
        left, right = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.serve_stream, left)
            nursery.start_soon(b.serve_stream, right)
            yield a, b
            nursery.cancel_scope.cancel()
