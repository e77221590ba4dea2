"""Node ids, mesh ids and content hashes: their byte forms and the text forms people read.

A node id is the node's Ed25519 public key (32 bytes). Its text form, like Syncthing's device ids,
is base32 in eight groups of seven characters: the 52 base32 characters of the key split into four
runs of 13, each followed by one check character (Luhn mod 32), so a mistyped character is caught.
The first group is what conflict-copy names show (SPEC.md: the first 7 characters).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass

from gossip_backer.errors import UserError

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
KEY_BYTES = 32


def luhn32(chars: str) -> str:
    """The Luhn mod N check character over base32 text (N = 32)."""
    factor, total, n = 1, 0, len(ALPHABET)
    for ch in reversed(chars):
        addend = factor * _INDEX[ch]
        factor = 1 if factor == 2 else 2
        total += addend // n + addend % n
    return ALPHABET[(n - total % n) % n]


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=")


def _unb32(text: str) -> bytes:
    pad = "=" * (-len(text) % 8)
    return base64.b32decode(text + pad)


@functools.lru_cache(maxsize=256)
def _node_text(key: bytes) -> str:
    """A node id's text form; cached: every event about a file names its node."""
    raw = _b32(key)  # 52 characters
    runs = [raw[i : i + 13] for i in range(0, 52, 13)]
    checked = "".join(run + luhn32(run) for run in runs)  # 56 characters
    return "-".join(checked[i : i + 7] for i in range(0, 56, 7))


@dataclass(frozen=True, order=True, slots=True)
class NodeId:
    """A node's identity: its Ed25519 public key."""

    key: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) != KEY_BYTES:
            raise ValueError("a node id is 32 bytes")

    def __str__(self) -> str:
        return _node_text(self.key)

    def __repr__(self) -> str:
        return f"NodeId({self.short()})"

    def short(self) -> str:
        """The first group: what a conflict-copy name and the logs show."""
        return str(self)[:7]

    @classmethod
    def parse(cls, text: str) -> "NodeId":
        """Read the text form; tolerant of case, spaces and dashes, strict about the checks."""
        clean = "".join(text.split()).replace("-", "").upper()
        if len(clean) != 56 or any(c not in _INDEX for c in clean):
            raise UserError(f"not a node id: {text!r}")
        runs = [clean[i : i + 14] for i in range(0, 56, 14)]
        if any(luhn32(run[:13]) != run[13] for run in runs):
            raise UserError(f"node id has a typo (check character mismatch): {text!r}")
        return cls(_unb32("".join(run[:13] for run in runs)))


def mesh_id_of(mesh_secret: bytes, founder: NodeId) -> str:
    """The public name of a mesh: a hash of its secret and founder, revealing neither."""
    digest = hashlib.blake2b(
        mesh_secret + founder.key, digest_size=15, person=b"backer-mesh-id"
    ).digest()
    raw = _b32(digest)  # 24 characters
    return "-".join(raw[i : i + 6] for i in range(0, 24, 6))


def hash_text(h: bytes | None) -> str | None:
    """Hex form of a content hash, as shown in `history --json`."""
    return None if h is None else h.hex()
