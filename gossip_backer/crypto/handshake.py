"""Secure Scuttlebutt's Secret Handshake (SHS), sans-IO.

Theory of operation
-------------------
Four messages between a client (Alice, who dials and already knows the server's long-term key B)
and a server (Bob). K is the network key (our mesh secret), a/b the ephemeral Curve25519 keys,
A/B the long-term Ed25519 keys (converted to Curve25519 where a Diffie-Hellman needs them):

    1. client -> server  hmac_K(a_pub) | a_pub                                      64 bytes
    2. server -> client  hmac_K(b_pub) | b_pub                                      64 bytes
    3. client -> server  box[sha256(K|ab|aB)](sig_A(K|B|sha256(ab)) | A)          112 bytes
    4. server -> client  box[sha256(K|ab|aB|Ab)](sig_B(K|msg3 plain|sha256(ab)))   80 bytes

(hmac = HMAC-SHA-512 truncated to 32 bytes, libsodium's crypto_auth; box = secretbox, zero nonce.)
Message 1 proves knowledge of K before the server says a word: a prober without K gets silence.
Message 3 only opens for the server whose key the client meant, and tells it who the client is; the
server then asks `authorize(A)` (mesh membership) before answering. Message 4 proves to the client
that it reached B. Both then derive box-stream keys: secret = sha256(sha256(K|ab|aB|Ab)),
encrypt key = sha256(secret|remote A), nonce = hmac_K(remote ephemeral)[:24]; each side's encrypt
key and nonce are the other side's decrypt key and nonce. Ephemeral keys give forward secrecy.

Two layers live here:
- pure functions named after the reference implementation's operations (`initialize`,
  `create_challenge`, `verify_challenge`, ...): a state dict in, a new state dict or a packet out,
  None for a packet that does not verify. They mirror `secret-handshake/crypto.js` field for field
  so that the published test vectors run through them unchanged (`VECTOR_OPS`).
- `Handshake`, a state machine on top (h11 style): `initial_bytes()`, `receive_data(bytes) -> bytes
  to send`, `receive_eof()`, `is_done`, `result`, `trailing_data`. Its transition table is
  `_STEPS`; any failure raises RemoteError (the peer's fault) or LocalError (our caller's), moves
  to FAILED, and never produces bytes to send: the caller just closes the connection.

Python cannot wipe immutable bytes, so "cleaning" drops references to the handshake secrets
rather than zeroing them as the JavaScript reference does.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any, Callable, Final

import nacl.bindings as sodium
import nacl.signing
import nacl.utils
from nacl.exceptions import CryptoError

from gossip_backer.errors import LocalError, RemoteError

__all__ = [
    "CHALLENGE_LENGTH",
    "CLIENT_AUTH_LENGTH",
    "SERVER_ACCEPT_LENGTH",
    "Handshake",
    "HandshakeResult",
    "HandshakeState",
    "VECTOR_OPS",
    "initialize",
    "create_challenge",
    "verify_challenge",
    "client_verify_challenge",
    "client_create_auth",
    "server_verify_auth",
    "server_create_accept",
    "client_verify_accept",
    "clean",
    "to_keys",
]

CHALLENGE_LENGTH: Final = 64  # messages 1 and 2
CLIENT_AUTH_LENGTH: Final = 16 + 64 + 32  # message 3: MAC, signature, client key
SERVER_ACCEPT_LENGTH: Final = 16 + 64  # message 4: MAC, signature
KEY_LENGTH: Final = 32
_ZERO_NONCE: Final = bytes(24)  # safe: every handshake secretbox key is used exactly once

State = dict[str, Any]  # field names are the reference implementation's, for the vectors


# --- primitives: thin wrappers that turn libsodium failures on peer data into None -------------


def _auth(key: bytes, msg: bytes) -> bytes:
    """crypto_auth (HMAC-SHA-512-256), which PyNaCl lacks."""
    return hmac.new(key, msg, hashlib.sha512).digest()[:32]


def _hash(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def _shared(secret: bytes, public: bytes) -> bytes | None:
    """X25519; None for a low-order point (libsodium refuses an all-zero result)."""
    try:
        return sodium.crypto_scalarmult(secret, public)
    except CryptoError:
        return None


def _curve_pk(ed_public: bytes) -> bytes | None:
    """Ed25519 -> Curve25519 public key; None for a point that is not a valid key."""
    try:
        return sodium.crypto_sign_ed25519_pk_to_curve25519(ed_public)
    except CryptoError:
        return None


def _curve_sk(ed_secret: bytes) -> bytes:
    return sodium.crypto_sign_ed25519_sk_to_curve25519(ed_secret)


def _sign(msg: bytes, ed_secret: bytes) -> bytes:
    """Detached signature: crypto_sign returns signature | message."""
    return sodium.crypto_sign(msg, ed_secret)[: sodium.crypto_sign_BYTES]


def _verify(sig: bytes, msg: bytes, ed_public: bytes) -> bool:
    try:
        sodium.crypto_sign_open(sig + msg, ed_public)
    except CryptoError:
        return False
    return True


def _box(msg: bytes, key: bytes) -> bytes:
    return sodium.crypto_secretbox_easy(msg, _ZERO_NONCE, key)


def _unbox(boxed: bytes, key: bytes) -> bytes | None:
    try:
        return sodium.crypto_secretbox_open_easy(boxed, _ZERO_NONCE, key)
    except CryptoError:
        return None


def _copy(state: State) -> State:
    """Pure functions never mutate their input (the reference does; we return a new dict)."""
    out = dict(state)
    out["local"] = dict(state.get("local") or {})
    if state.get("remote") is not None:
        out["remote"] = dict(state["remote"])
    return out


# --- the reference operations, one per vector name ---------------------------------------------


def to_keys(keys: bytes | State) -> State:
    """A 32-byte seed becomes {publicKey, secretKey}; a key pair passes through."""
    if isinstance(keys, bytes) and len(keys) == 32:
        public, secret = sodium.crypto_sign_seed_keypair(keys)
        return {"publicKey": public, "secretKey": secret}
    return keys


def initialize(state: State) -> State:
    """Derive the ephemeral key pair from `random` (and the long-term one from `seed`, if any)."""
    state = _copy(state)
    if state.get("seed"):
        state["local"] = to_keys(state["seed"])
    eph_public, eph_secret = sodium.crypto_sign_seed_keypair(state["random"])
    kx_pk = sodium.crypto_sign_ed25519_pk_to_curve25519(eph_public)
    state["local"] = {
        "kx_pk": kx_pk,
        "kx_sk": _curve_sk(eph_secret),
        "publicKey": state["local"]["publicKey"],
        "secretKey": state["local"]["secretKey"],
        "app_mac": _auth(state["app_key"], kx_pk),
    }
    state["remote"] = state.get("remote") or {}
    return state


def create_challenge(state: State) -> bytes:
    """Messages 1 and 2: our ephemeral key, authenticated with the network key."""
    return state["local"]["app_mac"] + state["local"]["kx_pk"]


def verify_challenge(state: State, challenge: bytes) -> State | None:
    """Check the peer knows the network key; derive the ephemeral shared secret ab."""
    if len(challenge) != CHALLENGE_LENGTH:
        return None
    mac, remote_kx = challenge[:32], challenge[32:]
    if not hmac.compare_digest(_auth(state["app_key"], remote_kx), mac):
        return None
    secret = _shared(state["local"]["kx_sk"], remote_kx)
    if secret is None:
        return None
    state = _copy(state)
    state["remote"].update(kx_pk=remote_kx, app_mac=mac)
    state["secret"] = secret
    state["shash"] = _hash(secret)
    return state


def client_verify_challenge(state: State, challenge: bytes) -> State | None:
    """Client side of message 2: also derive aB and sign the proof of our identity."""
    state = verify_challenge(state, challenge)
    if state is None:
        return None
    server_curve = _curve_pk(state["remote"]["publicKey"])
    a_bob = _shared(state["local"]["kx_sk"], server_curve) if server_curve else None
    if a_bob is None:
        return None
    local, remote, app_key = state["local"], state["remote"], state["app_key"]
    state["a_bob"] = a_bob
    state["secret2"] = _hash(app_key, state["secret"], a_bob)
    sig = _sign(app_key + remote["publicKey"] + state["shash"], local["secretKey"])
    local["hello"] = sig + local["publicKey"]
    return state


def client_create_auth(state: State) -> bytes:
    """Message 3: our signed identity, boxed so only the intended server can read it."""
    return _box(state["local"]["hello"], state["secret2"])


def server_verify_auth(state: State, data: bytes) -> State | None:
    """Server side of message 3: learn and check the client's long-term key; derive Ab."""
    if len(data) != CLIENT_AUTH_LENGTH:
        return None
    local, app_key = state["local"], state["app_key"]
    a_bob = _shared(_curve_sk(local["secretKey"]), state["remote"]["kx_pk"])
    if a_bob is None:
        return None
    secret2 = _hash(app_key, state["secret"], a_bob)
    hello = _unbox(data, secret2)
    if hello is None:
        return None
    sig, client_key = hello[:64], hello[64:]
    if not _verify(sig, app_key + local["publicKey"] + state["shash"], client_key):
        return None
    client_curve = _curve_pk(client_key)
    b_alice = _shared(local["kx_sk"], client_curve) if client_curve else None
    if b_alice is None:
        return None
    state = _copy(state)
    state["remote"].update(hello=hello, publicKey=client_key)
    state.update(a_bob=a_bob, secret2=secret2, b_alice=b_alice)
    state["secret3"] = _hash(app_key, state["secret"], a_bob, b_alice)
    return state


def server_create_accept(state: State) -> bytes:
    """Message 4: sign the client's proof, boxed under the full secret."""
    signed = state["app_key"] + state["remote"]["hello"] + state["shash"]
    return _box(_sign(signed, state["local"]["secretKey"]), state["secret3"])


def client_verify_accept(state: State, boxed: bytes) -> State | None:
    """Client side of message 4: the server proves it holds B's secret key."""
    if len(boxed) != SERVER_ACCEPT_LENGTH:
        return None
    local, remote, app_key = state["local"], state["remote"], state["app_key"]
    b_alice = _shared(_curve_sk(local["secretKey"]), remote["kx_pk"])
    if b_alice is None:
        return None
    secret3 = _hash(app_key, state["secret"], state["a_bob"], b_alice)
    sig = _unbox(boxed, secret3)
    signed = app_key + local["hello"] + state["shash"]
    if sig is None or not _verify(sig, signed, remote["publicKey"]):
        return None
    state = _copy(state)
    state.update(b_alice=b_alice, secret3=secret3)
    return state


def clean(state: State) -> State:
    """Keep only the session keys; forget every intermediate secret (forward secrecy)."""
    state = _copy(state)
    state["secret"] = _hash(state["secret3"])
    state["encryptKey"] = _hash(state["secret"], state["remote"]["publicKey"])
    state["decryptKey"] = _hash(state["secret"], state["local"]["publicKey"])
    for name in ("shash", "secret2", "secret3", "a_bob", "b_alice"):
        state[name] = None
    state["local"]["kx_sk"] = None
    return state


VECTOR_OPS: Final[dict[str, Callable[..., Any]]] = {
    "initialize": initialize,
    "createChallenge": create_challenge,
    "verifyChallenge": verify_challenge,
    "clientVerifyChallenge": client_verify_challenge,
    "clientCreateAuth": client_create_auth,
    "serverVerifyAuth": server_verify_auth,
    "serverCreateAccept": server_create_accept,
    "clientVerifyAccept": client_verify_accept,
    "clean": clean,
    "toKeys": to_keys,
}


# --- the state machine -----------------------------------------------------------------------


class HandshakeState(enum.Enum):
    """Where a Handshake is; see `_STEPS` for what each awaiting state expects."""

    START = "start"  # initial_bytes() not called yet
    CLIENT_AWAIT_CHALLENGE = "client awaits message 2"
    CLIENT_AWAIT_ACCEPT = "client awaits message 4"
    SERVER_AWAIT_HELLO = "server awaits message 1"
    SERVER_AWAIT_AUTH = "server awaits message 3"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class HandshakeResult:
    """What a finished handshake gives each side: who the peer is and the box-stream keys."""

    remote_public_key: bytes  # the peer's long-term Ed25519 key, now proven
    encrypt_key: bytes = field(repr=False)
    encrypt_nonce: bytes = field(repr=False)
    decrypt_key: bytes = field(repr=False)
    decrypt_nonce: bytes = field(repr=False)


SigningKeyLike = bytes | nacl.signing.SigningKey
Authorize = Callable[[bytes], bool]


def _key_pair(signing_key: SigningKeyLike) -> State:
    """Accept a SigningKey, a 32-byte seed or a 64-byte libsodium secret key."""
    if isinstance(signing_key, nacl.signing.SigningKey):
        signing_key = bytes(signing_key)  # PyNaCl's bytes() of a SigningKey is its seed
    if isinstance(signing_key, bytes) and len(signing_key) == 32:
        return to_keys(signing_key)
    if isinstance(signing_key, bytes) and len(signing_key) == 64:
        return {"publicKey": signing_key[32:], "secretKey": signing_key}
    raise LocalError("signing key must be a SigningKey, a 32-byte seed or a 64-byte secret key")


def _check_key(name: str, key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_LENGTH:
        raise LocalError(f"{name} must be {KEY_LENGTH} bytes")


class Handshake:
    """One side of one Secret Handshake, as a sans-IO machine (see the module docstring).

    Drive it with: send(hs.initial_bytes()); then for each chunk received,
    send(hs.receive_data(chunk)) until hs.is_done; on EOF call hs.receive_eof(). Then build the
    channel from hs.result and feed it hs.trailing_data first.
    """

    def __init__(self, state: State, role: str, authorize: Authorize | None) -> None:
        """Use Handshake.client() or Handshake.server()."""
        self._shs = initialize(state)
        self.local_public_key: bytes = self._shs["local"]["publicKey"]
        self._role = role
        self._authorize = authorize
        self._buffer = bytearray()
        self._result: HandshakeResult | None = None
        self.state = HandshakeState.START
        self.trailing_data = b""  # bytes received after message 4: the start of the box stream

    @classmethod
    def client(
        cls,
        network_key: bytes,
        signing_key: SigningKeyLike,
        server_public_key: bytes,
        *,
        ephemeral_seed: bytes | None = None,
    ) -> Handshake:
        """The dialling side: it must know the server's long-term key in advance."""
        _check_key("network key", network_key)
        _check_key("server public key", server_public_key)
        if _curve_pk(server_public_key) is None:
            raise LocalError("server public key is not a valid Ed25519 key")
        state = cls._base_state(network_key, signing_key, ephemeral_seed)
        state["remote"] = {"publicKey": server_public_key}
        return cls(state, "client", None)

    @classmethod
    def server(
        cls,
        network_key: bytes,
        signing_key: SigningKeyLike,
        authorize: Authorize,
        *,
        ephemeral_seed: bytes | None = None,
    ) -> Handshake:
        """The accepting side: `authorize(client_key)` says whether that node is a member."""
        _check_key("network key", network_key)
        state = cls._base_state(network_key, signing_key, ephemeral_seed)
        return cls(state, "server", authorize)

    @staticmethod
    def _base_state(network_key: bytes, signing_key: SigningKeyLike, seed: bytes | None) -> State:
        """Ephemeral randomness is injectable so that tests and simulations replay exactly."""
        random = nacl.utils.random(32) if seed is None else seed
        _check_key("ephemeral seed", random)
        return {"app_key": network_key, "local": _key_pair(signing_key), "random": random}

    # -- public surface --

    @property
    def is_done(self) -> bool:
        return self.state is HandshakeState.DONE

    @property
    def result(self) -> HandshakeResult:
        """The peer's identity and the session keys; LocalError before the handshake is done."""
        if self._result is None:
            raise LocalError(f"handshake has no result in state {self.state.name}")
        return self._result

    def initial_bytes(self) -> bytes:
        """Call once, first, on both sides: message 1 for the client, b"" for the server."""
        if self.state is not HandshakeState.START:
            raise LocalError(f"initial_bytes() called in state {self.state.name}")
        if self._role == "server":
            self.state = HandshakeState.SERVER_AWAIT_HELLO
            return b""
        self.state = HandshakeState.CLIENT_AWAIT_CHALLENGE
        return create_challenge(self._shs)

    def receive_data(self, data: bytes) -> bytes:
        """Consume received bytes; return what to send now (possibly b"")."""
        self._check_receiving("receive_data")
        self._buffer += data
        try:
            return self._run_steps()
        except BaseException:
            self._fail()
            raise

    def receive_eof(self) -> None:
        """The peer hung up mid-handshake: RemoteError saying what that most likely means."""
        self._check_receiving("receive_eof")
        awaited = self.state
        self._fail()
        raise RemoteError(f"the {self._peer} closed the connection: {_STEPS[awaited].eof}")

    # -- transitions --

    def _check_receiving(self, method: str) -> None:
        """Inputs are legal only while awaiting a message; the rest is the caller's bug."""
        if self.state in _STEPS:
            return
        hint = {
            HandshakeState.START: "call initial_bytes() first",
            HandshakeState.DONE: "the handshake is done: give later bytes to the channel",
            HandshakeState.FAILED: "the handshake already failed: close the connection",
        }[self.state]
        raise LocalError(f"{method}() in state {self.state.name}: {hint}")

    def _run_steps(self) -> bytes:
        """Process every complete message buffered; refuse bytes sent out of turn."""
        out = []
        while self.state in _STEPS and len(self._buffer) >= _STEPS[self.state].length:
            length = _STEPS[self.state].length
            message = bytes(self._buffer[:length])
            del self._buffer[:length]
            out.append(self._advance(message))
            if self._buffer and not self._may_have_trailing_data():
                raise RemoteError(
                    f"{self._peer} sent {len(self._buffer)} bytes out of turn ({self.state.name})"
                )
        if self.is_done:
            self.trailing_data, self._buffer = bytes(self._buffer), bytearray()
        return b"".join(out)

    def _may_have_trailing_data(self) -> bool:
        """Only the client, once done, may already hold the server's first box-stream bytes."""
        return self.is_done and self._role == "client"

    def _fail(self) -> None:
        self.state = HandshakeState.FAILED
        self._buffer = bytearray()
        self._shs = {}  # drop every secret

    @property
    def _peer(self) -> str:
        return "server" if self._role == "client" else "client"

    def _advance(self, message: bytes) -> bytes:
        """One row of the table: verify the message, check membership, move on, reply."""
        step = _STEPS[self.state]
        state = step.verify(self._shs, message)
        if state is None:
            raise RemoteError(step.refusal)
        if step.then is HandshakeState.DONE and self._authorize is not None:
            client_key = state["remote"]["publicKey"]
            if not self._authorize(client_key):
                raise RemoteError(f"client {client_key.hex()} is not a member (unknown or revoked)")
        reply = step.reply(state)
        self._shs, self.state = state, step.then
        if self.is_done:
            self._finish()
        return reply

    def _finish(self) -> None:
        """Derive the session keys and forget everything else."""
        state = clean(self._shs)
        self._result = HandshakeResult(
            remote_public_key=state["remote"]["publicKey"],
            encrypt_key=state["encryptKey"],
            encrypt_nonce=state["remote"]["app_mac"][:24],
            decrypt_key=state["decryptKey"],
            decrypt_nonce=state["local"]["app_mac"][:24],
        )
        self._shs = {}


@dataclass(frozen=True)
class _Step:
    """A row of the transition table: what an awaiting state expects and does with it."""

    length: int  # bytes of the awaited message
    verify: Callable[[State, bytes], State | None]  # a pure function above
    refusal: str  # the RemoteError when verify says no
    then: HandshakeState
    reply: Callable[[State], bytes]  # what to send once verified
    eof: str  # what the peer hanging up here most likely means


_S = HandshakeState
# The transition table. States not in it (START, DONE, FAILED) refuse input: see _check_receiving.
_STEPS: Final[dict[HandshakeState, _Step]] = {
    _S.SERVER_AWAIT_HELLO: _Step(
        CHALLENGE_LENGTH,
        verify_challenge,
        "message 1 failed the network-key MAC: the client uses another network key "
        "(or is no gossip-backer peer); closing without a reply",
        _S.SERVER_AWAIT_AUTH,
        create_challenge,
        eof="it left before sending message 1",
    ),
    _S.CLIENT_AWAIT_CHALLENGE: _Step(
        CHALLENGE_LENGTH,
        client_verify_challenge,
        "message 2 failed the network-key MAC: the server uses another network key",
        _S.CLIENT_AWAIT_ACCEPT,
        client_create_auth,
        eof="it refused message 1 (it uses another network key?)",
    ),
    _S.SERVER_AWAIT_AUTH: _Step(
        CLIENT_AUTH_LENGTH,
        server_verify_auth,
        "message 3 did not verify: the client dialled another server key, "
        "or its proof of identity was forged or damaged",
        _S.DONE,
        server_create_accept,
        eof="it refused message 2 (it uses another network key, or expected another server)",
    ),
    _S.CLIENT_AWAIT_ACCEPT: _Step(
        SERVER_ACCEPT_LENGTH,
        client_verify_accept,
        "message 4 did not verify: the server could not prove it holds the key we dialled",
        _S.DONE,
        lambda state: b"",
        eof="it refused message 3 (it is not the key we dialled, or we are not a member: "
        "unknown or revoked)",
    ),
}
