"""One peer connection as a sans-IO machine: pre-hello, Secret Handshake, box-stream, messages.

Theory of operation. The Secret Handshake needs roles: the client must know the server's key. A
TCP dialer knows whom it dials, but `Node.serve_stream` takes any duplex stream, where neither end
may know who is on the other. So each connection starts with a pre-hello: a secretbox, under a key
derived from the mesh secret, of the sender's public key. A prober without the mesh secret cannot
read it, and gets no pre-hello back (the side that accepts a connection speaks only after a valid
pre-hello). Once both keys are known the greater key plays the SHS client, and the handshake runs
exactly as specified, proving both identities and the mesh secret; the pre-hello claim counts for
nothing until then. After the handshake every byte is a box-stream frame holding one msgpack
message (wire/messages.py).

States and inputs form a table (`TRANSITIONS`); bytes in a state that does not take them, or any
check that fails, raise RemoteError and the connection is dead.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from gossip_backer.crypto import prehello
from gossip_backer.crypto.channel import CLOSED, NEED_DATA, BoxStreamChannel
from gossip_backer.crypto.handshake import Handshake
from gossip_backer.crypto.identity import Identity
from gossip_backer.errors import LocalError, RemoteError
from gossip_backer.wire import messages
from gossip_backer.wire.messages import Message

PREHELLO_SIZE = prehello.SIZE
MAX_FRAME = 2 * 1024 * 1024


class State(enum.Enum):
    PREHELLO = "prehello"
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSED = "closed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Authenticated:
    """Both sides proved identity and mesh membership; `peer` is the peer's public key."""

    peer: bytes


@dataclass(frozen=True, slots=True)
class Received:
    message: Message


@dataclass(frozen=True, slots=True)
class Closed:
    """The peer said goodbye."""


PeerEvent = Authenticated | Received | Closed


class PeerConnection:
    """Bytes in, events and bytes out, for one connection (see the module docstring)."""

    def __init__(self, identity: Identity, network_key: bytes, authorize: Callable[[bytes], bool],
                 *, initiator: bool | None = None, max_frame: int = MAX_FRAME) -> None:
        """`initiator`: True for a dialer, False for an acceptor (speaks only after the peer),
        None when the roles are unknown (both speak at once)."""
        self.identity = identity
        self.network_key = network_key
        self.authorize = authorize
        self.initiator = initiator
        self.max_frame = max_frame
        self.state = State.PREHELLO
        self.peer: bytes | None = None
        self._buffer = bytearray()
        self._out = bytearray()
        self._sent_prehello = False
        self._handshake: Handshake | None = None
        self._channel: BoxStreamChannel | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    # -- output ----------------------------------------------------------------------------
    def initial_bytes(self) -> bytes:
        if self.initiator is not False:
            self._send_prehello()
        return self.data_to_send()

    def data_to_send(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        self.bytes_out += len(out)
        return out

    def send(self, message: Message) -> bytes:
        """Encrypt one message; LocalError if the connection is not open or it is too large."""
        if self.state is not State.OPEN or self._channel is None:
            raise LocalError(f"cannot send in state {self.state.value}")
        body = messages.encode(message)
        frame = self._channel.seal_frame(body)
        self.bytes_out += len(frame)
        return frame

    def send_many(self, batch: list[Message]) -> bytes:
        """Encrypt messages queued together: small ones share a frame (wire.messages.bundles).
        LocalError if the connection is not open or one is too large (nothing is sent then)."""
        if self.state is not State.OPEN or self._channel is None:
            raise LocalError(f"cannot send in state {self.state.value}")
        bodies = messages.bundles([messages.encode(m) for m in batch])
        if any(len(body) > self._channel.max_frame for body in bodies):  # before any is sealed:
            raise LocalError("a message exceeds the frame size")  # the nonces stay in step
        frames = [self._channel.seal_frame(body) for body in bodies]
        out = frames[0] if len(frames) == 1 else b"".join(frames)  # a block batch's ~2 MiB frame
        # goes out as sealed, not copied again
        self.bytes_out += len(out)
        return out

    def close(self) -> bytes:
        """A clean goodbye (empty if the channel never opened)."""
        was_open = self.state is State.OPEN and self._channel is not None
        self.state = State.CLOSED
        if was_open and not self._channel.send_closed:
            data = self._channel.goodbye()
            self.bytes_out += len(data)
            return data
        return b""

    # -- input -----------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[PeerEvent]:
        """Consume bytes from the peer; returns events. Raises RemoteError on any violation."""
        self.bytes_in += len(data)
        try:
            return TRANSITIONS[self.state](self, data)
        except RemoteError:
            self.state = State.FAILED
            raise

    def receive_eof(self) -> None:
        """The transport ended; RemoteError unless the peer had said goodbye."""
        if self.state is State.CLOSED:
            return
        state, self.state = self.state, State.FAILED
        if state is State.OPEN and self._channel is not None:
            self._channel.receive_eof()
            return
        raise RemoteError(f"connection closed during {state.value}")

    # -- transitions -----------------------------------------------------------------------
    def _on_prehello(self, data: bytes) -> list[PeerEvent]:
        self._buffer += data
        if len(self._buffer) < PREHELLO_SIZE:
            return []
        boxed = bytes(self._buffer[:PREHELLO_SIZE])
        rest = bytes(self._buffer[PREHELLO_SIZE:])
        self._buffer = bytearray()
        claimed = prehello.open_(self.network_key, boxed)
        if claimed == self.identity.public:
            raise RemoteError("connected to itself")
        self.peer = claimed
        if not self._sent_prehello:
            self._send_prehello()
        self._start_handshake()
        return self._on_handshake(rest) if rest else []

    def _start_handshake(self) -> None:
        self.state = State.HANDSHAKE
        seed = bytes(self.identity.signing_key)
        if self.identity.public > self.peer:
            if not self.authorize(self.peer):
                raise RemoteError(f"the peer {self.peer.hex()} is not a member of this mesh "
                                  "(unknown or revoked)")
            self._handshake = Handshake.client(self.network_key, seed, self.peer)
        else:
            self._handshake = Handshake.server(self.network_key, seed, self.authorize)
        self._out += self._handshake.initial_bytes()

    def _on_handshake(self, data: bytes) -> list[PeerEvent]:
        hs = self._handshake
        self._out += hs.receive_data(data)
        if not hs.is_done:
            return []
        result = hs.result
        if result.remote_public_key != self.peer:
            raise RemoteError("the peer's proven key differs from its pre-hello")
        if not self.authorize(self.peer):
            raise RemoteError(f"the peer {self.peer.hex()} is not a member of this mesh "
                              "(unknown or revoked)")
        self._channel = BoxStreamChannel.from_handshake(result, max_frame=self.max_frame)
        self.state = State.OPEN
        events: list[PeerEvent] = [Authenticated(self.peer)]
        if hs.trailing_data:
            events += self._on_open(hs.trailing_data)
        return events

    def _on_open(self, data: bytes) -> list[PeerEvent]:
        channel = self._channel
        events: list[PeerEvent] = []
        step = channel.max_frame
        for i in range(0, len(data), step):  # feed at most a frame at a time, draining between
            if self.state is State.CLOSED:
                raise RemoteError("data after the peer's goodbye")
            channel.receive_data(data[i:i + step])
            events += self._drain()
        return events

    def _drain(self) -> list[PeerEvent]:
        events: list[PeerEvent] = []
        while True:
            item = self._channel.next_message()
            if item is NEED_DATA:
                return events
            if item is CLOSED:
                self.state = State.CLOSED
                events.append(Closed())
                return events
            events += [Received(m) for m in messages.decode_all(item)]

    def _on_closed(self, data: bytes) -> list[PeerEvent]:
        if data:
            raise RemoteError("data after the connection closed")
        return []

    def _on_failed(self, data: bytes) -> list[PeerEvent]:
        raise RemoteError("connection already failed")

    def _send_prehello(self) -> None:
        self._out += prehello.seal(self.network_key, self.identity.public)
        self._sent_prehello = True


TRANSITIONS: dict[State, Callable[[PeerConnection, bytes], list[PeerEvent]]] = {
    State.PREHELLO: PeerConnection._on_prehello,
    State.HANDSHAKE: PeerConnection._on_handshake,
    State.OPEN: PeerConnection._on_open,
    State.CLOSED: PeerConnection._on_closed,
    State.FAILED: PeerConnection._on_failed,
}
