"""Errors say whose fault it was (ARCHITECTURE.md habit 7).

- UserError: the person asked for something impossible; the CLI prints one line and exits 1.
- LocalError: our own bug or a local precondition broken (never the peer's fault).
- RemoteError: the peer misbehaved; the connection to it ends, the node carries on.
- IntegrityError: data failed its hash or signature; drop the data and the peer.
- StoreError: the embedded store is unusable (corrupt, locked, full disk).
"""

from __future__ import annotations

__all__ = [
    "BackerError",
    "UserError",
    "LocalError",
    "RemoteError",
    "IntegrityError",
    "StoreError",
]


class BackerError(Exception):
    """Base of every error this package raises on purpose."""


class UserError(BackerError):
    """Bad input from the person at the keyboard (bad path, bad invite, unknown node...)."""


class LocalError(BackerError):
    """Something wrong on this node that is not the peer's fault."""


class RemoteError(BackerError):
    """The peer broke the protocol: malformed, replayed, oversized or unauthorised data."""


class IntegrityError(RemoteError):
    """Data that fails its hash or signature check. A RemoteError, since a peer sent it."""


class StoreError(BackerError):
    """The embedded SQLite store failed (corrupt, locked, disk full)."""
