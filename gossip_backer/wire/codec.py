"""msgpack with the limits a hostile peer cannot push past: plain values <-> bytes."""

from __future__ import annotations

import msgpack

from gossip_backer.core.record import Payload, payload_to_plain
from gossip_backer.errors import RemoteError

MAX_ITEMS = 1 << 20


def pack(plain: object) -> bytes:
    return msgpack.packb(plain, use_bin_type=True)


def encode_payload(payload: Payload) -> bytes:
    """The canonical body of an update carrying `payload` (what its signer signs)."""
    return pack(payload_to_plain(payload))


def unpack(data: bytes, max_bytes: int = 16 << 20) -> object:
    """Decode one msgpack document; anything malformed is the sender's fault (RemoteError)."""
    if len(data) > max_bytes:
        raise RemoteError("encoded value too large")
    try:
        return msgpack.unpackb(
            data, raw=False, strict_map_key=False, use_list=True,
            max_bin_len=max_bytes, max_str_len=max_bytes, max_array_len=MAX_ITEMS,
            max_map_len=MAX_ITEMS, max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError,
            UnicodeDecodeError, RecursionError, OverflowError) as exc:
        raise RemoteError(f"undecodable msgpack: {type(exc).__name__}") from None
