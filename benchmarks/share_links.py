"""Share-link figures on 127.0.0.1, with two real `backer run` processes (not part of make test).

    python benchmarks/share_links.py [--size-mib 256] [--zip-mib 1024] [--revocations 5] [--json]

1. peer transfer: a SIZE file written on A, seconds until B has it and is in sync (MiB/s);
2. share download: the same file through B's public listener (`run --public`), read by a plain
   HTTP client in 1 MiB pieces (MiB/s);
3. revocation: a link made on A and served by B; A revokes it (web API) and B's listener is
   polled every 10 ms until it answers 404 (median and worst of N);
4. zip memory: a folder of ZIP MiB (8 files) downloaded from A's public listener as one streamed
   `?zip`; the RSS of A's process sampled every 0.1 s (baseline before, peak during).
Prints a table, or one JSON document with --json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.conftest import Daemon, backer_json, invite, join, wait_until  # noqa: E402

MIB = 1 << 20


def write_file(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with open(path, "wb") as f:
        for i in range(size // MIB):
            f.write(block[i % 251:] + block[:i % 251])  # every MiB different


def get(url: str, path: str, method: str = "GET", body: dict | None = None,
        sink: bool = False) -> tuple[int, int]:
    """(status, bytes read); the body is read in 1 MiB pieces and dropped."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    n = 0
    while chunk := resp.read(MIB):
        n += len(chunk)
    conn.close()
    return resp.status, n


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def public_url(d: Daemon) -> str:
    line = d.proc.stdout.readline().strip()
    assert line.startswith("public on "), line
    return line.split()[-1]


def web_url(d: Daemon) -> str:
    return next(line.split()[-1] for line in d.lines if line.startswith("web on "))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--zip-mib", type=int, default=1024)
    ap.add_argument("--revocations", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="backer-share-bench-") as tmp:
        base = Path(tmp)
        root_a, root_b = base / "A", base / "B"
        backer_json("init", str(root_a), "--name", "alpha")
        a = Daemon(root_a, web=True, args=("--public", "127.0.0.1:0")).start()
        b = None
        try:
            pub_a = public_url(a)
            join(root_b, invite(a), "beta")
            b = Daemon(root_b, web=True, args=("--public", "127.0.0.1:0")).start()
            pub_b = public_url(b)
            wait_until(lambda: b.connected(), what="b admitted")

            size = args.size_mib * MIB
            print(f"peer transfer of {args.size_mib} MiB...", file=sys.stderr)
            write_file(base / "big.bin", size)
            started = time.monotonic()
            os.rename(base / "big.bin", root_a / "big.bin")
            wait_until(lambda: (root_b / "big.bin").exists() and b.status()["in_sync"],
                       timeout=600, interval=0.1, what="big.bin on b")
            peer_s = time.monotonic() - started
            out["peer_transfer_mib_s"] = round(args.size_mib / peer_s, 1)

            link = backer_json("share", str(root_a), "big.bin")
            path = f"/s/{link['token']}/"
            wait_until(lambda: get(pub_b, path, "HEAD")[0] == 200, what="b serving the link")
            started = time.monotonic()
            status, n = get(pub_b, path)
            share_s = time.monotonic() - started
            assert status == 200 and n == size, (status, n)
            out["share_download_mib_s"] = round(args.size_mib / share_s, 1)

            print("revocations...", file=sys.stderr)
            delays = []
            for _ in range(args.revocations):
                made = get_json(web_url(a), "/api/shares", "POST", {"path": "big.bin"})
                p = f"/s/{made['token']}/"
                wait_until(lambda: get(pub_b, p, "HEAD")[0] == 200, what="b serving the link")
                started = time.monotonic()
                get_json(web_url(a), f"/api/shares/{made['token']}", "DELETE")
                while get(pub_b, p, "HEAD")[0] != 404:
                    time.sleep(0.01)
                delays.append(time.monotonic() - started)
            out["revocation_median_s"] = round(statistics.median(delays), 3)
            out["revocation_worst_s"] = round(max(delays), 3)

            print(f"zip of {args.zip_mib} MiB...", file=sys.stderr)
            b.stop()  # keep A's disk and CPU for the zip
            folder = root_a / "album"
            folder.mkdir()
            for i in range(8):
                write_file(base / f"part{i}.bin", args.zip_mib * MIB // 8)
                os.rename(base / f"part{i}.bin", folder / f"part{i}.bin")
            wait_until(lambda: len(backer_json("status", str(root_a))["transfers"]) == 0
                       and _in_map(a, 8), timeout=600, interval=0.5, what="album scanned")
            zl = backer_json("share", str(root_a), "album")
            baseline = rss_kib(a.pid)
            peak = [baseline]
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], rss_kib(a.pid))
                    time.sleep(0.1)
            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.monotonic()
            status, n = get(pub_a, f"/s/{zl['token']}/?zip")
            zip_s = time.monotonic() - started
            done.set()
            sampler.join()
            assert status == 200 and n > args.zip_mib * MIB, (status, n)
            out["zip_bytes"] = n
            out["zip_mib_s"] = round(n / MIB / zip_s, 1)
            out["rss_baseline_mib"] = round(baseline / 1024, 1)
            out["rss_peak_during_zip_mib"] = round(peak[0] / 1024, 1)
        finally:
            if b is not None:
                b.stop()
            a.stop()
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:28} {value}")


def _in_map(a: Daemon, n: int) -> bool:
    return backer_json("status", str(a.root))["files"] >= n + 1


def get_json(url: str, path: str, method: str = "GET", body: dict | None = None) -> dict:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    resp = conn.getresponse()
    result = json.loads(resp.read())
    conn.close()
    assert resp.status == 200, result
    return result


if __name__ == "__main__":
    main()
