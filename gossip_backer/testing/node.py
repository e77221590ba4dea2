"""One simulated node: the real sans-IO protocol objects, interpreted on a virtual clock.

Theory of operation
-------------------
A `SimNode` is what `runtime/node.py` is for trio, with the simulator's event loop instead: it
holds a real `Replica` (gossip, membership, signatures), a `MemRoot` disk, and the daemon's
folder machine (protocol/folder.py), carried out on that disk by `SimFolder`
(testing/simfolder.py):
- the user writes to the disk; after the watcher's delay the path is scanned and the machine
  turns what changed into versions, which the node signs with its key;
- a connection opens as the daemon's does: once the handshake is done each end sends its
  `Hello`, and the peer's first message is judged by the daemon's `session.Admission` (protocol
  version, trust); only then does the session start. A joining node first dials its inviter
  with the invite key and sends its InviteClaim, judged there by the daemon's rules
  (testing/siminvite.py);
- `history` asks the connected peers over the network (testing/simhistory.py);
- every message crosses the `SimNet` as bytes (`wire.messages.encode`, then `decode` at the
  other end), so sizes are real wire sizes and the decoder checks every peer message;
- `Persist` effects go to a `SimStore` that survives crashes; on restart the map is rebuilt
  from it with `MetaMap.apply_all`, as `NodeState.open` does, and the disk is rescanned;
- after any change of the map the machine publishes conflict copies and hands out disk work.
A peer that breaks the protocol (RemoteError, a bad block, a forged update) is disconnected, as
the runtime's link does (and, as there, may dial again a second later).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from gossip_backer.core.invite import InviteTable
from gossip_backer.core.metamap import MetaMap, Outcome
from gossip_backer.core.record import FileRecord, IndexEntry, LiveEdit, Payload, SignedUpdate
from gossip_backer.crypto.identity import Identity, Verifier, make_update
from gossip_backer.disk.ignore import IgnoreMatcher
from gossip_backer.errors import IntegrityError, LocalError, RemoteError
from gossip_backer.protocol.effects import Disconnect, Effect, Emit, Persist, Send
from gossip_backer.protocol import session
from gossip_backer.protocol.folder import READ_WRITE, FolderMachine
from gossip_backer.protocol.peer import MAX_FRAME
from gossip_backer.protocol.replica import Replica
from gossip_backer.testing.memdisk import MemRoot
from gossip_backer.testing.simfolder import SimFolder
from gossip_backer.testing.simhistory import SimHistory
from gossip_backer.testing.siminvite import Claim
from gossip_backer.testing.simnet import Connection, Endpoint
from gossip_backer.wire.messages import (BlockBatch, BlockBatchData, BlockData, BlockMissing,
                                         BlockRequest, DeltaData, DeltaRequest, HistoryReply,
                                         HistoryRequest, Message, decode, encode)

if TYPE_CHECKING:
    from gossip_backer.testing.cluster import Cluster

__all__ = ["SimNode", "SimStore"]

STORED = (Outcome.APPLIED, Outcome.HELD, getattr(Outcome, "VOID", Outcome.HELD))
BLOCK_KINDS = (BlockData, BlockMissing, DeltaData, BlockBatchData)  # answers to our requests


class SimStore:
    """The node's persisted update log: a shared base (the mesh as it was at the start) plus
    this node's own additions and deletions, so a thousand nodes do not copy a thousand grants."""

    def __init__(self, base: tuple[SignedUpdate, ...] = ()) -> None:
        self.base = base
        self.added: dict[tuple[bytes, int], SignedUpdate] = {}
        self.removed: set[tuple[bytes, int]] = set()
        self.index: dict[str, IndexEntry] = {}  # the local index (store.repo's index table)
        self.revisions: dict[str, list[tuple]] = {}  # path -> archived (hash, size, mtime, origin)
        self.invites = InviteTable()  # the invites this node made (store.repo's invites table)
        self.live_bases: dict[str, list[bytes]] = {}  # live files' base logs (disk/livebase.py)
        self.machine_boot = 0  # the machine's boot id (a machine crash reboots it)
        self.alive: tuple[int, float] | None = None  # (boot id, last sign of life), as
        # disk/alive.py keeps it for the daemon: a mark left from another boot means the
        # previous run ended with the machine losing power

    def save(self, updates: Iterable[SignedUpdate], dropped: Iterable[tuple[bytes, int]]) -> None:
        for key in dropped:
            if self.added.pop(key, None) is None:
                self.removed.add(key)
        for u in updates:
            self.added[(u.origin, u.seq)] = u
            self.removed.discard((u.origin, u.seq))

    def load(self) -> list[SignedUpdate]:
        out = [u for u in self.base if (u.origin, u.seq) not in self.removed
               and (u.origin, u.seq) not in self.added]
        return out + list(self.added.values())


class SimNode(Endpoint):
    """One node of the simulated mesh (see the module docstring)."""

    def __init__(self, cluster: "Cluster", index: int, identity: Identity, *,
                 read_only: bool = False, store: SimStore | None = None,
                 bootstrap: Iterable[bytes] = ()) -> None:
        self.cluster = cluster
        self.index = index
        self.identity = identity
        self.key = identity.public
        self.read_only = read_only
        self.disk = MemRoot(f"n{index}", clock=cluster.clock_ns)
        self.store = store or SimStore()
        self.bootstrap = set(bootstrap)
        self.ignore = IgnoreMatcher(cluster.ignore_root)
        self.alive = False
        self.gone = False  # left the mesh for good
        self.incarnation = 0
        self.conns: dict[int, Connection] = {}  # admitted sessions
        # connection id -> connection whose handshake is done and whose peer's Hello is awaited
        # (by id: both ends may dial at once, so two may be opening to one peer)
        self.opening: dict[int, Connection] = {}
        self.dialed: dict[int, bool] = {}  # connection id -> dialed by us
        self.invite_links: dict[int, bytes] = {}  # connection id -> the invite key it proved
        self.claim: Claim | None = None  # our claim of the invite we join with
        self.invite_error: str | None = None
        self.events: list[object] = []
        self.errors: list[str] = []  # why peers were dropped for misbehaving
        self.local_errors: list[str] = []  # LocalError raised by our own decisions (bugs)
        self._reset()

    def _reset(self) -> None:
        if getattr(self, "folder", None) is not None:
            self.folder.stop()
        self.metamap: MetaMap | None = None
        self.replica: Replica | None = None
        self.folder: SimFolder | None = None
        self.history: SimHistory | None = None

    def __repr__(self) -> str:
        return f"SimNode({self.index})"

    @property
    def now(self) -> float:
        return self.cluster.loop.now

    # -- life cycle --------------------------------------------------------------------------
    def boot(self, metamap: MetaMap | None = None, *, first_scan: float | None = None) -> None:
        """Start (or restart) from the persisted state; `metamap` is a ready-made map that equals
        what loading the store would give (the cluster clones one for a thousand nodes).
        `first_scan`: seconds until the first full scan (default: drawn from cfg.boot_scan)."""
        cl = self.cluster
        self.incarnation += 1
        self.alive = True
        self._reset()
        if metamap is None:
            metamap = MetaMap(cl.founder, Verifier(cl.mesh_id))
            metamap.apply_all(self.store.load())
        metamap.drain_dropped()
        self.metamap = metamap
        self.replica = Replica(metamap, self.key, summary_interval=cl.cfg.summary_interval)
        machine = self._machine(metamap)
        mark, boot = self.store.alive, self.store.machine_boot
        if mark is not None and mark[0] != boot:
            machine.after_power_loss(mark[1])
        self.folder = SimFolder(self, machine, self.disk, self.store.index, loop=cl.loop,
                                cfg=cl.cfg, rng=cl.rng, clock_ns=cl.clock_ns, ignore=self.ignore)
        inc = self.incarnation
        cl.loop.call_later(cl.rng.uniform(0.0, cl.cfg.tick), self._tick, inc)
        self.history = SimHistory(self, self.now)
        self.folder.boot(first_scan)
        cl.changed(self)

    def _machine(self, metamap: MetaMap) -> FolderMachine:
        from gossip_backer.testing.simlive import live_machine

        machine = FolderMachine(metamap, self.key, self.store.index.values())
        machine.live = live_machine(metamap, self.key, self.incarnation)
        return machine

    def crash(self, *, notify: bool = True) -> None:
        """The process dies: connections end (peers get a reset if `notify`: the machine still
        runs), memory is lost; the store and disk remain."""
        self.alive = False
        self.incarnation += 1
        opening = [(conn.other(self.index), conn) for conn in self.opening.values()]
        for peer, conn in [*self.conns.items(), *opening]:
            self.cluster.net.close(conn, self.index, "crashed", notify=notify)
            self.cluster.link_down(self.index, peer, error=False)
        self.conns.clear()
        self.opening.clear()
        self.dialed.clear()
        self._reset()

    # -- connections -------------------------------------------------------------------------
    def trusts(self, key: bytes) -> bool:
        """The daemon's rule (`session.trusted`): a member not removed, or our inviter."""
        members = self.metamap.membership.members if self.metamap is not None else {}
        return session.trusted(members, self.bootstrap, key)

    def admission(self) -> session.Admission:
        return session.Admission(f"n{self.index}", (), self.read_only, self.trusts)

    def accept(self, conn: Connection, peer: int) -> "SimNode | None":
        """A dial from `peer` reached us: the handshake's authorisation."""
        if not self.alive:
            return None
        if not self.trusts(self.cluster.nodes[peer].key):
            return None
        return self

    def on_open(self, conn: Connection) -> None:
        self.open(conn, conn.other(self.index), dialed=False)

    def open(self, conn: Connection, peer: int, *, dialed: bool) -> None:
        """The handshake is done: say Hello, and wait for the peer's."""
        self.dialed[conn.id] = dialed
        self.opening[conn.id] = conn
        hello = self.admission().hello()
        self.cluster.net.send(conn, self.index, encode(hello), type(hello).__name__)

    def _first_message(self, conn: Connection, peer: int, data: bytes) -> None:
        """The peer's first message on `conn`: the daemon's admission decides."""
        message = decode(data)  # a RemoteError here: `drop` ends the opening connection
        del self.opening[conn.id]
        invited = self.invite_links.pop(conn.id, None)
        proved = invited or self.cluster.nodes[peer].key  # the key the handshake proved
        verdict = self.admission().first(proved, message)
        if isinstance(verdict, session.Admit):
            self.attach(conn, peer)
            return
        if isinstance(verdict, session.ClaimGrant):
            self.grant_invite(conn, proved, verdict.claim)
            return
        if verdict.reply is not None:
            self.cluster.net.send(conn, self.index, encode(verdict.reply), "Refuse")
        self.cluster.net.close(conn, self.index, f"refused: {verdict.reason}")
        if invited is None:
            self.cluster.link_down(self.index, peer, error=False)

    # -- invites -----------------------------------------------------------------------------
    def wall(self) -> float:
        return self.cluster.clock_ns() / 1e9

    def accept_invite(self, conn: Connection, invite_key: bytes) -> "SimNode | None":
        """A dial authenticated by `invite_key`: one of ours (a used or expired one too: it only
        hears why it is refused), as the daemon's handshake authorises it."""
        if not self.alive or self.store.invites.state(invite_key, self.wall()) is None:
            return None
        self.invite_links[conn.id] = invite_key
        return self

    def grant_invite(self, conn: Connection, invite_key: bytes, claim) -> None:
        """A joining node's claim arrived: checked before the invite is spent (a forged claim
        must not use it up), then judged by the daemon's rule (session.judge_claim)."""
        try:
            session.check_claim(self.cluster.mesh_id, invite_key, claim)
        except RemoteError as exc:
            self.errors.append(f"RemoteError: {exc}")
            self.cluster.net.close(conn, self.index, f"RemoteError: {exc}")
            return
        now = self.wall()
        members = self.metamap.membership.members
        result, grant = session.answer_without_invite(claim, members), None
        if result is None:
            spent = self.store.invites.claim(invite_key, now)
            state = None if spent is not None else self.store.invites.state(invite_key, now)
            result, grant = session.judge_claim(claim, spent, state, members, self.metamap.clock)
        if grant is not None:
            self.publish(grant)
        self.cluster.net.send(conn, self.index, encode(result), "InviteResult")
        self.cluster.net.close(conn, self.index, "invite used" if grant else "invite answered")

    def invite_answered(self, result) -> None:
        """Our claim was answered: welcome (the grant comes by gossip), or refused for good."""
        if not result.accepted:
            self.invite_error = f"the invite was refused: {result.reason}"

    def attach(self, conn: Connection, peer: int) -> None:
        old = self.conns.get(peer)
        if old is not None and old is not conn:
            key = self.cluster.nodes[peer].key
            if session.keep_old(self.dialed.get(old.id), self.dialed.get(conn.id), self.key, key):
                self.cluster.net.close(conn, self.index, "duplicate connection")
                return
            self._detach(peer, "replaced by a newer connection", notify=True)
        self.conns[peer] = conn
        key = self.cluster.nodes[peer].key
        self._run(self.replica.connect(key, self.now))
        self.cluster.session_started(self, peer)
        self.folder.peers_changed()

    def is_opening(self, peer: int) -> bool:
        """Is a connection to `peer` past its handshake and waiting for the peer's Hello."""
        return any(conn.other(self.index) == peer for conn in self.opening.values())

    def drop(self, peer: int, reason: str, *, error: bool = False,
             conn: Connection | None = None) -> None:
        """End the connection to `peer` (our decision); `conn`: the one that broke the
        protocol, which may still be opening."""
        if conn is not None and self.opening.pop(conn.id, None) is not None:
            # its first message broke the protocol
            self.errors.append(reason)
            self.cluster.net.close(conn, self.index, reason)
            self.cluster.link_down(self.index, peer, error=error)
            return
        if peer not in self.conns:
            return
        if error:
            self.errors.append(reason)
        self._detach(peer, reason, notify=True)
        self.cluster.link_down(self.index, peer, error=error)

    def _detach(self, peer: int, reason: str, notify: bool) -> None:
        conn = self.conns.pop(peer)
        self.dialed.pop(conn.id, None)
        key = self.cluster.nodes[peer].key
        self.replica.disconnect(key)
        self.folder.peer_gone(key)
        if notify:
            self.cluster.net.close(conn, self.index, reason)

    def on_close(self, conn: Connection, reason: str) -> None:
        peer = conn.other(self.index)
        self.dialed.pop(conn.id, None)
        if self.opening.get(conn.id) is conn:
            del self.opening[conn.id]
            if reason.startswith("RemoteError"):
                self.errors.append(reason)
            self.cluster.link_down(self.index, peer, error=reason.startswith("RemoteError"))
            return
        if not self.alive or self.conns.get(peer) is not conn:
            return
        self.conns.pop(peer)
        key = self.cluster.nodes[peer].key
        self.replica.disconnect(key)
        self.folder.peer_gone(key)
        if reason.startswith("RemoteError"):
            self.errors.append(reason)
        self.cluster.link_down(self.index, peer, error=reason.startswith("RemoteError"))

    def send(self, peer: int, message: Message) -> None:
        conn = self.conns.get(peer)
        if conn is not None:
            self.cluster.net.send(conn, self.index, encode(message), type(message).__name__)

    # -- messages ----------------------------------------------------------------------------
    def on_data(self, conn: Connection, data: bytes) -> None:
        peer = conn.other(self.index)
        if not self.alive:
            return
        try:
            if len(data) > MAX_FRAME:
                raise RemoteError(f"frame of {len(data)} bytes is over the limit")
            if self.opening.get(conn.id) is conn:
                self._first_message(conn, peer, data)
                return
            if self.conns.get(peer) is not conn:
                return
            message = decode(data)
            if isinstance(message, (BlockRequest, DeltaRequest, BlockBatch)):
                self.send(peer, self.serve_block(message))
            elif isinstance(message, HistoryRequest):
                self.send(peer, self.history.answer(message))
            elif isinstance(message, HistoryReply):
                self.history.on_reply(self.cluster.nodes[peer].key, message)
            elif isinstance(message, BLOCK_KINDS):
                self.folder.on_block_message(self.cluster.nodes[peer].key, message)
            else:
                self._on_gossip(peer, message)
        except IntegrityError as exc:
            self.drop(peer, f"IntegrityError: {exc}", error=True, conn=conn)
        except RemoteError as exc:
            self.drop(peer, f"RemoteError: {exc}", error=True, conn=conn)
        self.cluster.changed(self)

    def _on_gossip(self, peer: int, message: Message) -> None:
        key = self.cluster.nodes[peer].key
        try:
            effects = self.replica.receive(key, message, self.now)
        finally:
            self._run(self.replica.take_pending())
        self._run(effects)

    def _run(self, effects: list[Effect]) -> None:
        """Interpret the replica's effects (runtime.Node._run)."""
        cl = self.cluster
        for effect in effects:
            if isinstance(effect, Send):
                peer = cl.by_key.get(effect.peer)
                if peer is not None:
                    self.send(peer, effect.message)
            elif isinstance(effect, Persist):
                self.store.save(effect.updates, effect.dropped)
                edits = [u for u in effect.updates if isinstance(u.payload, LiveEdit)]
                if edits:  # live documents (testing/simlive.py)
                    self.folder.live.remote(edits)
                    if len(edits) == len(effect.updates):
                        continue
                paths = [u.payload.path for u in effect.updates if isinstance(u.payload, FileRecord)]
                moved = len(paths) + len(edits) < len(effect.updates)  # membership: any path may change
                self.folder.map_changed(None if moved else paths)
            elif isinstance(effect, Disconnect):
                peer = cl.by_key.get(effect.peer)
                if peer is not None:
                    self.drop(peer, effect.reason)
            elif isinstance(effect, Emit):
                self.events.append(effect.event)

    def _tick(self, inc: int) -> None:
        if inc != self.incarnation:
            return
        cl = self.cluster
        cl.loop.call_later(cl.cfg.tick, self._tick, inc)
        self._run(self.replica.tick(self.now))
        if self.folder.machine.scanned:  # the mark of a power loss stays until a scan judged it
            self.store.alive = (self.store.machine_boot, cl.clock_ns() / 1e9)
        self.folder.tick()

    # -- local changes -----------------------------------------------------------------------
    def user_changed(self, path: str) -> None:
        """The user touched `path` on disk; the watcher reports it after a short delay."""
        if self.alive:
            self.folder.user_changed(path)

    def can_write(self) -> bool:
        """A read-write member, not revoked (a joining node is not one until its grant arrives)."""
        return self.folder is not None and self.folder.machine.role() == READ_WRITE

    # -- what the folder asks of the node -----------------------------------------------------
    def peers(self) -> list[bytes]:
        return [self.cluster.nodes[p].key for p in self.conns]

    def send_to(self, key: bytes, message: Message) -> None:
        peer = self.cluster.by_key.get(key)
        if peer is not None:
            self.send(peer, message)

    def changed(self) -> None:
        self.cluster.changed(self)

    def serve_block(self, req: BlockRequest | DeltaRequest | BlockBatch) -> Message:
        return self.folder.serve_block(req)

    def idle(self) -> bool:
        return not self.alive or (self.folder.idle() and not self.history.busy)

    def record_archived(self, path: str, row: tuple) -> None:
        """The disk work kept a replaced version in the archive: its revision row (as
        runtime/folder.py's record_archived writes one)."""
        rows = self.store.revisions.setdefault(path, [])
        if row not in rows:
            rows.append(row)

    def publish(self, payload: Payload, *, user: bool = False) -> SignedUpdate:
        """Sign `payload` as our next update, apply, persist and spread it (NodeState.make).
        `user`: a change the user made (the oracle tracks those), not a conflict copy."""
        seq = self.metamap.seq_of(self.key) + 1
        update = make_update(self.identity, self.cluster.mesh_id, seq, payload)
        outcome = self.metamap.apply(update, signed_here=True)
        if outcome not in STORED:
            raise LocalError(f"own update refused by the map: {outcome.value}")
        if user and outcome is Outcome.HELD:  # born dominated: nobody will ever see this change
            self.cluster.oracle.born_stale.append((self.index, update.seq, self.now))
        self.store.save([update], self.metamap.drain_dropped())
        if isinstance(payload, FileRecord):
            self.cluster.oracle.published(self, update, user=user)
        elif isinstance(payload, LiveEdit):
            pass  # a live document's piece: no version of a path, no membership
        else:  # membership moved: which versions count may have changed anywhere
            self.folder.map_changed(None)
        self._run(self.replica.local([update], self.now))
        self.cluster.changed(self)
        return update
