"""How long a scan of 10,000 small files takes: the first one (hashing every file) and an unchanged
rescan (which must only stat: no file is opened).

    python benchmarks/rescan.py [--files 10000] [--dirs 100] [--size 1024] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gossip_backer.disk import scan as scan_mod  # noqa: E402
from gossip_backer.disk.ignore import IgnoreMatcher  # noqa: E402


def make_tree(root: Path, files: int, dirs: int, size: int) -> None:
    for d in range(dirs):
        (root / f"dir{d:03d}").mkdir()
    for i in range(files):
        data = (f"file {i} ".encode() * (size // 8 + 1))[:size]
        (root / f"dir{i % dirs:03d}" / f"file{i:05d}.txt").write_bytes(data)


def run(files: int, dirs: int, size: int) -> dict:
    opened = 0
    real_hash = scan_mod.hash_file

    def counting_hash(path: str, *args) -> scan_mod.FileHash:  # the scan's extra arguments too
        nonlocal opened
        opened += 1
        return real_hash(path, *args)

    with tempfile.TemporaryDirectory(prefix="backer-rescan-") as tmp:
        root = Path(tmp)
        make_tree(root, files, dirs, size)
        ignore = IgnoreMatcher.load(root)

        t0 = time.perf_counter()
        first = scan_mod.scan(root, {}, ignore, hash_file=counting_hash)
        first_s = time.perf_counter() - t0
        first_opened, opened = opened, 0

        t0 = time.perf_counter()
        again = scan_mod.scan(root, first.entries, ignore, hash_file=counting_hash)
        rescan_s = time.perf_counter() - t0

    assert again.changed == [] and again.deleted == [] and again.hashed_bytes == 0
    return {
        "files": first.files, "dirs": first.dirs, "file_size": size,
        "first_scan_s": round(first_s, 4), "first_scan_hashed_bytes": first.hashed_bytes,
        "first_scan_files_opened": first_opened,
        "rescan_s": round(rescan_s, 4), "rescan_files_opened": opened,
        "rescan_us_per_path": round(rescan_s / max(1, len(again.entries)) * 1e6, 2),
        "python": sys.version.split()[0], "cpus": os.cpu_count(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--dirs", type=int, default=100)
    ap.add_argument("--size", type=int, default=1024, help="bytes per file")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = run(args.files, args.dirs, args.size)
    if args.json:
        print(json.dumps(out))
        return
    print(f"{out['files']} files in {out['dirs']} folders, {out['file_size']} bytes each")
    print(f"first scan (hashing): {out['first_scan_s']:.3f} s, "
          f"{out['first_scan_files_opened']} files opened")
    print(f"unchanged rescan:     {out['rescan_s']:.3f} s, "
          f"{out['rescan_files_opened']} files opened ({out['rescan_us_per_path']} us per path)")


if __name__ == "__main__":
    main()
