"""Awareness of live documents' editors (cursors, selections, names) across the mesh, sans-IO.

Theory of operation
-------------------
A Yjs editor says where its cursor is and who it is in y-protocols *awareness* messages (type 1):
an update of `(client id, clock, JSON state)` entries, `null` for a client that left. Each
client id is the editor's own random Yjs id, the same on every node, and a newer clock wins
(y-protocols `applyAwarenessUpdate`). This relay keeps, per live path, the newest entry of every
client id it heard of and who it came from (an editor on this node, or a peer), and:

- passes an entry that is newer than what it holds to this node's other editors at once, and
  to its peers (`LiveSync` with kind 1: not signed, not stored: cursors are ephemeral), at most
  once every `PEER_INTERVAL` seconds per path: entries arriving meanwhile coalesce (only the
  newest state of each client goes). An entry from a peer is passed on to the other peers the
  same way, so a mesh that is not fully connected still carries it; an entry that is not newer
  is dropped, which ends the flood.
- when an editor disconnects, or a peer link goes down, the entries that came through it are
  removed: this node's editors (and, for an editor, the peers) get them as `null` with the next
  clock, so its cursor disappears everywhere.
- an entry not renewed for `STALE` seconds (clients renew theirs every 15 s) is dropped and its
  removal told to this node's editors.
- a newcomer gets every state held for its path in one message.

Limits keep a misbehaving client or peer from growing the table: `MAX_CLIENTS` entries per path
and `MAX_STATE` bytes per state; what is beyond them is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

AWARENESS = 1  # the y-protocols message type, also `LiveSync.kind` for awareness between nodes
PEER_INTERVAL = 0.05  # seconds between two awareness messages of one path to the peers
STALE = 30.0  # seconds after which an entry not renewed is dropped (y-protocols' outdatedTimeout)
MAX_CLIENTS = 256  # entries held per path
MAX_STATE = 16 * 1024  # bytes of one client's JSON state
NULL = "null"


class AwarenessError(ValueError):
    """Bytes that are no y-protocols awareness update."""


# -- the lib0 encoding of an awareness update ----------------------------------------------------
def _read_uint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise AwarenessError("truncated or overlong number")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _uint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_update(update: bytes) -> list[tuple[int, int, str]]:
    """`(client id, clock, JSON state)` entries of an awareness update."""
    count, at = _read_uint(update, 0)
    out = []
    for _ in range(count):
        client, at = _read_uint(update, at)
        clock, at = _read_uint(update, at)
        size, at = _read_uint(update, at)
        if at + size > len(update):
            raise AwarenessError("truncated state")
        try:
            state = update[at:at + size].decode("utf-8")
        except UnicodeDecodeError:
            raise AwarenessError("state is not UTF-8") from None
        at += size
        out.append((client, clock, state))
    return out


def encode_update(entries: list[tuple[int, int, str]]) -> bytes:
    parts = [_uint(len(entries))]
    for client, clock, state in entries:
        raw = state.encode("utf-8")
        parts += [_uint(client), _uint(clock), _uint(len(raw)), raw]
    return b"".join(parts)


def message(update: bytes) -> bytes:
    """The y-protocols awareness message carrying `update`, for an editor."""
    return _uint(AWARENESS) + _uint(len(update)) + update


def update_of(msg: bytes) -> bytes:
    """The update inside an editor's awareness message."""
    kind, at = _read_uint(msg, 0)
    if kind != AWARENESS:
        raise AwarenessError("not an awareness message")
    size, at = _read_uint(msg, at)
    if at + size > len(msg):
        raise AwarenessError("truncated awareness message")
    return msg[at:at + size]


# -- what the relay asks its interpreter to do ----------------------------------------------------
@dataclass(frozen=True, slots=True)
class ToEditors:
    """Send `message` to this node's editors of `path`, but `skip`."""

    path: str
    message: bytes
    skip: object = None


@dataclass(frozen=True, slots=True)
class ToPeers:
    """Send `update` for `path` to every connected peer but `skip` (as LiveSync, kind 1)."""

    path: str
    update: bytes
    skip: bytes | None = None


@dataclass(slots=True)
class _Entry:
    clock: int
    state: str
    source: object  # an editor (its connection object) or a peer ("peer", key)
    seen: float


@dataclass(slots=True)
class _Path:
    entries: dict[int, _Entry] = field(default_factory=dict)
    pending: dict[int, _Entry] = field(default_factory=dict)  # to the peers, when allowed
    next_send: float = 0.0


class AwarenessRelay:
    """Awareness entries of one node's live paths (see the module docstring)."""

    def __init__(self) -> None:
        self.paths: dict[str, _Path] = {}

    # -- inputs ---------------------------------------------------------------------------------
    def from_editor(self, path: str, editor: object, msg: bytes, now: float) -> list:
        """An awareness message of an editor of this node. Raises AwarenessError for garbage."""
        return self._take(path, decode_update(update_of(msg)), editor, now)

    def from_peer(self, peer: bytes, path: str, update: bytes, now: float) -> list:
        """An awareness update a peer relayed (garbage is dropped: it is only cursors)."""
        try:
            entries = decode_update(update)
        except AwarenessError:
            return []
        return self._take(path, entries, ("peer", peer), now)

    def editor_left(self, path: str, editor: object, now: float) -> list:
        """An editor disconnected: its clients' entries are removed everywhere."""
        return self._remove(lambda e: e.source is editor, now, to_peers=True, only=path)

    def peer_gone(self, peer: bytes, now: float) -> list:
        """A peer link went down: the entries it brought are removed for this node's editors."""
        return self._remove(lambda e: e.source == ("peer", peer), now, to_peers=False)

    def tick(self, now: float) -> list:
        """Coalesced entries due to the peers; entries not renewed for `STALE` seconds dropped."""
        out = self._remove(lambda e: now - e.seen >= STALE, now, to_peers=False)
        for path, p in self.paths.items():
            if p.pending and p.next_send <= now:
                out += self._flush(path, p, now)
        self.paths = {k: p for k, p in self.paths.items() if p.entries or p.pending}
        return out

    def next_due(self) -> float | None:
        """When `tick` has something to do next (None: nothing held)."""
        due = [p.next_send for p in self.paths.values() if p.pending]
        due += [e.seen + STALE for p in self.paths.values() for e in p.entries.values()]
        return min(due) if due else None

    def hello(self, path: str) -> list[bytes]:
        """For an editor that just connected: every state held for `path`."""
        p = self.paths.get(path)
        entries = [] if p is None else [(c, e.clock, e.state) for c, e in p.entries.items()
                                        if e.state != NULL]
        return [message(encode_update(entries))] if entries else []

    # -- the rules ------------------------------------------------------------------------------
    def _take(self, path: str, entries: list, source: object, now: float) -> list:
        p = self.paths.setdefault(path, _Path())
        fresh = []
        for client, clock, state in entries:
            held = p.entries.get(client)
            newer = held is None or clock > held.clock or (
                clock == held.clock and state == NULL and held.state != NULL)
            full = held is None and len(p.entries) >= MAX_CLIENTS
            if not newer or full or len(state) > MAX_STATE:
                continue
            p.entries[client] = p.pending[client] = _Entry(clock, state, source, now)
            fresh.append((client, clock, state))
        if not fresh:
            return []
        out: list = [ToEditors(path, message(encode_update(fresh)), skip=source)]
        if p.next_send <= now:
            out += self._flush(path, p, now)
        return out

    def _flush(self, path: str, p: _Path, now: float) -> list:
        """The pending entries of `path` to the peers, each source's to all peers but itself."""
        by_source: dict[bytes | None, list] = {}
        for client, e in p.pending.items():
            skip = e.source[1] if isinstance(e.source, tuple) else None
            by_source.setdefault(skip, []).append((client, e.clock, e.state))
        p.pending.clear()
        p.next_send = now + PEER_INTERVAL
        return [ToPeers(path, encode_update(entries), skip) for skip, entries in by_source.items()]

    def _remove(self, which, now: float, *, to_peers: bool, only: str | None = None) -> list:
        out: list = []
        for path, p in self.paths.items():
            if only is not None and path != only:
                continue
            gone = [(c, e) for c, e in p.entries.items() if which(e)]
            if not gone:
                continue
            removed = []
            for client, e in gone:
                p.pending.pop(client, None)
                if to_peers and e.state != NULL:  # a tombstone: an older state arriving late
                    p.entries[client] = _Entry(e.clock + 1, NULL, None, now)  # stays out
                else:
                    del p.entries[client]
                if e.state != NULL:
                    removed.append((client, e.clock + 1, NULL))
            if not removed:
                continue
            out.append(ToEditors(path, message(encode_update(removed))))
            if to_peers:
                for client, clock, state in removed:
                    p.pending[client] = _Entry(clock, state, None, now)
                if p.next_send <= now:
                    out += self._flush(path, p, now)
        return out


__all__ = ["AwarenessRelay", "AwarenessError", "ToEditors", "ToPeers", "AWARENESS", "STALE",
           "PEER_INTERVAL", "decode_update", "encode_update", "message", "update_of"]
