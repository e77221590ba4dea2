"""The invite: one line of text that lets one new node join a mesh, once, before it expires.

It carries the mesh secret, the founder's and inviter's node ids, the inviter's addresses, the
granted role, the expiry, and the seed of a one-time "invite key". The joining node's first
connection authenticates with that invite key (the inviter knows it, so the handshake accepts it),
asks for its grant, and the inviter then forgets the key: a used invite cannot be replayed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

from gossip_backer.errors import BackerError, UserError

PREFIX = "backer-invite-1:"


def invite_state(used_at: float | None, expires: float, now: float) -> str:
    """What an invite this node made is now: 'used' (claimed once already), 'expired' or
    'usable' (the store's claim spends only a usable one)."""
    return "used" if used_at is not None else "expired" if expires <= now else "usable"


@dataclass(slots=True)
class _Issued:
    read_only: bool
    expires: float
    used_at: float | None = None


class InviteTable:
    """The invites one node made, by invite key, held in memory: the handshake's gate asks it
    about every stranger that proves a key, so a look must cost no store read (the daemon keeps
    it in step with its store, runtime/invites.py; the simulator's node holds one alone)."""

    def __init__(self) -> None:
        self._rows: dict[bytes, _Issued] = {}

    def create(self, key: bytes, read_only: bool, expires: float,
               used_at: float | None = None) -> None:
        self._rows[key] = _Issued(read_only, expires, used_at)

    def merge(self, rows: Iterable[tuple[bytes, bool, float, float | None]]) -> None:
        """Rows (key, read_only, expires, used_at) read from the store: unknown ones are added,
        and one used there is used here. A use known here is never undone by an older read."""
        for key, read_only, expires, used_at in rows:
            row = self._rows.get(key)
            if row is None:
                self.create(key, read_only, expires, used_at)
            elif row.used_at is None:
                row.used_at = used_at

    def state(self, key: bytes, now: float) -> str | None:
        """'usable', 'used', 'expired', or None for a key that was never an invite of ours."""
        row = self._rows.get(key)
        return None if row is None else invite_state(row.used_at, row.expires, now)

    def claim(self, key: bytes, now: float) -> bool | None:
        """Spend a usable invite: its role (read_only), or None when it cannot be spent."""
        if self.state(key, now) != "usable":
            return None
        row = self._rows[key]
        row.used_at = now
        return row.read_only


@dataclass(frozen=True, slots=True)
class Invite:
    mesh_secret: bytes
    founder: bytes
    inviter: bytes
    addresses: tuple[str, ...]
    read_only: bool
    expires: float
    invite_seed: bytes

    def to_plain(self) -> list:
        return [self.mesh_secret, self.founder, self.inviter, list(self.addresses),
                self.read_only, self.expires, self.invite_seed]

    def to_text(self, pack) -> str:
        raw = base64.urlsafe_b64encode(pack(self.to_plain())).decode("ascii").rstrip("=")
        return PREFIX + raw

    @classmethod
    def from_text(cls, text: str, unpack) -> "Invite":
        text = text.strip()
        if not text.startswith(PREFIX):
            raise UserError("not a gossip-backer invite (it should start with 'backer-invite-1:')")
        raw = text[len(PREFIX):]
        try:
            plain = unpack(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        except (binascii.Error, ValueError, BackerError):
            raise UserError("the invite is damaged (copy the whole line)") from None
        return cls._from_plain(plain)

    @classmethod
    def _from_plain(cls, plain: object) -> "Invite":
        ok = isinstance(plain, list) and len(plain) == 7
        if ok:
            secret, founder, inviter, addrs, ro, expires, seed = plain
            ok = (all(isinstance(b, bytes) and len(b) == 32 for b in (secret, founder, inviter, seed))
                  and isinstance(addrs, list) and all(isinstance(a, str) for a in addrs)
                  and isinstance(ro, bool) and isinstance(expires, (int, float)))
        if not ok:
            raise UserError("the invite is damaged (copy the whole line)")
        return cls(secret, founder, inviter, tuple(addrs), ro, float(expires), seed)
