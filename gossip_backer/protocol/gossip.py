"""Scuttlebutt reconciliation of the MetaMap with one peer: digests, deltas, flow control.

Theory of operation
-------------------
One `GossipSession` per connected peer. It makes no I/O and reads no clock: every call takes
`now` and returns the messages to send (wire/messages.py dataclasses), in order.

Knowledge. Each side's log has no gaps per origin (updates travel per origin in sequence order,
and an origin's superseded updates are covered by its newer ones), so "origin -> highest seq" is
a complete description of what a node holds: its digest.
- `peer_has`: the digest we believe the peer holds. A full Digest replaces it, a partial one
  overwrites its entries, and every update the peer sends us raises it (the peer holds what it
  sends). The channel is ordered, so the latest statement is the truth.
- `_told`: the digest we believe the peer holds *of us* (what we have said, by Digest or Delta).
  We send a Digest only when it changes that belief: this is what keeps two sessions from
  trading digests forever.

Sending. At most one Delta is in flight (unacknowledged). A Delta is `metamap.since(peer_has,
budget, start=rotation)`: every origin's missing updates in order, origins interleaved
breadth-first from a rotating start (fairness), at most `budget` bytes (`SignedUpdate.size`).
Triggers: the peer's Digest, the Ack of the previous Delta, `local_update` (a push), and `tick`.

Receiving a Delta. Updates are applied in order. An origin whose update is NOT_YET (its signer
unknown so far) has its remaining updates in this Delta skipped: applying a later one would
raise our digest past the skipped one, and it would never be offered again. The reply is
`[Digest(our seq for every origin the Delta touched), DeltaAck(received, absorbed)]`, the Digest
*first*, so when the sender reads the Ack its `peer_has` is already current and its next Delta
carries only what we still lack (including the skipped updates, offered again).

Flow control. The receiver absorbs updates at `absorb_rate` bytes/s (a token bucket refilled
by `now`, holding at most `absorb_burst` seconds of rate, allowed to go into debt by one update so
a large update always passes); the rest of the Delta is dropped and the Ack says how much was
taken. The sender runs AIMD on `budget`: all absorbed -> +`budget_step`, less -> halve (never
below `budget_min`); nothing absorbed -> also wait `retry_delay` before the next Delta (tick).

Safety nets. `tick` sends a `Summary` (hash of our digest) every `summary_interval`; a peer
whose digest hashes differently answers with its full Digest, which repairs our belief of it.
A Delta unacknowledged for `delta_timeout` is given up (budget halved) and recomputed; a late
Ack of it may then acknowledge its successor early, which costs duplicates, never updates.

Errors: a malformed update or digest is the peer's fault (RemoteError: disconnect); an update
whose signature fails was forged or corrupted by the peer or someone it trusted
(`ForgedUpdate`, an IntegrityError: disconnect).
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Mapping
from dataclasses import dataclass, field

from gossip_backer.core.metamap import MetaMap, Outcome
from gossip_backer.core.record import SignedUpdate
from gossip_backer.crypto.identity import update_from_wire, update_to_wire
from gossip_backer.errors import IntegrityError, LocalError, RemoteError
from gossip_backer.wire.messages import Delta, DeltaAck, Digest, Message, Summary, encode_plain

__all__ = ["GossipSession", "GossipResult", "ForgedUpdate", "digest_hash"]

KIB = 1024
MIB = 1024 * KIB
STORED = (Outcome.APPLIED, Outcome.HELD, Outcome.VOID)
REFUSED = (Outcome.NOT_YET, Outcome.FORBIDDEN)


def digest_hash(digest: Mapping[bytes, int]) -> bytes:
    """BLAKE2b of the sorted (origin, seq) entries; zero entries are left out, since a missing
    origin and an origin at seq 0 mean the same thing."""
    h = hashlib.blake2b(digest_size=32, person=b"backer-digest-1")
    for origin, seq in sorted(digest.items()):
        if seq:
            h.update(origin)
            h.update(seq.to_bytes(16, "big", signed=True))
    return h.digest()


@dataclass
class GossipResult:
    """What `receive` produced: messages to send, and the updates of a Delta by outcome.
    `applied` (APPLIED or HELD) were stored: the caller persists them and offers them to its other
    peers (`local_update`). `rejected` holds NOT_YET and FORBIDDEN ones, for logs and counters."""

    send: list[Message] = field(default_factory=list)
    applied: list[SignedUpdate] = field(default_factory=list)
    rejected: list[tuple[SignedUpdate, Outcome]] = field(default_factory=list)


class ForgedUpdate(IntegrityError):
    """A relayed update failed its signature check. `partial` lists what the same Delta stored
    before it (valid updates: the caller should still persist them)."""

    def __init__(self, update: SignedUpdate, partial: GossipResult) -> None:
        super().__init__(f"bad signature on update {update.seq} of {update.origin.hex()[:12]}")
        self.update = update
        self.partial = partial


def _checked_entries(entries: dict) -> dict[bytes, int]:
    """A peer's digest entries, type-checked (the wire layer only knows it is a dict)."""
    for origin, seq in entries.items():
        if not (isinstance(origin, bytes) and len(origin) == 32 and type(seq) is int and seq >= 0):
            raise RemoteError("malformed digest entry")
    return dict(entries)


class GossipSession:
    """Reconciles our MetaMap with one peer's (see the module docstring)."""

    def __init__(
        self,
        metamap: MetaMap,
        *,
        budget_initial: int = 64 * KIB,
        budget_min: int = 8 * KIB,
        budget_max: int = 1 * MIB,
        budget_step: int = 8 * KIB,
        summary_interval: float = 10.0,
        absorb_rate: float = 256 * MIB,
        absorb_burst: float = 1.0,
        delta_timeout: float = 30.0,
        retry_delay: float = 0.25,
    ) -> None:
        if not 0 < budget_min <= budget_initial <= budget_max:
            raise LocalError("gossip budgets must satisfy 0 < min <= initial <= max")
        self.metamap = metamap
        self.budget, self.budget_min, self.budget_max = budget_initial, budget_min, budget_max
        self.budget_step = budget_step
        self.summary_interval = summary_interval
        self.absorb_rate, self.absorb_burst = float(absorb_rate), absorb_burst
        self.delta_timeout, self.retry_delay = delta_timeout, retry_delay
        self.peer_has: dict[bytes, int] = {}
        self.in_flight: dict[bytes, int] = {}  # origin -> highest seq of the unacked Delta
        self._in_flight_at = 0.0
        self._have_view = False  # the peer's full digest arrived: peer_has is complete
        self._told: dict[bytes, int] = {}
        self._rotation = 0
        self._paused_until: float | None = None
        self._next_summary: float | None = None
        self._tokens: float | None = None
        self._refilled_at = 0.0
        self.messages_sent = self.bytes_sent = self.updates_sent = 0
        self.updates_received = self.forbidden = self.not_yet = 0

    # -- the four entry points -------------------------------------------------------------
    def start(self, now: float) -> list[Message]:
        """Open the conversation with our full digest; the peer answers with Deltas."""
        self._next_summary = now + self.summary_interval
        return self._emit([self._full_digest()])

    def receive(self, msg: Message, now: float, verified: Container[tuple] = ()) -> GossipResult:
        """Handle one message from the peer. `verified`: a Delta's (origin, seq, body, sig)
        tuples whose signatures the caller has checked already (crypto.identity.verify_wire, off
        the loop); the map checks every other update itself."""
        if isinstance(msg, Delta):
            result = self._on_delta(msg, now, verified)
        elif isinstance(msg, Digest):
            result = GossipResult(send=self._on_digest(msg, now))
        elif isinstance(msg, DeltaAck):
            result = GossipResult(send=self._on_ack(msg, now))
        elif isinstance(msg, Summary):
            result = GossipResult(send=self._on_summary(msg))
        else:
            raise LocalError(f"not a gossip message: {type(msg).__name__}")
        result.send = self._emit(result.send)
        return result

    def local_update(self, update: SignedUpdate, now: float) -> list[Message]:
        """We stored `update` (ours, or relayed by another peer): push it if the peer lacks it
        and the line is free, else announce it, unless the peer already knows."""
        origin, seq = update.origin, update.seq
        if self.peer_has.get(origin, 0) >= seq or self.in_flight.get(origin, 0) >= seq:
            return []
        if self._can_send(now):
            return self._emit(self._next_delta(now))
        ours = self.metamap.seq_of(origin)
        if self._told.get(origin, 0) >= ours:
            return []
        return self._emit([self._partial_digest({origin: ours})])

    def tick(self, now: float) -> list[Message]:
        """Timers: give up a Delta unacked too long, resume after a back-off, send a Summary."""
        if self.in_flight and now - self._in_flight_at >= self.delta_timeout:
            self.in_flight = {}
            self.budget = max(self.budget_min, self.budget // 2)
        out = self._next_delta(now) if self._can_send(now) else []
        if self._next_summary is None:
            self._next_summary = now + self.summary_interval
        elif now >= self._next_summary:
            self._next_summary = now + self.summary_interval
            digest = self.metamap.digest()
            out.append(Summary(digest_hash(digest), len(digest)))
        return self._emit(out)

    @property
    def pending(self) -> bool:
        """True while a Delta awaits its Ack or a back-off runs (a driver keeps ticking)."""
        return bool(self.in_flight) or self._paused_until is not None

    # -- receiving -------------------------------------------------------------------------
    def _on_digest(self, msg: Digest, now: float) -> list[Message]:
        """Learn what the peer holds; send what it lacks; say what we lack, if news to it."""
        entries = _checked_entries(msg.entries)
        if msg.full:
            self.peer_has = entries
            self._have_view = True
        else:
            self.peer_has.update(entries)
        out = self._next_delta(now) if self._can_send(now) else []
        ours = {o: self.metamap.seq_of(o) for o in entries}
        news = {o: s for o, s in ours.items() if entries[o] > s and self._told.get(o, 0) != s}
        if news:
            out.append(self._partial_digest(news))
        return out

    def _on_delta(self, msg: Delta, now: float, verified: Container[tuple]) -> GossipResult:
        """Apply what the token bucket lets in; reply with our new digest entries, then the Ack."""
        updates = [update_from_wire(item) for item in msg.updates]
        taken = self._absorb(updates, now)
        result = GossipResult()
        blocked: set[bytes] = set()
        for update in updates:
            self.peer_has[update.origin] = max(self.peer_has.get(update.origin, 0), update.seq)
        for item, update in zip(msg.updates[:taken], updates):
            if update.origin not in blocked:
                checked = bool(verified) and tuple(item) in verified
                self._apply(update, result, blocked, checked)
        touched = {u.origin: self.metamap.seq_of(u.origin) for u in updates}
        received = sum(u.size for u in updates)
        absorbed = sum(u.size for u in updates[:taken])
        result.send = [self._partial_digest(touched), DeltaAck(received, absorbed)]
        return result

    def _apply(self, update: SignedUpdate, result: GossipResult, blocked: set[bytes],
               checked: bool) -> None:
        outcome = self.metamap.apply(update, verified=checked)
        self.updates_received += 1
        if outcome is Outcome.BAD_SIGNATURE:
            raise ForgedUpdate(update, result)
        if outcome in STORED:
            result.applied.append(update)
        elif outcome in REFUSED:
            result.rejected.append((update, outcome))
            if outcome is Outcome.NOT_YET:
                self.not_yet += 1
                blocked.add(update.origin)
            else:
                self.forbidden += 1

    def _absorb(self, updates: list[SignedUpdate], now: float) -> int:
        """How many leading updates the token bucket admits (it may go one update into debt)."""
        cap = self.absorb_rate * self.absorb_burst
        if self._tokens is None:
            self._tokens = cap
        else:
            gained = self.absorb_rate * max(0.0, now - self._refilled_at)
            self._tokens = min(cap, self._tokens + gained)
        self._refilled_at = now
        taken = 0
        for update in updates:
            if self._tokens <= 0:
                break
            self._tokens -= update.size
            taken += 1
        return taken

    def _on_ack(self, msg: DeltaAck, now: float) -> list[Message]:
        """AIMD on the budget, then the next Delta (or a back-off if the peer took nothing)."""
        if msg.received < 0 or not 0 <= msg.absorbed <= msg.received:
            raise RemoteError("DeltaAck: impossible byte counts")
        if not self.in_flight:
            return []  # the Ack of a Delta we gave up on (tick): nothing to do
        self.in_flight = {}
        if msg.absorbed >= msg.received:
            self.budget = min(self.budget_max, self.budget + self.budget_step)
        else:
            self.budget = max(self.budget_min, self.budget // 2)
        if msg.absorbed == 0 and msg.received > 0:
            self._paused_until = now + self.retry_delay
            return []
        return self._next_delta(now)

    def _on_summary(self, msg: Summary) -> list[Message]:
        """Anti-entropy: a different hash means the peer's belief of us may be wrong."""
        if msg.digest_hash == digest_hash(self.metamap.digest()):
            return []
        return [self._full_digest()]

    # -- sending ---------------------------------------------------------------------------
    def _can_send(self, now: float) -> bool:
        paused = self._paused_until is not None and now < self._paused_until
        return self._have_view and not self.in_flight and not paused

    def _next_delta(self, now: float) -> list[Message]:
        """The next Delta of what the peer lacks, if any; it becomes the one in flight."""
        self._paused_until = None
        updates = self.metamap.since(self.peer_has, self.budget, start=self._rotation)
        if not updates:
            return []
        self._rotation += 1
        for u in updates:
            self.in_flight[u.origin] = max(self.in_flight.get(u.origin, 0), u.seq)
            self._told[u.origin] = max(self._told.get(u.origin, 0), u.seq)
        self._in_flight_at = now
        self.updates_sent += len(updates)
        return [Delta(tuple(update_to_wire(u) for u in updates))]

    def _full_digest(self) -> Digest:
        digest = self.metamap.digest()
        self._told = dict(digest)
        return Digest(digest, full=True)

    def _partial_digest(self, entries: dict[bytes, int]) -> Digest:
        self._told.update(entries)
        return Digest(entries, full=False)

    def _emit(self, msgs: list[Message]) -> list[Message]:
        """Count what leaves (the counters feed status and the benchmarks). Bytes are counted
        before deflating (wire/messages.py), which the link does once, when it sends."""
        for msg in msgs:
            self.messages_sent += 1
            self.bytes_sent += len(encode_plain(msg))
        return msgs
