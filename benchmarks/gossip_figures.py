"""What does metadata gossip cost? Sizes, signature checks, messages and bytes of a resync.

    python benchmarks/gossip_figures.py [--json] [--updates N] [--verify N]

1. update size: one typical file update (a FileRecord of 1 block, a ~30-character path, a 3-node
   version vector): its signed body, `SignedUpdate.size` (the unit of gossip budgets), its wire
   tuple on its own, and its share of a Delta of 100 such updates.
2. verify rate: signatures the `Verifier` checks per second (best of 3 runs, one core).
3. catch-up: an empty replica reaches N (10,000) file updates from 3 writers, through two
   GossipSessions back to back (every message encoded and decoded, virtual time, 5 ms a hop).
4. resync: two replicas holding the same N - 10, each with 5 the other lacks (the newest of
   one writer each), plus one new edit on each side, reconcile.
5. steady state: the anti-entropy cost per interval once in sync.

Replicas and the virtual network come from tests/protocol/helpers.py, the same code the tests
use, so these figures describe exactly what the tests exercise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "protocol")]

from gossip_backer.core.vv import VersionVector  # noqa: E402
from gossip_backer.crypto.identity import Verifier, update_to_wire  # noqa: E402
from gossip_backer.wire.codec import pack  # noqa: E402
from gossip_backer.wire.messages import Delta, encode  # noqa: E402
from helpers import MESH_ID, Network, Replica, file_record, identity, make_mesh, state  # noqa: E402


def typical_updates(count: int) -> list:
    """`count` file updates of ~30-character paths, each with a 3-node version vector."""
    a, b, c = make_mesh(3)
    vv = VersionVector({a.id: 7, b.id: 3, c.id: 12})
    return [a.sign(file_record(f"photos/2024/trip/IMG_{i:05d}.jpg", vv, a.id, b"%d" % i,
                               mtime_ns=1_700_000_000_000_000_000 + i)) for i in range(count)]


def update_size() -> dict:
    updates = typical_updates(100)
    one = updates[0]
    delta = len(encode(Delta(tuple(update_to_wire(u) for u in updates))))
    return {
        "path_chars": len(one.payload.path),
        "body_bytes": len(one.body),
        "budget_size_bytes": one.size,
        "wire_tuple_bytes": len(pack(list(update_to_wire(one)))),
        "per_update_in_delta_of_100_bytes": round(delta / 100, 1),
    }


def verify_rate(count: int) -> dict:
    updates = typical_updates(count)
    best = float("inf")
    for _ in range(3):
        verifier = Verifier(MESH_ID)
        start = time.perf_counter()
        assert all(verifier(u) for u in updates)
        best = min(best, time.perf_counter() - start)
    return {"signatures": count, "per_second": round(count / best), "us_each": round(best / count * 1e6, 1)}


def history(count: int) -> tuple[bytes, list]:
    """Membership, then `count` file updates from 3 writers (signed once, reused)."""
    founder, w1, w2 = make_mesh(3)
    updates = list(founder.map.updates())
    shares = (count - 2 * (count // 3), count // 3, count // 3)
    for writer, share in zip((founder, w1, w2), shares):
        vv = VersionVector({writer.id: 1})
        updates += [writer.sign(file_record(f"docs/{writer.name}/report-{i:05d}-final.txt", vv,
                                            writer.id, b"%d" % i)) for i in range(share)]
    return founder.id, updates


def replica(founder: bytes, updates: list, n: int) -> Replica:
    r = Replica(identity(n), founder, f"r{n}")
    for update in updates:
        r.take(update)
    r.seq = r.map.seq_of(r.id)
    return r


def traffic(net: Network, a: Replica, b: Replica, wall: float) -> dict:
    sa, sb = net.sessions[(a.name, b.name)], net.sessions[(b.name, a.name)]
    assert state(a) == state(b), "replicas did not converge"
    return {
        "messages": net.messages, "bytes": net.bytes,
        "a_to_b": {"messages": sa.messages_sent, "bytes": sa.bytes_sent, "updates": sa.updates_sent},
        "b_to_a": {"messages": sb.messages_sent, "bytes": sb.bytes_sent, "updates": sb.updates_sent},
        "final_budget_bytes": sa.budget, "virtual_seconds": round(net.now, 3),
        "wall_seconds": round(wall, 2),
    }


def catch_up(founder: bytes, updates: list) -> dict:
    a = replica(founder, updates, 0)
    b = Replica(identity(50), founder, "empty")
    net = Network()
    start = time.perf_counter()
    net.connect(a, b)
    net.run()
    return {"updates": len(updates), **traffic(net, a, b, time.perf_counter() - start)}


def resync(founder: bytes, updates: list) -> dict:
    # B is writer 1 and holds all of its own log; A lacks its newest 5, B lacks writer 2's newest 5
    only_a = [u for u in updates if u.origin == identity(2).public][-5:]
    only_b = [u for u in updates if u.origin == identity(1).public][-5:]
    common = [u for u in updates if u not in only_a and u not in only_b]
    a, b = replica(founder, common + only_a, 0), replica(founder, common + only_b, 1)
    a.write("docs/r0/new-on-a.txt", b"a")
    b.write("docs/r1/new-on-b.txt", b"b")
    net = Network()
    start = time.perf_counter()
    net.connect(a, b)
    net.run()
    result = {"updates": len(a.map), "differing": 12, **traffic(net, a, b, time.perf_counter() - start)}
    before = net.messages, net.bytes
    net.tick(10.0)  # each side's Summary falls due; equal hashes: nobody answers
    net.run()
    result["steady_state_per_interval"] = {"messages": net.messages - before[0],
                                           "bytes": net.bytes - before[1]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--updates", type=int, default=10_000, help="size of the replicated map")
    parser.add_argument("--verify", type=int, default=5_000, help="signatures to time")
    args = parser.parse_args()
    founder, updates = history(args.updates)
    figures = {
        "update_size": update_size(),
        "verify": verify_rate(args.verify),
        "catch_up": catch_up(founder, updates),
        "resync": resync(founder, updates),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for name, values in figures.items():
        print(f"{name}:")
        for key, value in values.items():
            print(f"  {key:36} {value}")


if __name__ == "__main__":
    main()
