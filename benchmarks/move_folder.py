"""A folder moved inside a synced tree, between two `backer run` nodes: how long until the other
node has it at its new place, with what CPU and wire bytes. A rename keeps every file's inode,
size and mtime, so neither node should read the files again (the sender hashed them anew, the
receiver copied them block by block and read each back for its whole hash).

    python benchmarks/move_folder.py [--files 200] [--size-kib 2048] [--rounds 2]

Run it from outside a checkout to time another build (`PYTHONPATH=/path/to/checkout`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tools import backer as backer_tool  # noqa: E402
from tools.common import cleanup, cpu_seconds, wait_until  # noqa: E402


def one_round(work: Path, files: int, size: int) -> dict:
    pair = backer_tool.BackerPair(work)
    try:
        pair.setup()
        a, b = pair.a, pair.b
        stage = work / "stage" / "photos"
        stage.mkdir(parents=True)
        for i in range(files):
            (stage / f"img{i:04d}.jpg").write_bytes(os.urandom(size))
        os.rename(stage, a.root / "photos")
        wait_until(lambda: pair.receiver_has(files, files * size), 300, 0.1, "the first sync")
        wait_until(pair.both_idle, 60, 0.1, "idle")
        time.sleep(1.0)
        wire0, cpu0 = pair.wire_bytes(), [cpu_seconds(p) for p in pair.pids()]
        t0 = time.perf_counter()
        (a.root / "archive").mkdir()
        os.rename(a.root / "photos", a.root / "archive" / "photos")
        moved = b.root / "archive" / "photos"

        def done() -> bool:
            return (not (b.root / "photos").exists() and moved.is_dir()
                    and len(os.listdir(moved)) == files and pair.receiver_has(files, files * size))
        wait_until(done, 300, 0.02, "the move")
        seconds = time.perf_counter() - t0
        cpu = [cpu_seconds(p) - c for p, c in zip(pair.pids(), cpu0)]
        wait_until(pair.both_idle, 60, 0.1, "idle after")
        return {"seconds": seconds, "cpu_sender_s": cpu[0], "cpu_receiver_s": cpu[1],
                "wire_bytes": pair.wire_bytes() - wire0}
    finally:
        pair.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=200)
    p.add_argument("--size-kib", type=int, default=2048)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="backer-move-"))
    os.chdir(base)  # `python -m gossip_backer` must not import a checkout in the current folder
    try:
        for r in range(args.rounds):
            row = one_round(base / f"r{r}", args.files, args.size_kib << 10)
            print(f"{args.files} files of {args.size_kib} KiB moved: {row['seconds']:.2f} s, "
                  f"CPU sender {row['cpu_sender_s']:.2f} s, receiver {row['cpu_receiver_s']:.2f} s, "
                  f"wire {row['wire_bytes'] / 1024:.1f} KiB", flush=True)
    finally:
        cleanup()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
