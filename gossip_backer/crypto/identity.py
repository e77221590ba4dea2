"""A node's Ed25519 identity, on disk with mode 0600, and the signing of updates.

The update signature covers the mesh id, origin, sequence number and the payload's exact bytes,
so an update cannot be replayed into another mesh, renumbered or altered by a relay.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import nacl.exceptions
import nacl.signing

from gossip_backer.core.ids import NodeId
from gossip_backer.core.record import FileRecord, Payload, SignedUpdate, payload_from_plain
from gossip_backer.errors import LocalError, RemoteError
from gossip_backer.wire.codec import encode_payload, pack, unpack


class Identity:
    """A node's signing key; `node_id` is its public key."""

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        self.signing_key = signing_key
        self.public = bytes(signing_key.verify_key)
        self.node_id = NodeId(self.public)

    @classmethod
    def generate(cls) -> "Identity":
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> "Identity":
        return cls(nacl.signing.SigningKey(seed))

    def save(self, path: Path) -> None:
        """Write the 32-byte seed, readable by the owner only, created with 0600 (no race)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(bytes(self.signing_key))
            f.flush()
            os.fsync(f.fileno())

    @classmethod
    def load(cls, path: Path) -> "Identity":
        try:
            seed = Path(path).read_bytes()
        except OSError as exc:
            raise LocalError(f"cannot read identity key {path}: {exc.strerror}") from None
        if len(seed) != 32:
            raise LocalError(f"identity key {path} is damaged")
        return cls.from_seed(seed)

    def sign(self, data: bytes) -> bytes:
        return self.signing_key.sign(data).signature


def verify(public: bytes, data: bytes, sig: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(public).verify(data, sig)
        return True
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
        return False


def signed_bytes(mesh_id: str, origin: bytes, seq: int, body: bytes) -> bytes:
    return pack(["backer-update-1", mesh_id, origin, seq, body])


def make_update(identity: Identity, mesh_id: str, seq: int, payload: Payload) -> SignedUpdate:
    """Encode and sign a local change as update number `seq` of this node."""
    body = encode_payload(payload)
    sig = identity.sign(signed_bytes(mesh_id, identity.public, seq, body))
    if isinstance(payload, FileRecord):  # the body is ours: encode_payload makes it again
        return SignedUpdate(identity.public, seq, payload, None, sig, encode_payload, len(body))
    return SignedUpdate(identity.public, seq, payload, body, sig)


def _wire_fields(item: object) -> tuple[bytes, int, bytes, bytes] | None:
    """(origin, seq, body, sig) of an update as it came from a peer, if each has its type and
    length; else None (a bool seq too: True == 1, but packs apart)."""
    if not (isinstance(item, (list, tuple)) and len(item) == 4):
        return None
    origin, seq, body, sig = item
    if not (isinstance(origin, bytes) and len(origin) == 32 and type(seq) is int
            and isinstance(body, bytes) and isinstance(sig, bytes) and len(sig) == 64):
        return None
    return origin, seq, body, sig


def update_from_wire(item: object) -> SignedUpdate:
    """A peer's (origin, seq, body, sig) -> SignedUpdate, payload decoded; the signature is checked
    later by `Verifier` (only updates that pass the cheap checks cost a verification)."""
    fields = _wire_fields(item)
    if fields is None:
        raise RemoteError("malformed update")
    origin, seq, body, sig = fields
    try:
        payload = payload_from_plain(unpack(body))
    except ValueError as exc:
        raise RemoteError(str(exc)) from None
    return SignedUpdate.compact(origin, seq, payload, body, sig, encode_payload)


def verify_wire(mesh_id: str, items: Iterable[object]) -> frozenset[tuple]:
    """The (origin, seq, body, sig) tuples among a Delta's `items` whose signature holds, checked
    on the exact bytes that came (no body encoded again). Slow (one Ed25519 check each, ~60 us)
    and free of shared state: the runtime calls it in a worker thread, where libsodium runs
    beside the loop, and hands the result to the sans-IO session (`GossipSession.receive`),
    which trusts exactly these tuples and checks any other item itself. Malformed items are
    left out (the session refuses them)."""
    keys: dict[bytes, nacl.signing.VerifyKey] = {}
    good = set()
    for item in items:
        fields = _wire_fields(item)
        if fields is None:
            continue
        origin, seq, body, sig = fields
        key = keys.get(origin)
        if key is None:
            key = keys[origin] = nacl.signing.VerifyKey(origin)
        try:
            key.verify(signed_bytes(mesh_id, origin, seq, body), sig)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError,
                TypeError, OverflowError):
            continue
        good.add((origin, seq, body, sig))
    return frozenset(good)


def update_to_wire(update: SignedUpdate) -> tuple:
    return (update.origin, update.seq, update.body, update.sig)


class Verifier:
    """The signature check injected into the core's MetaMap."""

    def __init__(self, mesh_id: str) -> None:
        self.mesh_id = mesh_id
        self.checked = 0

    def __call__(self, update: SignedUpdate) -> bool:
        self.checked += 1
        return verify(update.origin, signed_bytes(self.mesh_id, update.origin, update.seq, update.body), update.sig)
