"""Answering a peer's block request (protocol/serving.py, the daemon's and the simulator's rules)
and the delta path's two ends (transfer.base_of, transfer.rebuild)."""

from __future__ import annotations

import random

from gossip_backer.core.blocks import strong_hash
from gossip_backer.protocol import serving, transfer
from gossip_backer.wire.messages import BlockData, BlockMissing, BlockRequest, DeltaData, DeltaRequest

FILE_HASH = b"\xf0" * 32


def content(size: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(size))


def _request(data: bytes, rid: int = 1, **kw) -> BlockRequest:
    fields = dict(request_id=rid, hash=strong_hash(data), file_hash=FILE_HASH, offset=0,
                  size=len(data))
    fields.update(kw)
    return BlockRequest(**fields)


def test_serve_sources_the_versions_file_then_the_archive_then_the_block_index():
    req = _request(b"x" * 100, offset=300)
    found = serving.serve_sources(req, lambda h: "same.txt" if h == FILE_HASH else None,
                                  lambda h: ("other.txt", 4096))
    assert found == [serving.Source("same.txt", 300), serving.Source(None, 300),
                     serving.Source("other.txt", 4096)]
    piece = _request(b"x" * 100, hash=b"")  # a piece of a whole version: never from the index
    assert serving.serve_sources(piece, lambda h: None, lambda h: ("other.txt", 0)) == [
        serving.Source(None, 0)]


def test_serve_takes_the_first_source_whose_bytes_hash_to_the_block():
    block = content(1000, 3)
    req = _request(block)
    reads = {"changed": content(1000, 4), "short": block[:10], "good": block}
    answer = serving.serve(req, ["gone", "changed", "short", "good"], reads.get, strong_hash)
    assert answer == BlockData(1, block)
    assert serving.serve(req, ["changed"], reads.get, strong_hash) == BlockMissing(1)


def test_request_limits():
    assert serving.request_ok(_request(b"x" * 10))
    assert not serving.request_ok(_request(b"x" * 10, size=0))
    assert not serving.request_ok(_request(b"x" * 10, offset=-1))
    assert not serving.request_ok(_request(b"x", size=serving.SERVE_MAX + 1))
    bad = DeltaRequest(1, b"h" * 32, FILE_HASH, 0, 100, 100, 128, b"short")
    assert not serving.request_ok(bad)


def test_a_small_edit_crosses_as_a_delta_and_rebuilds_from_the_old_bytes():
    old = content(64 * 1024, 5)
    new = old[:30000] + b"an edited line\n" + old[30010:]
    base = transfer.base_of(0, old)
    req = DeltaRequest(9, strong_hash(new), FILE_HASH, 0, len(new), base.size, base.chunk,
                       base.signature)
    assert serving.request_ok(req)
    answer = serving.serve(req, ["f"], {"f": new}.get, strong_hash)
    assert isinstance(answer, DeltaData) and len(answer.delta) < 2000
    assert transfer.rebuild(base, old, answer.delta, len(new), strong_hash(new), strong_hash) == new
    changed = random.Random(6).randbytes(64 * 1024)  # the old file changed meanwhile: asked for plainly again
    assert transfer.rebuild(base, changed, answer.delta, len(new), strong_hash(new),
                            strong_hash) is None
    assert transfer.rebuild(base, old[:-1], answer.delta, len(new), strong_hash(new),
                            strong_hash) is None
    assert transfer.base_of(0, b"") is None
    fresh = random.Random(7).randbytes(64 * 1024)  # shares nothing with the old bytes: sent plainly
    req2 = DeltaRequest(10, strong_hash(fresh), FILE_HASH, 0, len(fresh), base.size, base.chunk,
                        base.signature)
    assert serving.serve(req2, ["f"], {"f": fresh}.get, strong_hash) == BlockData(10, fresh)


def test_a_batch_is_answered_block_by_block_and_one_beyond_the_limits_breaks_the_protocol():
    """A BlockBatch (many small files' blocks in one message) gets one BlockBatchData: the
    blocks some source held, and the ids of the others; a batch whose answer could not fit one
    frame is the peer's fault (the link drops it), for the daemon and the simulator alike."""
    import pytest

    from gossip_backer.errors import RemoteError
    from gossip_backer.wire.messages import BlockBatch

    one, two = content(100, 1), content(200, 2)
    batch = BlockBatch((_request(one, rid=1), _request(two, rid=2)))
    serving.check_batch(batch)
    answer = serving.answer_batch(batch, [one, None])
    assert answer.blocks == (BlockData(1, one),) and answer.missing == (2,)
    too_many = BlockBatch(tuple(_request(one, rid=i) for i in range(transfer.BATCH_COUNT + 1)))
    with pytest.raises(RemoteError):
        serving.check_batch(too_many)
    too_big = BlockBatch((_request(b"x" * (transfer.BATCH_BLOCK + 1)),))
    with pytest.raises(RemoteError):
        serving.check_batch(too_big)


def test_a_batch_answers_its_delta_requests_as_deltas_and_a_lying_delta_fails_its_hash():
    """Protocol 4: a BlockBatch carries DeltaRequests; each is answered as a delta, plainly
    when that is not smaller, or missing (unread, when it cannot be worked with). A delta
    whose literals a peer changed does not rebuild to the block's hash."""
    from gossip_backer.wire.messages import BlockBatch
    old = content(64 * 1024, 5)
    new = old[:30000] + b"an edited line\n" + old[30010:]
    fresh = random.Random(8).randbytes(4096)
    base = transfer.base_of(0, old)
    small_base = transfer.base_of(0, content(4096, 1))

    def ask(rid, data, b):
        return DeltaRequest(rid, strong_hash(data), FILE_HASH, 0, len(data), b.size, b.chunk,
                            b.signature)
    bad = DeltaRequest(4, b"h" * 32, FILE_HASH, 0, 100, 100, 128, b"short")
    plain = content(100, 1)
    batch = BlockBatch((_request(plain, rid=1),), (ask(2, new, base), ask(3, fresh, small_base), bad))
    serving.check_batch(batch)
    read = serving.batch_requests(batch)
    assert [r.request_id for r in read] == [1, 2, 3]  # the bad one is not read
    answer = serving.answer_batch(batch, [plain, new, fresh])
    assert answer.blocks == (BlockData(1, plain), BlockData(3, fresh)) and answer.missing == (4,)
    [delta] = answer.deltas
    assert delta.request_id == 2 and len(delta.delta) < 2000
    assert transfer.rebuild(base, old, delta.delta, len(new), strong_hash(new), strong_hash) == new
    lie = bytearray(delta.delta)
    lie[-3] ^= 0x40
    assert transfer.rebuild(base, old, bytes(lie), len(new), strong_hash(new), strong_hash) is None
    assert serving.answer_batch(batch, [None, None, None]).missing == (1, 2, 3, 4)
