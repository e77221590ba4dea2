"""Fuzzing every decoder a peer (or a pasted invite) reaches, with random and mutated valid inputs.

Targets (each takes bytes):
- `frames`: the plain length-prefixed frame reader (wire/framing.py);
- `connection`: a listening PeerConnection fed a real dialer's pre-hello and handshake bytes,
  mutated (crypto/prehello.py, crypto/handshake.py, protocol/peer.py);
- `messages`: wire/messages.decode, then the decoded message handed to a Replica (the gossip
  logic, signature checks, update decoding) as if a connected member had sent it;
- `updates`: an update body (payload msgpack) as a Delta carries it (crypto/identity.py,
  core/record.py);
- `invites`: Invite.from_text (core/invite.py), on text and on the packed fields.

Inputs: valid seeds, mutated as bytes (flips, splices, truncations, msgpack type bytes) or as
msgpack trees (a node swapped for a value of another type), and plain random bytes. The only
exceptions allowed are the project's own (gossip_backer.errors.BackerError); anything else is an
"unclean" exception and fails the campaign. `python -m tests.fault.fuzz N` runs N inputs.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from gossip_backer.core import delta
from gossip_backer.core.invite import Invite
from gossip_backer.core.metamap import MetaMap
from gossip_backer.core.record import Block, FileRecord, Grant, LiveGlob, MemberInfo, Revoke
from gossip_backer.core.vv import VersionVector
from gossip_backer.crypto.identity import Identity, Verifier, make_update, update_from_wire
from gossip_backer.errors import BackerError
from gossip_backer.protocol.peer import PeerConnection
from gossip_backer.protocol import transfer
from gossip_backer.protocol.replica import Replica
from gossip_backer.wire import messages as m
from gossip_backer.wire.codec import pack, unpack
from gossip_backer.wire.framing import NEED_DATA, FrameBuffer, frame

MESH_ID = "fuzz-mesh"
SECRET = hashlib.blake2b(b"fuzz secret", digest_size=32).digest()


def _ident(n: int) -> Identity:
    return Identity.from_seed(hashlib.blake2b(bytes([n]), digest_size=32).digest())


FOUNDER, MEMBER, DIALER = _ident(1), _ident(2), _ident(3)


ODD_PATH = b"dir\xfe/bad\xffname.txt".decode("utf-8", "surrogateescape")


def _updates() -> list:
    vv = VersionVector({FOUNDER.public: 3})
    h = hashlib.blake2b(b"content", digest_size=32).digest()
    rec = FileRecord(path="dir/a.txt", kind="file", vv=vv, origin=FOUNDER.public, size=7,
                     mtime_ns=1_700_000_000_000_000_000, hash=h, block_size=128 * 1024,
                     blocks=(Block(h, 12345),))
    payloads = [Grant(FOUNDER.public, "founder", False, 1), Grant(MEMBER.public, "m", False, 2),
                rec, MemberInfo(FOUNDER.public, "founder", ("127.0.0.1:7440",), 4),
                LiveGlob("*.md", True, 5), Revoke(DIALER.public, 0, 6),
                dataclasses.replace(rec, path=ODD_PATH)]  # a name that is not UTF-8: a bin
    return [make_update(FOUNDER, MESH_ID, i + 1, p) for i, p in enumerate(payloads)]


UPDATES = _updates()
WIRE_UPDATES = [(u.origin, u.seq, u.body, u.sig) for u in UPDATES]
MESSAGES = [
    m.Hello(1, "node", ("127.0.0.1:7440",), False), m.Refuse("no"),
    m.Digest({FOUNDER.public: 3, MEMBER.public: 1}, True), m.Summary(b"\x01" * 32, 2),
    m.Delta(tuple(WIRE_UPDATES)), m.DeltaAck(100, 90), m.Ping(7), m.Pong(7),
    m.BlockRequest(1, b"\x02" * 32, b"\x03" * 32, 0, 1024), m.BlockData(1, b"data"),
    m.BlockMissing(1), m.InviteClaim(MEMBER.public, "x", b"\x04" * 64),
    m.InviteResult(True, "welcome"), m.LiveSync("a.md", 0, b"\x00\x01"),
    m.HistoryRequest(3, "dir/a.txt"), m.HistoryRequest(4, ODD_PATH),
    m.DeltaRequest(4, b"\x02" * 32, b"\x03" * 32, 0, 1024, 1000, 128, b"\x00" + b"\x07" * 48),
    m.DeltaRequest(5, b"\x02" * 32, b"\x03" * 32, 0, 1024, 1000, 512,
                   b"\x06" + b"\x07" * 12 + b"\x08" * 16),
    m.DeltaData(4, b"\x00\x01\x04\x00\x00abcd"),
    m.HistoryReply(3, ((b"\x05" * 32, 7, 1_700_000_000_000_000_000, FOUNDER.public),)),
]
INVITE = Invite(SECRET, FOUNDER.public, FOUNDER.public, ("127.0.0.1:7440", "[::1]:7440"), False,
                1.9e9, b"\x06" * 32)


def _transcript() -> list[bytes]:
    """What a real dialer sends a listener, step by step, up to the first messages."""
    dialer = PeerConnection(DIALER, SECRET, lambda k: True, initiator=True)
    listener = PeerConnection(FOUNDER, SECRET, lambda k: True, initiator=False)
    sent: list[bytes] = []
    out = dialer.initial_bytes()
    for _ in range(8):
        if not out:
            break
        sent.append(out)
        listener.receive_data(out)
        back = listener.data_to_send()
        dialer.receive_data(back)
        out = dialer.data_to_send()
    if dialer.state.value == "open":
        sent.append(dialer.send(m.Hello(1, "dialer", (), False)) + dialer.send(m.Ping(1)))
    return sent


# -- mutation ------------------------------------------------------------------------------
INTERESTING = [b"\xc0", b"\xc2", b"\xc3", b"\x90", b"\x80", b"\xa0", b"\xc4\x00", b"\xdc\xff\xff",
               b"\xdd\xff\xff\xff\xff", b"\xce\xff\xff\xff\xff", b"\xd3\x80" + b"\x00" * 7,
               b"\xcb\x7f\xf8" + b"\x00" * 6, b"\xd9\xff", b"\xc7\x05\x01", b"\xff", b"\x00"]


def _random_plain(rng: random.Random, depth: int = 0) -> object:
    """A random msgpack value (containers only near the top, so it stays small)."""
    makers = [
        lambda: None, lambda: True, lambda: rng.randrange(-2**63, 2**64),
        lambda: rng.random() * 1e20, lambda: "x" * rng.randrange(40),
        lambda: rng.randbytes(rng.choice((0, 1, 32, 64, 65))), lambda: rng.randrange(256),
        lambda: "dir/../x\x00",
        lambda: [_random_plain(rng, depth + 1) for _ in range(rng.randrange(5))],
        lambda: {_random_key(rng): _random_plain(rng, depth + 1) for _ in range(rng.randrange(4))},
        lambda: [rng.randrange(30)] + [_random_plain(rng, depth + 1) for _ in range(rng.randrange(7))],
    ]
    return makers[rng.randrange(len(makers) if depth < 3 else 8)]()


def _random_key(rng: random.Random) -> object:
    return rng.choice([rng.randbytes(32), rng.randbytes(3), 5, "k", None, 1.5])


def mutate_plain(plain: object, rng: random.Random) -> object:
    """Replace one node of a msgpack tree by a random value (maybe of another type)."""
    if isinstance(plain, (list, tuple)) and plain and rng.random() < 0.8:
        items = list(plain)
        i = rng.randrange(len(items))
        r = rng.random()
        if r < 0.1:
            del items[i]
        elif r < 0.2:
            items.insert(i, _random_plain(rng))
        else:
            items[i] = mutate_plain(items[i], rng)
        return items
    if isinstance(plain, dict) and plain and rng.random() < 0.8:
        d = dict(plain)
        k = rng.choice(list(d))
        if rng.random() < 0.3:
            d[_random_key(rng)] = d.pop(k)
        else:
            d[k] = mutate_plain(d[k], rng)
        return d
    if isinstance(plain, bytes) and plain and rng.random() < 0.5:
        b = bytearray(plain)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if isinstance(plain, int) and not isinstance(plain, bool) and rng.random() < 0.5:
        return rng.choice([-1, 0, 2**31, 2**63 - 1, -2**63, plain + 1, plain - 1])
    return _random_plain(rng)


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 8))):
        op = rng.randrange(7)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[min(pos, len(b) - 1)] = rng.randrange(256)
        elif op == 2:
            b[pos:pos] = rng.choice(INTERESTING)
        elif op == 3:
            del b[pos:pos + rng.randrange(1, 16)]
        elif op == 4:
            del b[pos:]
        elif op == 5 and b:
            start = rng.randrange(len(b))
            b[pos:pos] = b[start:start + rng.randrange(1, 32)]
        else:
            b[pos:pos] = rng.randbytes(rng.randrange(1, 8))
    return bytes(b)


# -- targets -------------------------------------------------------------------------------
def t_frames(data: bytes) -> None:
    fb = FrameBuffer(1 << 16)
    for i in range(0, len(data), 7):
        fb.feed(data[i:i + 7])
        while fb.next() is not NEED_DATA:
            pass
    fb.feed_eof()


def t_connection(data: bytes) -> None:
    conn = PeerConnection(FOUNDER, SECRET, lambda k: True, initiator=False)
    for event in conn.receive_data(data):
        pass
    conn.data_to_send()
    conn.receive_eof()


class _Peer:
    """A replica with a connected member, fed one decoded message at a time."""

    def __init__(self) -> None:
        self.replica = None

    def receive(self, message: object) -> None:
        if self.replica is None or len(self.replica.metamap._logs) > 50:
            mm = MetaMap(FOUNDER.public, Verifier(MESH_ID))
            self.replica = Replica(mm, MEMBER.public)
            self.replica.connect(FOUNDER.public, 0.0)
        self.replica.receive(FOUNDER.public, message, 1.0)
        self.replica.take_pending()


_PEER = _Peer()


def t_messages(data: bytes) -> None:
    msg = m.decode(data)
    if isinstance(msg, m.DeltaRequest) and transfer.delta_request_ok(msg):
        transfer.delta_answer(msg, DELTA_NEW[: msg.size])  # what the block server works out
    elif not isinstance(msg, (m.Hello, m.InviteClaim, m.InviteResult, m.BlockRequest,
                              m.BlockData, m.BlockMissing, m.HistoryRequest, m.HistoryReply,
                              m.LiveSync, m.DeltaRequest, m.DeltaData)):
        _PEER.receive(msg)  # those the runtime hands to the replica


DELTA_OLD = b"".join(b"line %d of the old text\n" % i for i in range(400))
DELTA_NEW = DELTA_OLD[:3000] + b"an edited line\n" + DELTA_OLD[3100:]
DELTA_SEEDS = [delta.encode(DELTA_NEW, c, len(DELTA_OLD), delta.signature(DELTA_OLD, c, p))
               for c, p in ((128, 0), (512, 0), (512, 64))]


def t_deltas(data: bytes) -> None:
    """A DeltaData's bytes, rebuilt against the old text (as the puller does)."""
    for unit in (128, 512, 64):
        delta.decode(DELTA_OLD, unit, data, len(DELTA_NEW))


def t_updates(data: bytes) -> None:
    u = WIRE_UPDATES[len(data) % len(WIRE_UPDATES)]
    update_from_wire((u[0], u[1], data, u[3]))
    _PEER.receive(m.Delta(((u[0], u[1], data, u[3]),)))


def t_invites(data: bytes) -> None:
    text = (data.decode("latin-1") if data[:1] == b"!" else
            "backer-invite-1:" + base64.urlsafe_b64encode(data).decode().rstrip("="))
    Invite.from_text(text, unpack)


@dataclass
class Target:
    fn: Callable[[bytes], None]
    seeds: list[bytes]
    plain: bool  # seeds are msgpack: mutate their trees too
    weight: int


def targets() -> dict[str, Target]:
    framed = [frame(pack(x)) for x in ("hello", [1, 2, 3])] + [frame(b"")]
    return {
        "frames": Target(t_frames, [b"".join(framed)], False, 1),
        "connection": Target(t_connection, _transcript(), False, 1),
        "messages": Target(t_messages, [m.encode(x) for x in MESSAGES], True, 4),
        "updates": Target(t_updates, [u.body for u in UPDATES], True, 3),
        "deltas": Target(t_deltas, DELTA_SEEDS, False, 2),
        "invites": Target(t_invites, [pack(INVITE.to_plain()),
                                      b"!" + INVITE.to_text(pack).encode()], True, 1),
    }


@dataclass
class Report:
    inputs: Counter = field(default_factory=Counter)
    unclean: list = field(default_factory=list)  # (target, exception repr, input hex, traceback)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.inputs.values())


def make_input(t: Target, rng: random.Random) -> bytes:
    r = rng.random()
    seed = rng.choice(t.seeds)
    if r < 0.05:
        return rng.randbytes(rng.randrange(200))
    if r < 0.10:
        return seed
    if t.plain and r < 0.6:
        try:
            tree = unpack(seed)
        except BackerError:
            return mutate_bytes(seed, rng)
        out = tree
        for _ in range(rng.choice((1, 1, 2, 4))):
            out = mutate_plain(out, rng)
        try:
            return pack(out)
        except Exception:  # a random tree msgpack cannot hold: mutate bytes instead
            return mutate_bytes(seed, rng)
    if t.fn is t_connection and r < 0.9:  # a valid prefix, then a mutated step
        step = rng.randrange(len(t.seeds))
        return b"".join(t.seeds[:step]) + mutate_bytes(t.seeds[step], rng)
    return mutate_bytes(seed, rng)


def run(n: int, seed: int = 0, max_unclean: int = 20) -> Report:
    """`n` inputs spread over the targets by weight; returns what happened."""
    rng = random.Random(seed)
    ts = targets()
    names = [name for name, t in ts.items() for _ in range(t.weight)]
    report = Report()
    start = time.perf_counter()
    for _ in range(n):
        name = rng.choice(names)
        t = ts[name]
        data = make_input(t, rng)
        report.inputs[name] += 1
        try:
            t.fn(data)
        except BackerError:
            pass
        except Exception as exc:  # noqa: BLE001 - this is what the campaign counts
            if len(report.unclean) < max_unclean:
                report.unclean.append((name, repr(exc), data.hex(), traceback.format_exc()))
            else:
                report.unclean.append((name, repr(exc), "", ""))
    report.seconds = time.perf_counter() - start
    return report


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 10_000
    seed = int(argv[1]) if len(argv) > 1 else 0
    rep = run(n, seed)
    print(f"{rep.total} inputs in {rep.seconds:.1f} s ({rep.total / rep.seconds:,.0f}/s): "
          f"{dict(rep.inputs)}; unclean exceptions: {len(rep.unclean)}")
    for name, exc, data, tb in rep.unclean[:5]:
        print(f"--- {name}: {exc}\n{data}\n{tb}")
    return 1 if rep.unclean else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
