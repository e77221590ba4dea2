"""Two nodes of one mesh in temporary roots, made the way `init` + `invite` + `join` make them."""

from __future__ import annotations

import pytest

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
