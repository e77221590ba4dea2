"""What does box-stream encryption cost? Raw TCP vs BoxStreamChannel over 127.0.0.1.

    python benchmarks/channel_throughput.py [--quick] [--json] [--mib N] [--frame KIB]
                                            [--repeat R] [--one-process]

1. raw: send N MiB (512 by default, 64 with --quick) over loopback TCP in 64 KiB writes; the
   receiver reads and discards.
2. box-stream: a real Secret Handshake over the same kind of connection, then the same bytes,
   each 64 KiB write sealed by BoxStreamChannel.seal and opened on the far end with
   receive_data / next_message, ending with a goodbye.
3. handshake: the median time of 200 complete in-memory Secret Handshakes (both sides' work).

By default the receiver is a child process, like two nodes on one machine: each end has its own
core. --one-process runs both ends in one trio loop, so one core pays for sealing, opening and
both kernel copies: the worst case for the ratio. Loopback throughput on a shared machine is
noisy and noise only ever slows a run down, so raw and box-stream runs alternate --repeat times
(3) and the best of each is reported, with the median alongside.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gossip_backer.crypto.channel import CLOSED, NEED_DATA, BoxStreamChannel  # noqa: E402
from gossip_backer.crypto.handshake import Handshake, to_keys  # noqa: E402

MIB = 1 << 20
WRITE = 64 * 1024  # the sender's write size
RECV = 256 * 1024  # the receiver's read size (<= max_frame: the channel's feeding contract)
ACK = b"k"  # the receiver's "got everything", which stops the sender's clock


# --- handshakes ------------------------------------------------------------------------------


def handshake_in_memory(network_key: bytes) -> tuple[Handshake, Handshake]:
    """One complete in-memory handshake; returns the finished (client, server)."""
    server_seed = os.urandom(32)
    client = Handshake.client(network_key, os.urandom(32), to_keys(server_seed)["publicKey"])
    server = Handshake.server(network_key, server_seed, lambda key: True)
    server.initial_bytes()
    m2 = server.receive_data(client.initial_bytes())
    client.receive_data(server.receive_data(client.receive_data(m2)))
    assert client.is_done and server.is_done
    return client, server


def handshake_median_ms(rounds: int = 200) -> float:
    network_key = os.urandom(32)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        handshake_in_memory(network_key)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def handshake_over(stream: trio.abc.Stream, hs: Handshake) -> BoxStreamChannel:
    """The trio pump for a Handshake: a dozen lines, as sans-IO promises."""
    await stream.send_all(hs.initial_bytes())
    while not hs.is_done:
        data = await stream.receive_some(RECV)
        if not data:
            hs.receive_eof()
        reply = hs.receive_data(data)
        if reply:
            await stream.send_all(reply)
    channel = BoxStreamChannel.from_handshake(hs.result)
    channel.receive_data(hs.trailing_data)
    return channel


# --- the two ends ----------------------------------------------------------------------------


async def send(stream: trio.abc.Stream, total: int, channel: BoxStreamChannel | None) -> float:
    """Send `total` bytes in WRITE-sized pieces (sealed if a channel is given); time to the ACK."""
    block = os.urandom(WRITE)
    start = time.perf_counter()
    for _ in range(total // WRITE):
        await stream.send_all(channel.seal(block) if channel else block)
    if channel:
        await stream.send_all(channel.goodbye())
    assert await stream.receive_some(1) == ACK
    return time.perf_counter() - start


def open_available(channel: BoxStreamChannel) -> tuple[int, bool]:
    """Plaintext bytes opened from what is buffered, and whether the goodbye came."""
    got = 0
    while (item := channel.next_message()) is not NEED_DATA:
        if item is CLOSED:
            return got, True
        got += len(item)
    return got, False


async def receive(stream: trio.abc.Stream, total: int, channel: BoxStreamChannel | None) -> None:
    """Read and discard until `total` bytes (and, encrypted, the goodbye) arrived; then ACK."""
    got, done = 0, False
    while not done:
        data = await stream.receive_some(RECV)
        if channel is None:
            got += len(data)
            done = got >= total or not data
            continue
        if not data:
            channel.receive_eof()  # raises: the stream ended without a goodbye
        channel.receive_data(data)
        opened, done = open_available(channel)
        got += opened
    assert got == total, (got, total)
    await stream.send_all(ACK)


# --- wiring: a child process per receiver, or both ends in one loop ---------------------------


async def serve_once(total: int, boxed: bool, network_key: bytes, seed: bytes, out=None) -> None:
    """Receiver: listen, print the port, take one connection, receive, acknowledge."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    if out is None:
        print(port, flush=True)
    else:
        out.send_nowait(port)
    async with await listeners[0].accept() as stream:
        hs = Handshake.server(network_key, seed, lambda key: True) if boxed else None
        await receive(stream, total, await handshake_over(stream, hs) if hs else None)
    await listeners[0].aclose()


async def dial_and_send(
    port: int, total: int, boxed: bool, network_key: bytes, seed: bytes
) -> float:
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        hs = None
        if boxed:
            server_key = to_keys(seed)["publicKey"]
            hs = Handshake.client(network_key, os.urandom(32), server_key)
        return await send(stream, total, await handshake_over(stream, hs) if hs else None)


async def one_process(total: int, boxed: bool, network_key: bytes, seed: bytes) -> float:
    send_port, receive_port = trio.open_memory_channel(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_once, total, boxed, network_key, seed, send_port)
        return await dial_and_send(await receive_port.receive(), total, boxed, network_key, seed)


def transfer(total: int, boxed: bool, one: bool) -> float:
    """Seconds to move `total` bytes, raw or boxed, through a fresh connection."""
    network_key, seed = os.urandom(32), os.urandom(32)
    if one:
        return trio.run(one_process, total, boxed, network_key, seed)
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(total), str(int(boxed))]
        + [network_key.hex(), seed.hex()],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(child.stdout.readline())
        seconds = trio.run(dial_and_send, port, total, boxed, network_key, seed)
    except BaseException:
        child.kill()
        raise
    finally:
        child.wait(timeout=60)
    if child.returncode != 0:
        raise RuntimeError("receiver process failed")
    return seconds


def throughputs_mb_s(mib: int, one: bool, repeat: int) -> dict[str, list[float]]:
    """MB/s of each run, raw and boxed alternating so that noise hits both alike."""
    runs: dict[str, list[float]] = {"raw": [], "boxed": []}
    for _ in range(repeat):
        for kind in runs:
            runs[kind].append(mib * MIB / transfer(mib * MIB, kind == "boxed", one) / 1e6)
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB instead of 512 MiB")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--mib", type=int, help="amount to send, in MiB")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--one-process", action="store_true", help="both ends on one trio loop")
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)  # the child's role
    args = parser.parse_args(argv)
    if args.serve:
        total, boxed, network_key, seed = args.serve
        keys = bytes.fromhex(network_key), bytes.fromhex(seed)
        trio.run(serve_once, int(total), boxed == "1", *keys)
        return
    mib = args.mib or (64 if args.quick else 512)
    runs = throughputs_mb_s(mib, args.one_process, args.repeat)
    raw, boxed = max(runs["raw"]), max(runs["boxed"])
    report = {
        "mib": mib,
        "write_kib": WRITE // 1024,
        "processes": 1 if args.one_process else 2,
        "runs": args.repeat,
        "raw_mb_s": round(raw, 1),
        "encrypted_mb_s": round(boxed, 1),
        "ratio": round(boxed / raw, 3),
        "raw_median_mb_s": round(statistics.median(runs["raw"]), 1),
        "encrypted_median_mb_s": round(statistics.median(runs["boxed"]), 1),
        "handshake_median_ms": round(handshake_median_ms(), 3),
    }
    if args.json:
        print(json.dumps(report))
        return
    where = "one process" if args.one_process else "two processes"
    print(f"{mib} MiB in {WRITE // 1024} KiB writes, {where}, best (median) of {args.repeat} runs")
    print(f"raw TCP      {raw:>9.1f} MB/s  ({report['raw_median_mb_s']:.1f})")
    print(f"box-stream   {boxed:>9.1f} MB/s  ({report['encrypted_median_mb_s']:.1f})")
    print(f"ratio        {report['ratio']:>9.1%}")
    print(f"handshake    {report['handshake_median_ms']:>9.3f} ms  (median of 200, in memory)")


if __name__ == "__main__":
    main()
