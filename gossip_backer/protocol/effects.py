"""What the sans-IO replica asks its interpreter (trio runtime or simulator) to do."""

from __future__ import annotations

from dataclasses import dataclass

from gossip_backer.core.record import FileRecord, IndexEntry, SignedUpdate
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


# -- the folder machine's (protocol/folder.py) ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class Publish:
    """Sign these records as our next updates, apply, store and spread them; then tell the
    machine (`map_changed`). `user`: changes the user made, not conflict copies."""

    records: tuple[FileRecord, ...]
    user: bool


@dataclass(frozen=True, slots=True)
class IndexWrite:
    """Store these local-index rows and drop these paths' rows (write-behind is fine: the index
    caches what the disk holds, a lost row costs a re-hash, never data)."""

    puts: tuple[IndexEntry, ...]
    drops: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rescan:
    """Scan these paths again after `delay` seconds (settling files, a change seen mid-write)."""

    paths: tuple[str, ...]
    delay: float


Effect = Send | Persist | Disconnect | Emit | Publish | IndexWrite | Rescan  # + the live ones below


# -- the live-document machine's (protocol/live.py) ----------------------------------------------
@dataclass(frozen=True, slots=True)
class PublishLive:
    """Sign these live-document pieces (core.record.LiveEdit) as our next updates, apply, store
    and spread them, like `Publish`."""

    edits: tuple


@dataclass(frozen=True, slots=True)
class ReadText:
    """Read the file at `path` and hand its bytes to `FolderMachine.live_text` (a live file's
    disk content changed, or it is to seed its document)."""

    path: str


@dataclass(frozen=True, slots=True)
class WriteText:
    """Put `data` at `path` atomically, only if the disk still holds what the index row says
    (else scan it: the user's save is merged first); then scan the path, unsettled."""

    path: str
    data: bytes
    base: bytes  # the update that brings the machine's copy of the disk to `data`: handed back
    # (`FolderMachine.live_written`) once the file holds it
    expect: tuple | None = None  # (size, mtime_ns, inode, kind) the file must still have, as
    # the index said when the write was decided (None: no file may be there)
    archive: bool = False  # the file holds a version of the mesh: keep it in the archive


@dataclass(frozen=True, slots=True)
class SaveLiveBase:
    """Store durably what the file at `path` holds, as a document update (the *disk base* a
    restart merges offline saves against): appended to the path's base log, or replacing it.
    A `WriteText`'s `base` is appended by the interpreter itself, before the file is replaced
    (and taken back if the write is refused)."""

    path: str
    update: bytes
    replace: bool = False
