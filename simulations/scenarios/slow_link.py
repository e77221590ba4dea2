"""A node behind a slow link (32 KiB/s, 300 ms) that is also a slow receiver (it absorbs gossip
at 16 KiB/s, `GossipSession.absorb_rate`), while another node publishes hundreds of small files
and one large one. Gossip flow control must get everything through without flooding the link:
no link above its bandwidth, a bounded queue, and the mesh converges."""

from __future__ import annotations

from gossip_backer.testing.simnet import LinkSpec
from simulations import Plan

DEFAULTS = {"nodes": 6, "topology": "ring", "files": 200, "big": 1 << 20, "bandwidth": 32768,
            "absorb": 16384}


def plan(sim, options: dict) -> Plan:
    rng = sim.rng
    writers = [n.index for n in sim.nodes if not n.read_only]
    slow = rng.choice([i for i in range(1, len(sim.nodes))])
    spec = LinkSpec(latency=0.3, jitter=0.05, bandwidth=float(options["bandwidth"]))
    for j in sorted(sim.neighbours[slow]):
        sim.net.set_link(slow, j, spec)
    absorb = float(options["absorb"])

    def slow_receiver(node, peer: int) -> None:
        if node.index == slow:
            node.replica.sessions[sim.nodes[peer].key].absorb_rate = absorb

    sim.on_session = slow_receiver
    writer = rng.choice([i for i in writers if i != slow])
    t = 2.0
    for k in range(int(options["files"])):
        sim.at(t + k * 0.001, sim.write, writer, f"many/f{k:04d}.txt", size=rng.randrange(1, 2048))
    sim.at(t + 0.5, sim.write, writer, "big/blob.bin", size=int(options["big"]))
    return Plan(until=t + 1.0, settle=1200.0, info={"slow_node": slow, "writer": writer})
