"""A member that lies: granted read-only, it serves corrupted blocks, sends updates with broken
signatures, updates forged in another member's name, oversized frames, garbage bytes, stale
updates and digests, and signs its own file changes, grants and revocations (valid signatures
from a read-only member). Midway an honest member revokes it; it keeps trying to connect.

Honest nodes must converge among themselves with none of its content applied, drop it at each
lie (IntegrityError / RemoteError), refuse it once revoked, and an outsider without the mesh
secret never gets past `PeerConnection`'s pre-hello."""

from __future__ import annotations

from gossip_backer.core.record import FileRecord, Grant, Revoke, SignedUpdate, payload_to_plain
from gossip_backer.core.vv import VersionVector
from gossip_backer.crypto.identity import Identity, make_update, signed_bytes, update_to_wire
from gossip_backer.errors import RemoteError
from gossip_backer.protocol.folder import READ_WRITE, FolderMachine
from gossip_backer.protocol.peer import MAX_FRAME, PeerConnection
from gossip_backer.testing.node import SimNode
from gossip_backer.wire.codec import pack
from gossip_backer.wire.messages import (BlockBatch, BlockBatchData, BlockData, BlockRequest, Delta,
                                         Digest, Message)
from simulations import Plan

DEFAULTS = {"nodes": 8, "topology": "random:3", "duration": 40.0, "revoke_at": 25.0,
            "writes": 8, "attack_every": 0.7}

ATTACKS = ("bad_signature", "forged_update", "oversized_frame", "garbage", "stale_updates",
           "stale_digest", "void_write", "self_grant", "forged_revoke")


def configure(cfg, options: dict) -> None:
    cfg.read_only = 1  # the liar's role


class _Unruly(FolderMachine):
    """The product's folder machine, but convinced it may publish whatever its role."""

    def role(self) -> str:
        return READ_WRITE


class EvilNode(SimNode):
    """A SimNode that lies on purpose (set up by `Cluster.make_evil`)."""

    active = True
    counter = 0

    def _machine(self, metamap) -> FolderMachine:
        return _Unruly(metamap, self.key, self.store.index.values())

    def serve_block(self, req: BlockRequest | BlockBatch) -> Message:
        """Mostly answers with bytes of the right size that are not the block (had or not),
        block by block for a batch."""
        answer = super().serve_block(req)
        if self.active and self.cluster.rng.random() < 0.8:
            attacks = self.cluster.oracle.attacks
            attacks["bad_block"] = attacks.get("bad_block", 0) + 1
            rng = self.cluster.rng
            if isinstance(req, BlockBatch):
                return BlockBatchData(tuple(BlockData(r.request_id, rng.randbytes(r.size))
                                            for r in req.requests), ())
            return BlockData(req.request_id, rng.randbytes(req.size))
        return answer

    def attack(self) -> None:
        sim = self.cluster
        if not (self.alive and self.active and self.conns):
            return
        rng = sim.rng
        peer = rng.choice(sorted(self.conns))
        kind = rng.choice(ATTACKS)
        sim.oracle.attacks[kind] = sim.oracle.attacks.get(kind, 0) + 1
        sim.note(f"evil {self.index} -> {peer}: {kind}")
        getattr(self, "_" + kind)(peer)

    def _record(self, origin: bytes) -> FileRecord:
        EvilNode.counter += 1
        data = self.cluster.content(64)
        return FileRecord(path=f"evil/e{EvilNode.counter}.txt", kind="file",
                          vv=VersionVector({origin: 1000 + EvilNode.counter}), origin=origin,
                          size=len(data), mtime_ns=self.cluster.clock_ns(), hash=bytes(32))

    def _bad_signature(self, peer: int) -> None:
        seq = self.metamap.seq_of(self.key) + 1
        u = make_update(self.identity, self.cluster.mesh_id, seq, self._record(self.key))
        sig = bytes([u.sig[0] ^ 1]) + u.sig[1:]
        self.send(peer, Delta((update_to_wire(SignedUpdate(u.origin, u.seq, u.payload, u.body, sig)),)))

    def _forged_update(self, peer: int) -> None:
        victim = self.cluster.nodes[0].key  # the founder, say: a trusted signer
        body = pack(payload_to_plain(self._record(victim)))
        seq = self.metamap.seq_of(victim) + 100
        sig = self.identity.sign(signed_bytes(self.cluster.mesh_id, victim, seq, body))
        self.send(peer, Delta(((victim, seq, body, sig),)))

    def _oversized_frame(self, peer: int) -> None:
        self.cluster.net.send(self.conns[peer], self.index, bytes(MAX_FRAME + 1), "oversized")

    def _garbage(self, peer: int) -> None:
        self.cluster.net.send(self.conns[peer], self.index, self.cluster.rng.randbytes(40), "garbage")

    def _stale_updates(self, peer: int) -> None:
        old = self.metamap.since({}, 16384)
        if old:
            self.send(peer, Delta(tuple(update_to_wire(u) for u in old)))

    def _stale_digest(self, peer: int) -> None:
        self.send(peer, Digest({}, True))  # "I hold nothing": the peer resends (costly, legal)

    def _void_write(self, peer: int) -> None:
        self.cluster.write(self.index, f"evil/w{len(self.cluster.oracle.writes)}.txt", size=512)

    def _self_grant(self, peer: int) -> None:
        self.publish(Grant(self.key, "evil", False, self.metamap.clock + 1))

    def _forged_revoke(self, peer: int) -> None:
        victim = self.cluster.nodes[0].key
        self.publish(Revoke(victim, 0, self.metamap.clock + 1))


def _pump(a: PeerConnection, b: PeerConnection) -> tuple[bool, str]:
    """Run a handshake between two connections in memory; (authenticated, why not)."""
    try:
        data = a.initial_bytes()
        b_out = b.initial_bytes()
        for _ in range(10):
            events = b.receive_data(data) if data else []
            b_out += b.data_to_send()
            if any(type(e).__name__ == "Authenticated" for e in events):
                return True, ""
            a.receive_data(b_out) if b_out else None
            data, b_out = a.data_to_send(), b""
            if not data:
                break
        return False, "handshake stalled"
    except RemoteError as exc:
        return False, str(exc)


def outsider_refused(sim) -> bool:
    """An outsider (wrong mesh secret) is refused by the pre-hello; a member is accepted."""
    member = sim.nodes[0]
    outsider = Identity.from_seed(sim.rng.randbytes(32))
    bad = PeerConnection(outsider, sim.rng.randbytes(32), lambda k: True, initiator=True)
    ok1, _why = _pump(bad, PeerConnection(member.identity, sim.mesh_secret, member.trusts,
                                          initiator=False))
    honest = next(n for n in sim.nodes[1:] if n.index not in sim.evil)
    good = PeerConnection(honest.identity, sim.mesh_secret, honest.trusts, initiator=True)
    ok2, _ = _pump(good, PeerConnection(member.identity, sim.mesh_secret, member.trusts,
                                        initiator=False))
    return not ok1 and ok2


def revoked_refused(sim, evil: int) -> bool:
    """Once revoked, the liar cannot even complete the handshake with an honest member."""
    member = next(n for n in sim.nodes if n.alive and n.index not in sim.evil)
    liar = sim.nodes[evil]
    a = PeerConnection(liar.identity, sim.mesh_secret, lambda k: True, initiator=True)
    b = PeerConnection(member.identity, sim.mesh_secret, member.trusts, initiator=False)
    ok, _ = _pump(a, b)
    return not ok


def plan(sim, options: dict) -> Plan:
    rng = sim.rng
    ro = [n.index for n in sim.nodes if n.read_only]
    evil_index = ro[0]
    evil = sim.make_evil(evil_index, EvilNode)
    honest = [n.index for n in sim.nodes if n.index != evil_index]
    for j in rng.sample(honest, min(3, len(honest))):
        sim.add_edge(evil_index, j)
    duration = float(options["duration"])
    t = 1.0
    while t < duration:
        t += rng.uniform(0.2, 2 * float(options["attack_every"]))
        sim.at(t, evil.attack)
    for k in range(int(options["writes"])):
        sim.at(rng.uniform(1.0, duration), sim.write, rng.choice(honest), f"docs/d{k}.txt",
               size=rng.randrange(1, 300000))
    remover = rng.choice(honest)

    def revoke() -> None:
        r = sim.nodes[remover]
        sim.note(f"revoke evil {evil_index} by {remover}")
        r.publish(Revoke(evil.key, r.metamap.seq_of(evil.key), r.metamap.clock + 1))

    sim.at(float(options["revoke_at"]), revoke)

    def stop() -> None:
        evil.active = False

    sim.at(duration, stop)
    checks = {
        "outsider_refused": lambda: outsider_refused(sim),
        "revoked_refused": lambda: revoked_refused(sim, evil_index),
        "liar_dropped": lambda: sum(len(sim.nodes[i].errors) for i in honest) > 0,
        "liar_locked_out": lambda: all(evil_index not in sim.nodes[i].conns for i in honest),
        "honest_roles_intact": lambda: all(
            not sim.nodes[0].metamap.membership.members[sim.nodes[i].key].revoked
            and not sim.nodes[0].metamap.membership.members[sim.nodes[i].key].read_only
            for i in honest if not sim.nodes[i].read_only),
    }
    return Plan(until=duration, settle=300.0, since=duration, checks=checks,
                info={"liar": evil_index})
