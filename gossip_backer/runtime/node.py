"""The running node: the composition root that builds a node's parts and wires them together,
and the one object the CLI, the control socket, the web and tests talk to.

`Node.open(root)` loads (or creates) a node's state and runs its background tasks until the block
exits. Each part has one job:

  runtime/peerlinks.py      PeerLinks: one live link per peer (sessions, duplicates, bytes moved)
  runtime/admission.py      Admissions: who may connect, our Hello, grants for invite claims
  runtime/invites.py        Invites: the invites we made, in memory for the handshake's gate
  runtime/replicadriver.py  ReplicaDriver: the sans-IO replica fed and its effects carried out
  runtime/folder.py         Folder: the mirrored folder (none with `mirror=False`)
  runtime/history.py        HistoryService: history and restore across the mesh
  runtime/shares.py         ShareService: share links
  runtime/eventbus.py       EventBus: events to subscribers; Changed: wake-ups for waiters
  runtime/report.py         StatusReport: status, peers, problems, in_sync

The node itself only routes: what an admitted peer sends (blocks and deltas to the folder, history
to history, the rest to the replica), what follows a peer's arrival or departure, and updates
stored from peers. The TCP listener and dialer (runtime/dial.py), the control socket and the web
server are optional parts the daemon starts; the methods below the routing are the operations the
CLI and the web call, each handed to the part that does it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import trio

from gossip_backer.core.ids import NodeId
from gossip_backer.core.invite import Invite
from gossip_backer.core.record import SignedUpdate
from gossip_backer.crypto.identity import Identity
from gossip_backer.errors import IntegrityError, UserError
from gossip_backer.events import Event, Refused
from gossip_backer.runtime import browse
from gossip_backer.runtime.admission import Admissions
from gossip_backer.runtime.clock import Clock
from gossip_backer.runtime.dial import load_bootstrap
from gossip_backer.runtime.eventbus import Changed, EventBus
from gossip_backer.runtime.folder import Folder
from gossip_backer.runtime.heap import HeapTrimmer
from gossip_backer.runtime.history import HistoryService, mesh_path
from gossip_backer.runtime.invites import Invites
from gossip_backer.runtime.link import Link
from gossip_backer.runtime.peerlinks import PeerLinks
from gossip_backer.runtime.replicadriver import TICK, ReplicaDriver
from gossip_backer.runtime.report import JoinStatus, StatusReport
from gossip_backer.runtime.shares import ShareService
from gossip_backer.runtime.state import NodeState
from gossip_backer.runtime.views import invite_view
from gossip_backer.wire.messages import (BlockBatch, BlockBatchData, BlockData, BlockMissing,
                                         BlockRequest, DeltaData, DeltaRequest, HistoryReply,
                                         HistoryRequest, LiveSync)

BLOCK_MESSAGES = (BlockRequest, BlockData, BlockMissing, DeltaRequest, DeltaData, BlockBatch,
                  BlockBatchData)


class Node:
    """One node of a mesh, running (see the module docstring)."""

    def __init__(self, state: NodeState, *, mirror: bool = True, watch: bool = True,
                 rescan_interval: float = 3600.0, clock: Clock | None = None) -> None:
        self.state = state
        self.clock = clock or Clock()
        self.listen: str | None = None  # set by runtime/dial.listen
        self.advertise: list[str] = []  # our listen addresses as peers are told (dial.listen)
        self.web_url: str | None = None
        self.bus = EventBus()
        self.changed = Changed()
        self.join = JoinStatus(error=state.repo.get_config("invite_error"))
        self.bootstrap: dict[bytes, list[str]] = load_bootstrap(state)
        self.invites = Invites(state, self.clock)
        gate = Admissions(state, self.clock, self.invites, self.bootstrap,
                          lambda: self.advertise, self.local_changes)
        self.links = PeerLinks(state.identity, state.mesh_secret, self.clock, self.bus.emit,
                               gate, self)
        self.trimmer = HeapTrimmer(lambda: sum(self.links.net().values()))
        self.driver = ReplicaDriver(state, self.links, self.clock, self.bus.emit,
                                    self._stored_from_peers, lambda: self.advertise)
        self.folder = Folder(state, self.links, self.bus, self.local_changes,
                             rescan_interval=rescan_interval, watch=watch,
                             clock=self.clock) if mirror else None
        self.history_service = HistoryService(state, self.links, self.send_to, self.folder)
        self.share_links = ShareService(state, self.folder, self.local_changes,
                                        lambda: self.web_url)
        self.report = StatusReport(state, self.links, self.driver, self.folder, self.clock,
                                   self.join)

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    @asynccontextmanager
    async def open(cls, root: str | Path, *, name: str | None = None,
                   invite: str | Invite | None = None, create: bool = True,
                   mirror: bool = True, watch: bool = True,
                   rescan_interval: float = 3600.0,
                   clock: Clock | None = None) -> AsyncIterator["Node"]:
        """Open the node at `root` (creating a new mesh there, or joining `invite`, if it is
        not a node yet and `create`) with its background tasks running until the block exits.
        `mirror=False` runs the mesh alone, without touching the folder's files. `clock`: the
        node's wall clock (runtime/clock.py; tests under a MockClock pass `FollowingTrio`)."""
        state = await trio.to_thread.run_sync(_load_or_create, Path(root), name, invite, create)
        state.start_store()  # SQLite off the loop from here on (runtime/storethread.py)
        node = cls(state, mirror=mirror, watch=watch, rescan_interval=rescan_interval, clock=clock)
        try:
            await node.invites.load()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(node.invites.run)
                nursery.start_soon(node.driver.run)
                nursery.start_soon(node.trimmer.run)
                if node.folder is not None:
                    await trio.to_thread.run_sync(node.folder.remove_abandoned_temps)
                    nursery.start_soon(node.folder.run)
                try:
                    yield node
                finally:
                    node.links.abort_all("node shutting down")
                    nursery.cancel_scope.cancel()
        finally:
            try:
                if node.folder is not None:
                    node.folder.save_index_now()
            finally:
                state.close()

    @property
    def node_id(self) -> NodeId:
        return self.state.node_id

    # -- peers: sessions and the routing of what they bring (runtime/peerlinks.py) ---------
    async def serve_stream(self, stream: trio.abc.Stream, *, initiator: bool | None = None,
                           address: str | None = None, identity: Identity | None = None,
                           on_message=None) -> str:
        """Run one peer session over `stream` until it ends; returns why it ended.

        `identity` replaces the node's own key (a joining node's invite key); `on_message`
        then takes the link's events instead of the node."""
        return await self.links.serve(stream, initiator=initiator, address=address,
                                      identity=identity, on_event=on_message)

    def attached(self, link: Link, replaced: bool) -> None:
        """(PeerLinks) `link` is now the connection to its peer."""
        if replaced:
            self.driver.disconnect(link.peer)
        self.driver.connect(link.peer)
        if self.folder is not None:
            self.folder.peers_changed()
        self.changed.set()

    def detached(self, link: Link) -> None:
        """(PeerLinks) the peer's link ended."""
        self.driver.disconnect(link.peer)
        if self.folder is not None:
            self.folder.peer_gone(link.peer)
        self.changed.set()

    async def received(self, link: Link, message: object) -> None:
        """(PeerLinks) A message of an admitted peer, to the part it is for."""
        if isinstance(message, BLOCK_MESSAGES):
            await link.spawn(self._on_block_message, link, message)  # beside the receive loop
        elif isinstance(message, HistoryRequest):
            link.send(await trio.to_thread.run_sync(self.history_service.answer, message))
        elif isinstance(message, HistoryReply):
            self.history_service.on_reply(link.peer, message)
        elif isinstance(message, LiveSync):  # live editors' cursors: ephemeral, never stored
            if self.folder is not None:
                self.folder.live_cursors_from(link.peer, message)
        else:
            await self.driver.receive(link, message)

    async def _on_block_message(self, link: Link, message: object) -> None:
        if self.folder is None:
            if isinstance(message, (BlockRequest, DeltaRequest)):
                link.send(BlockMissing(message.request_id))
            elif isinstance(message, BlockBatch):
                link.send(BlockBatchData((), tuple(r.request_id for r in
                                                   message.requests + message.deltas)))
            return
        if isinstance(message, (BlockRequest, DeltaRequest, BlockBatch)):
            link.send(await self.folder.answer(message))
            return
        try:
            await self.folder.on_block(link.peer, message)
        except IntegrityError as exc:
            self.emit(Refused(self.clock.wall(), "block", str(exc), str(NodeId(link.peer))))
            raise

    def _stored_from_peers(self, updates: list[SignedUpdate]) -> None:
        """(ReplicaDriver) Updates from peers were stored."""
        self.changed.set()
        if self.folder is not None:
            self.folder.on_remote(updates)

    def send_to(self, peer: bytes, message: object) -> None:
        self.links.send_to(peer, message)

    def local_changes(self, updates: list[SignedUpdate]) -> None:
        """Updates this node made (applied and stored): spread them."""
        self.driver.local(updates)

    # -- events and waiting (runtime/eventbus.py) ------------------------------------------
    def emit(self, event: Event) -> None:
        self.bus.emit(event)

    def subscribe(self) -> AbstractAsyncContextManager[trio.MemoryReceiveChannel]:
        """A channel of every event from now on, while the `async with` lasts."""
        return self.bus.subscribe()

    def events(self) -> AsyncIterator[Event]:
        """Every event from now on (SPEC.md: the same as `backer events`)."""
        return self.bus.events()

    async def wait_connected(self, n: int = 1) -> None:
        while len(self.links) < n:
            await self.changed.wait()

    async def wait_in_sync(self) -> None:
        """Until every connected peer's digest matches ours (nothing left to exchange)."""
        while not (self.links and self.in_sync()):
            await self.changed.wait()

    # -- reports (runtime/report.py) -------------------------------------------------------
    def in_sync(self) -> bool:
        """Metadata agrees with every connected peer and every version is on our disk."""
        return self.report.in_sync()

    def net(self) -> dict:
        return self.links.net()

    def peers(self) -> list[dict]:
        return self.report.peers()

    def status(self) -> dict:
        return self.report.status(self.listen, self.web_url)

    # -- what the CLI and the web ask of a running node -------------------------------------
    async def history(self, path: str) -> list[dict]:
        """`backer history`: versions of `path` known anywhere in the mesh, newest first."""
        path = mesh_path(self.state.root, path)
        listing, _holders = await self.history_service.history(path)
        if not listing:
            raise UserError(f"no such file in the mesh: {path}")
        return [v.to_json() for v in listing]

    async def restore(self, path: str, version: str | None = None) -> dict:
        """`backer restore`: bring back a version of `path` as a new change."""
        return await self.history_service.restore(mesh_path(self.state.root, path), version)

    def live_connect(self, path: str):
        """An editor's connection to the live document of `path` (async context manager;
        UserError when the file is not live here). A read-only node's editors only read."""
        if self.folder is None:
            raise UserError("this node does not mirror a folder")
        return self.folder.live_connect(path.strip("/"), read_only=self.state.is_read_only())

    def live_files(self) -> list[str]:
        """The files that are live on this node."""
        return [] if self.folder is None else self.folder.live_paths()

    def live_globs(self) -> list[str]:
        """The mesh's live-edit globs (`backer live`)."""
        return self.state.metamap.live_globs()

    def set_live(self, glob: str, on: bool) -> dict:
        """`backer live`: (un)mark files matching `glob` as live-edit for the whole mesh."""
        update = self.state.set_live(glob, on)
        if update is not None:
            self.local_changes([update])
            if self.folder is not None:
                self.folder.on_remote([update])  # the map moved: files to make live
        return {"live": self.state.metamap.live_globs()}

    # the web GUI's files, conflicts and share links (runtime/browse.py, runtime/shares.py)
    def files(self, path: str = "") -> list[dict]:
        """`/api/files`: the entries of one folder of the mesh."""
        return browse.files(self.state.metamap, path)

    def conflicts(self) -> list[dict]:
        """`/api/conflicts`: the conflict copies present, each with the path it was made for."""
        return browse.conflicts(self.state.metamap)

    async def resolve_conflict(self, copy: str, keep: str) -> dict:
        """Keep the "original", the "copy", or "both" (the copy renamed): a change that spreads."""
        return await browse.resolve(self.state, self.folder, copy, keep)

    def open_file(self, path: str):
        """(record, open file) of the current version of `path` here: the GUI's download."""
        return browse.current_file(self.state.metamap, self.share_links, path)

    async def diff(self, path: str, left: str | None = None, right: str | None = None,
                   other: str | None = None) -> dict:
        """A side-by-side text diff of two versions of `path`, or of `path` and `other`."""
        return await browse.diff(self.state, self.folder, self.history_service, path, left, right,
                                 other)

    def shares(self) -> list[dict]:
        """`backer share --list`: the links that are not revoked (expired ones say so)."""
        return self.share_links.list()

    async def share(self, path: str, expires: float | None = None,
                    password: str | None = None) -> dict:
        """`backer share`: a new public read-only link, spread to the whole mesh."""
        return await self.share_links.create(path, expires, password)

    def revoke_share(self, token: str) -> dict:
        """`backer share --revoke`: ends the link on every node the revocation reaches."""
        return self.share_links.revoke(token)

    # members
    async def invite(self, read_only: bool = False, expires: float = 7 * 86400,
                     addresses: list[str] | None = None) -> dict:
        """`backer invite` (through the control socket) and the GUI's: an invite with these
        addresses, by default this running node's."""
        if expires <= 0:
            raise UserError("expires must be a positive number of seconds")
        return invite_view(await self.invites.create(list(addresses or self.advertise),
                                                     read_only, expires))

    def remove_peer(self, node: NodeId) -> dict:
        """`backer remove-peer`: revoke mesh-wide and drop the connection at once."""
        self.local_changes([self.state.revoke(node.key)])
        self.links.abort(node.key, "revoked")
        return {"removed": str(node)}


def _load_or_create(root: Path, name: str | None, invite: str | Invite | None,
                    create: bool) -> NodeState:
    from gossip_backer.runtime.state import state_dir
    from gossip_backer.wire.codec import unpack

    if create and not state_dir(root).exists():
        if invite is None:
            NodeState.init(root, name).close()
        else:
            inv = invite if isinstance(invite, Invite) else Invite.from_text(invite, unpack)
            NodeState.join(root, inv, name).close()
    return NodeState.open(root, preload_index=True)


__all__ = ["Node", "TICK", "UserError"]
