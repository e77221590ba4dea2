"""The offline edit of issue 10, N times with fresh meshes: how often the stopped node's edit is
kept as its conflict copy on every node.

Each trial: three real `backer run` processes on 127.0.0.1 hold a tree of 4,000 small files and
are in sync; one node is stopped (C, B, A in turn); big0.txt is edited on it; 2 s later the same
file is edited on a running node; the stopped node is started. SPEC: the later edit wins at
big0.txt everywhere and the stopped node's text is kept as its conflict copy
(big0.sync-conflict-YYYYMMDD-HHMMSS-NODEID7.txt) on every node, listed in `status` conflicts.

    .venv/bin/python benchmarks/offline_edit_trials.py [--trials 20] [--files 4000]
        [--keep DIR] [--log-level info] [--json]

`--keep DIR` leaves each trial's roots and daemon logs (ROOT.log next to each root) in DIR;
`--log-level info` makes the daemons log every event with a timestamp there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.conftest import (TREE_FILES, Daemon, in_sync, kept_as_copy,  # noqa: E402
                                offline_edit_round, offline_texts, three_with_tree)


def trial(base: Path, number: int, files: int, args: tuple[str, ...]) -> dict:
    started: list[Daemon] = []

    def daemons(root: Path, web: bool = False, args: tuple[str, ...] = ()) -> Daemon:
        d = Daemon(root, web, args)
        started.append(d)
        return d

    stopped = (2 - number) % 3  # C, B, A, C, ...
    editor = (stopped + 1) % 3
    t0 = time.time()
    try:
        nodes = three_with_tree(base, daemons, files, args)
        ids = [d.status()["node_id"] for d in nodes]
        t1 = time.time()
        copy = offline_edit_round(nodes, ids, stopped, editor, f"#{number}")
        t2 = time.time()
        offline, online = offline_texts(f"#{number}")
        try:
            in_sync(nodes, timeout=60)
            settled = True
        except AssertionError:
            settled = False
        t3 = time.time()
        kept = kept_as_copy(nodes, copy, offline)
        winner = sum((d.root / "big0.txt").read_bytes() == online for d in nodes)
        archived = sum(any(p.read_bytes() == offline for p in (d.root / ".backer" / "versions").rglob("*")
                           if p.is_file()) for d in nodes)
        return {"trial": number, "stopped": "ABC"[stopped], "edited_on": "ABC"[editor],
                "kept_on": len(kept), "winner_on": winner, "archived_on": archived,
                "settled": settled, "copy": copy, "setup_s": round(t1 - t0, 1),
                "edit_s": round(t2 - t1, 1), "settle_s": round(t3 - t2, 1),
                "total_s": round(t3 - t0, 1)}
    finally:
        for d in started:
            d.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--files", type=int, default=TREE_FILES)
    parser.add_argument("--keep", type=Path, default=None, help="keep roots and logs here")
    parser.add_argument("--log-level", default=None, choices=["debug", "info", "warning"])
    parser.add_argument("--json", action="store_true", help="one JSON document at the end")
    opts = parser.parse_args()
    args = ("--log-level", opts.log_level) if opts.log_level else ()
    results = []
    for n in range(opts.trials):
        if opts.keep:
            base = opts.keep / f"trial{n:02}"
            shutil.rmtree(base, ignore_errors=True)
            base.mkdir(parents=True)
        else:
            base = Path(tempfile.mkdtemp(prefix="offline-edit-"))
        try:
            r = trial(base, n, opts.files, args)
        finally:
            if not opts.keep:
                shutil.rmtree(base, ignore_errors=True)
        results.append(r)
        if not opts.json:
            print(f"trial {n + 1:2}/{opts.trials}: {r['stopped']} stopped, edit on {r['edited_on']}: "
                  f"copy kept on {r['kept_on']}/3 nodes, later edit on {r['winner_on']}/3, offline "
                  f"text archived on {r['archived_on']}/3, settled {r['settled']}; setup "
                  f"{r['setup_s']} s, edits {r['edit_s']} s, settle {r['settle_s']} s, "
                  f"total {r['total_s']} s", flush=True)
    good = sum(r["kept_on"] == 3 and r["winner_on"] == 3 for r in results)
    if opts.json:
        print(json.dumps({"files": opts.files, "trials": results, "kept_everywhere": good}))
    else:
        print(f"kept C's edit as a conflict copy on every node in {good} of {len(results)} runs "
              f"({opts.files} files)")
    return 0 if good == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
