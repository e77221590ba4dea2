"""The replicated state of a mesh: a CRDT map built from signed updates.

Theory of operation (after dominictarr/scuttlebutt): the state is a pure fold over the set of valid
updates a node holds, so two nodes holding the same updates hold the same state, whatever the
order, duplication or relaying path that brought them.

- The update log keeps, per origin, its updates by sequence number, and per (origin, key) only the
  newest: an origin's newer version of a path always dominates its older one, so dropping the
  older loses nothing. `digest()` is origin -> highest sequence held; `since(digest)` lists what a
  peer with that digest lacks, per origin in sequence order, origins served breadth-first.
- Files: each path holds its set of concurrent maximal versions (a multi-value register ordered by
  version vectors). A version dominated by one held is stale; a new one drops those it dominates.
  Equal vectors with different contents (only a lying origin makes them) keep the greater record
  by a fixed order, so even that converges.
- Membership (core/membership.py) decides which updates count. Every correctly signed update of
  a known member is kept and relayed, even a void one (read-only signer, numbered beyond a
  revocation's cutoff): validity is judged when folding, from the membership all nodes end up
  agreeing on, so arrival order never matters. A void update still hides its origin's older
  update of the same key (revoking a node rolls back what it changed after its cutoff). A
  record repeating another node's version (a conflict copy) names the update that carried it
  (`source_seq`) and is void with it. When membership moves, the state is folded again from
  the log.
- Live documents (LiveEdit): each signer's edits of a path are separate keys, kept until the
  signer publishes a snapshot covering them (its whole document state): the snapshot's arrival
  drops them, and older parts arriving later are duplicates. So a document's log stays bounded
  by its signers' snapshots plus their edits since.
- Signatures are checked by an injected `verify(update) -> bool`, so the core runs without keys.
"""

from __future__ import annotations

import copy

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping

from gossip_backer.core.conflict import winner
from gossip_backer.core.fileversions import FileVersions
from gossip_backer.core.paths import is_valid as is_valid_path
from gossip_backer.core.membership import Membership, Verdict, is_membership
from gossip_backer.core.record import FileRecord, Grant, LiveEdit, LiveGlob, SignedUpdate
from gossip_backer.core.updatelog import UpdateLog
from gossip_backer.core.share import Share, ShareCount, newer as newer_share
from gossip_backer.core.vv import Order


class Outcome(enum.Enum):
    APPLIED = "applied"  # new, valid, changed the state
    HELD = "held"  # new and valid, stored for relaying, but dominated by what we hold
    DUPLICATE = "duplicate"  # already held (or superseded by a newer one of its origin)
    NOT_YET = "not_yet"  # signer unknown so far; not stored, the peer will offer it again
    FORBIDDEN = "forbidden"  # malformed (sequence 0, hostile path): not stored, not relayed
    VOID = "void"  # stored and relayed but void: a read-only signer, or beyond a revocation
    BAD_SIGNATURE = "bad_signature"  # forged or corrupted: the sender lied


Digest = Mapping[bytes, int]
Verifier = Callable[[SignedUpdate], bool]


def _tiebreak(rec: FileRecord) -> tuple:
    return (rec.mtime_ns, rec.origin, rec.hash or b"", rec.size, rec.deleted, rec.kind,
            rec.target or "", rec.mode, rec.block_size, rec.source_seq)


def _acceptable(payload: object) -> bool:
    """A file record whose path could write outside ROOT or into .backer/ is refused by every
    node alike (not stored, not relayed)."""
    return not isinstance(payload, FileRecord) or is_valid_path(payload.path)


def _slot(update: SignedUpdate) -> str:
    """The name of an update's key in `_newest`: a file's path itself (the record's own string:
    a new "f:PATH" string per file was 65 bytes of each of 100,000 files), any other key behind
    a NUL, which no path holds."""
    payload = update.payload
    return payload.path if isinstance(payload, FileRecord) else "\0" + update.key


def _slot_of_key(key: str) -> str:
    return key[2:] if key.startswith("f:") else "\0" + key


def _ordered(versions: Iterable[FileRecord]) -> tuple[FileRecord, ...]:
    return tuple(sorted(versions, key=_tiebreak))


class MetaMap:
    """The mesh's metadata CRDT: update log + files + membership + live-edit globs + share
    links (core/share.py: last writer wins per link, a grow-only download count per node)."""

    def __init__(self, founder: bytes, verify: Verifier | None = None) -> None:
        self.founder = founder
        self._verify = verify or (lambda update: True)
        self._logs: dict[bytes, UpdateLog] = {}  # origin -> seq -> update
        self._newest: dict[bytes, dict[str, int]] = {}  # origin -> _slot(key) -> seq
        self._shared: set[bytes] = set()  # origins whose log and newest are shared with a clone
        self._max: dict[bytes, int] = {}  # origin -> highest seq held
        self.files = FileVersions()  # path -> its concurrent versions
        self.live: dict[str, tuple[int, bytes, bool]] = {}  # glob -> (clock, signer, on)
        self.shares: dict[str, tuple[int, bytes, Share]] = {}  # token -> (clock, signer, share)
        self.share_counts: dict[str, dict[bytes, int]] = {}  # token -> signer -> downloads
        self.membership = Membership(founder)
        self.clock = 0  # Lamport clock for membership and settings updates
        self._dropped: list[tuple[bytes, int]] = []  # (origin, seq) left the log since last drain
        self._live_cover: dict[tuple[bytes, str], int] = {}  # (signer, path) -> parts snapshotted
        self._live_keys: dict[tuple[bytes, str], set[str]] = {}  # (signer, path) -> keys held
        self._batching = False  # inside apply_all: membership is recomputed once per pass
        self._membership_stale = False  # a membership update was stored in this pass

    # -- reading ---------------------------------------------------------------------------
    def digest(self) -> dict[bytes, int]:
        return dict(self._max)

    def seq_of(self, origin: bytes) -> int:
        return self._max.get(origin, 0)

    def source_seq(self, record: FileRecord) -> int:
        """The sequence number of the update of `record.origin` that carried the version
        `record` is (a version held: each comes from one signed update), for a record that
        repeats it (a conflict copy: core/record.py). A repeat keeps its own source (a copy of a
        copy); 0 when no update of the origin's carries it (a repeat made before repeats
        named their source)."""
        if record.source_seq:
            return record.source_seq
        seq = self._newest.get(record.origin, {}).get(record.path)
        log = self._logs.get(record.origin, ())
        return seq if seq is not None and seq in log and log.payload(seq) == record else 0

    def versions(self, path: str) -> tuple[FileRecord, ...]:
        return self.files.get(path, ())

    def winner(self, path: str) -> FileRecord | None:
        versions = self.files.get(path)
        return winner(versions) if versions else None

    def live_globs(self) -> list[str]:
        return sorted(g for g, (_c, _s, on) in self.live.items() if on)

    def share(self, token: str) -> Share | None:
        held = self.shares.get(token)
        return held[2] if held is not None else None

    def downloads(self, token: str) -> int:
        return sum(self.share_counts.get(token, {}).values())

    def updates(self) -> Iterator[SignedUpdate]:
        """Every update held, per origin in sequence order."""
        for origin in sorted(self._logs):
            yield from self._logs[origin].values()

    def drain_dropped(self) -> list[tuple[bytes, int]]:
        """Log entries (origin, seq) superseded or voided since the last call: the store
        deletes them in the same transaction that saves the new ones."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def __len__(self) -> int:
        return sum(len(log) for log in self._logs.values())

    def since(self, digest: Digest, budget: int | None = None, start: int = 0) -> list[SignedUpdate]:
        """What a peer with `digest` lacks: per origin in sequence order, origins interleaved
        breadth-first from `start` (callers rotate it for fairness), at most `budget` bytes (but
        at least one update, so progress never stalls on one large update)."""
        origins = [o for o in sorted(self._logs) if self._max[o] > digest.get(o, 0)]
        if not origins:
            return []
        k = start % len(origins)
        origins = origins[k:] + origins[:k]
        queues = [self._logs[o].after(digest.get(o, 0)) for o in origins]
        out: list[SignedUpdate] = []
        used = 0
        while queues:
            still = []
            for updates in queues:
                update = next(updates, None)
                if update is None:
                    continue
                if budget is not None and out and used + update.size > budget:
                    return out
                out.append(update)
                used += update.size
                still.append(updates)
            queues = still
        return out

    # -- writing ---------------------------------------------------------------------------
    def apply(self, update: SignedUpdate, *, signed_here: bool = False,
              verified: bool = False) -> Outcome:
        """Take one update from anywhere (local, peer, store). Order-independent in effect.
        `signed_here`: this node has just signed it itself, so its signature is not checked
        again (a scan of thousands of new files signs as many updates). `verified`: the caller
        has checked this very update's signature already (a peer's Delta, checked off the loop:
        protocol/gossip.py)."""
        if update.seq <= 0 or not _acceptable(update.payload):
            return Outcome.FORBIDDEN
        held = self._newest.get(update.origin, {}).get(_slot(update), 0)
        if update.seq <= held or update.seq in self._logs.get(update.origin, ()):
            return Outcome.DUPLICATE
        if isinstance(update.payload, LiveEdit) and self._live_stale(update):
            return Outcome.DUPLICATE
        genesis = isinstance(update.payload, Grant) and update.origin == self.founder
        if not genesis and not self.membership.known(update.origin):
            return Outcome.NOT_YET
        if not (signed_here or verified) and not self._verify(update):
            return Outcome.BAD_SIGNATURE
        self._store(update, held)
        if isinstance(update.payload, LiveEdit):
            self._live_compact(update)
            return Outcome.APPLIED if self._valid(update) else Outcome.VOID
        if is_membership(update.payload):
            self.clock = max(self.clock, update.payload.clock)
            if self._batching:  # judged once the pass is over (apply_all)
                self._membership_stale = True
                return Outcome.APPLIED
            self._refresh_membership()
            return Outcome.APPLIED if self._valid(update) else Outcome.VOID
        valid = self._valid(update)  # (folding data moves no membership: judged once)
        if held:  # state = fold of the newest valid update per (origin, key): recompute the key
            before = self._key_state(update.key)
            self._refold_key(update.key)
            changed = self._key_state(update.key) != before
        else:
            changed = valid and self._fold(update)
        if not valid:
            return Outcome.VOID
        return Outcome.APPLIED if changed else Outcome.HELD

    def _live_stale(self, update: SignedUpdate) -> bool:
        """An edit its signer's snapshot already covers, or an older snapshot's piece."""
        edit = update.payload
        cover = self._live_cover.get((update.origin, edit.path), -1)
        return edit.part < cover if edit.snapshot else edit.part <= cover

    def _live_compact(self, update: SignedUpdate) -> None:
        """Remember the key; a snapshot drops the parts it covers and older snapshots' pieces."""
        edit = update.payload
        mine = (update.origin, edit.path)
        self._live_keys.setdefault(mine, set()).add(update.key)
        if not edit.snapshot or edit.part <= self._live_cover.get(mine, -1):
            return
        self._live_cover[mine] = edit.part
        log, newest = self._own(update.origin)
        for key in list(self._live_keys[mine]):
            seq = newest.get("\0" + key)
            if seq is None:
                self._live_keys[mine].discard(key)
                continue
            old = log.payload(seq)
            if old.part < edit.part if old.snapshot else old.part <= edit.part:
                del log[seq]
                del newest["\0" + key]
                self._live_keys[mine].discard(key)
                self._dropped.append((update.origin, seq))

    def live_edits(self) -> Iterator[SignedUpdate]:
        """Every valid live-document update held (a restart rebuilds the documents from them)."""
        for update in self._matching(lambda payload: isinstance(payload, LiveEdit)):
            if self._valid(update):
                yield update

    def _matching(self, test: Callable[[object], bool]) -> Iterator[SignedUpdate]:
        """The updates held whose payload passes `test`, as `updates()` orders them."""
        for origin in sorted(self._logs):
            yield from self._logs[origin].matching(test)

    def valid(self, update: SignedUpdate) -> bool:
        """Does `update` count (a member's, not read-only, not beyond a revocation)?"""
        return self._valid(update)

    def _key_state(self, key: str) -> object:
        if key.startswith("s:"):
            return self.shares.get(key[2:])
        if key.startswith("c:"):
            return dict(self.share_counts.get(key[2:], {}))
        return self.files.get(key[2:]) if key.startswith("f:") else self.live.get(key[2:])

    def _valid(self, update: SignedUpdate) -> bool:
        return self.membership.verdict(update.origin, update.seq, update.payload) is Verdict.OK

    def apply_all(self, updates: Iterable[SignedUpdate], *, keep: bool = True) -> list[SignedUpdate]:
        """Apply a set of updates in any order (a reload, a batch): those whose signer is only
        admitted by a grant later in the set are retried until a pass admits nothing new.
        Membership is recomputed once per pass, not once per grant (a mesh of N members reloads
        in O(N) rather than O(N^2); a refold at the end of the pass corrects any data update
        judged before a revocation of the same pass counted). Returns the updates stored that
        count; `keep=False` returns none and holds on to none of `updates` (read once, as they
        come) beyond those retried: a node reloading its log of 100,000 updates would otherwise
        hold them all at once beside the log, and their memory stays scattered afterwards."""
        pending: Iterable[SignedUpdate] = updates
        stored: list[SignedUpdate] = []
        while True:
            retry: list[SignedUpdate] = []
            taken: list[SignedUpdate] | None = [] if keep else None
            seen = 0
            self._batching = True
            try:
                for update in pending:
                    seen += 1
                    outcome = self.apply(update)
                    if outcome is Outcome.NOT_YET:
                        retry.append(update)
                    elif taken is not None and outcome in (Outcome.APPLIED, Outcome.HELD,
                                                           Outcome.VOID):
                        taken.append(update)
            finally:
                self._batching = False
            if self._membership_stale:
                self._membership_stale = False
                self._refresh_membership()
            if taken:
                stored.extend(u for u in taken if self._is_stored(u) and self._valid(u))
            if not retry or len(retry) == seen:
                return stored
            pending = retry

    def _is_stored(self, update: SignedUpdate) -> bool:
        """Still in its signer's log (a later update of the same key, or a voided grant's
        signer being forgotten, may have replaced it within the pass)."""
        log = self._logs.get(update.origin)
        return log is not None and log.holds(update)

    def _store(self, update: SignedUpdate, older_seq: int) -> None:
        log, newest = self._own(update.origin)
        if older_seq:
            del log[older_seq]
            self._dropped.append((update.origin, older_seq))
        log[update.seq] = update
        newest[_slot(update)] = update.seq
        self._max[update.origin] = max(self._max.get(update.origin, 0), update.seq)

    def _own(self, origin: bytes) -> tuple[UpdateLog, dict[str, int]]:
        """`origin`'s log and newest-per-key, ours to change (copied first if a clone shares
        them)."""
        log = self._logs.get(origin)
        if log is None:
            log = self._logs[origin] = UpdateLog(origin)
            self._newest[origin] = {}
        elif origin in self._shared:
            self._shared.discard(origin)
            log = self._logs[origin] = log.copy()
            self._newest[origin] = dict(self._newest[origin])
        return log, self._newest[origin]

    def clone(self, verify: Verifier | None = None) -> "MetaMap":
        """An independent map equal to this one. Updates and records are immutable and shared;
        each origin's log is shared too until either map changes it (copy on write), so a
        thousand clones of a map that holds a thousand grants cost about one copy of it (the
        simulator boots its nodes this way)."""
        other = copy.copy(self)
        other._verify = verify or self._verify
        other._logs = dict(self._logs)
        other._newest = dict(self._newest)
        self._shared |= self._logs.keys()
        other._shared = set(self._logs)
        other._max = dict(self._max)
        other.files = self.files.copy()
        other.live = dict(self.live)
        other.shares = dict(self.shares)
        other.share_counts = {token: dict(c) for token, c in self.share_counts.items()}
        other.membership = copy.copy(self.membership)  # its table is replaced, never changed
        other._dropped = list(self._dropped)
        other._live_cover = dict(self._live_cover)
        other._live_keys = {mine: set(keys) for mine, keys in self._live_keys.items()}
        return other

    def _fold(self, update: SignedUpdate) -> bool:
        """Merge a data update into the state; True when the state changed."""
        payload = update.payload
        if isinstance(payload, FileRecord):
            return self._merge_file(payload)
        if isinstance(payload, LiveGlob):
            self.clock = max(self.clock, payload.clock)
            cur = self.live.get(payload.glob)
            new = (payload.clock, update.origin, payload.on)
            if cur is None or cur[:2] < new[:2]:
                self.live[payload.glob] = new
                return True
            return False
        if isinstance(payload, Share):
            self.clock = max(self.clock, payload.clock)
            if newer_share(self.shares.get(payload.token), payload.clock, update.origin, payload):
                self.shares[payload.token] = (payload.clock, update.origin, payload)
                return True
            return False
        if isinstance(payload, ShareCount):
            counts = self.share_counts.setdefault(payload.token, {})
            if counts.get(update.origin, -1) < payload.count:
                counts[update.origin] = payload.count
                return True
            return False
        return False

    def _merge_file(self, rec: FileRecord) -> bool:
        current = self.files.get(rec.path, ())
        keep = []
        for v in current:
            order = v.vv.compare(rec.vv)
            if order is Order.GREATER:
                return False
            if order is Order.EQUAL:
                if _tiebreak(v) >= _tiebreak(rec):
                    return False
                continue
            if order is Order.CONCURRENT:
                keep.append(v)
        self.files[rec.path] = _ordered(keep + [rec])
        return True

    def _refresh_membership(self) -> None:
        """Recompute membership from every membership update held; refold the data when the
        set of valid updates changed (a role or a cutoff moved). Forgetting a stranger's
        updates changes the set the table was computed from (its revocation of another member
        no longer counts, say), so the table is computed again until no stranger is left: once
        was not enough for a node that held a voided member's revocation (hypothesis found two
        nodes holding the same updates with different tables)."""
        before = self._validity()
        while True:
            self.membership.rebuild([(u.origin, u.seq, u.payload)
                                     for u in self._matching(is_membership)])
            if not self._forget_strangers():
                break
        if self._validity() != before:
            self._refold()

    def _forget_strangers(self) -> bool:
        """Drop the logged updates of signers no longer in the member table (their grant turned
        void): a node that never stored them refuses them, so keeping them would leave the two
        nodes' digests different for ever. True when some were dropped."""
        strangers = [o for o in self._logs if not self.membership.known(o)]
        for origin in strangers:
            self._dropped.extend((origin, seq) for seq in self._logs.pop(origin))
            del self._newest[origin]
            self._shared.discard(origin)
            del self._max[origin]
        return bool(strangers)

    def _validity(self) -> dict[bytes, tuple[bool, int]]:
        return {n: (m.read_only, m.cutoff) for n, m in self.membership.members.items()}

    def _refold(self) -> None:
        self.files.clear()
        self.live.clear()
        self.shares.clear()
        self.share_counts.clear()
        for update in self.updates():
            if not is_membership(update.payload) and self._valid(update):
                self._fold(update)

    def _refold_key(self, key: str) -> None:
        """Recompute one path (or live glob) from the valid newest updates of every origin."""
        slot = _slot_of_key(key)
        if key.startswith("f:"):
            self.files.pop(key[2:], None)
        elif key.startswith("l:"):
            self.live.pop(key[2:], None)
        elif key.startswith("s:"):
            self.shares.pop(key[2:], None)
        elif key.startswith("c:"):
            self.share_counts.pop(key[2:], None)
        for origin, log in self._logs.items():
            seq = self._newest[origin].get(slot)
            update = log.get(seq) if seq is not None else None
            if update is not None and self._valid(update):
                self._fold(update)
