"""gossip-backer: mirror a folder between all your machines over an encrypted gossip mesh.

The public surface is `Node` (open a node, serve a peer session over any trio stream, read its
events), the event classes and the error classes. Everything else is internal.
"""

from gossip_backer import events
from gossip_backer.errors import (BackerError, IntegrityError, LocalError, RemoteError,
                                  StoreError, UserError)

__version__ = "0.1.0"
__all__ = [
    "Node",
    "events",
    "BackerError",
    "UserError",
    "LocalError",
    "RemoteError",
    "IntegrityError",
    "StoreError",
    "__version__",
]


def __getattr__(name: str) -> object:
    """`Node` is imported when first asked for: the runtime (trio, numpy, the store, ~0.3 s)
    is not what a `backer status` needs, which only talks to the control socket."""
    if name == "Node":
        from gossip_backer.runtime.node import Node

        return Node
    raise AttributeError(f"module 'gossip_backer' has no attribute {name!r}")
