"""What the sans-IO replica asks its interpreter (trio runtime or simulator) to do."""

from __future__ import annotations

from dataclasses import dataclass

from gossip_backer.core.record import SignedUpdate
from gossip_backer.events import Event
from gossip_backer.wire.messages import Message


@dataclass(frozen=True, slots=True)
class Send:
    peer: bytes
    message: Message


@dataclass(frozen=True, slots=True)
class Persist:
    """Store these updates and drop these (origin, seq) log entries, in one transaction."""

    updates: tuple[SignedUpdate, ...]
    dropped: tuple[tuple[bytes, int], ...]


@dataclass(frozen=True, slots=True)
class Disconnect:
    peer: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Emit:
    event: Event


Effect = Send | Persist | Disconnect | Emit
