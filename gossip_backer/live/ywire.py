"""The y-websocket wire, sans-IO: one editor's connection to one live document.

y-protocols messages (the stable Yjs 13 stack): a varUint type, 0 = sync, 1 = awareness.
A sync message has a varUint subtype, 0 = step 1 (a state vector: "send me what I lack"),
1 = step 2 (an update answering a step 1), 2 = update, then a varUint-length payload. The server
says step 1 first; the client answers step 2 and sends its own step 1, which gets a step 2.

The session does not apply a client's update itself: it hands it out (`Inbound.update`), and the
node merges it through the live machine (published to the mesh, written to disk), whose change
comes back to every session of that document. A read-only node's session drops step 2 and update
messages from clients: they can read, not write. Awareness messages (cursors, names) are relayed
between the editors of one document as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from gossip_backer.live.textdoc import TextDoc

MAX_MESSAGE = 16 * 1024 * 1024  # bytes of one message from a client


class YProtocolError(ValueError):
    """A client sent something that is no y-protocols message."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """What one client message asks for."""

    replies: tuple[bytes, ...] = ()  # to send back to this client
    update: bytes | None = None  # the client's edit, to merge
    awareness: bytes | None = None  # to relay to the other editors


_EMPTY_UPDATES = (b"", b"\x00\x00")


def _sync(sub: int, payload: bytes) -> bytes:
    from pycrdt import YMessageType, write_message  # (loaded with the first live document)

    return bytes([YMessageType.SYNC, sub]) + write_message(payload)


def create_sync_step1_message(state: bytes) -> bytes:
    from pycrdt import YSyncMessageType

    return _sync(YSyncMessageType.SYNC_STEP1, state)


def create_sync_step2_message(update: bytes) -> bytes:
    from pycrdt import YSyncMessageType

    return _sync(YSyncMessageType.SYNC_STEP2, update)


class YSession:
    """One client of one document (see the module docstring)."""

    def __init__(self, doc: TextDoc, *, read_only: bool) -> None:
        self.doc = doc
        self.read_only = read_only

    def hello(self) -> list[bytes]:
        """What the server says first: its state vector (sync step 1)."""
        return [create_sync_step1_message(self.doc.state())]

    def receive(self, message: bytes) -> Inbound:
        from pycrdt import Decoder, YMessageType, YSyncMessageType

        if len(message) > MAX_MESSAGE:
            raise YProtocolError("message too large")
        try:
            decoder = Decoder(message)
            kind = decoder.read_var_uint()
            if kind == YMessageType.AWARENESS:
                return Inbound(awareness=message)
            if kind != YMessageType.SYNC:
                return Inbound()  # auth or query-awareness messages: nothing to do here
            sub = decoder.read_var_uint()
            payload = decoder.read_message()
        except (IndexError, RuntimeError) as exc:
            raise YProtocolError("malformed y-protocols message") from exc
        if payload is None:
            raise YProtocolError("sync message without payload")
        if sub == YSyncMessageType.SYNC_STEP1:
            try:
                answer = self.doc.update_since(payload)
            except Exception as exc:  # pycrdt refuses a malformed state vector
                raise YProtocolError("malformed state vector") from exc
            return Inbound(replies=(create_sync_step2_message(answer),))
        if sub in (YSyncMessageType.SYNC_STEP2, YSyncMessageType.SYNC_UPDATE):
            if self.read_only or payload in _EMPTY_UPDATES:
                return Inbound()
            return Inbound(update=payload)
        raise YProtocolError(f"unknown sync message type {sub}")

    @staticmethod
    def update_message(update: bytes) -> bytes:
        """A change of the document, for this client."""
        from pycrdt import create_update_message

        return create_update_message(update)


__all__ = ["YSession", "Inbound", "YProtocolError"]
