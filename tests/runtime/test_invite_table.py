"""The running node holds its invites in memory (runtime/invites.py): the handshake's authorize,
which any stranger holding the mesh secret reaches, reads no SQLite on the trio loop; a key it
does not know is looked up again off the loop, so an invite stored behind the node's back lets
its holder in at the next try. Of two claims racing for one invite, the store's
guarded write picks the winner and the loser hears why. Real nodes, real SQLite, real sessions
over memory streams."""

from __future__ import annotations

import threading
from functools import partial

import trio
import trio.testing

from gossip_backer import Node
from gossip_backer.core.invite import Invite
from gossip_backer.crypto.identity import Identity
from gossip_backer.protocol.peer import Authenticated, PeerConnection
from gossip_backer.runtime.dial import Dialer
from gossip_backer.runtime.state import NodeState
from gossip_backer.wire.codec import pack, unpack


class LoopWatchedRepo:
    """The node's own Repo, noting which of its methods run on the trio loop's thread and which
    elsewhere (the store thread)."""

    def __init__(self, repo, loop_thread: threading.Thread) -> None:
        self._repo = repo
        self._loop_thread = loop_thread
        self.on_loop: list[str] = []
        self.off_loop: list[str] = []

    def __getattr__(self, name: str):
        attr = getattr(self._repo, name)
        if not callable(attr):
            return attr

        def noted(*args, **kwargs):
            on_loop = threading.current_thread() is self._loop_thread
            (self.on_loop if on_loop else self.off_loop).append(name)
            return attr(*args, **kwargs)
        return noted


def watch_repo(node: Node) -> LoopWatchedRepo:
    watched = LoopWatchedRepo(node.state.repo, threading.current_thread())
    node.state.repo = watched
    return watched


async def knock(node: Node, key: Identity) -> bool:
    """Dial `node` over memory as a peer that holds the mesh secret and proves `key`: does the
    node let that key complete the handshake?"""
    conn = PeerConnection(key, node.state.mesh_secret, lambda peer: True, initiator=True)
    left, right = trio.testing.memory_stream_pair()
    let_in = False
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(node.serve_stream, right, initiator=False))
        try:
            await left.send_all(conn.initial_bytes())
            while not let_in and (data := await left.receive_some(65536)):
                let_in = any(isinstance(e, Authenticated) for e in conn.receive_data(data))
                await left.send_all(conn.data_to_send())
        except trio.BrokenResourceError:
            pass  # the node hung up on us
        finally:
            await left.aclose()
    return let_in


def invite_behind_the_back(root) -> Identity:
    """What a `backer invite` that found no node running writes: an invite row in the store,
    from another connection; its one-time key."""
    state = NodeState.open(root)
    try:
        invite = state.create_invite(["127.0.0.1:1"], False, 3600)
    finally:
        state.close()
    return Identity.from_seed(invite.invite_seed)


def test_a_strangers_key_is_judged_without_sqlite_on_the_loop(pair):
    root_a, _ = pair

    async def main():
        async with Node.open(root_a, mirror=False) as a:
            repo = watch_repo(a)
            assert not await knock(a, Identity.generate())
            assert repo.on_loop == [], f"SQLite on the trio loop: {repo.on_loop}"
            with trio.fail_after(20):
                while "invite_rows" not in repo.off_loop:  # the reload it asked for
                    await trio.sleep(0.02)
                made = await a.invite(False, 3600, ["127.0.0.1:1"])  # the GUI's invite
            assert made["invite"].startswith("backer-invite-") and "add_invite" in repo.off_loop
            assert repo.on_loop == [], f"SQLite on the trio loop: {repo.on_loop}"

    trio.run(main)


def test_an_invite_stored_behind_the_nodes_back_is_let_in_at_the_next_try(pair):
    root_a, _ = pair

    async def main():
        async with Node.open(root_a, mirror=False) as a:
            repo = watch_repo(a)
            key = await trio.to_thread.run_sync(invite_behind_the_back, root_a)
            tries = [await knock(a, key)]  # the node read its invites before this one was made
            with trio.fail_after(20):
                while not tries[-1]:
                    await trio.sleep(0.5)  # a joining node backs off at least this long
                    tries.append(await knock(a, key))
            assert tries == [False, True]
            assert repo.on_loop == [], f"SQLite on the trio loop: {repo.on_loop}"

    trio.run(main)


def test_two_racing_claims_of_one_invite_one_wins_the_other_hears_why(tmp_path):
    a = NodeState.init(tmp_path / "a", "alpha")
    text = a.create_invite(["127.0.0.1:1"], False, 3600).to_text(pack)
    a.close()
    roots = [NodeState.join(tmp_path / n, Invite.from_text(text, unpack), n) for n in "bc"]
    for state in roots:
        state.close()

    async def claim(a: Node, root, outcome: dict) -> None:
        async with Node.open(root.root, mirror=False) as joiner:
            dialer = Dialer(joiner)
            left, right = trio.testing.memory_stream_pair()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(a.serve_stream, right, initiator=False))
                assert await dialer._run_claim(left, "127.0.0.1:1", joiner.state.pending_invite())
                nursery.cancel_scope.cancel()
            outcome[root.root.name] = dialer.join.error

    async def main():
        outcome: dict = {}
        async with Node.open(tmp_path / "a", mirror=False) as a:
            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    for root in roots:
                        nursery.start_soon(claim, a, root, outcome)
        assert sorted(outcome.values(), key=str) == [
            None, "the invite was refused: this invite was already used"]

    trio.run(main)
