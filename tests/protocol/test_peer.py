"""PeerConnection (pre-hello + Secret Handshake + box-stream + msgpack) driven in pairs, no I/O.

Two machines are wired back to back (ARCHITECTURE.md habit 4): what one returns from
`initial_bytes()` / `data_to_send()` / `send()` / `close()` is fed to the other's `receive_data()`.
Every (State, input kind) pair of `TRANSITIONS` is tested (habit 6).
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip_backer.core.blocks import MAX_BLOCK_SIZE
from gossip_backer.crypto import prehello
from gossip_backer.crypto.channel import FRAME_OVERHEAD, HEADER_SIZE
from gossip_backer.crypto.handshake import Handshake
from gossip_backer.crypto.identity import Identity
from gossip_backer.errors import LocalError, RemoteError
from gossip_backer.protocol.peer import (
    MAX_FRAME,
    PREHELLO_SIZE,
    TRANSITIONS,
    Authenticated,
    Closed,
    PeerConnection,
    Received,
    State,
)
from gossip_backer.wire.messages import BlockData, Delta, Digest, Hello, Ping, Pong, encode
from helpers import identity

KEY = hashlib.sha256(b"mesh secret under test").digest()
OTHER_KEY = hashlib.sha256(b"another mesh").digest()
# Two identities ordered by public key: the greater key plays the SHS client.
LO, HI = sorted((identity(11), identity(12)), key=lambda i: i.public)
THIRD = identity(13)

HYPO = settings(deadline=None, derandomize=True, max_examples=40)
INITIATOR_COMBOS = [(True, False), (False, True), (True, True), (None, None),
                    (True, None), (None, True), (None, False), (False, None)]


def allow(_key: bytes) -> bool:
    return True


def conn(ident: Identity, initiator: bool | None, *, key: bytes = KEY, authorize=allow,
         max_frame: int = MAX_FRAME) -> PeerConnection:
    return PeerConnection(ident, key, authorize, initiator=initiator, max_frame=max_frame)


class Pair:
    """Two connections back to back. `run()` shuttles bytes until neither has any to send;
    an error on either side is kept in `errors` (by side) rather than raised."""

    def __init__(self, a: PeerConnection, b: PeerConnection) -> None:
        self.a, self.b = a, b
        self.events: dict[str, list] = {"a": [], "b": []}
        self.errors: dict[str, RemoteError] = {}
        self.wire = {"a": bytearray(), "b": bytearray()}  # bytes each side received, in order
        self._pending = {"a": a.initial_bytes(), "b": b.initial_bytes()}

    def side(self, name: str) -> PeerConnection:
        return self.a if name == "a" else self.b

    def _deliver(self, src: str, data: bytes) -> None:
        dst = "b" if src == "a" else "a"
        if not data or dst in self.errors or src in self.errors:
            return
        self.wire[dst] += data
        try:
            self.events[dst] += self.side(dst).receive_data(data)
        except RemoteError as exc:
            self.errors[dst] = exc

    def run(self, rounds: int = 20) -> "Pair":
        for src in ("a", "b"):
            data, self._pending[src] = self._pending[src], b""
            self._deliver(src, data)
        for _ in range(rounds):
            moved = False
            for src in ("a", "b"):
                if src in self.errors:
                    continue
                data = self.side(src).data_to_send()
                moved |= bool(data)
                self._deliver(src, data)
            if not moved:
                return self
        raise AssertionError("the pair never went quiet")


def opened(a: PeerConnection, b: PeerConnection) -> Pair:
    pair = Pair(a, b).run()
    assert not pair.errors, pair.errors
    assert a.state is State.OPEN and b.state is State.OPEN
    return pair


def deliver(dst: PeerConnection, data: bytes) -> list:
    return dst.receive_data(data)


# --- success ----------------------------------------------------------------------------------


@pytest.mark.parametrize("a_init,b_init", INITIATOR_COMBOS)
@pytest.mark.parametrize("a_is_client", [True, False], ids=["a-greater-key", "a-lesser-key"])
def test_handshake_succeeds_for_every_role_combination(a_init, b_init, a_is_client) -> None:
    ia, ib = (HI, LO) if a_is_client else (LO, HI)
    a, b = conn(ia, a_init), conn(ib, b_init)
    pair = opened(a, b)
    assert pair.events["a"] == [Authenticated(ib.public)]
    assert pair.events["b"] == [Authenticated(ia.public)]
    assert a.peer == ib.public and b.peer == ia.public
    # messages both ways
    assert deliver(b, a.send(Ping(1))) == [Received(Ping(1))]
    assert deliver(a, b.send(Pong(1))) == [Received(Pong(1))]
    assert a.bytes_out == b.bytes_in and b.bytes_out == a.bytes_in


@pytest.mark.parametrize("a_init,b_init", INITIATOR_COMBOS)
def test_handshake_one_byte_at_a_time(a_init, b_init) -> None:
    a, b = conn(HI, a_init), conn(LO, b_init)
    queues = {"a": bytearray(a.initial_bytes()), "b": bytearray(b.initial_bytes())}
    events = {"a": [], "b": []}
    for _ in range(2000):
        queues["a"] += a.data_to_send()
        queues["b"] += b.data_to_send()
        if not queues["a"] and not queues["b"]:
            break
        for src, dst in (("a", b), ("b", a)):
            if queues[src]:
                events["b" if src == "a" else "a"] += dst.receive_data(bytes(queues[src][:1]))
                del queues[src][:1]
    assert a.state is State.OPEN and b.state is State.OPEN
    assert events == {"a": [Authenticated(LO.public)], "b": [Authenticated(HI.public)]}


def test_acceptor_speaks_only_after_the_peer_and_two_acceptors_stay_silent() -> None:
    a, b = conn(HI, False), conn(LO, False)
    assert a.initial_bytes() == b"" and b.initial_bytes() == b""
    assert a.state is State.PREHELLO and b.state is State.PREHELLO


@pytest.mark.parametrize("client_is_dialer", [True, False])
def test_handshake_message_sizes_step_by_step(client_is_dialer: bool) -> None:
    """prehello 72 bytes each way, then SHS messages of 64, 64, 112 and 80 bytes."""
    client, server = (conn(HI, True), conn(LO, False)) if client_is_dialer else \
        (conn(HI, False), conn(LO, True))
    dialer, acceptor = (client, server) if client_is_dialer else (server, client)
    hello = dialer.initial_bytes()
    assert len(hello) == PREHELLO_SIZE and acceptor.initial_bytes() == b""
    assert acceptor.receive_data(hello) == []
    assert acceptor.state is State.HANDSHAKE
    reply = acceptor.data_to_send()
    if acceptor is client:  # the acceptor's pre-hello and at once message 1
        assert len(reply) == PREHELLO_SIZE + 64
    else:
        assert len(reply) == PREHELLO_SIZE
    assert dialer.receive_data(reply) == []
    assert dialer.state is State.HANDSHAKE
    msg = dialer.data_to_send() if acceptor is server else b""
    if acceptor is server:
        assert len(msg) == 64  # message 1
        assert server.receive_data(msg) == []
    msg2 = server.data_to_send()
    assert len(msg2) == 64
    assert client.receive_data(msg2) == []
    msg3 = client.data_to_send()
    assert len(msg3) == 112
    assert server.receive_data(msg3) == [Authenticated(HI.public)]
    assert server.state is State.OPEN and client.state is State.HANDSHAKE
    msg4 = server.data_to_send()
    assert len(msg4) == 80
    assert client.receive_data(msg4) == [Authenticated(LO.public)]
    assert client.state is State.OPEN


def test_server_may_send_right_after_message_4_in_the_same_chunk() -> None:
    """The server opens first; its first frame can reach the client glued to message 4."""
    client, server = conn(HI, None), conn(LO, None)
    c0, s0 = client.initial_bytes(), server.initial_bytes()
    client.receive_data(s0)
    server.receive_data(c0)
    server.receive_data(client.data_to_send())  # message 1
    client.receive_data(server.data_to_send())  # message 2
    server.receive_data(client.data_to_send())  # message 3
    assert server.state is State.OPEN
    glued = server.data_to_send() + server.send(Hello(1, "srv", ("h:1",))) + server.send(Ping(9))
    assert client.receive_data(glued) == [
        Authenticated(LO.public), Received(Hello(1, "srv", ("h:1",))), Received(Ping(9))]


def test_authorize_is_asked_about_the_peer_key() -> None:
    asked = {"a": [], "b": []}
    a = conn(HI, True, authorize=lambda k: asked["a"].append(k) or True)
    b = conn(LO, False, authorize=lambda k: asked["b"].append(k) or True)
    opened(a, b)
    assert asked["a"] and set(asked["a"]) == {LO.public}
    assert asked["b"] and set(asked["b"]) == {HI.public}


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("acceptor_ident", [LO, HI], ids=["acceptor-lesser", "acceptor-greater"])
def test_prober_without_the_mesh_secret_gets_no_bytes_from_an_acceptor(acceptor_ident) -> None:
    prober_ident = HI if acceptor_ident is LO else LO
    acceptor = conn(acceptor_ident, False)
    prober = conn(prober_ident, True, key=OTHER_KEY)
    assert acceptor.initial_bytes() == b""
    with pytest.raises(RemoteError):
        acceptor.receive_data(prober.initial_bytes())
    assert acceptor.state is State.FAILED
    assert acceptor.data_to_send() == b""
    assert acceptor.bytes_out == 0


@HYPO
@given(st.binary(min_size=PREHELLO_SIZE, max_size=400))
def test_random_probe_gets_no_bytes_and_a_remote_error(probe: bytes) -> None:
    acceptor = conn(LO, False)
    assert acceptor.initial_bytes() == b""
    with pytest.raises(RemoteError):
        acceptor.receive_data(probe)
    assert acceptor.state is State.FAILED
    assert acceptor.data_to_send() == b""


def test_short_probe_gets_nothing_then_eof_is_a_remote_error() -> None:
    acceptor = conn(LO, False)
    assert acceptor.receive_data(b"GET / HTTP/1.1\r\n") == []
    assert acceptor.data_to_send() == b""
    with pytest.raises(RemoteError):
        acceptor.receive_eof()
    assert acceptor.state is State.FAILED


@pytest.mark.parametrize("a_init,b_init", INITIATOR_COMBOS)
def test_wrong_mesh_secret_fails_both_sides(a_init, b_init) -> None:
    a, b = conn(HI, a_init), conn(LO, b_init, key=OTHER_KEY)
    pair = Pair(a, b).run()
    assert pair.errors, "a mesh-secret mismatch went unnoticed"
    assert not any(isinstance(e, Authenticated) for evs in pair.events.values() for e in evs)
    for name in ("a", "b"):
        side = pair.side(name)
        if name not in pair.errors:  # it heard nothing it could refuse: the other hangs up
            with pytest.raises(RemoteError):
                side.receive_eof()
        assert side.state is State.FAILED


@pytest.mark.parametrize("refuser", ["a", "b"])
@pytest.mark.parametrize("refuser_is_client", [True, False])
@pytest.mark.parametrize("a_init,b_init", [(True, False), (False, True), (None, None)])
def test_unknown_or_revoked_peer_is_refused_by_the_side_that_says_no(
        refuser, refuser_is_client, a_init, b_init) -> None:
    ref_ident, other_ident = (HI, LO) if refuser_is_client else (LO, HI)
    idents = {refuser: ref_ident, ("b" if refuser == "a" else "a"): other_ident}
    deny = lambda k: False  # noqa: E731
    a = conn(idents["a"], a_init, authorize=deny if refuser == "a" else allow)
    b = conn(idents["b"], b_init, authorize=deny if refuser == "b" else allow)
    pair = Pair(a, b).run()
    other = "b" if refuser == "a" else "a"
    assert refuser in pair.errors
    assert "member" in str(pair.errors[refuser]) or "revoked" in str(pair.errors[refuser])
    assert pair.side(refuser).state is State.FAILED
    assert Authenticated(idents[other]) not in pair.events[refuser]
    assert pair.events[other] == []  # the accepted side never learns it is "in"
    side = pair.side(other)
    if other not in pair.errors:
        with pytest.raises(RemoteError):
            side.receive_eof()
    assert side.state is State.FAILED


@pytest.mark.parametrize("a_init,b_init", INITIATOR_COMBOS)
def test_connected_to_itself(a_init, b_init) -> None:
    a, b = conn(HI, a_init), conn(HI, b_init)
    pair = Pair(a, b).run()
    assert pair.errors
    assert all("itself" in str(e) for e in pair.errors.values())
    for name in ("a", "b"):
        if name not in pair.errors:
            with pytest.raises(RemoteError):
                pair.side(name).receive_eof()
        assert pair.side(name).state is State.FAILED


def test_prehello_claiming_another_members_key_is_refused() -> None:
    """A member (THIRD) sends a pre-hello claiming a greater member key, then proves itself:
    the victim plays SHS server, the proof names THIRD, not the claimed key."""
    victim, claimed = LO, HI
    assert victim.public < claimed.public
    members = {LO.public, HI.public, THIRD.public}
    target = conn(victim, False, authorize=lambda k: k in members)
    assert target.receive_data(prehello.seal(KEY, claimed.public)) == []
    assert target.state is State.HANDSHAKE
    assert target.data_to_send()[:PREHELLO_SIZE]  # the victim's pre-hello
    liar = Handshake.client(KEY, bytes(THIRD.signing_key), victim.public)
    assert target.receive_data(liar.initial_bytes()) == []
    msg3 = liar.receive_data(target.data_to_send())
    with pytest.raises(RemoteError, match="differs from its pre-hello"):
        target.receive_data(msg3)
    assert target.state is State.FAILED


# --- truncation -------------------------------------------------------------------------------


def _cut_run(victim_is_client: bool, cut: int) -> tuple[PeerConnection, int]:
    """A whole conversation (pre-hello, handshake, two messages, goodbye) from a dialer to an
    acceptor (the victim), except that the victim receives only the first `cut` bytes of it.
    Returns the victim and how many bytes it received."""
    sender = conn(LO if victim_is_client else HI, True)
    victim = conn(HI if victim_is_client else LO, False)
    script = [lambda: sender.send(Ping(1)), lambda: sender.send(Hello(1, "x", ())), sender.close]
    queue = bytearray(sender.initial_bytes())
    got = 0
    for _ in range(100):
        take = bytes(queue[:cut - got])
        del queue[:len(take)]
        if take:
            assert victim.receive_data(take) is not None  # a prefix of a valid stream: no error
            got += len(take)
        back = victim.data_to_send()
        if back:
            sender.receive_data(back)
        queue += sender.data_to_send()
        if not queue and sender.state is State.OPEN and script:
            queue += script.pop(0)()
        if not queue and not back:
            return victim, got
        if got == cut and queue:
            return victim, got
    raise AssertionError("conversation did not end")


@pytest.mark.parametrize("victim_is_client", [True, False])
def test_truncation_at_every_byte_is_a_remote_error_until_the_goodbye(victim_is_client) -> None:
    """Cut the stream the victim receives after k bytes, for every k of a whole conversation:
    eof is a RemoteError (and FAILED) unless the goodbye arrived complete."""
    victim, total = _cut_run(victim_is_client, 10**9)
    assert victim.state is State.CLOSED
    for k in range(total + 1):
        victim, got = _cut_run(victim_is_client, k)
        assert got == k
        if k == total:
            assert victim.state is State.CLOSED
            victim.receive_eof()  # after a goodbye: a clean end
            assert victim.state is State.CLOSED
        else:
            assert victim.state is not State.CLOSED, k
            with pytest.raises(RemoteError):
                victim.receive_eof()
            assert victim.state is State.FAILED


@pytest.mark.parametrize("phase", ["prehello", "handshake", "open"])
def test_eof_in_each_phase_is_a_remote_error(phase: str) -> None:
    a, b = conn(HI, True), conn(LO, False)
    if phase == "prehello":
        b.receive_data(a.initial_bytes()[:10])
    elif phase == "handshake":
        b.receive_data(a.initial_bytes())
        a.receive_data(b.data_to_send())
        assert b.state is State.HANDSHAKE
    else:
        opened(a, b)
        b.receive_data(a.send(Ping(3))[:20])  # inside a frame
    with pytest.raises(RemoteError):
        b.receive_eof()
    assert b.state is State.FAILED


def test_eof_after_goodbye_is_clean_and_between_frames_without_it_is_not() -> None:
    a, b = conn(HI, True), conn(LO, False)
    opened(a, b)
    assert deliver(b, a.send(Ping(1))) == [Received(Ping(1))]
    assert deliver(b, a.close()) == [Closed()]
    b.receive_eof()
    assert b.state is State.CLOSED
    c, d = conn(HI, True), conn(LO, False)
    opened(c, d)
    deliver(d, c.send(Ping(1)))
    with pytest.raises(RemoteError, match="truncated"):
        d.receive_eof()


# --- closing --------------------------------------------------------------------------------


def test_close_before_open_sends_nothing_and_send_after_close_is_local_error() -> None:
    a = conn(HI, True)
    a.initial_bytes()
    assert a.close() == b""
    assert a.state is State.CLOSED
    with pytest.raises(LocalError):
        a.send(Ping(1))
    b, c = conn(HI, True), conn(LO, False)
    opened(b, c)
    bye = b.close()
    assert len(bye) == HEADER_SIZE
    assert b.close() == b""  # a second close says nothing more
    with pytest.raises(LocalError):
        b.send(Ping(1))


def test_data_after_the_peers_goodbye_is_a_remote_error() -> None:
    a, b = conn(HI, True), conn(LO, False)
    opened(a, b)
    assert deliver(b, a.close()) == [Closed()]
    assert b.receive_data(b"") == []
    with pytest.raises(RemoteError):
        b.receive_data(b"\x00" * 40)
    assert b.state is State.FAILED


def test_peer_data_after_our_own_close_is_refused() -> None:
    a, b = conn(HI, True), conn(LO, False)
    opened(a, b)
    a.close()
    with pytest.raises(RemoteError):
        a.receive_data(b.send(Ping(1)))
    assert a.state is State.FAILED


def test_goodbye_followed_by_data_in_the_same_chunk_is_a_remote_error() -> None:
    a, b = conn(HI, True), conn(LO, False)
    opened(a, b)
    with pytest.raises(RemoteError):
        b.receive_data(a.send(Ping(1)) + a.close() + b"trailing junk")
    assert b.state is State.FAILED


def test_goodbye_ending_exactly_on_a_feed_boundary_then_data_is_a_remote_error() -> None:
    """PeerConnection feeds the channel max_frame bytes at a time; data that follows a goodbye
    must be refused wherever the goodbye falls relative to those pieces."""
    small = 1024
    a, b = conn(HI, True, max_frame=small), conn(LO, False, max_frame=small)
    opened(a, b)
    # one frame + the goodbye (a header) == exactly `small` bytes (msgpack: bin16 from 256 bytes)
    body = small - FRAME_OVERHEAD - HEADER_SIZE - (len(encode(BlockData(2, b"\x01" * 300))) - 300)
    frame = a.send(BlockData(2, b"\x01" * body))
    bye = a.close()
    assert len(frame) + len(bye) == small
    with pytest.raises(RemoteError):
        b.receive_data(frame + bye + b"trailing junk after the goodbye")
    assert b.state is State.FAILED


# --- messages after open ----------------------------------------------------------------------


def test_many_kinds_of_message_both_ways() -> None:
    a, b = conn(HI, None), conn(LO, None)
    opened(a, b)
    msgs = [Hello(1, "a", ("127.0.0.1:7440",), False), Digest({b"\x01" * 32: 5}, True),
            Delta(([b"\x02" * 32, 1, b"body", b"\x03" * 64],)), Ping(0), Pong(2**32 - 1)]
    for m in msgs:
        assert deliver(b, a.send(m)) == [Received(m)]
        assert deliver(a, b.send(m)) == [Received(m)]
    batch = b"".join(a.send(Ping(i)) for i in range(100))
    assert deliver(b, batch) == [Received(Ping(i)) for i in range(100)]


@pytest.mark.parametrize("direction", ["a->b", "b->a"])
def test_max_size_block_data_both_ways(direction: str) -> None:
    a, b = conn(HI, True), conn(LO, False)
    opened(a, b)
    src, dst = (a, b) if direction == "a->b" else (b, a)
    block = BlockData(7, bytes(range(256)) * (MAX_BLOCK_SIZE // 256))
    assert len(block.data) == MAX_BLOCK_SIZE
    assert deliver(dst, src.send(block)) == [Received(block)]
    # the largest BlockData whose encoding fills one frame exactly
    n = MAX_FRAME - (len(encode(BlockData(8, b"\0" * 70000))) - 70000)
    biggest = BlockData(8, b"\xab" * n)
    assert len(encode(biggest)) == MAX_FRAME
    three = src.send(biggest) + src.send(Ping(1)) + src.send(biggest)
    assert deliver(dst, three) == [Received(biggest), Received(Ping(1)), Received(biggest)]
    with pytest.raises(LocalError):
        src.send(BlockData(9, b"\0" * (n + 1)))
    assert src.state is State.OPEN  # our own oversize message is our bug, not a dead link
    assert deliver(dst, src.send(Ping(2))) == [Received(Ping(2))]


def test_frame_larger_than_our_max_frame_is_a_remote_error() -> None:
    a = conn(HI, True, max_frame=4 * MAX_FRAME)
    b = conn(LO, False)
    opened(a, b)
    with pytest.raises(RemoteError):
        b.receive_data(a.send(BlockData(1, b"\0" * (MAX_FRAME + 10))))
    assert b.state is State.FAILED


def test_undecodable_message_inside_a_valid_frame_is_a_remote_error() -> None:
    a, b = conn(HI, True), conn(LO, False)
    opened(a, b)
    frame = a._channel.seal_frame(b"\xc1 not msgpack")  # white box: a peer with a broken encoder
    with pytest.raises(RemoteError):
        b.receive_data(frame)
    assert b.state is State.FAILED


def test_tampered_frame_is_a_remote_error() -> None:
    a, b = conn(HI, True), conn(LO, False)
    opened(a, b)
    frame = bytearray(a.send(Ping(1)))
    frame[-1] ^= 1
    with pytest.raises(RemoteError):
        b.receive_data(bytes(frame))
    assert b.state is State.FAILED


def test_replayed_frame_is_a_remote_error() -> None:
    a, b = conn(HI, True), conn(LO, False)
    opened(a, b)
    frame = a.send(Ping(1))
    assert deliver(b, frame) == [Received(Ping(1))]
    with pytest.raises(RemoteError):
        b.receive_data(frame)


def test_send_before_open_is_a_local_error() -> None:
    a = conn(HI, True)
    with pytest.raises(LocalError):
        a.send(Ping(1))
    a.initial_bytes()
    with pytest.raises(LocalError):
        a.send(Ping(1))


# --- the transition table: every (State, input kind) pair -----------------------------------

INPUTS = ["valid", "garbage", "empty", "eof"]
# The documented result of each pair: the state afterwards; FAILED always comes with RemoteError.
EXPECTED = {
    (State.PREHELLO, "valid"): State.HANDSHAKE,
    (State.PREHELLO, "garbage"): State.FAILED,
    (State.PREHELLO, "empty"): State.PREHELLO,
    (State.PREHELLO, "eof"): State.FAILED,
    (State.HANDSHAKE, "valid"): State.OPEN,
    (State.HANDSHAKE, "garbage"): State.FAILED,
    (State.HANDSHAKE, "empty"): State.HANDSHAKE,
    (State.HANDSHAKE, "eof"): State.FAILED,
    (State.OPEN, "valid"): State.OPEN,
    (State.OPEN, "garbage"): State.FAILED,
    (State.OPEN, "empty"): State.OPEN,
    (State.OPEN, "eof"): State.FAILED,
    (State.CLOSED, "valid"): State.FAILED,  # bytes after close, even ones the peer could send
    (State.CLOSED, "garbage"): State.FAILED,
    (State.CLOSED, "empty"): State.CLOSED,
    (State.CLOSED, "eof"): State.CLOSED,
    (State.FAILED, "valid"): State.FAILED,
    (State.FAILED, "garbage"): State.FAILED,
    (State.FAILED, "empty"): State.FAILED,
    (State.FAILED, "eof"): State.FAILED,
}
GARBAGE = bytes((i * 37 + 11) % 256 for i in range(300))


def test_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(State)
    assert set(EXPECTED) == {(s, i) for s in State for i in INPUTS}


def _at(state: State, me: Identity, peer_ident: Identity) -> tuple[PeerConnection, bytes, list]:
    """A connection in `state`, the next bytes a correct peer sends it, and the events those
    give. For HANDSHAKE: the connection awaits its last handshake message."""
    me_conn, peer = conn(me, None), conn(peer_ident, None)
    if state is State.PREHELLO:
        return me_conn, peer.initial_bytes(), []
    if state is State.FAILED:
        with pytest.raises(RemoteError):
            me_conn.receive_data(GARBAGE)
        return me_conn, peer.initial_bytes(), []
    c, p = me_conn.initial_bytes(), peer.initial_bytes()
    me_conn.receive_data(p)
    peer.receive_data(c)
    if me.public > peer_ident.public:  # we are the SHS client: last message is 4
        peer.receive_data(me_conn.data_to_send())  # 1
        me_conn.receive_data(peer.data_to_send())  # 2
        peer.receive_data(me_conn.data_to_send())  # 3
    else:  # we are the server: last message is 3
        me_conn.receive_data(peer.data_to_send())  # 1
        peer.receive_data(me_conn.data_to_send())  # 2
    last = peer.data_to_send()
    if state is State.HANDSHAKE:
        assert me_conn.state is State.HANDSHAKE
        return me_conn, last, [Authenticated(peer_ident.public)]
    assert me_conn.receive_data(last) == [Authenticated(peer_ident.public)]
    peer.receive_data(me_conn.data_to_send())
    assert me_conn.state is State.OPEN and peer.state is State.OPEN
    if state is State.OPEN:
        return me_conn, peer.send(Ping(42)), [Received(Ping(42))]
    assert state is State.CLOSED
    assert me_conn.close()
    return me_conn, peer.send(Ping(42)), []


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("state", list(State), ids=lambda s: s.name)
@pytest.mark.parametrize("role", ["greater-key", "lesser-key"])
def test_every_state_and_input(state: State, kind: str, role: str) -> None:
    me, other = (HI, LO) if role == "greater-key" else (LO, HI)
    c, valid, valid_events = _at(state, me, other)
    assert c.state is state
    expected = EXPECTED[(state, kind)]
    fails = expected is State.FAILED

    def act():
        if kind == "eof":
            return c.receive_eof()
        data = {"valid": valid, "garbage": GARBAGE, "empty": b""}[kind]
        return c.receive_data(data)

    if fails:
        with pytest.raises(RemoteError):
            act()
    else:
        result = act()
        if kind == "valid":
            assert result == valid_events
        elif kind == "empty":
            assert result == []
    assert c.state is expected


def test_small_messages_sent_together_share_a_frame_and_arrive_in_order() -> None:
    """Protocol 4: a gossip round's Digest and DeltaAck (and other small messages queued at
    once) cost one frame's 68 bytes, not one each; a large message keeps a frame of its own,
    and an oversize one refuses the whole lot before any frame is sealed (the nonces stay in
    step)."""
    from gossip_backer.wire.messages import DeltaAck
    a, b = conn(HI, True), conn(LO, False)
    opened(a, b)
    small = [Digest({b"o" * 32: 7}, False), DeltaAck(1, 1), Ping(3)]
    big = BlockData(4, b"\1" * 100_000)
    data = a.send_many(small + [big, Pong(5)])
    apart = sum(len(encode(m)) + FRAME_OVERHEAD for m in small + [big, Pong(5)])
    assert len(data) == apart - 2 * FRAME_OVERHEAD + 9  # three in one frame (+ msgpack headers)
    assert deliver(b, data) == [Received(m) for m in small + [big, Pong(5)]]
    with pytest.raises(LocalError):
        a.send_many([Ping(6), BlockData(9, b"\0" * (MAX_FRAME + 1))])
    assert deliver(b, a.send(Ping(7))) == [Received(Ping(7))]
