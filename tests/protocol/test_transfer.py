"""The block scheduler: who is asked for which block, limits, answers, retries."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip_backer.core.record import Block
from gossip_backer.errors import IntegrityError, RemoteError
from gossip_backer.protocol.transfer import (BATCH_BLOCK, BATCH_BYTES, BATCH_COUNT, SMALL_BLOCK, Arrived,
                                             Scheduler, batch_ok, batched)
from gossip_backer.protocol.peer import MAX_FRAME
from gossip_backer.wire.messages import BlockBatch, BlockBatchData, BlockData, BlockRequest, encode

HYPO = settings(deadline=None, derandomize=True, max_examples=150)
P1, P2, P3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
FILE_HASH = b"\xf0" * 32


def hasher(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def content(size: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(size))


def add_file(s: Scheduler, path: str, data: bytes, block_size: int,
             file_hash: bytes = FILE_HASH, only: list[int] | None = None) -> list[bytes]:
    pieces = [data[i:i + block_size] for i in range(0, len(data), block_size)]
    wanted = range(len(pieces)) if only is None else only
    s.add(path, file_hash, block_size, len(data),
          [(i, Block(hasher(pieces[i]), i)) for i in wanted])
    return pieces


def per_peer(reqs) -> Counter:
    return Counter(peer for peer, _ in reqs)


# --- handing out requests ---------------------------------------------------------------------


def test_request_fields() -> None:
    s = Scheduler(hasher)
    pieces = add_file(s, "f", content(250), 100)
    reqs = s.requests([P1], now=0.0)
    assert [r for _, r in reqs] == [
        BlockRequest(1, hasher(pieces[0]), FILE_HASH, 0, 100),
        BlockRequest(2, hasher(pieces[1]), FILE_HASH, 100, 100),
        BlockRequest(3, hasher(pieces[2]), FILE_HASH, 200, 50),  # the short last block
    ]
    assert s.requests([P1], now=0.0) == []  # nothing is asked twice


def test_requests_spread_over_peers() -> None:
    s = Scheduler(hasher)
    add_file(s, "f", content(1000), 100)
    reqs = s.requests([P1, P2], now=0.0)
    assert len(reqs) == 10
    assert per_peer(reqs) == {P1: 5, P2: 5}


def test_least_loaded_peer_first() -> None:
    s = Scheduler(hasher)
    add_file(s, "a", content(300), 100)
    first = s.requests([P1], now=0.0)
    assert per_peer(first) == {P1: 3}
    add_file(s, "b", content(500, 1), 100)
    second = s.requests([P1, P2], now=0.0)
    # P2 is idle: it takes blocks until it is as loaded as P1, then they alternate
    assert [p for p, _ in second][:3] == [P2, P2, P2]
    total = per_peer(first) + per_peer(second)
    assert abs(total[P1] - total[P2]) <= 1


def test_per_peer_request_limit() -> None:
    s = Scheduler(hasher, per_peer_small=3)  # blocks up to SMALL_BLOCK: their own limit
    add_file(s, "f", content(1000), 100)
    reqs = s.requests([P1, P2], now=0.0)
    assert per_peer(reqs) == {P1: 3, P2: 3}
    assert s.requests([P1, P2], now=0.0) == []
    peer, req = reqs[0]
    s.on_data(peer, req.request_id, content(1000)[req.offset:req.offset + req.size])
    more = s.requests([P1, P2], now=0.0)
    assert per_peer(more) == {peer: 1}


def test_small_and_large_blocks_have_separate_limits() -> None:
    s = Scheduler(hasher, per_peer_requests=2, per_peer_small=5)
    add_file(s, "big", content(4 * SMALL_BLOCK), 2 * SMALL_BLOCK, file_hash=b"\xf1" * 32)
    add_file(s, "big2", content(4 * SMALL_BLOCK, 1), 2 * SMALL_BLOCK, file_hash=b"\xf2" * 32)
    add_file(s, "small", content(1000), 100)
    sizes = Counter("large" if r.size > SMALL_BLOCK else "small" for _, r in s.requests([P1], 0.0))
    assert sizes == {"large": 2, "small": 5}


def test_small_plain_requests_travel_in_batches() -> None:
    s = Scheduler(hasher)
    for i in range(BATCH_COUNT + 10):
        add_file(s, f"f{i}", content(100, i), 100, file_hash=bytes([i % 256, i // 256]) * 16)
    add_file(s, "big", content(2 * SMALL_BLOCK), 2 * SMALL_BLOCK, file_hash=b"\xf1" * 32)
    add_file(s, "huge", content(2 * BATCH_BLOCK), 2 * BATCH_BLOCK, file_hash=b"\xf2" * 32)
    msgs = s.messages([P1], now=0.0)
    kinds = Counter(type(m).__name__ for _, m in msgs)
    assert kinds == {"BlockBatch": 2, "BlockRequest": 1}  # a block over BATCH_BLOCK alone
    batches = [m for _, m in msgs if isinstance(m, BlockBatch)]
    assert [len(b.requests) for b in batches] == [BATCH_COUNT, 11]  # the 256 KiB block too
    assert all(batch_ok(b) for b in batches)
    ids = [r.request_id for b in batches for r in b.requests]
    assert len(set(ids)) == len(ids) == len(s.flights) - 1

    req = batches[0].requests[0]  # each block is answered on its own
    arrived = s.on_data(P1, req.request_id, content(100, 0))
    assert arrived is not None and arrived.path == "f0"


def test_a_large_files_blocks_travel_seven_to_a_batch() -> None:
    """256 KiB blocks (a 512 MiB file): 1.75 MiB a message (protocol 6), not a message a block."""
    s = Scheduler(hasher)
    add_file(s, "big", content(80 * 2 * SMALL_BLOCK), 2 * SMALL_BLOCK)
    msgs = s.messages([P1], now=0.0)
    assert [len(m.requests) for _, m in msgs] == [7, 7, 7, 7, 4]  # the window: 32 (8 MiB)
    assert all(batch_ok(m) for _, m in msgs)


def test_the_answer_to_the_largest_batch_fits_one_frame() -> None:
    for size in (SMALL_BLOCK + 1, 2 * SMALL_BLOCK, BATCH_BLOCK):
        reqs = batched([BlockRequest(i, b"h" * 32, b"f" * 32, 0, size) for i in range(40)])
        for batch in reqs[:-1]:
            assert batch_ok(batch) and sum(r.size for r in batch.requests) > BATCH_BYTES
            answer = BlockBatchData(tuple(BlockData(r.request_id, bytes(r.size))
                                          for r in batch.requests), ())
            assert len(encode(answer)) <= MAX_FRAME
    mixed = batched([BlockRequest(i, b"h", b"f", 0, SMALL_BLOCK if i % 3 else 3 * SMALL_BLOCK)
                     for i in range(30)])  # a batch holding a small block keeps the small limit
    assert all(sum(r.size for r in m.requests) <= BATCH_BYTES for m in mixed)
    assert sum(len(m.requests) for m in mixed) == 30


def test_batches_respect_the_byte_limit_and_a_lone_request_stays_plain() -> None:
    reqs = [BlockRequest(i, b"h", b"f", 0, SMALL_BLOCK) for i in range(20)]
    out = batched(reqs)
    assert all(sum(r.size for r in m.requests) <= BATCH_BYTES for m in out)
    assert sum(len(m.requests) for m in out) == 20
    assert batched(reqs[:1]) == reqs[:1]
    assert not batch_ok(BlockBatch(tuple(reqs)))  # over BATCH_BYTES: refused
    assert not batch_ok(BlockBatch((BlockRequest(1, b"h", b"f", 0, BATCH_BLOCK + 1),)))


def test_per_peer_byte_limit_aligned() -> None:
    s = Scheduler(hasher, per_peer_bytes=200)
    add_file(s, "f", content(1000), 100)
    assert per_peer(s.requests([P1], now=0.0)) == {P1: 2}


def test_small_blocks_have_a_byte_limit_of_their_own() -> None:
    """Small blocks in flight to a peer stay within per_peer_small_bytes (the sender holds them
    at once), while large ones still use the whole per_peer_bytes."""
    s = Scheduler(hasher, per_peer_small=1000, per_peer_bytes=1 << 30, per_peer_small_bytes=1000)
    add_file(s, "small", content(5000), 100)
    add_file(s, "big", content(4 * SMALL_BLOCK, 1), 2 * SMALL_BLOCK, file_hash=b"\xf1" * 32)
    reqs = s.requests([P1], now=0.0)
    small = sum(r.size for _, r in reqs if r.size <= SMALL_BLOCK)
    assert small == 1000 and sum(1 for _, r in reqs if r.size > SMALL_BLOCK) == 2


def _in_flight_bytes(s: Scheduler) -> Counter:
    load: Counter = Counter()
    for fl in s.flights.values():
        load[fl.peer] += fl.size
    return load


def test_per_peer_byte_limit_is_not_exceeded_by_the_last_request() -> None:
    """per_peer_bytes bounds the bytes in flight to a peer: 100 bytes allow one 64-byte block,
    not two (128)."""
    s = Scheduler(hasher, per_peer_bytes=100)
    add_file(s, "f", content(640), 64)
    s.requests([P1], now=0.0)
    assert _in_flight_bytes(s)[P1] <= 100


@HYPO
@given(block=st.integers(1, 64), blocks=st.integers(1, 30), peers=st.integers(1, 3),
       max_requests=st.integers(1, 8), budget_blocks=st.integers(1, 6), extra=st.integers(0, 63))
def test_limits_hold_for_every_peer(block, blocks, peers, max_requests, budget_blocks, extra):
    per_bytes = budget_blocks * block + extra % block
    s = Scheduler(hasher, per_peer_small=max_requests, per_peer_bytes=per_bytes)
    add_file(s, "f", content(block * blocks), block)  # small blocks: per_peer_small holds
    ids = [P1, P2, P3][:peers]
    reqs = s.requests(ids, now=0.0)
    counts = per_peer(reqs)
    assert all(n <= max_requests for n in counts.values())
    assert all(b <= per_bytes for b in _in_flight_bytes(s).values())
    # as much as the limits allow is handed out
    cap = min(max_requests, per_bytes // block)
    assert len(reqs) == min(blocks, cap * peers)


def test_no_peers_no_requests() -> None:
    s = Scheduler(hasher)
    add_file(s, "f", content(100), 10)
    assert s.requests([], now=0.0) == []


# --- answers ---------------------------------------------------------------------------------


def test_good_data_arrives_with_its_offset_and_remaining_counts_down() -> None:
    s = Scheduler(hasher)
    data = content(250)
    pieces = add_file(s, "f", data, 100)
    assert s.remaining("f") == 3
    reqs = s.requests([P1], now=0.0)
    for n, (peer, req) in enumerate(reversed(reqs)):
        index = req.offset // 100
        assert s.expected(req.request_id) == hasher(pieces[index])
        got = s.on_data(peer, req.request_id, pieces[index])
        assert got == Arrived("f", index, index * 100, pieces[index])
        assert s.remaining("f") == 2 - n
        assert s.expected(req.request_id) is None
    assert s.remaining("f") == 0
    assert s.bytes_received == 250
    assert s.requests([P1], now=0.0) == []


def test_bad_data_is_an_integrity_error_and_the_block_is_requeued() -> None:
    s = Scheduler(hasher)
    pieces = add_file(s, "f", content(200), 100)
    (peer, req), _ = s.requests([P1], now=0.0)
    with pytest.raises(IntegrityError):
        s.on_data(peer, req.request_id, b"\x00" * 100)
    assert s.remaining("f") == 2
    assert s.bytes_received == 0
    s.peer_gone(P1)  # the caller drops the liar
    again = s.requests([P2], now=1.0)
    assert sorted(r.offset for _, r in again) == [0, 100]
    for peer, req in again:
        assert s.on_data(peer, req.request_id, pieces[req.offset // 100]) is not None
    assert s.remaining("f") == 0


def test_short_or_long_data_is_an_integrity_error() -> None:
    s = Scheduler(hasher)
    pieces = add_file(s, "f", content(100), 100)
    (peer, req), = s.requests([P1], now=0.0)
    with pytest.raises(IntegrityError):
        s.on_data(peer, req.request_id, pieces[0] + b"x", verified=True)
    (peer, req), = s.requests([P1], now=0.0)
    with pytest.raises(IntegrityError):
        s.on_data(peer, req.request_id, pieces[0][:-1], verified=True)


def test_verified_argument_is_honoured() -> None:
    calls = []

    def counting(data: bytes) -> bytes:
        calls.append(data)
        return hasher(data)

    s = Scheduler(counting)
    pieces = add_file(s, "f", content(200), 100)
    (p1, r1), (p2, r2) = s.requests([P1], now=0.0)
    # verified=True: trusted without hashing, even though these bytes would not hash right
    got = s.on_data(p1, r1.request_id, b"\xee" * 100, verified=True)
    assert got is not None and got.data == b"\xee" * 100
    # verified=False: refused without hashing, even though these bytes are right
    with pytest.raises(IntegrityError):
        s.on_data(p2, r2.request_id, pieces[1], verified=False)
    assert calls == []
    (p3, r3), = s.requests([P1], now=0.0)
    assert s.on_data(p3, r3.request_id, pieces[1]) is not None  # None: hashed here
    assert calls == [pieces[1]]


def test_late_answer_after_cancel_is_ignored() -> None:
    s = Scheduler(hasher)
    pieces = add_file(s, "f", content(100), 100)
    (peer, req), = s.requests([P1], now=0.0)
    s.cancel("f")
    assert s.on_data(peer, req.request_id, pieces[0]) is None
    assert s.remaining("f") == 0 and s.expected(req.request_id) is None
    # re-registered under the same path: the old request id is still dead, and a second
    # answer to it is data nobody asked for
    add_file(s, "f", content(100), 100)
    with pytest.raises(RemoteError, match="unrequested"):
        s.on_data(peer, req.request_id, pieces[0])
    assert s.remaining("f") == 1


def test_answer_from_the_wrong_peer_is_a_remote_error() -> None:
    s = Scheduler(hasher)
    pieces = add_file(s, "f", content(100), 100)
    (peer, req), = s.requests([P1], now=0.0)
    assert peer == P1
    with pytest.raises(RemoteError):
        s.on_data(P2, req.request_id, pieces[0])
    # the right peer's answer still counts
    assert s.on_data(P1, req.request_id, pieces[0]) == Arrived("f", 0, 0, pieces[0])


def test_unrequested_data_is_a_remote_error() -> None:
    """Issue 11: a peer that pushes BlockData nobody asked for is dropped (600 MiB of it used to
    be taken in): an id never sent, one sent to another peer, or one answered already."""
    s = Scheduler(hasher)
    with pytest.raises(RemoteError, match="unrequested"):
        s.on_data(P1, 12345, b"x")
    with pytest.raises(RemoteError, match="unrequested"):
        s.on_missing(P1, 12345)
    assert s.lacking == set()
    pieces = add_file(s, "f", content(200), 100)
    (p1, r1), (p2, r2) = s.requests([P1], now=0.0)
    assert s.on_data(P1, r1.request_id, pieces[r1.offset // 100]) is not None
    with pytest.raises(RemoteError, match="unrequested"):  # the same answer twice
        s.on_data(P1, r1.request_id, pieces[r1.offset // 100])
    s.peer_gone(P1)  # an answer in flight when the link went: quiet, once
    assert s.on_data(P1, r2.request_id, pieces[r2.offset // 100]) is None
    with pytest.raises(RemoteError, match="unrequested"):
        s.on_data(P1, r2.request_id, pieces[r2.offset // 100])


def test_only_the_latest_retired_ids_are_remembered() -> None:
    from gossip_backer.protocol.transfer import RETIRED

    s = Scheduler(hasher, per_peer_small=10**6, per_peer_bytes=1 << 40)
    add_file(s, "f", content(RETIRED + 10), 1)
    reqs = s.requests([P1], now=0.0)
    s.cancel("f")
    assert len(s.retired) == RETIRED
    assert s.on_data(P1, reqs[-1][1].request_id, b"x") is None  # recent: a late answer
    with pytest.raises(RemoteError):
        s.on_data(P1, reqs[0][1].request_id, b"x")  # forgotten: treated as unrequested


# --- missing, gone, timeouts, stalls ---------------------------------------------------------


def test_missing_marks_the_peer_lacking_and_requeues_to_another_peer() -> None:
    s = Scheduler(hasher)
    add_file(s, "f", content(100), 100)
    (peer, req), = s.requests([P1], now=0.0)
    s.on_missing(P1, req.request_id)
    assert (P1, FILE_HASH) in s.lacking
    assert s.requests([P1], now=0.0) == []  # not P1 again
    assert s.stalled("f", [P1])
    (peer2, req2), = s.requests([P1, P2], now=0.0)
    assert peer2 == P2 and req2.offset == 0 and req2.request_id != req.request_id
    assert not s.stalled("f", [P1, P2])
    s.on_missing(P2, req2.request_id)
    assert s.stalled("f", [P1, P2])
    s.forget_lacking()
    assert not s.stalled("f", [P1, P2])


def test_missing_from_the_wrong_peer_is_a_remote_error() -> None:
    """A BlockMissing answering a request sent to another peer, like a BlockData from the wrong
    peer, is refused: it must not cancel P1's request nor mark anything lacking."""
    s = Scheduler(hasher)
    pieces = add_file(s, "f", content(100), 100)
    (peer, req), = s.requests([P1], now=0.0)
    with pytest.raises(RemoteError):
        s.on_missing(P2, req.request_id)
    assert s.on_data(P1, req.request_id, pieces[0]) is not None


def test_lacking_is_per_content_not_per_path() -> None:
    s = Scheduler(hasher)
    add_file(s, "a", content(100), 100, file_hash=b"\xa0" * 32)
    add_file(s, "b", content(100, 3), 100, file_hash=b"\xb0" * 32)
    reqs = dict((r.file_hash, (p, r)) for p, r in s.requests([P1], now=0.0))
    s.on_missing(P1, reqs[b"\xa0" * 32][1].request_id)
    assert s.stalled("a", [P1]) and not s.stalled("b", [P1])


def test_stalled() -> None:
    s = Scheduler(hasher)
    add_file(s, "f", content(100), 100)
    assert s.stalled("f", [])  # nobody connected
    assert not s.stalled("f", [P1])
    assert not s.stalled("unknown", [])


def test_peer_gone_requeues_its_flights_and_forgets_what_it_lacked() -> None:
    s = Scheduler(hasher)
    pieces = add_file(s, "f", content(400), 100)
    reqs = s.requests([P1, P2], now=0.0)
    assert per_peer(reqs) == {P1: 2, P2: 2}
    s.lacking.add((P1, b"\x99" * 32))
    s.peer_gone(P1)
    assert all(fl.peer == P2 for fl in s.flights.values())
    assert not any(p == P1 for p, _ in s.lacking)
    again = s.requests([P2, P3], now=1.0)
    assert len(again) == 2 and per_peer(again) == {P3: 2}  # P3 is the least loaded
    old_p1 = [r for p, r in reqs if p == P1]
    assert all(s.on_data(P1, r.request_id, pieces[r.offset // 100]) is None for r in old_p1)
    for peer, req in again + [x for x in reqs if x[0] == P2]:
        assert s.on_data(peer, req.request_id, pieces[req.offset // 100]) is not None
    assert s.remaining("f") == 0


def test_tick_requeues_timed_out_requests() -> None:
    s = Scheduler(hasher, timeout=60.0)
    pa = add_file(s, "a", content(100), 100, file_hash=b"\xa0" * 32)
    (p1, r1), = s.requests([P1], now=0.0)
    pb = add_file(s, "b", content(100, 9), 100, file_hash=b"\xb0" * 32)
    (p2, r2), = s.requests([P1], now=30.0)
    s.tick(60.0)  # not more than the timeout yet
    assert len(s.flights) == 2
    s.tick(60.5)  # r1 timed out, r2 did not
    assert set(s.flights) == {r2.request_id}
    (p3, r3), = s.requests([P1, P2], now=60.5)
    assert r3.file_hash == r1.file_hash and p3 == P2  # P2 is idle; P1 still has r2 in flight
    assert s.on_data(P1, r1.request_id, pa[0]) is None  # too late
    assert s.on_data(P2, r3.request_id, pa[0]) is not None
    assert s.on_data(P1, r2.request_id, pb[0]) is not None
    assert s.remaining("a") == s.remaining("b") == 0


def test_expected() -> None:
    s = Scheduler(hasher)
    pieces = add_file(s, "f", content(300), 100, only=[0, 2])  # block 1 is built locally
    assert s.remaining("f") == 2
    reqs = s.requests([P1], now=0.0)
    assert sorted(r.offset for _, r in reqs) == [0, 200]
    for _, r in reqs:
        assert s.expected(r.request_id) == hasher(pieces[r.offset // 100]) == r.hash
    assert s.expected(999) is None


def test_add_again_replaces_the_previous_registration() -> None:
    s = Scheduler(hasher)
    add_file(s, "f", content(300), 100)
    reqs = s.requests([P1], now=0.0)
    add_file(s, "f", content(100, 5), 100)
    assert s.remaining("f") == 1
    assert all(r.request_id not in s.flights for _, r in reqs)


# --- deltas against the old bytes -------------------------------------------------------------


def _delta_file(s: Scheduler, signature: bytes = b"\0sig") -> list[bytes]:
    from gossip_backer.protocol.transfer import Base
    pieces = [content(100, 1), content(100, 2)]
    s.add("f", FILE_HASH, 100, 200, [(i, Block(hasher(p), i)) for i, p in enumerate(pieces)],
          {1: Base(100, 100, 128, signature)})
    return pieces


def test_a_block_with_a_base_is_asked_for_as_a_delta() -> None:
    from gossip_backer.wire.messages import DeltaRequest
    s = Scheduler(hasher)
    pieces = _delta_file(s)
    reqs = [r for _, r in s.requests([P1], now=0.0)]
    assert reqs == [BlockRequest(1, hasher(pieces[0]), FILE_HASH, 0, 100),
                    DeltaRequest(2, hasher(pieces[1]), FILE_HASH, 100, 100, 100, 128, b"\0sig")]
    path, base, expected, size = s.delta_of(2)
    assert (path, base.offset, expected, size) == ("f", 100, hasher(pieces[1]), 100)
    assert s.on_delta(P1, 2, pieces[1]) == Arrived("f", 1, 100, pieces[1])
    assert s.remaining("f") == 1


def test_the_delta_of_a_one_block_file_is_asked_for_by_its_file_hash_alone() -> None:
    """Its block hash is its file hash: 33 bytes less a request (serving reads the file whose
    content has that hash, and the receiver checks the block's hash as always)."""
    from gossip_backer.protocol.transfer import Base
    from gossip_backer.wire.messages import DeltaRequest
    s = Scheduler(hasher)
    data = content(100, 3)
    s.add("f", FILE_HASH, 128, 100, [(0, Block(hasher(data), 0))], {0: Base(0, 90, 128, b"\0s")})
    assert [r for _, r in s.requests([P1], now=0.0)] == [
        DeltaRequest(1, b"", FILE_HASH, 0, 100, 90, 128, b"\0s")]
    assert s.on_delta(P1, 1, data) == Arrived("f", 0, 0, data)


def test_delta_requests_of_many_files_travel_in_one_batch_with_the_plain_ones() -> None:
    """A round of edited files: their delta requests (and a new file's plain one) cost one
    message, not one each (protocol 4); a lone delta request stays a DeltaRequest."""
    from gossip_backer.protocol.transfer import Base
    from gossip_backer.wire.messages import DeltaRequest
    s = Scheduler(hasher)
    files = {f"e{i}": content(100, i) for i in range(3)}
    for i, (path, data) in enumerate(files.items()):
        s.add(path, bytes([i]) * 32, 128, 100, [(0, Block(hasher(data), 0))],
              {0: Base(0, 90, 128, b"\0s")})
    add_file(s, "new", content(100, 9), 100)
    [(peer, batch)] = s.messages([P1], now=0.0)
    assert peer == P1 and isinstance(batch, BlockBatch) and batch_ok(batch)
    assert [r.size for r in batch.requests] == [100]
    assert [type(r) for r in batch.deltas] == [DeltaRequest] * 3
    assert {r.file_hash for r in batch.deltas} == {bytes([i]) * 32 for i in range(3)}
    first = batch.deltas[0]  # each is answered on its own, by its request id
    assert s.on_delta(P1, first.request_id, files["e0"]) == Arrived("e0", 0, 0, files["e0"])
    s.add("lone", b"\x07" * 32, 128, 100, [(0, Block(hasher(content(100, 7)), 0))],
          {0: Base(0, 90, 128, b"\0s")})
    assert [type(m) for _, m in s.messages([P1], now=0.0)] == [DeltaRequest]
    too_many = BlockBatch((), tuple(DeltaRequest(i, b"", b"f" * 32, 0, 100, 90, 128, b"\0s")
                                    for i in range(BATCH_COUNT + 1)))
    assert not batch_ok(too_many)  # the limits count delta requests too


def test_a_delta_that_does_not_rebuild_is_asked_for_again_plainly() -> None:
    s = Scheduler(hasher)
    pieces = _delta_file(s)
    s.requests([P1], now=0.0)
    assert s.on_delta(P1, 2, None) is None  # no error: a false match is nobody's fault
    assert [r for _, r in s.requests([P1], now=0.0)] == [
        BlockRequest(3, hasher(pieces[1]), FILE_HASH, 100, 100)]
    with pytest.raises(IntegrityError):  # but a plain block that fails its hash names the peer
        s.on_data(P1, 3, b"x" * 100)


def test_a_delta_with_pieces_that_does_not_rebuild_is_asked_for_by_chunks_then_plainly() -> None:
    from gossip_backer.wire.messages import DeltaRequest
    s = Scheduler(hasher)
    pieces = _delta_file(s, bytes([5]) + b"c" * 4 + b"p" * 4)  # 32-byte pieces: a false match?
    s.requests([P1], now=0.0)
    assert s.on_delta(P1, 2, None) is None
    assert [r for _, r in s.requests([P1], now=0.0)] == [
        DeltaRequest(3, hasher(pieces[1]), FILE_HASH, 100, 100, 100, 128, b"\0" + b"c" * 4)]
    assert s.on_delta(P1, 3, None) is None
    assert [r for _, r in s.requests([P1], now=0.0)] == [
        BlockRequest(4, hasher(pieces[1]), FILE_HASH, 100, 100)]


def test_a_delta_answering_a_plain_request_is_unrequested() -> None:
    s = Scheduler(hasher)
    pieces = _delta_file(s)
    s.requests([P1], now=0.0)
    with pytest.raises(RemoteError):
        s.on_delta(P1, 1, pieces[0])
    assert s.on_data(P1, 2, pieces[1]) is not None  # a delta request may be answered plainly


def test_delta_bases_are_the_same_range_of_the_old_file() -> None:
    from gossip_backer.core.record import IndexEntry
    from gossip_backer.core.vv import VersionVector
    from gossip_backer.protocol.transfer import delta_bases
    from gossip_backer.core.record import FileRecord
    blocks = tuple(Block(bytes([i]) * 32, i) for i in range(3))
    rec = FileRecord(path="f", kind="file", vv=VersionVector(), origin=P1, size=250, mtime_ns=0,
                     mode=0o644, hash=b"\x01" * 32, block_size=100, blocks=blocks)
    old = IndexEntry("f", 420, 0, 1, 0o644, "file", b"\x02" * 32, 100, (), None, VersionVector())
    assert delta_bases(rec, old, [0, 2]) == {0: (0, 100), 2: (200, 200)}  # the last: to the old end
    assert delta_bases(rec, None, [0]) == {}  # a new file
    same = IndexEntry("f", 250, 0, 1, 0o644, "file", rec.hash, 100, (), None, VersionVector())
    assert delta_bases(rec, same, [0]) == {}
