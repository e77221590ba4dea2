"""Share links as replicated state, and every decision about serving one (SPEC.md "Share links").

A link is a `Share` record in the mesh's CRDT map under key "s:TOKEN": made on any node, it
reaches every node by gossip; a revocation is the same record with `revoked=True`, written with a
greater Lamport clock, so the last writer wins everywhere (a revoked link never comes back: a
revocation also wins any tie). Each serving node counts its own downloads in a `ShareCount`
record ("c:TOKEN", one per node, only its newest kept): the total is their sum, a grow-only
counter.

Decisions, all pure (`now` is an argument): is a link servable now (`state`), which mesh path a
URL's rest names inside a link (`target`: the traversal rules), does a password match
(`password_matches`, scrypt), how long to make the next password answer wait (`PasswordGuard`),
and which byte range a Range header asks for (`byte_range`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import ClassVar

from gossip_backer.core.paths import BadPath, check

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22,86}$")  # >= 128 bits of base64url
SALT_BYTES = 16
KEY_BYTES = 32
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}
ACTIVE, EXPIRED, REVOKED, MISSING = "active", "expired", "revoked", "missing"


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise ValueError(f"malformed record: {what}")


@dataclass(frozen=True, slots=True)
class Share:
    """A public read-only link to `path` ("" is the whole root). `expires` is Unix seconds (0:
    never); `password` is salt + scrypt key (b"": none)."""

    TAG: ClassVar[str] = "s"
    token: str
    path: str
    expires: int
    password: bytes
    revoked: bool
    created: int
    clock: int

    @property
    def key(self) -> str:
        return "s:" + self.token

    def to_plain(self) -> list:
        return [self.token, self.path, self.expires, self.password, self.revoked, self.created,
                self.clock]

    @classmethod
    def from_plain(cls, plain: list) -> "Share":
        _need(isinstance(plain, list) and len(plain) == 7, "share shape")
        token, path, expires, password, revoked, created, clock = plain
        _need(isinstance(token, str) and TOKEN_RE.match(token) is not None, "share token")
        _need(isinstance(path, str) and (path == "" or _valid_path(path)), "share path")
        _need(isinstance(expires, int) and expires >= 0, "share expiry")
        _need(isinstance(password, bytes) and len(password) in (0, SALT_BYTES + KEY_BYTES),
              "share password")
        _need(isinstance(revoked, bool), "share revoked")
        _need(isinstance(created, int) and isinstance(clock, int), "share clock")
        return cls(token, path, expires, password, revoked, created, clock)


@dataclass(frozen=True, slots=True)
class ShareCount:
    """How many downloads of link `token` the signing node has served."""

    TAG: ClassVar[str] = "c"
    token: str
    count: int

    @property
    def key(self) -> str:
        return "c:" + self.token

    def to_plain(self) -> list:
        return [self.token, self.count]

    @classmethod
    def from_plain(cls, plain: list) -> "ShareCount":
        _need(isinstance(plain, list) and len(plain) == 2, "count shape")
        token, count = plain
        _need(isinstance(token, str) and TOKEN_RE.match(token) is not None, "count token")
        _need(isinstance(count, int) and count >= 0, "count")
        return cls(token, count)


def _valid_path(path: str) -> bool:
    try:
        return check(path) == path
    except BadPath:
        return False


def newer(current: tuple[int, bytes, Share] | None, clock: int, origin: bytes,
          share: Share) -> bool:
    """Does `share` (signed by `origin`) replace `current` in the map? Last writer wins by
    (clock, revoked, origin): a revocation beats a concurrent edit of the same clock."""
    if current is None:
        return True
    return (clock, share.revoked, origin) > (current[0], current[2].revoked, current[1])


# -- serving decisions ----------------------------------------------------------------------
def state(share: Share | None, now: float) -> str:
    """ACTIVE, EXPIRED, REVOKED or MISSING: only an ACTIVE link is served."""
    if share is None:
        return MISSING
    if share.revoked:
        return REVOKED
    if share.expires and now >= share.expires:
        return EXPIRED
    return ACTIVE


def target(share: Share, rest: str) -> str:
    """The mesh path that `rest` (the URL path after /s/TOKEN/, percent-decoded once) names
    inside the link; BadPath when it names anything outside it. A file link serves only itself
    (rest empty); a folder link anything below it. `..`, `.`, empty components, backslashes,
    NUL, .backer/ and our temp files are refused by `paths.check` (a double-encoded `%252e`
    arrives here as the literal name `%2e`, which is just a name)."""
    rest = rest.strip("/")
    if not rest:
        return share.path
    if "\\" in rest or "\x00" in rest:
        raise BadPath("forbidden character")
    joined = f"{share.path}/{rest}" if share.path else rest
    checked = check(joined)
    if share.path and not checked.startswith(share.path + "/"):
        raise BadPath("outside the link")
    return checked


def hash_password(password: str, salt: bytes) -> bytes:
    """salt + scrypt(password): what a Share record keeps (CPU-heavy: call it off the loop)."""
    _need(len(salt) == SALT_BYTES, "salt")
    return salt + hashlib.scrypt(password.encode(), salt=salt, dklen=KEY_BYTES, **SCRYPT)


def password_matches(share: Share, password: str) -> bool:
    if not share.password:
        return True
    salt = share.password[:SALT_BYTES]
    return hmac.compare_digest(hash_password(password, salt), share.password)


@dataclass
class PasswordGuard:
    """Slows down guessing: after a wrong password for a link, each answer to a password
    attempt on that link waits BASE * 2^(failures-1) seconds (at most MAX), whoever asks (an
    attacker changes addresses; the owner waits a little). Failures are forgotten after FORGET
    seconds without one."""

    BASE: ClassVar[float] = 0.25
    MAX: ClassVar[float] = 8.0
    FORGET: ClassVar[float] = 900.0
    failures: dict[str, tuple[int, float]] = field(default_factory=dict)  # token -> (n, last)

    def delay(self, token: str, now: float) -> float:
        n, last = self.failures.get(token, (0, now))
        if n == 0 or now - last > self.FORGET:
            return 0.0
        return min(self.MAX, self.BASE * 2 ** (n - 1))

    def failed(self, token: str, now: float) -> None:
        n, last = self.failures.get(token, (0, now))
        self.failures[token] = (1 if now - last > self.FORGET else n + 1, now)

    def succeeded(self, token: str) -> None:
        self.failures.pop(token, None)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """The one range (start, end inclusive) a `Range: bytes=...` header asks of `size` bytes;
    None to send the whole file (no header, several ranges, or not bytes); "unsatisfiable"
    for a range wholly past the end (416)."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                return "unsatisfiable"
            return (max(0, size - suffix), size - 1) if size else "unsatisfiable"
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start < 0:
        return None
    if start >= size:
        return "unsatisfiable"
    if end < start:
        return None
    return start, min(end, size - 1)
