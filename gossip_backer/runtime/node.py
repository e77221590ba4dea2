"""The running node: interprets the sans-IO replica's effects with trio.

`Node.open(root)` loads (or creates) a node's state and runs its background tasks; `serve_stream`
runs one peer session over any trio stream; `events()` yields user-visible events. The TCP
listener and dialer (runtime/dial.py), the control socket and the web server are optional parts
the daemon starts.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from gossip_backer.core.ids import NodeId
from gossip_backer.core.invite import Invite
from gossip_backer.crypto.identity import Identity
from gossip_backer.errors import IntegrityError, RemoteError, UserError
from gossip_backer.events import Event, PeerConnected, PeerDisconnected, PeerRefused, Refused
from gossip_backer.protocol.effects import Disconnect, Effect, Emit, Persist, Send
from gossip_backer.protocol.peer import PeerConnection, Received
from gossip_backer.protocol import session
from gossip_backer.protocol.replica import Replica
from gossip_backer.runtime.clock import Clock
from gossip_backer.runtime.link import Link
from gossip_backer.runtime.state import NodeState
from gossip_backer.runtime.views import peer_view, stored_status
from gossip_backer.wire.codec import pack
from gossip_backer.wire.messages import (BlockData, BlockMissing, BlockRequest, DeltaData,
                                         DeltaRequest, HistoryReply, HistoryRequest, InviteClaim)
from gossip_backer.wire.messages import BlockBatch, BlockBatchData

log = logging.getLogger(__name__)
TICK = 0.25
EVENT_BUFFER = 1000


class Node:
    """One node of a mesh, running (see the module docstring)."""

    def __init__(self, state: NodeState, *, mirror: bool = True, watch: bool = True,
                 rescan_interval: float = 3600.0, clock: Clock | None = None) -> None:
        self.state = state
        self.clock = clock or Clock()
        self.replica = Replica(state.metamap, state.identity.public)
        self.links: dict[bytes, Link] = {}
        self.last_seen: dict[bytes, float] = {}
        self.listen: str | None = None
        self.advertise: list[str] = []
        self.web_url: str | None = None
        self._subscribers: set[trio.MemorySendChannel] = set()
        self._closed_bytes = [0, 0]  # bytes in/out of links that have ended
        self._live_links: set[Link] = set()
        self._nursery: trio.Nursery | None = None
        self._changed = trio.Event()
        self.invite_error: str | None = state.repo.get_config("invite_error")
        self.invite_wait: str | None = None  # why the last try to reach the inviter failed
        from gossip_backer.runtime.progress import Progress

        self.progress = Progress()
        from gossip_backer.runtime.problems import LocalProblems

        self.local_problems = LocalProblems(str(state.root))
        from gossip_backer.runtime.dial import load_bootstrap

        self.bootstrap: dict[bytes, list[str]] = load_bootstrap(state)
        from gossip_backer.runtime.history import HistoryService

        self.history_service = HistoryService(self)
        from gossip_backer.runtime.shares import ShareService

        self.share_links = ShareService(self)
        self.folder = None
        if mirror:
            from gossip_backer.runtime.folder import Folder

            self.folder = Folder(self, rescan_interval=rescan_interval, watch=watch, clock=self.clock)

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
            async with trio.open_nursery() as nursery:
                node._nursery = nursery
                nursery.start_soon(node._ticker)
                if node.folder is not None:
                    await trio.to_thread.run_sync(node._remove_abandoned_temps)
                    nursery.start_soon(node.folder.run)
                try:
                    yield node
                finally:
                    for link in list(node._live_links):
                        link.abort("node shutting down")
                    nursery.cancel_scope.cancel()
        finally:
            try:
                if node.folder is not None:
                    node.folder.save_index_now()
            finally:
                state.close()

    def _remove_abandoned_temps(self) -> None:
        """At start-up: temp files no download will resume (a crash, a conflict's leftovers)
        go; those of versions still to fetch stay, with their verified blocks."""
        from gossip_backer.core.record import FILE
        from gossip_backer.disk.apply import remove_abandoned_temps

        metamap, index = self.state.metamap, self.folder.index
        wanted = []
        for path in metamap.files:
            rec = metamap.winner(path)
            if rec is not None and rec.kind == FILE and not rec.deleted:
                have = index.get(path)
                if have is None or have.hash != rec.hash:
                    wanted.append(path)
        removed = remove_abandoned_temps(self.state.root, wanted)
        if removed:
            log.info("removed %d abandoned temp file(s), e.g. %s", len(removed), removed[0])

    @property
    def node_id(self) -> NodeId:
        return self.state.node_id

    # -- peer sessions ---------------------------------------------------------------------
    def authorize(self, key: bytes) -> bool:
        """May `key` connect: a member, the inviter we joined through, or one of our invite keys
        (a used or expired one only hears why it is refused)."""
        return self.peer_trusted(key) or self.state.repo.invite_state(key, self.clock.wall()) is not None

    def peer_trusted(self, key: bytes) -> bool:
        return session.trusted(self.state.metamap.membership.members, self.bootstrap, key)

    def _admission(self) -> session.Admission:
        return session.Admission(self.state.name, self.advertise, self.state.is_read_only(),
                                 self.peer_trusted)

    async def serve_stream(self, stream: trio.abc.Stream, *, initiator: bool | None = None,
                           address: str | None = None, identity: Identity | None = None,
                           on_message=None) -> str:
        """Run one peer session over `stream` until it ends; returns why it ended.

        `identity` replaces the node's own key (a joining node's invite key); `on_message`
        then takes the messages instead of the replica."""
        conn = PeerConnection(identity or self.state.identity, self.state.mesh_secret,
                              self.authorize, initiator=initiator)
        link = Link(stream, conn, address, initiator)
        self._live_links.add(link)
        try:
            await link.run(on_message or self._on_link_event)
        finally:
            self._live_links.discard(link)
            self._closed_bytes[0] += conn.bytes_in
            self._closed_bytes[1] += conn.bytes_out
            self._detach(link)
            if link.peer is None and link.close_reason:
                self.emit(PeerRefused(self.clock.wall(), address, link.close_reason))
        return link.close_reason

    async def _on_link_event(self, link: Link, event: object) -> None:
        if link.peer is not None and link.hello is None and not isinstance(event, Received):
            link.send(self._admission().hello())
            return
        if not isinstance(event, Received):
            return
        message = event.message
        if link.hello is None:
            await self._on_first_message(link, message)
            return
        if link.peer not in self.links or self.links[link.peer] is not link:
            return
        self.last_seen[link.peer] = self.clock.wall()
        if isinstance(message, (BlockRequest, BlockData, BlockMissing, DeltaRequest, DeltaData,
                                BlockBatch, BlockBatchData)):
            await link.spawn(self._on_block_message, link, message)
            return
        if isinstance(message, HistoryRequest):
            link.send(await trio.to_thread.run_sync(self.history_service.answer, message))
            return
        if isinstance(message, HistoryReply):
            self.history_service.on_reply(link.peer, message)
            return
        try:
            effects = self.replica.receive(link.peer, message, trio.current_time())
        finally:
            self._run(self.replica.take_pending())
        self._run(effects)

    async def _on_first_message(self, link: Link, message: object) -> None:
        verdict = self._admission().first(link.peer, message)
        if isinstance(verdict, session.ClaimGrant):
            await self._grant_invite(link, verdict.claim)
            return
        if isinstance(verdict, session.Reject):
            if verdict.reply is not None:
                link.send(verdict.reply)
                link.abort(verdict.reason)
            raise RemoteError(verdict.reason)
        link.hello = verdict.hello
        self._attach(link)

    async def _on_block_message(self, link: Link, message: object) -> None:
        if self.folder is None:
            if isinstance(message, (BlockRequest, DeltaRequest)):
                link.send(BlockMissing(message.request_id))
            elif isinstance(message, BlockBatch):
                link.send(BlockBatchData((), tuple(r.request_id for r in message.requests)))
            return
        if isinstance(message, (BlockRequest, DeltaRequest, BlockBatch)):
            link.send(await self.folder.answer(message))
            return
        try:
            await self.folder.on_block(link.peer, message)
        except IntegrityError as exc:
            self.emit(Refused(self.clock.wall(), "block", str(exc), str(NodeId(link.peer))))
            raise

    async def history(self, path: str) -> list[dict]:
        """`backer history`: versions of `path` known anywhere in the mesh, newest first."""
        from gossip_backer.runtime.history import mesh_path

        path = mesh_path(self.state.root, path)
        listing, _holders = await self.history_service.history(path)
        if not listing:
            raise UserError(f"no such file in the mesh: {path}")
        return [v.to_json() for v in listing]

    async def restore(self, path: str, version: str | None = None) -> dict:
        """`backer restore`: bring back a version of `path` as a new change."""
        from gossip_backer.runtime.history import mesh_path

        return await self.history_service.restore(mesh_path(self.state.root, path), version)

    def live_connect(self, path: str):
        """An editor's connection to the live document of `path` (async context manager;
        UserError when the file is not live here). A read-only node's editors only read."""
        if self.folder is None:
            raise UserError("this node does not mirror a folder")
        return self.folder.live_hub.connect(path.strip("/"), read_only=self.state.is_read_only())

    def live_files(self) -> list[str]:
        """The files that are live on this node."""
        return [] if self.folder is None else self.folder.machine.live.live_paths()

    def live_globs(self) -> list[str]:
        """The mesh's live-edit globs (`backer live`)."""
        return self.state.metamap.live_globs()

    # -- the web GUI's files, conflicts and share links (runtime/browse.py, runtime/shares.py)
    def files(self, path: str = "") -> list[dict]:
        """`/api/files`: the entries of one folder of the mesh."""
        from gossip_backer.runtime.browse import files

        return files(self, path)

    def conflicts(self) -> list[dict]:
        """`/api/conflicts`: the conflict copies present, each with the path it was made for."""
        from gossip_backer.runtime.browse import conflicts

        return conflicts(self)

    async def resolve_conflict(self, copy: str, keep: str) -> dict:
        """Keep the "original", the "copy", or "both" (the copy renamed): a change that spreads."""
        from gossip_backer.runtime.browse import resolve

        return await resolve(self, copy, keep)

    def open_file(self, path: str):
        """(record, open file) of the current version of `path` here: the GUI's download."""
        from gossip_backer.runtime.browse import current_file

        return current_file(self, path)

    async def diff(self, path: str, left: str | None = None, right: str | None = None,
                   other: str | None = None) -> dict:
        """A side-by-side text diff of two versions of `path`, or of `path` and `other`."""
        from gossip_backer.runtime.browse import diff

        return await diff(self, path, left, right, other)

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

    def invite(self, read_only: bool = False, expires: float = 7 * 86400) -> dict:
        """`backer invite` from the GUI: an invite with this running node's addresses."""
        if expires <= 0:
            raise UserError("expires must be a positive number of seconds")
        invite = self.state.create_invite(list(self.advertise), read_only, expires)
        return {"invite": invite.to_text(pack), "read_only": invite.read_only,
                "expires": invite.expires}

    def connected_peers(self) -> list[bytes]:
        return list(self.links)

    def send_to(self, peer: bytes, message: object) -> None:
        link = self.links.get(peer)
        if link is not None:
            link.send(message)

    def _attach(self, link: Link) -> None:
        """Make `link` the connection to its peer; of two, keep the one the greater key dialed."""
        peer = link.peer
        old = self.links.get(peer)
        if old is not None and not old.closed.is_set():
            if session.keep_old(old.dialed, link.dialed, self.state.identity.public, peer):
                link.abort("duplicate connection")
                return
            self.replica.disconnect(peer)
            old.abort("replaced by a newer connection")
        self.links[peer] = link
        self.last_seen[peer] = self.clock.wall()
        self._run(self.replica.connect(peer, trio.current_time()))
        name = link.hello.name if link.hello else ""
        self.emit(PeerConnected(self.clock.wall(), str(NodeId(peer)), name, link.address))
        if self.folder is not None:
            self.folder.peers_changed()
        self._changed.set()

    def _detach(self, link: Link) -> None:
        peer = link.peer
        if peer is None or self.links.get(peer) is not link:
            return
        del self.links[peer]
        self.replica.disconnect(peer)
        if self.folder is not None:
            self.folder.peer_gone(peer)
        self.last_seen[peer] = self.clock.wall()
        self.emit(PeerDisconnected(self.clock.wall(), str(NodeId(peer)), link.close_reason or "closed"))
        self._changed.set()

    # -- invites ---------------------------------------------------------------------------
    async def _grant_invite(self, link: Link, claim: InviteClaim) -> None:
        """The joining node authenticated with an invite key asks for its grant."""
        invite_key = link.peer
        session.check_claim(self.state.mesh_id, invite_key, claim)
        row = await self.state.store_call(self.state.repo.claim_invite, invite_key,
                                        self.clock.wall())
        why = None if row is not None else self.state.repo.invite_state(invite_key, self.clock.wall())
        result, grant = session.judge_claim(claim, None if row is None else row.read_only, why,
                                            self.state.metamap.membership.members,
                                            self.state.metamap.clock)
        if grant is not None:
            self._run(self.replica.local([self.state.make(grant)], trio.current_time()))
        link.send(result)
        link.abort("invite used" if grant is not None else f"refused invite: {result.reason}")

    # -- effects ---------------------------------------------------------------------------
    def _run(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                link = self.links.get(effect.peer)
                if link is not None:
                    link.send(effect.message)
            elif isinstance(effect, Persist):
                self.state.save_received(list(effect.updates), list(effect.dropped))
                self._changed.set()
                if self.folder is not None:
                    self.folder.on_remote(list(effect.updates))
            elif isinstance(effect, Disconnect):
                link = self.links.get(effect.peer)
                if link is not None:
                    link.abort(effect.reason)
            elif isinstance(effect, Emit):  # the sans-IO clock is monotonic: events carry Unix time
                self.emit(dataclasses.replace(effect.event, time=self.clock.wall()))
        self._after_change()

    def _after_change(self) -> None:
        """Announce our name and addresses once we are a member and they changed."""
        if self.state.is_member() and self.advertise:
            update = self.state.info_update(self.advertise)
            if update is not None:
                self._run(self.replica.local([update], trio.current_time()))

    def remove_peer(self, node: NodeId) -> dict:
        """`backer remove-peer`: revoke mesh-wide and drop the connection at once."""
        update = self.state.revoke(node.key)
        self.local_changes([update])
        link = self.links.get(node.key)
        if link is not None:
            link.abort("revoked")
        return {"removed": str(node)}

    def set_live(self, glob: str, on: bool) -> dict:
        """`backer live`: (un)mark files matching `glob` as live-edit for the whole mesh."""
        update = self.state.set_live(glob, on)
        if update is not None:
            self.local_changes([update])
            if self.folder is not None:
                self.folder.on_remote([update])  # the map moved: files to make live
        return {"live": self.state.metamap.live_globs()}

    def local_changes(self, updates: list) -> None:
        """Updates this node made (applied and stored): spread them."""
        self._run(self.replica.local(updates, trio.current_time()))

    async def _ticker(self) -> None:
        while True:
            await trio.sleep(TICK)
            self._run(self.replica.tick(self.clock.now()))

    # -- events ----------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        log.info("%s", event.to_json())
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                pass  # a subscriber that does not keep up misses events rather than stall us
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                self._subscribers.discard(channel)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[trio.MemoryReceiveChannel]:
        send, receive = trio.open_memory_channel[Event](EVENT_BUFFER)
        self._subscribers.add(send)
        try:
            async with receive:
                yield receive
        finally:
            self._subscribers.discard(send)

    async def events(self) -> AsyncIterator[Event]:
        """Every event from now on (SPEC.md: the same as `backer events`)."""
        async with self.subscribe() as receive:
            async for event in receive:
                yield event

    # -- waiting ---------------------------------------------------------------------------
    async def wait_connected(self, n: int = 1) -> None:
        while len(self.links) < n:
            await self._changed_wait()

    async def wait_in_sync(self) -> None:
        """Until every connected peer's digest matches ours (nothing left to exchange)."""
        while not (self.links and self.in_sync()):
            await self._changed_wait()

    async def _changed_wait(self) -> None:
        self._changed = trio.Event() if self._changed.is_set() else self._changed
        with trio.move_on_after(0.5):
            await self._changed.wait()

    def in_sync(self) -> bool:
        """Metadata agrees with every connected peer and every version is on our disk."""
        ours = {o: q for o, q in self.state.metamap.digest().items() if q}
        meta = all({o: q for o, q in s.peer_has.items() if q} == ours and not s.pending
                   for s in self.replica.sessions.values())
        me = self.state.metamap.membership.members.get(self.state.identity.public)
        return meta and me is not None and not me.revoked and (self.folder is None or self.folder.in_sync())

    # -- views -----------------------------------------------------------------------------
    def net(self) -> dict:
        bytes_in = self._closed_bytes[0] + sum(l.conn.bytes_in for l in self._live_links)
        bytes_out = self._closed_bytes[1] + sum(l.conn.bytes_out for l in self._live_links)
        return {"bytes_in": bytes_in, "bytes_out": bytes_out}

    def peers(self) -> list[dict]:
        out = []
        for m in self.state.metamap.membership.members.values():
            if m.node == self.state.identity.public or m.revoked:
                continue
            link = self.links.get(m.node)
            live = {"connected": link is not None, "address": _listen_address(link, m.addresses),
                    "last_seen": self.clock.wall() if link else self.last_seen.get(m.node)}
            out.append(peer_view(self.state, m, live))
        return out

    def status(self) -> dict:
        s = stored_status(self.state)
        s.update(running=True, listen=self.listen, web=self.web_url, net=self.net(),
                 peers=self.peers())
        if self.folder is not None:
            s.update(self.folder.counts())
            s["in_sync"] = self.in_sync()
            done = sum(t["done_bytes"] for t in s.get("transfers", []))
            progress = self.progress.update(s["pending_bytes"], done, time.monotonic())
            if progress is not None:
                s["progress"] = progress
            if self.folder.paused:
                s["paused"] = self.folder.paused
        if self.invite_error:
            s["error"] = self.invite_error
        s.update(self.problems(s.get("unavailable") or (), s.get("disk_full")))
        return s

    def problems(self, unavailable=(), disk_full: str | None = None) -> dict:
        """`problems` (and `skipped`, `unreadable`) of the status: see runtime/problems.py."""
        from gossip_backer.runtime.problems import describe

        me = self.state.metamap.membership.members.get(self.state.identity.public)
        return describe(
            paused=self.folder.paused if self.folder is not None else None,
            invite_error=self.invite_error, invite_wait=self.invite_wait,
            pending_invite=self.state.pending_invite() is not None,
            member=me is not None, removed=me is not None and me.revoked,
            local=self.local_problems if self.folder is not None else None,
            unavailable=list(unavailable), disk_full=disk_full)


def _listen_address(link: Link | None, advertised: tuple[str, ...]) -> str | None:
    """Where a connected peer can be reached: the address we dialed, or for a peer that dialed
    us, its host with the port it listens on (not its outgoing ephemeral port)."""
    if link is None or link.address is None or link.dialed is not False:
        return link.address if link is not None else None
    listen = tuple(link.hello.listen) if link.hello is not None else ()
    host = link.address.rpartition(":")[0]
    ports = [a.rpartition(":")[2] for a in listen + tuple(advertised)]
    same_host = [a for a in listen + tuple(advertised) if a.rpartition(":")[0] == host]
    if same_host:
        return same_host[0]
    return f"{host}:{ports[0]}" if ports else link.address


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


__all__ = ["Node", "UserError"]
