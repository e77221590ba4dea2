"""In-process replicas and a virtual network for the protocol tests (and the gossip benchmark).

Real keys and signatures throughout: every replica's MetaMap checks signatures with a
`Verifier`, so an update that crosses the network is checked by each node that stores it. The
network encodes and decodes every message, so the wire format is exercised on every hop.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field

from gossip_backer.core.metamap import MetaMap, Outcome
from gossip_backer.core.record import Block, FileRecord, Grant, Payload, SignedUpdate
from gossip_backer.core.vv import VersionVector
from gossip_backer.crypto.identity import Identity, Verifier, make_update
from gossip_backer.protocol.gossip import GossipSession
from gossip_backer.wire.messages import Message, decode, encode

MESH_ID = "mesh-under-test"
STORED = (Outcome.APPLIED, Outcome.HELD)


def identity(n: int) -> Identity:
    """A deterministic identity: the same `n` gives the same key in every run."""
    return Identity.from_seed(hashlib.blake2b(n.to_bytes(4, "big"), digest_size=32).digest())


def file_record(path: str, vv: VersionVector, origin: bytes, content: bytes = b"x",
                mtime_ns: int = 0, blocks: int = 1) -> FileRecord:
    """A regular file of `blocks` blocks whose hashes derive from `content`."""
    digest = hashlib.blake2b(content, digest_size=32).digest()
    blks = tuple(Block(hashlib.blake2b(digest + bytes([i % 256]) + i.to_bytes(4, "big"),
                                       digest_size=32).digest(), i) for i in range(blocks))
    return FileRecord(path=path, kind="file", vv=vv, origin=origin, size=len(content),
                      mtime_ns=mtime_ns, hash=digest, block_size=128 * 1024, blocks=blks)


class Replica:
    """One node: its identity, a MetaMap with real signature checks, its own update counter."""

    def __init__(self, ident: Identity, founder: bytes, name: str) -> None:
        self.identity = ident
        self.name = name
        self.verifier = Verifier(MESH_ID)
        self.map = MetaMap(founder, self.verifier)
        self.seq = 0

    @property
    def id(self) -> bytes:
        return self.identity.public

    def sign(self, payload: Payload) -> SignedUpdate:
        """Sign `payload` as our next update, without applying it."""
        self.seq += 1
        return make_update(self.identity, MESH_ID, self.seq, payload)

    def commit(self, payload: Payload) -> SignedUpdate:
        update = self.sign(payload)
        self.take(update)
        return update

    def take(self, update: SignedUpdate) -> None:
        """Store an update made elsewhere (as the store would on load, or a join would)."""
        outcome = self.map.apply(update)
        assert outcome in STORED or outcome is Outcome.DUPLICATE, outcome

    def write(self, path: str, content: bytes = b"x", mtime_ns: int = 0,
              blocks: int = 1) -> SignedUpdate:
        """A local edit of `path`: its version vector succeeds every version we hold."""
        vv = VersionVector()
        for version in self.map.versions(path):
            vv = vv.merge(version.vv)
        return self.commit(file_record(path, vv.bump(self.id), self.id, content, mtime_ns, blocks))

    def grant(self, node: bytes, read_only: bool = False) -> SignedUpdate:
        return self.commit(Grant(node, f"node-{node[:2].hex()}", read_only, self.map.clock + 1))


def make_mesh(n: int, read_only: tuple[int, ...] = (), first: int = 0) -> list[Replica]:
    """`n` replicas; replica 0 founded the mesh and granted the others, who all hold the grants."""
    ids = [identity(first + i) for i in range(n)]
    founder = Replica(ids[0], ids[0].public, "r0")
    membership = [founder.grant(founder.id)]
    membership += [founder.grant(ids[i].public, i in read_only) for i in range(1, n)]
    replicas = [founder] + [Replica(ids[i], founder.id, f"r{i}") for i in range(1, n)]
    for replica in replicas[1:]:
        for update in membership:
            replica.take(update)
    return replicas


def empty_replica(founder: Replica, n: int = 99) -> Replica:
    """A replica that knows only who the founder is (no update at all)."""
    return Replica(identity(n), founder.id, f"r{n}")


@dataclass
class Network:
    """Sessions wired back to back with `latency` seconds of virtual time per hop, FIFO per link.
    Updates a node stores from one peer are offered to its other peers (`local_update`)."""

    latency: float = 0.005
    tick_step: float = 0.05
    now: float = 0.0
    messages: int = 0
    bytes: int = 0
    log: list[tuple[str, str, Message]] = field(default_factory=list)
    sessions: dict[tuple[str, str], GossipSession] = field(default_factory=dict)
    _queue: list = field(default_factory=list)
    _count: int = 0

    def connect(self, a: Replica, b: Replica, **kw) -> tuple[GossipSession, GossipSession]:
        sa, sb = GossipSession(a.map, **kw), GossipSession(b.map, **kw)
        self.sessions[(a.name, b.name)], self.sessions[(b.name, a.name)] = sa, sb
        self.send(a.name, b.name, sa.start(self.now))
        self.send(b.name, a.name, sb.start(self.now))
        return sa, sb

    def send(self, src: str, dst: str, msgs: list[Message]) -> None:
        for msg in msgs:
            data = encode(msg)
            self.messages += 1
            self.bytes += len(data)
            self._count += 1
            heapq.heappush(self._queue, (self.now + self.latency, self._count, src, dst, data))

    def step(self) -> None:
        """Deliver the next message (decoded from its bytes) and route what it causes."""
        when, _n, src, dst, data = heapq.heappop(self._queue)
        self.now = max(self.now, when)
        msg = decode(data)
        self.log.append((src, dst, msg))
        result = self.sessions[(dst, src)].receive(msg, self.now)
        self.send(dst, src, result.send)
        for update in result.applied:
            self.offer(dst, update, skip=src)

    def offer(self, node: str, update: SignedUpdate, skip: str | None = None) -> None:
        """`node` stored `update`: tell its sessions (the replica's job in the product)."""
        for (owner, peer), session in list(self.sessions.items()):
            if owner == node and peer != skip:
                self.send(node, peer, session.local_update(update, self.now))

    def tick(self, dt: float) -> None:
        self.now += dt
        for (owner, peer), session in list(self.sessions.items()):
            self.send(owner, peer, session.tick(self.now))

    def run(self, limit: int = 200_000) -> int:
        """Deliver until no message is queued and no session waits for an Ack or a back-off."""
        delivered = 0
        while self._queue or any(s.pending for s in self.sessions.values()):
            if self._queue:
                self.step()
                delivered += 1
            else:
                self.tick(self.tick_step)
            assert delivered < limit, "gossip did not settle (a message loop?)"
        return delivered


def sync(a: Replica, b: Replica, **kw) -> Network:
    """Connect two replicas and run until quiet."""
    net = Network()
    net.connect(a, b, **kw)
    net.run()
    return net


def state(replica: Replica) -> tuple[dict, dict]:
    """What must be equal on converged replicas: digest and file versions."""
    return replica.map.digest(), dict(replica.map.files)
