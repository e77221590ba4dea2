"""Test helpers for the core: signed writers, replicas that edit like the real node, and the
"no write is lost" oracle.

Everything here uses REAL signatures (Identity, make_update, Verifier), so a MetaMap under test
runs exactly the checks a node runs. Identities come from fixed seeds, so Hypothesis examples
replay exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

from gossip_backer.core.ids import NodeId, mesh_id_of
from gossip_backer.protocol import mirror
from gossip_backer.core.metamap import MetaMap, Outcome
from gossip_backer.core.record import (
    FILE, FileRecord, Grant, MemberInfo, Payload, Revoke, SignedUpdate,
)
from gossip_backer.core.vv import Order, VersionVector
from gossip_backer.crypto.identity import Identity, Verifier, make_update
from hypothesis import HealthCheck, settings

# Hypothesis budgets: the whole core suite stays well under a minute.
# report_multiple_bugs=False: a failing property shrinks one failure, not every distinct one
# (shrinking examples made of signed updates is what costs time when a test fails).
_COMMON = dict(deadline=None, report_multiple_bugs=False,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
quick = settings(max_examples=300, **_COMMON)  # pure values: cheap examples
medium = settings(max_examples=100, **_COMMON)  # a few signatures per example
heavy = settings(max_examples=40, **_COMMON)  # replicas exchanging dozens of signed updates
crdt = settings(max_examples=200, **_COMMON)  # the CRDT-law property: worth more examples

MESH_SECRET = b"test-mesh-secret-0123456789abcdef"


@lru_cache(maxsize=None)
def identity(i: int) -> Identity:
    """The i-th fixed test identity (deterministic, so Hypothesis can replay)."""
    return Identity.from_seed(hashlib.sha256(b"backer-test-node-%d" % i).digest())


def content_hash(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


class Signer:
    """One node's signing side: its identity and its update counter (seq 1, 2, 3 ...)."""

    def __init__(self, ident: Identity, mesh_id: str) -> None:
        self.identity = ident
        self.public = ident.public
        self.node_id = ident.node_id
        self.mesh_id = mesh_id
        self.seq = 0

    def sign(self, payload: Payload, seq: int | None = None) -> SignedUpdate:
        if seq is None:
            self.seq += 1
            seq = self.seq
        return make_update(self.identity, self.mesh_id, seq, payload)

    def grant(self, node: "Signer | bytes", read_only: bool = False, clock: int = 1,
              name: str = "") -> SignedUpdate:
        target = node.public if isinstance(node, Signer) else node
        return self.sign(Grant(target, name, read_only, clock))

    def revoke(self, node: "Signer | bytes", cutoff: int, clock: int = 1) -> SignedUpdate:
        target = node.public if isinstance(node, Signer) else node
        return self.sign(Revoke(target, cutoff, clock))

    def info(self, name: str = "n", addresses: tuple[str, ...] = (), clock: int = 1) -> SignedUpdate:
        return self.sign(MemberInfo(self.public, name, addresses, clock))

    def record(self, path: str, vv: VersionVector, *, content: bytes = b"x", mtime_ns: int = 0,
               deleted: bool = False) -> FileRecord:
        return make_record(path, vv, self.public, content=content, mtime_ns=mtime_ns,
                           deleted=deleted)

    def __repr__(self) -> str:
        return f"Signer({self.node_id.short()})"


def make_record(path: str, vv: VersionVector, origin: bytes, *, content: bytes = b"x",
                mtime_ns: int = 0, deleted: bool = False) -> FileRecord:
    if deleted:
        return FileRecord(path, FILE, vv, origin, 0, mtime_ns, 0o644, None, 0, (), None, True)
    return FileRecord(path, FILE, vv, origin, len(content), mtime_ns, 0o644,
                      content_hash(content), 0, (), None, False)


class Mesh:
    """A founder and a mesh id; makes MetaMaps that check real signatures."""

    def __init__(self, founder: int = 0) -> None:
        ident = identity(founder)
        self.mesh_id = mesh_id_of(MESH_SECRET, ident.node_id)
        self.founder = Signer(ident, self.mesh_id)
        self.genesis = self.founder.grant(self.founder, clock=1, name="founder")

    def signer(self, i: int) -> Signer:
        return Signer(identity(i), self.mesh_id)

    def new_map(self, cached: bool = False) -> MetaMap:
        """A MetaMap checking real signatures; `cached` shares one verdict cache across maps
        (each distinct update is still verified for real once; for Hypothesis-heavy tests)."""
        verify = self.cached_verifier if cached else Verifier(self.mesh_id)
        return MetaMap(founder=self.founder.public, verify=verify)

    @property
    def cached_verifier(self) -> "CachedVerifier":
        if not hasattr(self, "_cached"):
            self._cached = CachedVerifier(self.mesh_id)
        return self._cached


class CachedVerifier(Verifier):
    """A real Verifier that remembers its verdict per exact (origin, seq, body, sig)."""

    def __init__(self, mesh_id: str) -> None:
        super().__init__(mesh_id)
        self._seen: dict[tuple, bool] = {}

    def __call__(self, update: SignedUpdate) -> bool:
        key = (update.origin, update.seq, update.body, update.sig)
        if key not in self._seen:
            self._seen[key] = super().__call__(update)
        return self._seen[key]


def next_vv(metamap: MetaMap, path: str, me: bytes) -> VersionVector:
    """The version vector of a new local version of `path`, made by the node's own code
    (protocol/mirror.py): the user edits the content its disk holds once the winner is there
    (`disk_version`: the winner, and what it settles), and `fresh` puts our counter past every
    one of ours (a loser with no conflict copy yet stays concurrent: the edit cannot erase it)."""
    return mirror.fresh(metamap, path, mirror.disk_version(metamap, path), me)


@dataclass(frozen=True)
class Created:
    """One version some replica made, and what that replica had seen of its path then."""

    record: FileRecord
    base: VersionVector  # merge of the versions the creator held (the vector before its bump)
    creator: bytes
    update: SignedUpdate


@dataclass
class Replica:
    """A node's metadata side: its MetaMap and its signer; edits follow `next_vv`."""

    signer: Signer
    map: MetaMap
    name: str = ""
    created: list[Created] = field(default_factory=list)

    @property
    def public(self) -> bytes:
        return self.signer.public

    def _local(self, rec: FileRecord, base: VersionVector) -> Created:
        update = self.signer.sign(rec)
        outcome = self.map.apply(update)
        assert outcome is Outcome.APPLIED, f"{self.name}: own new version not applied: {outcome}"
        made = Created(rec, base, self.public, update)
        self.created.append(made)
        return made

    def edit(self, path: str, content: bytes = b"", mtime_ns: int = 0) -> Created:
        vv = next_vv(self.map, path, self.public)
        base = _base(self.map, path)
        content = content or b"%s:%d" % (self.name.encode(), self.signer.seq + 1)
        return self._local(self.signer.record(path, vv, content=content, mtime_ns=mtime_ns), base)

    def delete(self, path: str, mtime_ns: int = 0) -> Created:
        vv = next_vv(self.map, path, self.public)
        base = _base(self.map, path)
        return self._local(self.signer.record(path, vv, mtime_ns=mtime_ns, deleted=True), base)

    def receive(self, updates) -> list[Outcome]:
        return [self.map.apply(u) for u in updates]

    def receive_delta(self, updates) -> list[Outcome | None]:
        """Apply a Delta the way the node does (protocol/gossip.py): in order, but once an
        origin's update is NOT_YET, that origin's later updates in this Delta are skipped
        (applying them would raise our digest past the refused one, which would then never be
        offered again). Skipped updates give None."""
        blocked: set[bytes] = set()
        outcomes: list[Outcome | None] = []
        for u in updates:
            if u.origin in blocked:
                outcomes.append(None)
                continue
            outcome = self.map.apply(u)
            if outcome is Outcome.NOT_YET:
                blocked.add(u.origin)
            outcomes.append(outcome)
        return outcomes

    def pull(self, other: "Replica", budget: int | None = None, max_rounds: int = 1000) -> int:
        """Receive everything `other` has that we lack: Deltas of other.since(our digest), each
        applied as the node does (`receive_delta`), until a Delta changes nothing. Returns the
        number of updates delivered."""
        delivered = 0
        for _ in range(max_rounds):
            batch = other.map.since(self.map.digest(), budget=budget)
            if not batch:
                return delivered
            before = self.map.digest()
            self.receive_delta(batch)
            delivered += len(batch)
            if self.map.digest() == before:
                return delivered
        raise AssertionError("pull did not finish")

    def __repr__(self) -> str:
        return f"Replica({self.name})"


def _base(metamap: MetaMap, path: str) -> VersionVector:
    vv = VersionVector()
    for version in metamap.versions(path):
        vv = vv.merge(version.vv)
    return vv


def accepts(a: Replica, b: Replica) -> bool:
    """Would a's handshake accept b: a member in a's view, not revoked?"""
    m = a.map.membership.members.get(b.public)
    return m is not None and not m.revoked


def make_replicas(mesh: Mesh, n: int, *, joined: bool = True, cached: bool = False) -> list[Replica]:
    """n replicas; replica 0 is the founder. With `joined`, the founder has granted everyone
    read-write and every replica already holds those grants (the state right after joining)."""
    reps = [Replica(mesh.founder, mesh.new_map(cached), "R0")]
    for i in range(1, n):
        reps.append(Replica(mesh.signer(i), mesh.new_map(cached), f"R{i}"))
    if joined:
        grants = [mesh.genesis] + [
            mesh.founder.grant(r.signer, clock=1 + i, name=r.name) for i, r in enumerate(reps[1:], 1)
        ]
        mesh.grants = grants
        for r in reps:
            outcomes = r.receive(grants)
            assert all(o is Outcome.APPLIED for o in outcomes), outcomes
    return reps


def full_sync(replicas: list[Replica], budget: int | None = None, max_rounds: int = 50,
              can_talk=None) -> None:
    """Everyone pulls from everyone (that `can_talk(a, b)` allows) until a round changes nothing."""
    for _ in range(max_rounds):
        before = [r.map.digest() for r in replicas]
        for a in replicas:
            for b in replicas:
                if a is not b and (can_talk is None or can_talk(a, b)):
                    b.pull(a, budget=budget)
        if [r.map.digest() for r in replicas] == before:
            return
    raise AssertionError("full sync did not become quiet")


# -- oracles -----------------------------------------------------------------------------------

def maximal(records) -> set[FileRecord]:
    """The versions no other version strictly dominates."""
    records = set(records)
    return {
        r for r in records
        if not any(o.vv.compare(r.vv) is Order.GREATER for o in records)
    }


def state_of(metamap: MetaMap) -> dict[str, frozenset[FileRecord]]:
    return {path: frozenset(vs) for path, vs in metamap.files.items()}


def assert_converged(replicas: list[Replica]) -> None:
    """Identical digests, update sets and file states everywhere."""
    first = replicas[0].map
    for r in replicas[1:]:
        assert r.map.digest() == first.digest(), f"{r.name} digest differs from {replicas[0].name}"
        assert state_of(r.map) == state_of(first), f"{r.name} files differ from {replicas[0].name}"
        assert r.map.files == first.files  # same order too (a deterministic tuple)
        assert held_updates(r.map) == held_updates(first), f"{r.name} holds other updates"
        assert r.map.membership.members == first.membership.members
        assert len(r.map) == len(first)


def held_updates(metamap: MetaMap) -> set[tuple[bytes, int, bytes]]:
    return {(u.origin, u.seq, u.sig) for u in metamap.updates()}


def assert_no_write_lost(created: list[Created], metamap: MetaMap) -> None:
    """Every version ever created is at its path (the winner or one of the concurrent set that
    becomes a conflict copy), or is dominated by a later version whose creator had seen it.
    And the state at each path is exactly the maximal versions ever created there."""
    by_path: dict[str, list[Created]] = {}
    for c in created:
        by_path.setdefault(c.record.path, []).append(c)
    for path, made in by_path.items():
        held = set(metamap.versions(path))
        expected = maximal(c.record for c in made)
        assert held == expected, (
            f"{path}: held {sorted(map(_short, held))} != maximal {sorted(map(_short, expected))}"
        )
        for c in made:
            if c.record in held:
                continue
            assert any(
                w.base.dominates(c.record.vv) and w.record.vv.compare(c.record.vv) is Order.GREATER
                for w in made
            ), f"{path}: version {_short(c.record)} lost"


def _short(rec: FileRecord) -> str:
    vv = ",".join(f"{NodeId(k).short()[:3]}{v}" for k, v in rec.vv.items())
    return f"{'DEL' if rec.deleted else 'ED'}[{vv}]"


def flip(order: Order) -> Order:
    return {Order.GREATER: Order.LESSER, Order.LESSER: Order.GREATER}.get(order, order)
