"""Editors connected to a running node's live documents (the y-websocket endpoint of web/live.py).

Each connection is a `live.ywire.YSession` on the node's document of that file. A client's edit
goes to the folder machine (`live_client`: merged, published to the mesh, written to disk); every
change of a document, whoever made it (a peer, the disk, an editor), is sent to every connection
of that document. Awareness messages (cursors and names) are relayed between the editors of one
document, and a newcomer gets the latest one of each other editor.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from gossip_backer.errors import UserError
from gossip_backer.live.ywire import YProtocolError, YSession

if TYPE_CHECKING:
    from gossip_backer.runtime.folder import Folder

OUTBOX = 1000  # messages waiting for a slow editor before it is dropped


class LiveConnection:
    """One editor of one live file: `hello()`, `receive(message) -> replies`, and `outgoing`."""

    def __init__(self, hub: "LiveHub", path: str, session: YSession) -> None:
        self.hub, self.path, self.session = hub, path, session
        self._send, self.outgoing = trio.open_memory_channel(OUTBOX)
        self.awareness: bytes | None = None

    def hello(self) -> list[bytes]:
        return self.session.hello() + self.hub.awareness_of_others(self)

    def receive(self, message: bytes) -> list[bytes]:
        """A message from the editor; what to answer it. Raises YProtocolError for garbage."""
        inbound = self.session.receive(message)
        if inbound.update is not None:
            try:
                self.hub.client_update(self.path, inbound.update)
            except Exception as exc:  # pycrdt refuses a malformed update: the client's fault
                raise YProtocolError(f"update refused: {exc}") from exc
        if inbound.awareness is not None:
            self.awareness = inbound.awareness
            self.hub.relay(self, inbound.awareness)
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

    def __init__(self, folder: "Folder") -> None:
        self.folder = folder
        self.clock = folder.clock  # the node's one clock (runtime/clock.py)
        self.conns: dict[str, set[LiveConnection]] = defaultdict(set)
        folder.machine.live.listen(self._changed)

    @asynccontextmanager
    async def connect(self, path: str, *, read_only: bool):
        """A connection to the document of `path`; UserError when the file is not live here."""
        live = self.folder.machine.live
        if not live.owns(path):
            raise UserError(f"{path} is not a live file on this node")
        conn = LiveConnection(self, path, YSession(live.docs[path], read_only=read_only))
        self.conns[path].add(conn)
        try:
            yield conn
        finally:
            self.conns[path].discard(conn)
            conn.close()

    def client_update(self, path: str, update: bytes) -> None:
        self.folder.execute(self.folder.machine.live_client(path, update, self.clock.now(),
                                                            self.clock.wall()))
        self.folder.live.wake()

    def relay(self, source: LiveConnection, message: bytes) -> None:
        for conn in list(self.conns.get(source.path, ())):
            if conn is not source:
                conn.push(message)

    def awareness_of_others(self, newcomer: LiveConnection) -> list[bytes]:
        return [c.awareness for c in self.conns.get(newcomer.path, ())
                if c is not newcomer and c.awareness is not None]

    def _changed(self, path: str, update: bytes) -> None:
        conns = self.conns.get(path)
        if conns:
            message = YSession.update_message(update)
            for conn in list(conns):
                conn.push(message)


__all__ = ["LiveHub", "LiveConnection"]
