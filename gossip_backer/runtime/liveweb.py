"""Editors connected to a running node's live documents (the y-websocket endpoint of web/live.py).

Each connection is a `live.ywire.YSession` on the node's document of that file. A client's edit
goes to the folder machine (`live_client`: merged, published to the mesh, written to disk); every
change of a document, whoever made it (a peer, the disk, an editor), is sent to every connection
of that document. Awareness messages (cursors and names) go through the node's awareness relay
(protocol/liveaware.py): to the other editors of the document, here and, as `LiveSync` messages
of kind 1, on the other nodes; a newcomer gets every state held for its document.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from gossip_backer.errors import UserError
from gossip_backer.live.ywire import YProtocolError, YSession
from gossip_backer.protocol.liveaware import (AWARENESS, AwarenessError, AwarenessRelay,
                                              ToEditors, ToPeers)
from gossip_backer.wire.messages import LiveSync

if TYPE_CHECKING:
    from gossip_backer.runtime.folder import Folder

OUTBOX = 1000  # messages waiting for a slow editor before it is dropped


class LiveConnection:
    """One editor of one live file: `hello()`, `receive(message) -> replies`, and `outgoing`."""

    def __init__(self, hub: "LiveHub", path: str, session: YSession) -> None:
        self.hub, self.path, self.session = hub, path, session
        self._send, self.outgoing = trio.open_memory_channel(OUTBOX)

    def hello(self) -> list[bytes]:
        return self.session.hello() + self.hub.relay.hello(self.path)

    def receive(self, message: bytes) -> list[bytes]:
        """A message from the editor; what to answer it. Raises YProtocolError for garbage."""
        inbound = self.session.receive(message)
        if inbound.update is not None:
            try:
                self.hub.client_update(self.path, inbound.update)
            except Exception as exc:  # pycrdt refuses a malformed update: the client's fault
                raise YProtocolError(f"update refused: {exc}") from exc
        if inbound.awareness is not None:
            try:
                self.hub.awareness(self, inbound.awareness)
            except AwarenessError as exc:
                raise YProtocolError(f"awareness refused: {exc}") from exc
        return list(inbound.replies)

    def push(self, message: bytes) -> None:
        try:
            self._send.send_nowait(message)
        except trio.WouldBlock:  # an editor that does not read: it reconnects and resyncs
            self._send.close()
        except trio.ClosedResourceError:
            pass

    def close(self) -> None:
        self._send.close()


class LiveHub:
    """The live documents' editors of one node (see the module docstring)."""

    def __init__(self, folder: "Folder", live) -> None:
        self.folder = folder
        self.live = live  # the folder machine's LiveMachine (protocol/live.py)
        self.clock = folder.clock  # the node's one clock (runtime/clock.py)
        self.conns: dict[str, set[LiveConnection]] = defaultdict(set)
        self.relay = AwarenessRelay()
        self._wake = trio.Event()
        live.listen(self._changed)

    @asynccontextmanager
    async def connect(self, path: str, *, read_only: bool):
        """A connection to the document of `path`; UserError when the file is not live here."""
        live = self.live
        if not live.owns(path):
            raise UserError(f"{path} is not a live file on this node")
        conn = LiveConnection(self, path, YSession(live.docs[path], read_only=read_only))
        self.conns[path].add(conn)
        try:
            yield conn
        finally:
            self.conns[path].discard(conn)
            conn.close()
            self._carry(self.relay.editor_left(path, conn, self.clock.now()))

    def client_update(self, path: str, update: bytes) -> None:
        self.folder.live_client(path, update)

    # -- awareness (cursors, names) ------------------------------------------------------------
    def awareness(self, source: LiveConnection, message: bytes) -> None:
        """An editor's awareness message. Raises AwarenessError for garbage."""
        self._carry(self.relay.from_editor(source.path, source, message, self.clock.now()))

    def from_peer(self, peer: bytes, message: LiveSync) -> None:
        """A peer's `LiveSync`: awareness of the editors on other nodes, for a file live here."""
        if message.kind == AWARENESS and self.live.owns(message.path):
            self._carry(self.relay.from_peer(peer, message.path, message.data, self.clock.now()))

    def peer_gone(self, peer: bytes) -> None:
        self._carry(self.relay.peer_gone(peer, self.clock.now()))

    async def run(self) -> None:
        """The relay's timer: coalesced entries to the peers, stale entries dropped."""
        while True:
            due = self.relay.next_due()
            with trio.move_on_after(60.0 if due is None else max(0.0, due - self.clock.now())):
                await self._wake.wait()
            self._wake = trio.Event()
            self._carry(self.relay.tick(self.clock.now()))

    def _carry(self, effects: list) -> None:
        for effect in effects:
            if isinstance(effect, ToEditors):
                for conn in list(self.conns.get(effect.path, ())):
                    if conn is not effect.skip:
                        conn.push(effect.message)
            elif isinstance(effect, ToPeers):
                message = LiveSync(effect.path, AWARENESS, effect.update)
                for peer in self.folder.peers():
                    if peer != effect.skip:
                        self.folder.send_to(peer, message)
        if effects:
            self._wake.set()  # a flush may be due sooner than the timer thought

    def _changed(self, path: str, update: bytes) -> None:
        conns = self.conns.get(path)
        if conns:
            message = YSession.update_message(update)
            for conn in list(conns):
                conn.push(message)


__all__ = ["LiveHub", "LiveConnection"]
