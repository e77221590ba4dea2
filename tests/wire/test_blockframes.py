"""wire.blockframes: block answers decode to views of the frame body, never copies, and any
other layout goes to the ordinary (strict) decoder."""

from __future__ import annotations

import os

import msgpack
import pytest

from gossip_backer.errors import RemoteError
from gossip_backer.wire import blockframes
from gossip_backer.wire.messages import BlockBatchData, BlockData, DeltaData, decode_all, encode


def test_a_batch_answers_blocks_are_views_of_the_body() -> None:
    msg = BlockBatchData((BlockData(1, os.urandom(300)), BlockData(70_000, b""),
                          BlockData(2**40, os.urandom(70_000))), (5, 6), (DeltaData(3, b"xy"),))
    body = bytearray(encode(msg))
    (got,) = decode_all(body)
    assert got == msg
    for block in got.blocks:
        assert isinstance(block.data, memoryview) and block.data.readonly
        assert block.data.obj is body  # the body itself: no copy was made


def test_a_lone_block_is_a_view_too() -> None:
    msg = BlockData(7, os.urandom(1 << 20))
    body = bytearray(encode(msg))
    (got,) = decode_all(body)
    assert got == msg and got.data.obj is body


@pytest.mark.parametrize("body", [
    msgpack.packb([10, 1, b"x", 2]),  # a field too many
    msgpack.packb([20, [[1, b"x"]], [], []]) + b"\x00",  # trailing bytes
    msgpack.packb([20, [[1, b"x"]], [], []])[:-1],  # cut short
    msgpack.packb([20, [[1, "x"]], [], []]),  # a str for a block
    msgpack.packb([20, [[1, b"x", 3]], [], []]),
    bytes([0x94, 20, 0xDD, 0xFF, 0xFF, 0xFF, 0xFF]),  # four billion blocks announced
])
def test_anything_else_is_refused_as_before(body: bytes) -> None:
    with pytest.raises(RemoteError):
        decode_all(body)


def test_other_layouts_go_to_the_ordinary_decoder() -> None:
    assert blockframes.split(msgpack.packb([12, b"x" * 32, "n", b"p"])) is None
    assert blockframes.split(msgpack.packb([20, [[1, b"x", 3]], [], []])) is None
    assert blockframes.split(msgpack.packb([20, [[-1, b"x"]], [], []])) is None
    assert blockframes.split(b"") is None
    # a block id in a wider form than needed is still msgpack: decoded, the ordinary way
    wide = b"\x94\x14\x91\x92\xd2\x00\x00\x00\x01\xc4\x01x\x90\x90"
    assert blockframes.split(wide) is None
    assert decode_all(wide) == [BlockBatchData((BlockData(1, b"x"),), ())]
