"""The joining daemon's invite claim (runtime/dial.py) when the inviter falls silent after the
handshake: it gives up on that connection after `session.CLAIM_TIMEOUT` and its next claim gets
the grant. Real nodes, real SQLite, real sessions, on trio's MockClock."""

from __future__ import annotations

import time

import trio
import trio.testing

from gossip_backer import Node
from gossip_backer.core.invite import Invite
from gossip_backer.protocol import session
from gossip_backer.protocol.peer import Authenticated, PeerConnection, Received
from gossip_backer.runtime.clock import FollowingTrio
from gossip_backer.runtime.dial import Dialer
from gossip_backer.runtime.state import NodeState
from gossip_backer.wire.codec import pack, unpack
from gossip_backer.wire.messages import InviteClaim


def inviter_and_joiner(tmp_path) -> tuple:
    """Roots a (founder, with an invite) and b (joined with it, its claim not made yet)."""
    a = NodeState.init(tmp_path / "a", "alpha")
    invite = a.create_invite(["127.0.0.1:1"], False, 3600)
    b = NodeState.join(tmp_path / "b", Invite.from_text(invite.to_text(pack), unpack), "beta")
    roots = (a.root, b.root)
    a.close()
    b.close()
    return roots


async def inviter_whose_machine_dies(stream, inviter: NodeState, claims: list) -> None:
    """The inviter's end up to the moment its machine lost power: it proves its key, says
    Hello, takes the claim off the wire, and from then on answers nothing and closes nothing."""
    conn = PeerConnection(inviter.identity, inviter.mesh_secret, lambda key: True, initiator=False)
    hello = session.Admission("alpha", (), False, lambda key: True).hello()
    await stream.send_all(conn.initial_bytes())
    while data := await stream.receive_some(65536):
        for event in conn.receive_data(data):
            if isinstance(event, Authenticated):
                await stream.send_all(conn.data_to_send() + conn.send(hello))
            elif isinstance(event, Received) and isinstance(event.message, InviteClaim):
                claims.append(event.message)  # ... and the power went off
        await stream.send_all(conn.data_to_send())
    await trio.sleep_forever()


def test_a_claim_the_inviter_never_answers_is_given_up_and_made_again(tmp_path):
    root_a, root_b = inviter_and_joiner(tmp_path)
    started = time.time()

    async def silent_inviter():
        inviter = NodeState.open(root_a)
        clock = FollowingTrio(time.time())  # the invite expires an hour after it was made
        async with Node.open(root_b, mirror=False, clock=clock) as b:
            dialer = Dialer(b)
            claims: list = []
            left, right = trio.testing.memory_stream_pair()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(inviter_whose_machine_dies, right, inviter, claims)
                began = trio.current_time()
                with trio.fail_after(session.CLAIM_TIMEOUT + 30):
                    done = await dialer._run_claim(left, "127.0.0.1:1", b.state.pending_invite())
                waited = trio.current_time() - began
                nursery.cancel_scope.cancel()
            inviter.close()
            assert len(claims) == 1 and not done and b.state.pending_invite() is not None
            assert session.CLAIM_TIMEOUT <= waited <= session.CLAIM_TIMEOUT + 5
            assert "no answer to the invite claim" in dialer.join.wait

    trio.run(silent_inviter, clock=trio.testing.MockClock(autojump_threshold=0))
    assert time.time() - started < session.CLAIM_TIMEOUT / 2  # virtual time

    async def inviter_back():
        """The inviter's machine is back: the next claim gets the grant. (Real time: the
        inviter's store works in a thread, which a MockClock would jump past.)"""
        async with Node.open(root_a, mirror=False) as a, Node.open(root_b, mirror=False) as b:
            dialer = Dialer(b)
            left, right = trio.testing.memory_stream_pair()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: a.serve_stream(right, initiator=False))
                with trio.fail_after(20):
                    done = await dialer._run_claim(left, "127.0.0.1:1", b.state.pending_invite())
                nursery.cancel_scope.cancel()
            assert done and b.state.pending_invite() is None and dialer.join.error is None
            assert b.state.identity.public in a.state.metamap.membership.members

    trio.run(inviter_back)
