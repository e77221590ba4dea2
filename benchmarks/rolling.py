"""How fast are weak rolling sums and the rolling matcher, and what does a small edit cost?

    python benchmarks/rolling.py [--quick] [--json] [--size MIB] [--seed N] [--repeat R]

On a random buffer of --size MiB (512; 64 with --quick), the "old" file a node already has:

1. rolling: `rolling_weak_sums` over the whole buffer in 32 MiB windows (MiB/s).
2. hashing: `hash_bytes` of the buffer (BLAKE3 per block + weak sum per block + whole-file
   BLAKE3): what the scanner pays, and the floor for matching unchanged data.
3. matching: the new version's block list (block size by `block_size_for`, keeping the old one
   within a factor of 2) and `RollingMatcher.scan` of the old buffer for (a) unchanged,
   (b) 100 bytes inserted at 100 MiB (size x 100/512), (c) 1 MiB overwritten in the middle,
   (d) nothing in common (a fresh random buffer of at most 64 MiB: the rolling-bound worst case).
   Each reports MiB/s of old data scanned, blocks matched / missed and the wire estimate:
   missed block bytes + the new block list at 40 bytes a block (msgpack [bin 32, uint32]).
   (b) is also scanned with scan_chunks in 16 MiB chunks, which must give the same answer.
4. block sizes: case (b) again with 128 KiB ... 1 MiB blocks and rsync's sqrt(size) rule.

Each time is the best of --repeat runs (3): noise on a shared machine only ever slows a run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gossip_backer.core.blocks import (  # noqa: E402
    BLOCK_SIZES, RollingMatcher, block_size_for, hash_bytes, rolling_weak_sums,
)

MIB = 1 << 20
RECORD_BYTES_PER_BLOCK = 40
WINDOW = 32 * MIB
CHUNK = 16 * MIB


REPEAT = 3


def rate(nbytes: int, seconds: float) -> float:
    return nbytes / MIB / seconds if seconds > 0 else float("inf")


def best_time(fn) -> tuple[float, object]:
    """(best seconds of REPEAT runs, the last result)."""
    best, result = float("inf"), None
    for _ in range(REPEAT):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def time_rolling(old: bytes, bs: int) -> dict:
    def run() -> None:
        for s0 in range(0, len(old) - bs + 1, WINDOW):
            rolling_weak_sums(memoryview(old)[s0 : s0 + WINDOW + bs - 1], bs)

    seconds, _ = best_time(run)
    return {"block_size": bs, "seconds": seconds, "mib_per_s": rate(len(old), seconds)}


def time_hashing(old: bytes, bs: int) -> dict:
    seconds, _ = best_time(lambda: hash_bytes(old, bs))
    return {"block_size": bs, "seconds": seconds, "mib_per_s": rate(len(old), seconds)}


def match_case(name: str, old: bytes, new: bytes, bs: int, chunks: bool = False) -> dict:
    """Hash `new` with block size `bs`, then find its blocks in `old`."""
    _, _, blocks = hash_bytes(new, bs)
    matcher = RollingMatcher(blocks, bs, len(new))
    seconds, found = best_time(lambda: matcher.scan(old))
    missed = [k for k in range(len(blocks)) if k not in found]
    missed_bytes = sum(min(bs, len(new) - k * bs) for k in missed)
    row = {
        "case": name, "block_size": bs, "blocks": len(blocks), "matched": len(found),
        "missed": len(missed), "seconds": seconds, "mib_per_s": rate(len(old), seconds),
        "wire_bytes": missed_bytes + RECORD_BYTES_PER_BLOCK * len(blocks),
    }
    if chunks:
        def pieces():
            return ((o, memoryview(old)[o : o + CHUNK]) for o in range(0, len(old), CHUNK))

        chunk_seconds, chunk_found = best_time(lambda: matcher.scan_chunks(pieces()))
        row["chunks_mib_per_s"] = rate(len(old), chunk_seconds)
        row["chunks_equal_scan"] = chunk_found == found
    return row


def versions(old: bytes, rng: np.random.Generator) -> dict[str, bytes]:
    size = len(old)
    at = size * 100 // 512  # 100 MiB in a 512 MiB file
    mid = size // 2
    return {
        "unchanged": old,
        "insert_100B": old[:at] + rng.bytes(100) + old[at:],
        "overwrite_1MiB": old[:mid] + rng.bytes(MIB) + old[mid + MIB :],
    }


def measure(size: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    old = rng.bytes(size)
    bs = block_size_for(size)
    report = {"size": size, "block_size": bs, "rolling": time_rolling(old, bs),
              "hashing": time_hashing(old, bs), "cases": [], "block_sizes": []}
    for name, new in versions(old, rng).items():
        new_bs = block_size_for(len(new), current=bs)
        report["cases"].append(match_case(name, old, new, new_bs, chunks=name == "insert_100B"))
    fresh = rng.bytes(min(size, 64 * MIB))
    report["cases"].append(match_case("nothing_common", fresh, rng.bytes(len(fresh)), bs))
    inserted = versions(old, rng)["insert_100B"]
    rsync = max(700, int(math.isqrt(size)) // 8 * 8)
    for b in (rsync, *BLOCK_SIZES):
        report["block_sizes"].append(match_case(f"insert_100B@{b}", old, inserted, b))
    return report


def print_report(r: dict) -> None:
    print(f"old file {r['size'] / MIB:.0f} MiB, block size {r['block_size'] // 1024} KiB")
    ro, ha = r["rolling"], r["hashing"]
    print(f"rolling_weak_sums  {ro['mib_per_s']:8.0f} MiB/s   ({ro['seconds']:.2f} s)")
    print(f"hash_bytes         {ha['mib_per_s']:8.0f} MiB/s   ({ha['seconds']:.2f} s)")
    head = f"{'case':<26}{'block':>8}{'MiB/s':>9}{'blocks':>8}{'matched':>9}{'missed':>8}"
    for title, rows in (("RollingMatcher.scan", r["cases"]), ("block size, case (b)",
                                                                r["block_sizes"])):
        print(f"\n{title}\n{head}{'wire KiB':>10}")
        for c in rows:
            print(f"{c['case']:<26}{c['block_size'] // 1024:>6}Ki{c['mib_per_s']:>9.0f}"
                  f"{c['blocks']:>8}{c['matched']:>9}{c['missed']:>8}{c['wire_bytes'] / 1024:>10.0f}")
            if "chunks_mib_per_s" in c:
                print(f"{'  same, scan_chunks 16 MiB':<34}{c['chunks_mib_per_s']:>9.0f}"
                      f"   equal to scan: {c['chunks_equal_scan']}")


def main(argv: list[str] | None = None) -> None:
    global REPEAT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--quick", action="store_true", help="a 64 MiB buffer")
    ap.add_argument("--size", type=int, default=None, help="buffer size in MiB (512)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=REPEAT, help="best of R timed runs (3)")
    args = ap.parse_args(argv)
    REPEAT = max(1, args.repeat)
    size = (args.size or (64 if args.quick else 512)) * MIB
    report = measure(size, args.seed)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
