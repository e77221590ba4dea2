"""Live editing between real `backer run` processes on 127.0.0.1 (issue 12's figures).

    python benchmarks/live.py [--chars N] [--writers N] [--edits N] [--json]

1. Latency: 3 nodes; a stock Yjs client (web-editor/yclient.mjs) connected to node A types
   `--chars` characters at 20 a second at the end of a live note; for every keystroke, the time
   until each node's file on disk shows it (files polled every 2 ms by their size): p50 and p99,
   per node and over all. Bytes on the wire per keystroke: the growth of every node's `net` counters
   (bytes in, all peer connections) during the typing, divided by the keystrokes.
2. Load: a 1 MB live note; `--writers` Yjs clients spread over the 3 nodes each make `--edits`
   edits at once (an insert at a random place, every 50 ms). CPU seconds per edit (the 3 node
   processes' user+system time during the run, over all edits, each applied on every node) and
   the RSS that one open 1 MB document costs a node (RSS once the note is live minus before).
Needs node and npm (the npm packages are installed from web-editor/package-lock.json).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.conftest import Daemon, backer_json, invite, join, wait_until  # noqa: E402
from tests.e2e.yjs import YClient, ensure_node_modules, ws_base  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")


def _web(d: Daemon) -> str:
    return next(line.split()[-1] for line in d.lines if line.startswith("web on "))


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def _mesh(base: Path, n: int) -> list[Daemon]:
    roots = [base / f"n{i}" for i in range(n)]
    backer_json("init", str(roots[0]), "--name", "n0")
    nodes = [Daemon(roots[0], web=True).start()]
    for i, root in enumerate(roots[1:], start=1):
        join(root, invite(nodes[-1]), f"n{i}")
        nodes.append(Daemon(root, web=True).start())
        wait_until(lambda: nodes[-1].connected(), timeout=60, what="admitted")
    ids = [d.status()["node_id"] for d in nodes]
    for d, me in zip(nodes, ids):
        wait_until(lambda d=d, me=me: d.connected() == set(ids) - {me}, timeout=60, what="mesh")
    return nodes


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def latency(nodes: list[Daemon], chars: int) -> dict:
    a = nodes[0]
    (a.root / "typing.md").write_text("typing: ")
    wait_until(lambda: all((d.root / "typing.md").exists() for d in nodes), what="note")
    time.sleep(1.0)
    client = YClient(ws_base(_web(a)), "typing.md")
    try:
        client.wait_text(lambda t: t == "typing: ")
        base = len("typing: ")
        net0 = sum(d.status()["net"]["bytes_in"] for d in nodes)
        sent: list[float] = []
        seen: list[dict[int, float]] = [{} for _ in nodes]
        next_key = time.perf_counter()
        k = 0
        deadline = None
        while True:
            now = time.perf_counter()
            if k < chars and now >= next_key:
                client.send(insert=[base + k, "abcdefghij"[k % 10]])
                sent.append(time.perf_counter())
                k += 1
                next_key += 0.05  # 20 characters a second
                if k == chars:
                    deadline = time.perf_counter() + 10.0
            for i, d in enumerate(nodes):
                try:  # the client appends ASCII: the file's size says how many keys it shows
                    n = os.stat(d.root / "typing.md").st_size - base
                except OSError:
                    continue
                t = time.perf_counter()
                for j in range(n):
                    seen[i].setdefault(j, t)
            if deadline is not None and (all(len(s) >= chars for s in seen) or now > deadline):
                break
            time.sleep(0.002)
        net = sum(d.status()["net"]["bytes_in"] for d in nodes) - net0
    finally:
        client.stop()
    per_node = {}
    every = []
    for i, d in enumerate(nodes):
        lat = [(seen[i][j] - sent[j]) * 1000 for j in range(chars) if j in seen[i]]
        every += lat[1:] if i else lat  # node A included: the client's own node
        per_node[d.root.name] = {"p50_ms": round(_pct(lat, 50), 1), "p99_ms": round(_pct(lat, 99), 1),
                                 "seen": len(lat)}
    peers = [v for i in range(1, len(nodes)) for v in
             [(seen[i][j] - sent[j]) * 1000 for j in range(chars) if j in seen[i]]]
    return {"keystrokes": chars, "per_node": per_node,
            "peers_p50_ms": round(_pct(peers, 50), 1), "peers_p99_ms": round(_pct(peers, 99), 1),
            "wire_bytes_per_keystroke": round(net / chars)}


def load(nodes: list[Daemon], writers: int, edits: int) -> dict:
    rss0 = [d.rss_kib() for d in nodes]
    rng = random.Random(1)
    words = ["alpha", "beta", "gamma", "ünï", "😀", "note"]
    lines = []
    size = 0
    while size < 1_000_000:
        line = " ".join(rng.choice(words) for _ in range(12)) + "\n"
        lines.append(line)
        size += len(line.encode())
    (nodes[0].root / "big.md").write_text("".join(lines))
    total16 = len("".join(lines).encode("utf-16-le")) // 2  # Yjs counts UTF-16 units
    wait_until(lambda: all((d.root / "big.md").exists() and (d.root / "big.md").stat().st_size == size
                           for d in nodes), timeout=120, what="1 MB note on every node")
    clients = [YClient(ws_base(_web(nodes[i % len(nodes)])), "big.md") for i in range(writers)]
    try:
        for c in clients:
            c.wait_text(lambda t: len(t.encode("utf-16-le")) // 2 == total16, timeout=60)
            c.send(quiet=True)
        time.sleep(1.0)
        rss1 = [d.rss_kib() for d in nodes]
        cpu0 = [_cpu(d.pid) for d in nodes]
        started = time.perf_counter()
        for e in range(edits):
            for w, c in enumerate(clients):
                c.send(insert=[rng.randrange(total16), f" w{w}e{e} "])
            time.sleep(0.05)
        want = size + sum(len(f" w{w}e{e} ") for w in range(writers) for e in range(edits))

        def done() -> bool:
            return all((d.root / "big.md").stat().st_size == want for d in nodes)
        try:
            wait_until(done, timeout=60, interval=0.2, what="every edit on every disk")
        except AssertionError:
            raise AssertionError(f"sizes {[(d.root / 'big.md').stat().st_size for d in nodes]}, "
                                 f"want {want}") from None
        elapsed = time.perf_counter() - started
        cpu = sum(_cpu(d.pid) - c0 for d, c0 in zip(nodes, cpu0))
        same = len({(d.root / "big.md").read_bytes() for d in nodes}) == 1
    finally:
        for c in clients:
            c.stop()
    n_edits = writers * edits
    return {"note_bytes": size, "writers": writers, "edits": n_edits, "seconds": round(elapsed, 2),
            "cpu_ms_per_edit_all_nodes": round(cpu / n_edits * 1000, 2),
            "cpu_ms_per_edit_per_node": round(cpu / n_edits / len(nodes) * 1000, 2),
            "rss_per_open_document_mib": round(statistics.mean(
                (r1 - r0) / 1024 for r0, r1 in zip(rss0, rss1)), 1),
            "disks_identical": same}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chars", type=int, default=200)
    p.add_argument("--writers", type=int, default=10)
    p.add_argument("--edits", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.add_argument("--latency-only", action="store_true", help="skip the 1 MB load run")
    args = p.parse_args()
    ensure_node_modules()
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="backer-live-bench-"))
    nodes = _mesh(base, 3)
    try:
        backer_json("live", str(nodes[0].root), "*.md")
        out = {"latency": latency(nodes, args.chars)}
        if not args.latency_only:
            out["load"] = load(nodes, args.writers, args.edits)
    finally:
        for d in nodes:
            d.stop()
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        lat, ld = out["latency"], out.get("load")
        print(f"keystroke to every peer's disk (3 nodes, 20 chars/s, {lat['keystrokes']} keys): "
              f"p50 {lat['peers_p50_ms']} ms, p99 {lat['peers_p99_ms']} ms")
        for name, v in lat["per_node"].items():
            print(f"  {name}: p50 {v['p50_ms']} ms  p99 {v['p99_ms']} ms  ({v['seen']} seen)")
        print(f"bytes on the wire per keystroke (all links): {lat['wire_bytes_per_keystroke']}")
        if ld is None:
            return 0
        print(f"1 MB note, {ld['writers']} writers, {ld['edits']} edits in {ld['seconds']} s: "
              f"CPU {ld['cpu_ms_per_edit_per_node']} ms per edit per node "
              f"({ld['cpu_ms_per_edit_all_nodes']} ms over the 3 nodes); "
              f"RSS per open document {ld['rss_per_open_document_mib']} MiB; "
              f"disks identical: {ld['disks_identical']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
