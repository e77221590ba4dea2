"""The fault campaign in one command, for `make soak`:

    python -m tests.fault.campaign                      # 100 kill -9 trials, 10^6 fuzz inputs
    python -m tests.fault.campaign --trials 5 --fuzz 10000   # the size `make test` runs

Prints one table (trials, trees identical, files damaged, temp files left, crashes, fuzz inputs,
unclean exceptions) and exits 1 unless every tree came out identical and nothing was damaged,
left behind, crashed or raised an unclean exception. `--json` prints the same figures as JSON.
The full-disk trial (tmpfs) is not part of this command yet.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tests.fault import fuzz
from tests.fault.killnine import campaign


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fault.campaign")
    p.add_argument("--trials", type=int, default=100, help="kill -9 trials (default 100)")
    p.add_argument("--fuzz", type=int, default=1_000_000, help="fuzz inputs (default 10^6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    started = time.monotonic()
    fz = fuzz.run(args.fuzz, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="backer-soak-") as base:
        kill_started = time.monotonic()
        k = campaign(Path(base), args.trials, seed=args.seed) if args.trials else None
        kill_seconds = time.monotonic() - kill_started
    row = {
        "trials": k.trials if k else 0,
        "trees identical": k.identical if k else 0,
        "files damaged": k.damaged if k else 0,
        "temp files left": k.temp_left if k else 0,
        "crashes": k.crashes if k else 0,
        "fuzz inputs": fz.total,
        "unclean exceptions": len(fz.unclean),
    }
    ok = (row["trees identical"] == row["trials"] and not row["files damaged"]
          and not row["temp files left"] and not row["crashes"] and not row["unclean exceptions"]
          and not (k and k.failures))
    if args.json:
        print(json.dumps({**row, "ok": ok, "fuzz_per_second": round(fz.total / max(fz.seconds, 1e-9)),
                          "kill_seconds": round(kill_seconds, 1),
                          "failures": k.failures if k else [],
                          "unclean": [u[:2] for u in fz.unclean[:20]]}))
    else:
        width = max(len(h) for h in row)
        print("fault campaign".ljust(width + 2) + ("PASS" if ok else "FAIL"))
        for name, value in row.items():
            print(f"{name:<{width}}  {value:>10,}")
        print(f"{'':<{width}}  ({fz.total / max(fz.seconds, 1e-9):,.0f} fuzz inputs/s; "
              f"kill -9 trials {kill_seconds:.0f} s; total {time.monotonic() - started:.0f} s)")
        for failure in (k.failures if k else [])[:10]:
            print("failure:", failure)
        for name, exc, data, tb in fz.unclean[:3]:
            print(f"unclean exception in {name}: {exc}\n  input {data}\n{tb}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
