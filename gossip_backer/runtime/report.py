"""What a running node reports about itself: the `status` and `peers` objects of SPEC.md (for
`backer status`, the control socket and the web's /api/status), their `problems`, and whether
the node is in sync. A stopped node's are built from its state alone (runtime/views.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gossip_backer.runtime.clock import Clock
from gossip_backer.runtime.peerlinks import PeerLinks
from gossip_backer.runtime.problems import describe
from gossip_backer.runtime.progress import Progress
from gossip_backer.runtime.replicadriver import ReplicaDriver
from gossip_backer.runtime.state import NodeState
from gossip_backer.runtime.views import peer_view, stored_status

if TYPE_CHECKING:
    from gossip_backer.runtime.folder import Folder


@dataclass
class JoinStatus:
    """How joining the mesh went, for a node that joined with an invite (runtime/dial.py)."""

    error: str | None = None  # the inviter refused the invite (kept in the store)
    wait: str | None = None  # why the last try to reach the inviter failed


class StatusReport:
    """The running node's reports (see the module docstring)."""

    def __init__(self, state: NodeState, links: PeerLinks, driver: ReplicaDriver,
                 folder: "Folder | None", clock: Clock, join: JoinStatus) -> None:
        self._state = state
        self._links = links
        self._driver = driver
        self._folder = folder
        self._clock = clock
        self._join = join
        self._progress = Progress()

    def in_sync(self) -> bool:
        """Metadata agrees with every connected peer and every version is on our disk."""
        return self._mesh_in_sync() and (self._folder is None or self._folder.in_sync())

    def _mesh_in_sync(self) -> bool:
        """Metadata agrees with every connected peer, and we are a member."""
        me = self._state.metamap.membership.members.get(self._state.identity.public)
        return self._driver.in_sync() and me is not None and not me.revoked

    def peers(self) -> list[dict]:
        out = []
        for m in self._state.metamap.membership.members.values():
            if m.node == self._state.identity.public or m.revoked:
                continue
            connected = m.node in self._links
            live = {"connected": connected, "address": self._links.address_of(m.node, m.addresses),
                    "last_seen": self._clock.wall() if connected else self._links.last_seen.get(m.node)}
            out.append(peer_view(self._state, m, live))
        return out

    def status(self, listen: str | None, web: str | None) -> dict:
        """The status object. Asked about once a second while a GUI or a script watches, so
        the map is not walked: a folder's counts come from its index (folder.counts), once."""
        folder = self._folder
        s = stored_status(self._state, self._join.error,  # no store read on the loop
                          count_files=folder is None)
        s.update(running=True, listen=listen, web=web, net=self._links.net(), peers=self.peers())
        if folder is not None:
            s.update(folder.counts())  # its "in_sync" is the folder machine's (Folder.in_sync)
            s["in_sync"] = s["in_sync"] and folder.scanned.is_set() and self._mesh_in_sync()
            done = sum(t["done_bytes"] for t in s.get("transfers", []))
            progress = self._progress.update(s["pending_bytes"], done, time.monotonic())
            if progress is not None:
                s["progress"] = progress
            if folder.paused:
                s["paused"] = folder.paused
        s.update(self.problems(s.get("unavailable") or (), s.get("disk_full")))
        return s

    def problems(self, unavailable=(), disk_full: str | None = None) -> dict:
        """`problems` (and `skipped`, `unreadable`) of the status: see runtime/problems.py."""
        me = self._state.metamap.membership.members.get(self._state.identity.public)
        folder = self._folder
        return describe(
            paused=folder.paused if folder is not None else None,
            invite_error=self._join.error, invite_wait=self._join.wait,
            pending_invite=self._state.pending_invite() is not None,
            member=me is not None, removed=me is not None and me.revoked,
            local=folder.problems if folder is not None else None,
            unavailable=list(unavailable), disk_full=disk_full)
