"""Which strong hash for blocks and whole files? MB/s of each candidate on this machine.

    python benchmarks/hashing.py [--json] [--quick] [--repeat R]

Candidates: BLAKE2b-256 and SHA-256 from hashlib, and BLAKE3 from the `blake3` package, once
single-threaded and once with max_threads=AUTO (all cores). Workloads:

* block sizes 64 KiB, 128 KiB, 1 MiB: a 64 MiB buffer (16 MiB with --quick) hashed one block at
  a time, one hasher per block, as the scanner and the puller's verification do;
* a 256 MiB buffer (64 MiB with --quick) in one call, as a whole-file hash would be.

Each figure is the best of --repeat runs (3): noise on a shared machine only ever slows a run.
MB here is 10^6 bytes (what hash benchmarks usually quote); the table also gives MiB/s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from typing import Callable

KIB, MIB = 1 << 10, 1 << 20
BLOCK_SIZES = (64 * KIB, 128 * KIB, 1 * MIB)


def _candidates() -> dict[str, Callable[[bytes | memoryview], bytes]]:
    found: dict[str, Callable[[bytes | memoryview], bytes]] = {
        "blake2b-256": lambda d: hashlib.blake2b(d, digest_size=32).digest(),
        "sha256": lambda d: hashlib.sha256(d).digest(),
    }
    try:
        import blake3
    except ImportError:  # the table says so rather than failing
        return found
    found["blake3-1t"] = lambda d: blake3.blake3(d).digest()
    found["blake3-mt"] = lambda d: blake3.blake3(d, max_threads=blake3.blake3.AUTO).digest()
    return found


def _time_blocks(fn: Callable, buf: bytes, block: int) -> float:
    view = memoryview(buf)
    start = time.perf_counter()
    for off in range(0, len(buf), block):
        fn(view[off : off + block])
    return time.perf_counter() - start


def _best_rate(fn: Callable, buf: bytes, block: int, repeat: int) -> float:
    best = min(_time_blocks(fn, buf, block) for _ in range(repeat))
    return len(buf) / best


def measure(quick: bool, repeat: int) -> dict:
    blocks_buf = os.urandom((16 if quick else 64) * MIB)
    whole_buf = os.urandom((64 if quick else 256) * MIB)
    results: dict[str, dict[str, float]] = {}
    for name, fn in _candidates().items():
        row = {f"{b // KIB}KiB": _best_rate(fn, blocks_buf, b, repeat) for b in BLOCK_SIZES}
        row["whole"] = _best_rate(fn, whole_buf, len(whole_buf), repeat)
        results[name] = row
    return {
        "machine": {"cpu_count": os.cpu_count(), "machine": platform.machine(),
                    "python": sys.version.split()[0]},
        "blocks_buffer_bytes": len(blocks_buf),
        "whole_buffer_bytes": len(whole_buf),
        "bytes_per_second": results,
    }


def print_table(report: dict) -> None:
    rates = report["bytes_per_second"]
    cols = list(next(iter(rates.values())).keys())
    whole = report["whole_buffer_bytes"] // MIB
    heads = [c if c != "whole" else f"{whole}MiB buf" for c in cols]
    print(f"MB/s (10^6 B/s), best of runs; {report['machine']['cpu_count']} CPUs")
    print(f"{'hash':<13}" + "".join(f"{h:>13}" for h in heads))
    for name, row in rates.items():
        print(f"{name:<13}" + "".join(f"{row[c] / 1e6:>13.0f}" for c in cols))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--quick", action="store_true", help="smaller buffers (16 / 64 MiB)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    report = measure(args.quick, max(1, args.repeat))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
