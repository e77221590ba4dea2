"""Secret Handshake: every published test vector, pure pairs, refusals, the transition table."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip_backer.crypto import handshake as shs
from gossip_backer.crypto.handshake import Handshake, HandshakeState
from gossip_backer.errors import LocalError, RemoteError

VECTORS_PATH = Path(
    os.environ.get("BACKER_VECTORS")
    or Path(__file__).parents[2].parent / "shared" / "vectors" / "secret-handshake-vectors.json"
)
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text())

NETWORK_KEY = bytes(range(32))
CLIENT_SEED = b"c" * 32
SERVER_SEED = b"s" * 32
CLIENT_PK = shs.to_keys(CLIENT_SEED)["publicKey"]
SERVER_PK = shs.to_keys(SERVER_SEED)["publicKey"]
CLIENT_EPH = b"\x01" * 32
SERVER_EPH = b"\x02" * 32


# --- the vectors -------------------------------------------------------------------------------


def decode(value: Any) -> Any:
    """Hex strings -> bytes, recursively (other JSON values pass through)."""
    if isinstance(value, str):
        return bytes.fromhex(value)
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def state_before_clean(index: int) -> dict[str, Any]:
    """The reference logged `clean`'s argument after clean mutated it in place, so its input is
    the state the previous operation (serverCreateAccept or clientVerifyAccept) worked on."""
    prev = VECTORS[index - 1]
    assert prev["name"] in ("serverCreateAccept", "clientVerifyAccept")
    return decode(prev["result"] if isinstance(prev["result"], dict) else prev["args"][0])


def test_vector_file_covers_every_operation() -> None:
    assert len(VECTORS) == 159
    assert {v["name"] for v in VECTORS} == set(shs.VECTOR_OPS)
    assert any(v["result"] is None for v in VECTORS)  # refusals are covered too


@pytest.mark.parametrize(
    "index", range(len(VECTORS)), ids=[f"{i}-{v['name']}" for i, v in enumerate(VECTORS)]
)
def test_vector(index: int) -> None:
    vector = VECTORS[index]
    if vector["name"] == "clean":
        assert vector["args"][0] == vector["result"]  # the logging quirk described above
        got = shs.clean(state_before_clean(index))
    else:
        got = shs.VECTOR_OPS[vector["name"]](*decode(vector["args"]))
    assert encode(got) == vector["result"]


def test_pure_functions_do_not_mutate_their_input() -> None:
    index = next(
        i for i, v in enumerate(VECTORS) if v["name"] == "serverVerifyAuth" and v["result"]
    )
    state, packet = decode(VECTORS[index]["args"])
    before = json.dumps(encode(state), sort_keys=True)
    shs.server_verify_auth(state, packet)
    shs.clean(shs.server_verify_auth(state, packet))
    assert json.dumps(encode(state), sort_keys=True) == before


def test_crypto_auth_is_hmac_sha512_truncated() -> None:
    """Spot check of the first vector's app_mac against the stdlib, spelled out."""
    state = decode(VECTORS[0]["result"])
    mac = hmac.new(state["app_key"], state["local"]["kx_pk"], hashlib.sha512).digest()[:32]
    assert mac == state["local"]["app_mac"]


# --- pure pairs ----------------------------------------------------------------------------------


def make_pair(
    *,
    client_net: bytes = NETWORK_KEY,
    server_net: bytes = NETWORK_KEY,
    dial: bytes = SERVER_PK,
    authorize: Any = lambda key: True,
) -> tuple[Handshake, Handshake]:
    client = Handshake.client(client_net, CLIENT_SEED, dial, ephemeral_seed=CLIENT_EPH)
    server = Handshake.server(server_net, SERVER_SEED, authorize, ephemeral_seed=SERVER_EPH)
    return client, server


def exchange(client: Handshake, server: Handshake) -> list[bytes]:
    """Run the four messages; return them."""
    assert server.initial_bytes() == b""
    m1 = client.initial_bytes()
    m2 = server.receive_data(m1)
    m3 = client.receive_data(m2)
    m4 = server.receive_data(m3)
    assert client.receive_data(m4) == b""
    return [m1, m2, m3, m4]


MESSAGES = exchange(*make_pair())  # deterministic: fixed keys and ephemeral seeds


def test_message_lengths() -> None:
    assert [len(m) for m in MESSAGES] == [64, 64, 112, 80]


def test_success_gives_both_sides_matching_keys_and_identities() -> None:
    client, server = make_pair()
    exchange(client, server)
    assert client.is_done and server.is_done
    c, s = client.result, server.result
    assert c.remote_public_key == SERVER_PK and s.remote_public_key == CLIENT_PK
    assert (c.encrypt_key, c.encrypt_nonce) == (s.decrypt_key, s.decrypt_nonce)
    assert (c.decrypt_key, c.decrypt_nonce) == (s.encrypt_key, s.encrypt_nonce)
    assert c.encrypt_key != c.decrypt_key and c.encrypt_nonce != c.decrypt_nonce
    assert len(c.encrypt_key) == 32 and len(c.encrypt_nonce) == 24
    assert client.trailing_data == b"" and server.trailing_data == b""


def test_success_with_roles_swapped_and_signing_key_objects() -> None:
    a_key, b_key = nacl.signing.SigningKey.generate(), nacl.signing.SigningKey.generate()
    b_pub = bytes(b_key.verify_key)
    seen = []
    client = Handshake.client(NETWORK_KEY, a_key, b_pub)
    server = Handshake.server(NETWORK_KEY, b_key, lambda k: seen.append(k) or True)
    exchange(client, server)
    assert seen == [bytes(a_key.verify_key)]
    assert client.result.remote_public_key == b_pub
    assert client.local_public_key == bytes(a_key.verify_key)


def test_fresh_ephemeral_keys_give_fresh_session_keys() -> None:
    results = []
    for _ in range(2):
        client = Handshake.client(NETWORK_KEY, CLIENT_SEED, SERVER_PK)
        server = Handshake.server(NETWORK_KEY, SERVER_SEED, lambda k: True)
        exchange(client, server)
        results.append(client.result.encrypt_key)
    assert results[0] != results[1]  # forward secrecy: nothing long-term decides them


def test_one_byte_at_a_time() -> None:
    client, server = make_pair()
    server.initial_bytes()
    to_server, to_client = client.initial_bytes(), b""
    while not (client.is_done and server.is_done):
        if to_server:
            to_client += server.receive_data(to_server[:1])
            to_server = to_server[1:]
        if to_client:
            to_server += client.receive_data(to_client[:1])
            to_client = to_client[1:]
    assert client.result.encrypt_key == server.result.decrypt_key


def test_client_keeps_bytes_after_message_4_as_trailing_data() -> None:
    client, server = make_pair()
    server.initial_bytes()
    client.receive_data(server.receive_data(client.initial_bytes()))
    m4 = server.receive_data(MESSAGES[2])
    assert client.receive_data(m4 + b"first frame") == b""
    assert client.is_done and client.trailing_data == b"first frame"


# --- refusals ------------------------------------------------------------------------------------


def test_wrong_network_key_server_refuses_message_1_silently() -> None:
    client, server = make_pair(client_net=b"\xee" * 32)
    server.initial_bytes()
    with pytest.raises(RemoteError, match="network key"):
        server.receive_data(client.initial_bytes())  # raises: nothing to send, ever
    assert server.state is HandshakeState.FAILED
    with pytest.raises(RemoteError, match="refused message 1"):
        client.receive_eof()  # what the client sees: the server hung up


def test_client_rejects_server_with_other_network_key() -> None:
    client = Handshake.client(b"\xee" * 32, CLIENT_SEED, SERVER_PK)
    client.initial_bytes()
    with pytest.raises(RemoteError, match="network key"):
        client.receive_data(MESSAGES[1])


def test_client_expecting_another_server_key_is_refused_at_message_3() -> None:
    other = shs.to_keys(b"o" * 32)["publicKey"]
    client, server = make_pair(dial=other)
    server.initial_bytes()
    m3 = client.receive_data(server.receive_data(client.initial_bytes()))
    with pytest.raises(RemoteError, match="another server key"):
        server.receive_data(m3)
    with pytest.raises(RemoteError, match="refused message 3"):
        client.receive_eof()


@pytest.mark.parametrize("reason", ["unknown", "revoked"])
def test_server_refuses_client_that_authorize_rejects(reason: str) -> None:
    asked = []
    client, server = make_pair(authorize=lambda key: asked.append(key) or False)
    server.initial_bytes()
    m3 = client.receive_data(server.receive_data(client.initial_bytes()))
    with pytest.raises(RemoteError, match="not a member"):
        server.receive_data(m3)
    assert asked == [CLIENT_PK]
    with pytest.raises(LocalError):
        server.result
    with pytest.raises(RemoteError):
        client.receive_eof()


def test_authorize_exception_propagates_and_fails_the_handshake() -> None:
    def boom(key: bytes) -> bool:
        raise KeyError("members table")

    _, server = make_pair(authorize=boom)
    server.initial_bytes()
    server.receive_data(MESSAGES[0])
    with pytest.raises(KeyError):
        server.receive_data(MESSAGES[2])
    assert server.state is HandshakeState.FAILED


def test_tampered_message_4_is_rejected() -> None:
    client, _ = make_pair()
    client.initial_bytes()
    client.receive_data(MESSAGES[1])
    bad = bytearray(MESSAGES[3])
    bad[40] ^= 1
    with pytest.raises(RemoteError, match="message 4"):
        client.receive_data(bytes(bad))


def test_low_order_ephemeral_key_with_valid_mac_is_a_remote_error() -> None:
    """Someone holding the network key sends the zero point: X25519 would yield all zeros."""
    zero = bytes(32)
    mac = hmac.new(NETWORK_KEY, zero, hashlib.sha512).digest()[:32]
    _, server = make_pair()
    server.initial_bytes()
    with pytest.raises(RemoteError):
        server.receive_data(mac + zero)


@pytest.mark.parametrize("which", range(4))
def test_truncated_message_then_eof(which: int) -> None:
    machine = machine_at(*AWAITING[which])
    assert machine.receive_data(MESSAGES[which][:-1]) == b""  # waits for the rest
    with pytest.raises(RemoteError, match="closed the connection"):
        machine.receive_eof()
    assert machine.state is HandshakeState.FAILED


@pytest.mark.parametrize("which", range(4))
def test_garbage_of_the_right_length_is_refused(which: int) -> None:
    machine = machine_at(*AWAITING[which])
    with pytest.raises(RemoteError):
        machine.receive_data(os.urandom(len(MESSAGES[which])))


def test_bad_local_arguments_are_local_errors() -> None:
    with pytest.raises(LocalError):
        Handshake.client(b"short", CLIENT_SEED, SERVER_PK)
    with pytest.raises(LocalError):
        Handshake.client(NETWORK_KEY, b"bad seed", SERVER_PK)
    with pytest.raises(LocalError):
        Handshake.client(NETWORK_KEY, CLIENT_SEED, bytes(32))  # not a valid Ed25519 point
    with pytest.raises(LocalError):
        Handshake.server(NETWORK_KEY, SERVER_SEED, lambda k: True, ephemeral_seed=b"x")


# --- the transition table -------------------------------------------------------------------------

S = HandshakeState
CLIENT_STATES = [S.START, S.CLIENT_AWAIT_CHALLENGE, S.CLIENT_AWAIT_ACCEPT, S.DONE, S.FAILED]
SERVER_STATES = [S.START, S.SERVER_AWAIT_HELLO, S.SERVER_AWAIT_AUTH, S.DONE, S.FAILED]
# (role, state) of the machine that awaits message i, and the messages that bring it there
AWAITING = [("server", S.SERVER_AWAIT_HELLO), ("client", S.CLIENT_AWAIT_CHALLENGE),
            ("server", S.SERVER_AWAIT_AUTH), ("client", S.CLIENT_AWAIT_ACCEPT)]  # fmt: skip
AWAITED = {state: MESSAGES[i] for i, (_, state) in enumerate(AWAITING)}
NEXT_STATE = {
    S.SERVER_AWAIT_HELLO: S.SERVER_AWAIT_AUTH,
    S.CLIENT_AWAIT_CHALLENGE: S.CLIENT_AWAIT_ACCEPT,
    S.SERVER_AWAIT_AUTH: S.DONE,
    S.CLIENT_AWAIT_ACCEPT: S.DONE,
}


def machine_at(role: str, state: HandshakeState) -> Handshake:
    """A fresh machine driven to `state` with the recorded (deterministic) messages."""
    client, server = make_pair()
    machine = client if role == "client" else server
    if state is S.START:
        return machine
    machine.initial_bytes()
    if state is S.FAILED:
        with pytest.raises(RemoteError):
            machine.receive_eof()
        return machine
    feed = {"client": [MESSAGES[1], MESSAGES[3]], "server": [MESSAGES[0], MESSAGES[2]]}[role]
    for message in feed:
        if machine.state is state:
            break
        machine.receive_data(message)
    assert machine.state is state
    return machine


INPUTS = ["initial_bytes", "awaited message", "empty data", "message plus one byte",
          "garbage", "eof", "result"]  # fmt: skip


def expected(role: str, state: HandshakeState, action: str) -> tuple[type | None, HandshakeState]:
    """The documented table: (exception raised or None, state afterwards)."""
    awaiting = state in NEXT_STATE
    if action == "initial_bytes":
        first = S.CLIENT_AWAIT_CHALLENGE if role == "client" else S.SERVER_AWAIT_HELLO
        return (None, first) if state is S.START else (LocalError, state)
    if action == "result":
        return (None, state) if state is S.DONE else (LocalError, state)
    if not awaiting:  # START, DONE and FAILED take no input: the caller's bug
        return LocalError, state
    if action == "awaited message":
        return None, NEXT_STATE[state]
    if action == "empty data":
        return None, state
    if action == "message plus one byte":  # only the client, once done, may see extra bytes
        return (None, S.DONE) if state is S.CLIENT_AWAIT_ACCEPT else (RemoteError, S.FAILED)
    return RemoteError, S.FAILED  # garbage, eof


def act(machine: Handshake, action: str) -> Any:
    message = AWAITED.get(machine.state, MESSAGES[0])
    return {
        "initial_bytes": machine.initial_bytes,
        "awaited message": lambda: machine.receive_data(message),
        "empty data": lambda: machine.receive_data(b""),
        "message plus one byte": lambda: machine.receive_data(message + b"!"),
        "garbage": lambda: machine.receive_data(bytes(len(message))),
        "eof": machine.receive_eof,
        "result": lambda: machine.result,
    }[action]()


TABLE = [
    (role, state, action)
    for role, states in (("client", CLIENT_STATES), ("server", SERVER_STATES))
    for state in states
    for action in INPUTS
]


@pytest.mark.parametrize("role,state,action", TABLE, ids=[f"{r}-{s.name}-{a}" for r, s, a in TABLE])
def test_transition_table(role: str, state: HandshakeState, action: str) -> None:
    machine = machine_at(role, state)
    error, after = expected(role, state, action)
    if error is None:
        act(machine, action)
    else:
        with pytest.raises(error):
            act(machine, action)
    assert machine.state is after


def test_plus_one_byte_in_done_client_is_kept() -> None:
    machine = machine_at("client", S.CLIENT_AWAIT_ACCEPT)
    machine.receive_data(MESSAGES[3] + b"!")
    assert machine.trailing_data == b"!"


def test_server_answers_nothing_after_out_of_turn_bytes() -> None:
    machine = machine_at("server", S.SERVER_AWAIT_HELLO)
    with pytest.raises(RemoteError, match="out of turn"):
        machine.receive_data(MESSAGES[0] + MESSAGES[2])  # message 3 before seeing message 2


# --- fuzzing --------------------------------------------------------------------------------------


def _feed_then_eof(machine: Handshake, data: bytes) -> None:
    """Only RemoteError may come out; a short input just waits, then EOF fails it."""
    try:
        machine.receive_data(data)
        machine.receive_eof()
    except RemoteError:
        assert machine.state is S.FAILED
        return
    pytest.fail("random bytes completed a handshake step")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_random_message_1_only_raises_remote_error(data: bytes) -> None:
    _feed_then_eof(machine_at("server", S.SERVER_AWAIT_HELLO), data)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=250))
def test_random_message_3_only_raises_remote_error(data: bytes) -> None:
    _feed_then_eof(machine_at("server", S.SERVER_AWAIT_AUTH), data)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([S.CLIENT_AWAIT_CHALLENGE, S.CLIENT_AWAIT_ACCEPT]))
def test_random_server_messages_only_raise_remote_error(data: bytes, state: HandshakeState) -> None:
    _feed_then_eof(machine_at("client", state), data)
