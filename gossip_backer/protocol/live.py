"""The live-document machine: every decision about live files, sans-IO. The folder machine
(protocol/folder.py) owns one and routes live paths to it; the daemon and the simulator carry out
its effects the same way.

Theory of operation
-------------------
A file is *live* on a node when it matches a live glob of the map (`backer live`), is UTF-8 text
of at most 10 MiB, and the node holds its document: one Yjs text document per file (live/textdoc.py
through the `DocFactory` interface: protocol/ never imports pycrdt).

- Updates travel as signed `LiveEdit`s of their author, relayed like any update: a node that
  never talks to the author still gets them. Each local edit is a new part; after
  `SNAPSHOT_BYTES` of our edits or `SNAPSHOT_AGE` seconds the node publishes a snapshot (its whole
  state) and the map drops the parts it covers (core/metamap.py), so the log stays bounded.
  Pieces larger than a frame are split into chunks and joined before they are applied.
- Seeding: a file that becomes live is inserted by a writer whose client id comes from the bytes
  (textdoc.seed): nodes holding the same content make the same seed, so its text never doubles.
  A node seeds only from the content it holds as the mesh's version (or a new file of its own);
  a node behind waits for the document to arrive.
- Disk follows document: a changed document is written to the file at once (`DEBOUNCE`),
  atomically and only over what the index says is there (`WriteText`). One write per file is
  under way at a time: edits arriving meanwhile wait for its end and go in the next write
  together, so a slow disk makes fewer, larger writes rather than a queue of stale ones. A file
  saved by another program is read (`ReadText`) and merged in as the smallest edit (textdiff), computed against a
  second document that holds what the disk holds (the *disk copy*, moved on only when a write is
  done): edits from peers that the file did not show yet are merged, not undone. Our own write
  comes back through the scanner as a read whose bytes equal the disk copy: nothing to do.
- The disk copy is durable (`SaveLiveBase`, and each `WriteText`'s `base`, stored before the
  file is replaced): a restart rebuilds it from that *base log*, reads the file once, and merges
  what it finds against it. So a node killed after storing a peer's edit but before writing it,
  whose file is then edited while it is down, keeps both: the offline save is a three-way merge
  (disk against base, applied at the base, merged into the document), not a diff against the
  document, which would take the peer's text, absent from the file, for deleted. A write that
  was stored in the log but never reached the file (killed in between) is told by the bytes:
  the file holds the text before it, or is closer to it than to the text after.
- History: a live file is still a file of the map. A node that edited it publishes a file
  version at most every `CHECKPOINT` seconds of editing; those versions never need fetching by
  live nodes (their document writes the disk) and never make conflict copies.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Protocol

from gossip_backer.core.metamap import MetaMap
from gossip_backer.core.record import MAX_LIVE_CHUNK, LiveEdit, SignedUpdate
from gossip_backer.events import LiveFallback, LiveStarted
from gossip_backer.protocol.effects import Emit, PublishLive, ReadText, SaveLiveBase, WriteText

DEBOUNCE = 0.0  # seconds a changed document waits before its file is written (edits coalesce
# while a write is under way; measured in benchmarks/live.py: 10 ms here cost 10 ms of latency)
WRITE_LOST = 10.0  # seconds after which a write never reported done no longer holds the next
SNAPSHOT_BYTES = 64 * 1024  # bytes of our edits since our last snapshot that call for one
SNAPSHOT_AGE = 300.0  # seconds after our first unsnapshotted edit that call for one
CHECKPOINT = 120.0  # seconds of editing between two file versions of a live file
BASE_ROWS = 64  # entries of a path's base log that call for compacting it into one


class TextDocLike(Protocol):
    def apply(self, update: bytes) -> None: ...
    def data(self) -> bytes: ...
    def state(self) -> bytes: ...
    def update_since(self, state: bytes | None = None) -> bytes: ...
    def edit_to(self, new: bytes) -> bytes | None: ...
    def distance(self, new: bytes) -> int: ...


class DocFactory(Protocol):
    max_bytes: int

    def new(self, client_id: int) -> TextDocLike: ...
    def seed(self, data: bytes) -> bytes: ...
    def eligible(self, data: bytes) -> str | None: ...


def glob_matches(glob: str, path: str) -> bool:
    """A glob without a slash matches a file name at any depth (`*.md`); one with a slash
    matches the whole path from the root (`notes/*.md`, where `*` also crosses slashes)."""
    if "/" in glob:
        return fnmatchcase(path, glob.lstrip("/"))
    return fnmatchcase(path.rsplit("/", 1)[-1], glob)


def pieces(path: str, data: bytes, *, snapshot: bool, part: int) -> tuple[LiveEdit, ...]:
    """`data` as LiveEdits of at most one chunk each."""
    n = max(1, -(-len(data) // MAX_LIVE_CHUNK))
    return tuple(LiveEdit(path, snapshot, part, i, n, data[i * MAX_LIVE_CHUNK:(i + 1) * MAX_LIVE_CHUNK])
                 for i in range(n))


class LiveMachine:
    """Live documents of one node (see the module docstring)."""

    def __init__(self, metamap: MetaMap, me: bytes, docs: DocFactory, client_id: int) -> None:
        self.metamap = metamap
        self.me = me
        self.factory = docs
        self.client_id = client_id  # ours, fresh each start (a Yjs client id is never reused)
        self.docs: dict[str, TextDocLike] = {}
        self._disk: dict[str, TextDocLike] = {}  # path -> what its file holds, as a document
        self._unknown: set[str] = set()  # paths whose disk copy is not known yet (document
        # made from peers' updates, file neither read nor written since)
        self.fallback: dict[str, str] = {}  # path -> why it is mirrored as a plain file
        self.reading: set[str] = set()  # paths whose bytes were asked for (ReadText)
        self._part: dict[str, int] = {}  # path -> our newest part number
        self._chunks: dict[tuple, dict[int, bytes]] = {}
        self._dirty: dict[str, float] = {}  # path -> when its file is to be written
        self._writing: dict[str, float] = {}  # path -> when the write under way was decided
        self._unsnapped: dict[str, tuple[int, float]] = {}  # path -> (bytes, since)
        self._authored: dict[str, float] = {}  # path -> wall of our first edit since a version
        self._listeners: list = []  # callables (path, update) told of every document change
        self._wrote: dict[str, bytes] = {}  # path -> hash of the text we last wrote there
        self._base_rows: dict[str, int] = {}  # path -> entries in its durable base log
        self._verify: set[str] = set()  # paths whose file is read once after a restart
        self._verify_asked: set[str] = set()
        self._before_write: dict[str, TextDocLike] = {}  # path -> its disk copy without the
        # base log's last entry (a write the file may not hold: killed in between)
        self.load()

    # -- what is live ------------------------------------------------------------------------
    def globbed(self, path: str) -> bool:
        return any(glob_matches(g, path) for g in self.metamap.live_globs())

    def wants(self, path: str, size: int) -> bool:
        """Should a file at `path` of `size` bytes be (or become) live here?"""
        return size <= self.factory.max_bytes and path not in self.fallback and self.globbed(path)

    def too_big(self, path: str, size: int, wall: float) -> list:
        """A file matching a live glob but too large: mirrored as a plain file, said once."""
        if size <= self.factory.max_bytes or path in self.fallback or not self.globbed(path):
            return []
        reason = self.fallback[path] = f"larger than {self.factory.max_bytes // (1024 * 1024)} MiB"
        return [Emit(LiveFallback(wall, path, reason))]

    def owns(self, path: str) -> bool:
        """Does the document, not the puller, bring this path's content to the disk?"""
        if path not in self.docs or path in self.fallback or not self.globbed(path):
            return False
        winner = self.metamap.winner(path)
        return winner is None or not winner.deleted

    def live_paths(self) -> list[str]:
        return sorted(p for p in self.docs if self.owns(p))

    # -- the mesh's side ---------------------------------------------------------------------
    def load(self) -> None:
        """Rebuild the documents from the updates the map holds (a restart)."""
        for update in self.metamap.live_edits():
            self._take(update)
            if update.origin == self.me:
                p = update.payload
                self._part[p.path] = max(self._part.get(p.path, 0), p.part)
        for path, doc in self.docs.items():  # the file holds the text we last wrote, so a
            self._disk[path].apply(doc.update_since())  # change found at the first scan is an
            self._unknown.discard(path)  # edit made while the node was stopped
            self._dirty[path] = 0.0  # the disk is checked against the text after the first scan

    def load_bases(self, bases: dict[str, list[bytes]]) -> list[str]:
        """(a restart, after `load`) The durable base logs: what each file held when this node
        last wrote or read it. Those files are read once after the first scan and merged
        against their base (three-way), so edits stored but not written yet are kept.
        Returns the paths whose log is of no further use (no live document any more): dropped,
        so that a path made live again later starts a fresh log, not one with stale records."""
        stale = []
        for path, log in bases.items():
            if path not in self.docs:
                stale.append(path)
                continue
            if not log:
                continue
            disk = self._disk[path] = self.factory.new(self.client_id ^ 0x40000000)
            for update in log[:-1]:
                disk.apply(update)
            if len(log) > 1:
                self._before_write[path] = self.factory.new(self.client_id ^ 0x40000000)
                self._before_write[path].apply(disk.update_since())
            disk.apply(log[-1])
            self._base_rows[path] = len(log)
            self._verify.add(path)
            self._dirty.pop(path, None)
        return stale

    def remote(self, updates: Iterable[SignedUpdate], now: float, wall: float) -> list:
        """LiveEdits stored from peers: merge them; their files are written soon."""
        out = []
        for update in updates:
            if not self.metamap.valid(update):
                continue
            new = update.payload.path not in self.docs
            path = self._take(update)
            if path is None:
                continue
            self._dirty.setdefault(path, now + DEBOUNCE)
            if new:
                out.append(Emit(LiveStarted(wall, path)))
        return out

    def _take(self, update: SignedUpdate) -> str | None:
        """Apply one piece (once all chunks of its update are here): the path it changed."""
        e: LiveEdit = update.payload
        data = e.data
        if e.chunks > 1:
            key = (update.origin, e.path, e.snapshot, e.part)
            got = self._chunks.setdefault(key, {})
            got[e.chunk] = e.data
            if len(got) < e.chunks:
                return None
            data = b"".join(got[i] for i in range(e.chunks))
            del self._chunks[key]
        doc = self._doc(e.path)
        before = doc.state()
        doc.apply(data)
        self._tell(e.path, doc, before)
        return e.path

    def _doc(self, path: str) -> TextDocLike:
        doc = self.docs.get(path)
        if doc is None:
            doc = self.docs[path] = self.factory.new(self.client_id)
            self._disk[path] = self.factory.new(self.client_id ^ 0x40000000)  # its own writer
            self._unknown.add(path)
        return doc

    # -- the disk's side ---------------------------------------------------------------------
    def text(self, path: str, data: bytes, now: float, wall: float, *, writer: bool) -> list:
        """The bytes of a live path's file (`ReadText`). `writer`: we may publish (read-write).
        Seeds the document, or merges a save by another program as the smallest edit."""
        self.reading.discard(path)
        reason = self.factory.eligible(data)
        if reason is not None:
            self.fallback[path] = reason
            self._dirty.pop(path, None)
            return [Emit(LiveFallback(wall, path, reason))]
        doc = self.docs.get(path)
        if doc is None:
            seed = self.factory.seed(data)
            doc = self._doc(path)
            doc.apply(seed)
            self._disk[path].apply(seed)
            self._unknown.discard(path)
            self._tell(path, doc, b"\x00")
            out: list = [self._save_base(path), Emit(LiveStarted(wall, path))]
            if writer:
                out.insert(0, PublishLive(pieces(path, seed, snapshot=True,
                                                 part=self._part.get(path, 0))))
            return out
        out = self._settle_base(path, data)
        if not writer:
            return out  # a read-only member's edit stays local, as for plain files
        if path in self._unknown:  # a document that came from peers meets the file: the same
            self._unknown.discard(path)  # text is no edit; other bytes are an older version,
            self._disk[path].apply(doc.update_since())  # which the document's text replaces
            if doc.data() != data:
                self._dirty.setdefault(path, now + DEBOUNCE)
            return out + [self._save_base(path)]
        update = self._disk[path].edit_to(data)
        if self._disk[path].data() != data:  # the document cannot hold these bytes exactly (a
            return self._give_up(path, wall)  # broken client split a character): no merge loop
        if update is not None:
            out.append(self._save_base(path, update))
            before = doc.state()
            doc.apply(update)
            self._tell(path, doc, before)
            self._authored.setdefault(path, wall)
            out.append(self._publish(path, update, now))
        if doc.data() != data:  # peers' edits the file does not show yet (or a refused write)
            self._dirty.setdefault(path, now + DEBOUNCE)
        return out

    def _settle_base(self, path: str, data: bytes) -> list:
        """The first read after a restart: if the last write of the base log never reached the
        file (it holds the text before it, or something closer to that), the base is the text
        before it."""
        if path not in self._verify:
            return []
        self._verify.discard(path)
        before, disk = self._before_write.pop(path, None), self._disk[path]
        if before is None or data == disk.data():
            return []
        if data != before.data() and before.distance(data) >= disk.distance(data):
            return []
        self._disk[path] = before
        return [self._save_base(path)]

    def _save_base(self, path: str, update: bytes | None = None) -> SaveLiveBase:
        """The disk copy moved (by `update`; None: anyhow): the base log follows."""
        if update is None or self._base_rows.get(path, 0) >= BASE_ROWS:
            self._base_rows[path] = 1
            return SaveLiveBase(path, self._disk[path].update_since(), replace=True)
        self._base_rows[path] = self._base_rows.get(path, 0) + 1
        return SaveLiveBase(path, update)

    def _give_up(self, path: str, wall: float) -> list:
        reason = "the live text no longer round-trips through the file; mirrored as a plain file"
        self.fallback[path] = reason
        self._dirty.pop(path, None)
        return [Emit(LiveFallback(wall, path, reason))]

    def client_update(self, path: str, update: bytes, now: float, wall: float) -> list:
        """An update from an editor connected to this node (the websocket): merged, published,
        and the file follows."""
        doc = self.docs.get(path)
        if doc is None or not self.owns(path):
            return []
        before = doc.state()
        doc.apply(update)
        if doc.state() == before:
            return []
        self._tell(path, doc, before)
        self._authored.setdefault(path, wall)
        self._dirty.setdefault(path, now + DEBOUNCE)
        return [self._publish(path, doc.update_since(before), now)]

    def _publish(self, path: str, update: bytes, now: float) -> PublishLive:
        part = self._part[path] = self._part.get(path, 0) + 1
        size, since = self._unsnapped.get(path, (0, now))
        self._unsnapped[path] = (size + len(update), since)
        return PublishLive(pieces(path, update, snapshot=False, part=part))

    # -- timers ------------------------------------------------------------------------------
    def next_due(self) -> float | None:
        """When the earliest file write is due (None: none waits; a path whose write is under
        way waits for its end, or for `WRITE_LOST`)."""
        due = [max(at, self._writing[p] + WRITE_LOST) if p in self._writing else at
               for p, at in self._dirty.items()]
        return min(due) if due else None

    def tick(self, now: float, *, writer: bool) -> list:
        """Files whose document changed are written; snapshots that are due are published."""
        out: list = []
        for path in sorted(self._verify - self.reading - self._verify_asked):  # after a
            self._verify_asked.add(path)  # restart: what does the file hold? (asked once)
            if self.owns(path):
                self.reading.add(path)
                out.append(ReadText(path))
        for path in [p for p, due in self._dirty.items() if due <= now and p not in self.reading
                     and now - self._writing.get(p, -WRITE_LOST) >= WRITE_LOST]:
            del self._dirty[path]  # (a file being read holds a save not merged yet: it waits)
            if self.owns(path):
                doc, disk = self.docs[path], self._disk[path]
                data = doc.data()
                if data != disk.data():
                    self._writing[path] = now
                    out.append(WriteText(path, data, doc.update_since(disk.state())))
        for path, (size, since) in list(self._unsnapped.items()):
            if size >= SNAPSHOT_BYTES or now - since >= SNAPSHOT_AGE:
                del self._unsnapped[path]
                if writer:
                    state = self.docs[path].update_since()
                    out.append(PublishLive(pieces(path, state, snapshot=True, part=self._part[path])))
        return out

    def written(self, path: str, base: bytes, digest: bytes | None = None) -> list:
        """The file holds what `WriteText` carried (`digest`: its hash), and the base log has
        it: the disk copy moves on to it, and a scan that finds that content is not read back.
        A long base log is compacted."""
        self._writing.pop(path, None)
        disk = self._disk.get(path)
        if disk is None:
            return []
        disk.apply(base)
        self._unknown.discard(path)
        if digest is not None:
            self._wrote[path] = digest
        self._base_rows[path] = self._base_rows.get(path, 0) + 1
        return [self._save_base(path)] if self._base_rows[path] > BASE_ROWS else []

    def recheck(self, path: str, at: float = 0.0) -> None:
        """Look again (at the first tick from `at`) whether the file lags behind the document
        (a scan found our own write)."""
        self._dirty.setdefault(path, at)

    def refused(self, path: str, at: float = 0.0) -> None:
        """The write under way did not happen (the user saved meanwhile: the scan that reads
        the save has been asked for; or the disk refused): try again from `at`."""
        self._writing.pop(path, None)
        self._dirty.setdefault(path, at)

    def is_own_write(self, path: str, digest: bytes | None) -> bool:
        """Is `digest` the content of our last write of `path` (nothing to merge)?"""
        return digest is not None and self._wrote.get(path) == digest

    def checkpoints_due(self, wall: float) -> list[str]:
        """Live paths we edited whose last file version is `CHECKPOINT` seconds old."""
        return [p for p, since in self._authored.items() if wall - since >= CHECKPOINT]

    def version_due(self, path: str, wall: float) -> bool:
        """Should a scan's change of this live path become a file version now? A file new to
        the mesh does; otherwise only after `CHECKPOINT` seconds of our editing."""
        if self.metamap.winner(path) is None:
            return True
        since = self._authored.get(path)
        return since is not None and wall - since >= CHECKPOINT

    def versioned(self, path: str) -> None:
        self._authored.pop(path, None)

    # -- editors connected to this node ------------------------------------------------------
    def listen(self, callback) -> None:
        """`callback(path, update)` hears every change of every document (the websocket)."""
        self._listeners.append(callback)

    def unlisten(self, callback) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _tell(self, path: str, doc: TextDocLike, before: bytes) -> None:
        if self._listeners:
            update = doc.update_since(before)
            for callback in list(self._listeners):
                callback(path, update)


__all__ = ["LiveMachine", "DocFactory", "TextDocLike", "glob_matches", "pieces", "DEBOUNCE",
           "CHECKPOINT", "SNAPSHOT_BYTES", "SNAPSHOT_AGE", "BASE_ROWS"]
