"""Summarise py-spy's raw (collapsed) stacks, as `compare.py --profile DIR` records them:

    python benchmarks/tools/profile_summary.py DIR/initial_tiny-B.txt [--top 25] [--filter TEXT]

Prints the samples per thread, then the functions with the most samples on the stack (inclusive)
and at its top (self), gossip_backer's frames marked. With --filter, only stacks containing TEXT."""

from __future__ import annotations

import argparse
import collections
import re


def load(path: str, needle: str | None = None) -> list[tuple[list[str], int]]:
    stacks = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            if needle and needle not in stack:
                continue
            stacks.append((stack.split(";"), int(count)))
    return stacks


def short(frame: str) -> str:
    # "func (path/to/gossip_backer/x/y.py:123)" -> "func (x/y.py:123)"; line numbers dropped
    m = re.match(r"(.*) \((.*?):(\d+)\)$", frame)
    if not m:
        return frame
    func, path, _ = m.groups()
    if "gossip_backer/" in path:
        path = "gb:" + path.split("gossip_backer/", 1)[1]
    elif "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif "/lib/python" in path:
        path = "py:" + path.rsplit("/", 1)[1]
    return f"{func} ({path})"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--filter")
    a = p.parse_args()
    stacks = load(a.file, a.filter)
    total = sum(c for _, c in stacks)
    threads = collections.Counter()
    incl = collections.Counter()
    self_ = collections.Counter()
    for frames, count in stacks:
        threads[frames[0] if frames and frames[0].startswith(("thread", "process")) else "?"] += count
        names = [short(f) for f in frames if not f.startswith(("thread", "process"))]
        for name in set(names):
            incl[name] += count
        if names:
            self_[names[-1]] += count
    print(f"{total} samples")
    for t, c in threads.most_common(8):
        print(f"  {100 * c / total:5.1f}%  {t}")
    print("\ninclusive")
    for name, c in incl.most_common(a.top):
        print(f"  {100 * c / total:5.1f}%  {name}")
    print("\nself")
    for name, c in self_.most_common(a.top):
        print(f"  {100 * c / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
