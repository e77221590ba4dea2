"""User-visible events: what `Node.events()`, `backer events` and the web's live stream carry.

One frozen dataclass per kind (h11 `_events.py` style). `to_json()` gives the object printed by
`backer events --json`: {"type": KIND, "time": UNIX_SECONDS, ...fields}.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class Event:
    TYPE: ClassVar[str] = "event"
    time: float

    def to_json(self) -> dict:
        # every field is a plain str, int, float, bool or None: no deep copy (dataclasses.asdict)
        # is needed, and a tree of files synced emits one event per file
        data = {"type": self.TYPE}
        for f in _fields(type(self)):
            data[f] = getattr(self, f)
        return data

    def to_json_line(self) -> str:
        """`json.dumps(self.to_json())`, the same text, at about a fifth of its cost: `backer
        events` streams one per file synced, and json.dumps sets up an encoder per call."""
        head, keys = _line_parts(type(self))
        return head + ", ".join([key + _json_value(getattr(self, f)) for f, key in keys]) + "}"


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_LINE_PARTS: dict[type, tuple[str, tuple[tuple[str, str], ...]]] = {}
_INFINITIES = (float("inf"), float("-inf"))


def _line_parts(kind: type) -> tuple[str, tuple[tuple[str, str], ...]]:
    """An event kind's opening text and (field, '"field": ') pairs, made once per kind."""
    parts = _LINE_PARTS.get(kind)
    if parts is None:
        head = '{"type": ' + encode_basestring_ascii(kind.TYPE) + ", "
        keys = tuple((f, encode_basestring_ascii(f) + ": ") for f in _fields(kind))
        parts = _LINE_PARTS[kind] = (head, keys)
    return parts


def _json_value(value: object) -> str:
    """json.dumps(value) for an event's plain field values (anything else goes to json.dumps)."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float and value == value and value not in _INFINITIES:
        return float.__repr__(value)
    return json.dumps(value)


def _fields(kind: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return names


@dataclass(frozen=True, slots=True)
class PeerConnected(Event):
    TYPE: ClassVar[str] = "peer_connected"
    node_id: str
    name: str
    address: str | None


@dataclass(frozen=True, slots=True)
class PeerDisconnected(Event):
    TYPE: ClassVar[str] = "peer_disconnected"
    node_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class PeerRefused(Event):
    """A connection that failed the handshake or broke the protocol."""

    TYPE: ClassVar[str] = "peer_refused"
    address: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class MemberAdded(Event):
    TYPE: ClassVar[str] = "member_added"
    node_id: str
    name: str
    read_only: bool


@dataclass(frozen=True, slots=True)
class MemberRemoved(Event):
    TYPE: ClassVar[str] = "member_removed"
    node_id: str


@dataclass(frozen=True, slots=True)
class FileChanged(Event):
    """A local change seen on this node's disk and announced to the mesh."""

    TYPE: ClassVar[str] = "file_changed"
    path: str
    deleted: bool


@dataclass(frozen=True, slots=True)
class FileUpdated(Event):
    """A version from the mesh written to this node's disk."""

    TYPE: ClassVar[str] = "file_updated"
    path: str
    node_id: str


@dataclass(frozen=True, slots=True)
class FileDeleted(Event):
    TYPE: ClassVar[str] = "file_deleted"
    path: str
    node_id: str


@dataclass(frozen=True, slots=True)
class Conflict(Event):
    TYPE: ClassVar[str] = "conflict"
    path: str
    copy: str


@dataclass(frozen=True, slots=True)
class TransferProgress(Event):
    TYPE: ClassVar[str] = "transfer_progress"
    path: str
    done_bytes: int
    total_bytes: int


@dataclass(frozen=True, slots=True)
class InSync(Event):
    TYPE: ClassVar[str] = "in_sync"
    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class RootPaused(Event):
    TYPE: ClassVar[str] = "root_paused"
    reason: str


@dataclass(frozen=True, slots=True)
class RootResumed(Event):
    TYPE: ClassVar[str] = "root_resumed"


@dataclass(frozen=True, slots=True)
class DiskFull(Event):
    """Pulling pauses: the disk (or the user's quota) has no room for what the mesh sends."""

    TYPE: ClassVar[str] = "disk_full"
    reason: str


@dataclass(frozen=True, slots=True)
class DiskSpaceBack(Event):
    TYPE: ClassVar[str] = "disk_space_back"


@dataclass(frozen=True, slots=True)
class Refused(Event):
    """Something from a peer refused on purpose (hostile path, bad block, forged update)."""

    TYPE: ClassVar[str] = "refused"
    what: str
    reason: str
    node_id: str | None


@dataclass(frozen=True, slots=True)
class LiveFallback(Event):
    """A file matching a live glob is mirrored as a plain file instead (too big, not UTF-8)."""

    TYPE: ClassVar[str] = "live_fallback"
    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class LiveStarted(Event):
    """A file became live on this node: its text is one shared document from now on."""

    TYPE: ClassVar[str] = "live_started"
    path: str


EVENT_TYPES = {
    cls.TYPE: cls
    for cls in (PeerConnected, PeerDisconnected, PeerRefused, MemberAdded, MemberRemoved,
                FileChanged, FileUpdated, FileDeleted, Conflict, TransferProgress, InSync,
                RootPaused, RootResumed, DiskFull, DiskSpaceBack, Refused, LiveFallback,
                LiveStarted)
}
