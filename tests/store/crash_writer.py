"""Helper process for test_crash.py: save batches of 200 signed updates, one transaction each,
until killed. After each commit it prints `committed N` (N = whole batches now in the store) and
flushes, so the test knows what must survive a SIGKILL.

    python crash_writer.py DB [--pause-at K]

With --pause-at K, the K-th batch of this run stops half-way through its transaction (after 100
rows), prints `mid N` and sleeps, so the test can kill it with a transaction certainly open.
"""

from __future__ import annotations

import argparse
import sys
import time

from gossip_backer.core.record import FileRecord
from gossip_backer.core.vv import VersionVector
from gossip_backer.crypto.identity import Identity, make_update
from gossip_backer.store.repo import Repo

BATCH = 200
MESH = "crash-mesh"


def batch(ident: Identity, first_seq: int) -> list:
    out = []
    for seq in range(first_seq, first_seq + BATCH):
        rec = FileRecord(path=f"dir/{ident.public.hex()[:8]}/{seq}.bin", kind="file",
                         vv=VersionVector({ident.public: seq}), origin=ident.public, size=seq,
                         mtime_ns=seq, hash=bytes(32))
        out.append(make_update(ident, MESH, seq, rec))
    return out


def pause_half_way(repo: Repo, committed: int) -> None:
    """Sleep inside the transaction once half of the batch's INSERTs have run."""
    inserts = 0

    def trace(statement: str) -> None:
        nonlocal inserts
        if statement.lstrip().startswith("INSERT INTO updates"):
            inserts += 1
            if inserts == BATCH // 2:
                print(f"mid {committed}", flush=True)
                time.sleep(30)

    repo.db._conn.set_trace_callback(trace)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--pause-at", type=int, default=0)
    args = parser.parse_args()
    repo = Repo.open(args.db)
    committed = repo.count_updates() // BATCH
    ident, seq, run = Identity.generate(), 1, 0
    while True:
        updates = batch(ident, seq)
        run += 1
        if run == args.pause_at:
            pause_half_way(repo, committed)
        repo.save_updates(updates, [])
        seq += BATCH
        committed += 1
        print(f"committed {committed}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
