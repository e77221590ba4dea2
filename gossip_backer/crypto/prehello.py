"""The pre-hello: a node's public key sealed under a key derived from the mesh secret.

It lets two ends of an anonymous stream learn whom they face, so that the greater key can play
the Secret Handshake's client, without telling a prober that lacks the mesh secret anything.
"""

from __future__ import annotations

import hashlib

import nacl.bindings as sodium
import nacl.utils
from nacl.exceptions import CryptoError

from gossip_backer.errors import RemoteError

SIZE = 24 + 16 + 32


def _key(network_key: bytes) -> bytes:
    return hashlib.blake2b(network_key, digest_size=32, person=b"backer-prehello").digest()


def seal(network_key: bytes, public: bytes) -> bytes:
    nonce = nacl.utils.random(24)
    return nonce + sodium.crypto_secretbox_easy(public, nonce, _key(network_key))


def open_(network_key: bytes, data: bytes) -> bytes:
    """The claimed public key; RemoteError when the sender lacks the mesh secret."""
    if len(data) != SIZE:
        raise RemoteError("pre-hello has the wrong size")
    try:
        return sodium.crypto_secretbox_open_easy(data[24:], data[:24], _key(network_key))
    except CryptoError:
        raise RemoteError("pre-hello failed: the peer does not hold the mesh secret") from None
