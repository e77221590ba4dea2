"""Box-stream: the encrypted, authenticated frames that follow the Secret Handshake, sans-IO.

Theory of operation
-------------------
Each direction has its own key and a 24-byte nonce from the handshake, used as a big-endian
counter. A frame is two secretboxes (XSalsa20-Poly1305) under consecutive nonces n and n+1:

    header  = secretbox_n(body length: 4 bytes big-endian | body MAC: 16 bytes)   36 bytes
    body    = secretbox_n+1(plaintext) without its MAC (the MAC rode in the header)

and the next frame starts at n+2. This is Secure Scuttlebutt's box-stream with a 4-byte length
instead of 2, so bodies up to `max_frame` (1 MiB by default) fit one frame. Because the nonce is
implied by the position in the stream, a replayed, reordered, dropped or altered frame fails its
MAC: every such fault surfaces as RemoteError. The header is opened first, so the body length is
authenticated and checked against `max_frame` before any memory is set aside for the body.

Closing: a "goodbye" is a header sealing 20 zero bytes (length 0, MAC 0); a real header carries
its body's MAC, all zeros with probability 2**-128. A stream that ends without a goodbye was cut
short, perhaps by an attacker, so `receive_eof()` without one raises RemoteError("truncated").

Sending: `seal(data)` returns one frame, or several of at most `max_frame` bytes each when data is
longer (the receiver then gets several messages whose concatenation is `data`); `seal_frame(body)`
refuses a body over `max_frame` with LocalError. Receiving: `receive_data(bytes)`, then call
`next_message()` until it returns NEED_DATA; it returns plaintext bytes, NEED_DATA, or CLOSED.
The unparsed buffer is capped at two maximal frames (see `wire.framing.ReceiveBuffer`), so the
caller must drain between feeds. After any RemoteError the channel stays broken.

libsodium's sodium_increment is little-endian; box-stream counts big-endian, so the counter is
kept as a Python int and encoded big-endian (`increment_nonce` spells the rule out).
"""

from __future__ import annotations

from typing import Any, Callable, Final, TypeVar

import nacl.bindings as sodium
from nacl.exceptions import CryptoError

from gossip_backer.crypto.handshake import HandshakeResult
from gossip_backer.errors import LocalError, RemoteError
from gossip_backer.wire.framing import (
    CLOSED,
    DEFAULT_MAX_FRAME,
    NEED_DATA,
    ReceiveBuffer,
    Sentinel,
)

__all__ = [
    "BoxStreamChannel",
    "increment_nonce",
    "HEADER_SIZE",
    "NEED_DATA",
    "CLOSED",
    "DEFAULT_MAX_FRAME",
]

T = TypeVar("T")

_MAC: Final = 16
_LENGTH: Final = 4
_HEADER_PLAIN: Final = _LENGTH + _MAC  # 20
HEADER_SIZE: Final = _HEADER_PLAIN + _MAC  # 36: a sealed header on the wire
_GOODBYE: Final = bytes(_HEADER_PLAIN)
_NONCE_SIZE: Final = 24
_NONCE_MOD: Final = 1 << (8 * _NONCE_SIZE)


def _nonce(counter: int) -> bytes:
    """The 24-byte big-endian encoding of a counter, wrapping at 2**192."""
    return (counter % _NONCE_MOD).to_bytes(_NONCE_SIZE, "big")


def increment_nonce(nonce: bytes, by: int = 1) -> bytes:
    """Add `by` to a 24-byte nonce read as a big-endian counter (box-stream's rule). The
    channel keeps its counters as ints and encodes them with the same `_nonce`."""
    return _nonce(int.from_bytes(nonce, "big") + by)


def _check_key_material(key: bytes, nonce: bytes) -> None:
    if len(key) != 32 or len(nonce) != _NONCE_SIZE:
        raise LocalError("box-stream needs 32-byte keys and 24-byte nonces")


class _Sender:
    """The sealing half: a key and the counter of the next header."""

    def __init__(self, key: bytes, nonce: bytes, max_frame: int) -> None:
        _check_key_material(key, nonce)
        self._key = key
        self._counter = int.from_bytes(nonce, "big")
        self._max_frame = max_frame
        self.closed = False

    def seal_frame(self, body: bytes) -> bytes:
        """One frame; LocalError for a body over max_frame or after goodbye."""
        if self.closed:
            raise LocalError("seal after goodbye: this channel no longer sends")
        if len(body) > self._max_frame:
            raise LocalError(f"body of {len(body)} bytes exceeds max_frame {self._max_frame}")
        if not isinstance(body, bytes):
            body = bytes(body)  # libsodium via cffi wants bytes, not a memoryview
        boxed = sodium.crypto_secretbox_easy(body, _nonce(self._counter + 1), self._key)
        header_plain = len(body).to_bytes(_LENGTH, "big") + boxed[:_MAC]
        header = sodium.crypto_secretbox_easy(header_plain, _nonce(self._counter), self._key)
        self._counter += 2
        return b"".join((header, memoryview(boxed)[_MAC:]))

    def goodbye(self) -> bytes:
        """The sealed all-zero header that tells the peer we are done sending."""
        if self.closed:
            raise LocalError("goodbye already sent")
        self.closed = True
        return sodium.crypto_secretbox_easy(_GOODBYE, _nonce(self._counter), self._key)


class _Receiver:
    """The opening half: a capped buffer, the counter of the next header, a pending header."""

    def __init__(self, key: bytes, nonce: bytes, max_frame: int) -> None:
        _check_key_material(key, nonce)
        self._key = key
        self._counter = int.from_bytes(nonce, "big")
        self._max_frame = max_frame
        self._buffer = ReceiveBuffer(2 * (HEADER_SIZE + max_frame))
        self._pending: tuple[int, bytes] | None = None  # (body length, body MAC)
        self.closed = False
        self._broken: str | None = None

    def __len__(self) -> int:
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        self._check_usable()
        if self.closed and data:
            self._break("data after goodbye")
        self._guard(self._buffer.feed, data)

    def next_message(self) -> bytes | Sentinel:
        self._check_usable()
        if self.closed:
            return CLOSED
        return self._guard(self._next)

    def receive_eof(self) -> None:
        self._check_usable()
        if self.closed:
            return
        where = "inside a frame" if self._pending or len(self._buffer) else "between frames"
        self._break(f"truncated: the stream ended {where}, without a goodbye")

    def _next(self) -> bytes | Sentinel:
        if self._pending is None:
            sealed = self._buffer.take(HEADER_SIZE)
            if sealed is None:
                return NEED_DATA
            header = self._open(sealed, self._counter, "header")
            if header == _GOODBYE:
                return self._on_goodbye()
            self._pending = self._checked_header(header)
        length, mac = self._pending
        sealed_body = self._buffer.take(length, prefix=mac)  # secretbox wants MAC | ciphertext
        if sealed_body is None:
            return NEED_DATA
        plaintext = self._open(sealed_body, self._counter + 1, "body")
        self._pending = None
        self._counter += 2
        return plaintext

    def _checked_header(self, header: bytes) -> tuple[int, bytes]:
        """Refuse an oversize body before buffering any of it."""
        length = int.from_bytes(header[:_LENGTH], "big")
        if length > self._max_frame:
            raise RemoteError(
                f"frame header announces {length} bytes; max_frame is {self._max_frame}"
            )
        return length, header[_LENGTH:]

    def _on_goodbye(self) -> Sentinel:
        self.closed = True
        if len(self._buffer):
            raise RemoteError(f"data after goodbye ({len(self._buffer)} bytes)")
        return CLOSED

    def _open(self, boxed: bytes, counter: int, what: str) -> bytes:
        try:
            return sodium.crypto_secretbox_open_easy(boxed, _nonce(counter), self._key)
        except CryptoError:
            raise RemoteError(
                f"frame {what} failed its MAC: tampered, replayed, reordered or wrong key"
            ) from None

    def _guard(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn; any RemoteError leaves the receiver broken for good."""
        try:
            return fn(*args)
        except RemoteError as exc:
            self._broken = str(exc)
            raise

    def _break(self, reason: str) -> None:
        self._broken = reason
        raise RemoteError(reason)

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise RemoteError(f"channel already failed: {self._broken}")


class BoxStreamChannel:
    """Both directions of one box-stream connection. See the module docstring for the rules."""

    def __init__(
        self,
        encrypt_key: bytes,
        encrypt_nonce: bytes,
        decrypt_key: bytes,
        decrypt_nonce: bytes,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        if not 0 < max_frame < 1 << (8 * _LENGTH):
            raise LocalError(f"max_frame must fit a {_LENGTH}-byte length: {max_frame}")
        self.max_frame = max_frame
        self._sender = _Sender(encrypt_key, encrypt_nonce, max_frame)
        self._receiver = _Receiver(decrypt_key, decrypt_nonce, max_frame)

    @classmethod
    def from_handshake(
        cls, result: HandshakeResult, *, max_frame: int = DEFAULT_MAX_FRAME
    ) -> BoxStreamChannel:
        """The channel a finished Handshake leads to (remember to feed its trailing_data)."""
        return cls(
            result.encrypt_key,
            result.encrypt_nonce,
            result.decrypt_key,
            result.decrypt_nonce,
            max_frame=max_frame,
        )

    # -- sending --

    def seal(self, data: bytes) -> bytes:
        """Frames carrying `data`: one if it fits max_frame, else consecutive max_frame pieces."""
        if len(data) <= self.max_frame:
            return self._sender.seal_frame(data)
        step = self.max_frame
        pieces = (data[i : i + step] for i in range(0, len(data), step))
        return b"".join(self._sender.seal_frame(piece) for piece in pieces)

    def seal_frame(self, body: bytes) -> bytes:
        """Exactly one frame; LocalError if `body` exceeds max_frame."""
        return self._sender.seal_frame(body)

    def goodbye(self) -> bytes:
        """The clean-close marker; sealing afterwards is a LocalError."""
        return self._sender.goodbye()

    @property
    def send_closed(self) -> bool:
        return self._sender.closed

    # -- receiving --

    def receive_data(self, data: bytes) -> None:
        """Buffer received bytes. Drain with next_message() before feeding more."""
        self._receiver.receive_data(data)

    def next_message(self) -> bytes | Sentinel:
        """The next plaintext, NEED_DATA, or CLOSED once the peer said goodbye."""
        return self._receiver.next_message()

    def receive_eof(self) -> None:
        """The transport ended: fine after a goodbye, RemoteError("truncated ...") otherwise."""
        self._receiver.receive_eof()

    @property
    def receive_closed(self) -> bool:
        """True once the peer's goodbye has been read."""
        return self._receiver.closed

    @property
    def buffered(self) -> int:
        """Received bytes not yet returned as messages."""
        return len(self._receiver)
