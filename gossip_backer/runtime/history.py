"""`backer history` and `backer restore`: versions of a path known anywhere in the mesh, and
bringing one back as a new change.

Running node: peers are asked which versions they keep (HistoryRequest); a version whose content
only another node kept is fetched from it by content hash, in 1 MiB pieces verified against the
version's whole hash before it is moved into place. Stopped node: the map and the local archive
only; the restored file is published when the node next runs (its scan sees the change).
"""

from __future__ import annotations

import time
from pathlib import Path

import trio

from gossip_backer.core.blocks import FileHasher
from gossip_backer.core.paths import BadPath, check, unescape
from gossip_backer.disk import apply, versions
from gossip_backer.disk.apply import Stat, TempFile
from gossip_backer.errors import UserError
from gossip_backer.protocol import history
from gossip_backer.protocol.history import Version
from gossip_backer.wire.messages import HistoryReply, HistoryRequest

PIECE = 1 << 20


def mesh_path(root: Path, text: str) -> str:
    """A PATH argument (relative to ROOT, or absolute inside it) as a mesh path. A name that is
    not UTF-8 may be given raw or as `status` shows it (`\\xNN` for each odd byte)."""
    text = unescape(text)
    p = Path(text)
    if p.is_absolute():
        try:
            text = str(p.resolve(strict=False).relative_to(Path(root).resolve()))
        except ValueError:
            raise UserError(f"{text} is not inside {root}") from None
    try:
        return check(text.strip("/"))
    except BadPath as exc:
        raise UserError(f"not a path in the mesh: {exc}") from None


def archive_rows(state, path: str) -> list[tuple[bytes, int, int, bytes]]:
    """The versions of `path` this node keeps, whose bytes are still in the archive."""
    return [(r.hash, r.size, r.mtime_ns, r.node) for r in state.repo.revisions(path)
            if versions.open_version(state.root, r.hash) is not None]


def local_history(state, path: str, rows: list | None = None) -> list[Version]:
    """This node's versions of `path`: its archive (`rows`, or read now) and the map."""
    rows = archive_rows(state, path) if rows is None else rows
    return history.local(path, rows, state.metamap)


def local_source(state, index: dict, v: Version, holders: set[bytes] | None) -> Path | None:
    """The local file to take the version's bytes from (protocol/history.py chooses: the
    archive, else a current file with that content), or None: fetch it from `holders`."""
    archived = versions.open_version(state.root, v.hash)
    kind, path = history.restore_source(v, archived is not None, index, holders)
    if kind == history.ARCHIVE:
        return archived
    return state.root / path if kind == history.CURRENT else None


def copy_into(tmp: TempFile, source: Path) -> None:
    """(worker thread) The bytes of `source` into the temporary file."""
    with open(source, "rb") as f:
        offset = 0
        while chunk := f.read(PIECE):
            tmp.write_at(offset, chunk)
            offset += len(chunk)


def finish_restored(tmp: TempFile, v: Version, expect: Stat | None, mode: int, archive) -> int:
    """(worker thread) Move the restored content into place as a fresh change (mtime now)."""
    now = time.time_ns()
    try:
        tmp.finish(None, v.hash, mode, now, expect, archive=archive)
    except BaseException:
        tmp.abort()
        raise
    return now


# -- the running node ------------------------------------------------------------------------
class HistoryService:
    """History requests to and from peers, and restores, for a running node: carries out what
    protocol/history.py decides (whom to ask, until when, how replies merge)."""

    def __init__(self, state, links, send_to, folder) -> None:
        self._state = state
        self._links = links  # the connected peers (PeerLinks)
        self._send_to = send_to
        self._folder = folder  # None when the node does not mirror its folder
        self._next = 1
        self._waiting: dict[int, history.Ask] = {}
        self._restoring: set[str] = set()  # paths with a restore under way
        self.started = time.monotonic()

    def answer(self, req: HistoryRequest) -> HistoryReply:
        path = history.requested_path(req)
        return history.reply(req, [] if path is None else archive_rows(self._state, path))

    def on_reply(self, peer: bytes, reply: HistoryReply) -> None:
        ask = self._waiting.get(reply.request_id)
        if ask is not None:
            ask.on_reply(peer, reply)

    async def history(self, path: str) -> tuple[list[Version], dict[str, set[bytes]]]:
        """All versions known in the mesh, and which peers reported keeping each one."""
        rid, self._next = self._next, self._next + 1
        now = time.monotonic()
        ask = self._waiting[rid] = history.Ask(rid, path, now, self.started)
        state = self._state
        try:
            with trio.move_on_after(ask.deadline - now):
                while True:
                    for peer in ask.to_ask(list(self._links)):
                        self._send_to(peer, ask.request)
                    members = history.members_to_wait_for(state.metamap, state.identity.public)
                    if ask.complete(time.monotonic(), members):
                        break
                    await trio.sleep(0.05)
        finally:
            del self._waiting[rid]
        rows = await state.store_call(archive_rows, state, path)  # in order
        return ask.listing(local_history(state, path, rows), history.from_map(state.metamap, path))

    async def restore(self, path: str, version_id: str | None) -> dict:
        folder = self._folder
        if folder is None:
            raise UserError("this node does not mirror its folder")
        history.refuse_restore(self._state.is_read_only(), folder.busy(path), path,
                               path in self._restoring)
        self._restoring.add(path)
        try:
            return await self._restore(folder, path, version_id)
        finally:
            self._restoring.discard(path)

    async def _restore(self, folder, path: str, version_id: str | None) -> dict:
        listing, holders = await self.history(path)
        v = history.choose(listing, version_id, path)
        entry = folder.index.get(path)
        expect = None if entry is None else Stat(entry.size, entry.mtime_ns, entry.inode, entry.kind)
        mode = entry.mode if entry is not None and entry.kind == "file" else 0o644
        archived: list = []
        archive = folder.archiver(entry, archived)
        source = local_source(self._state, folder.index, v, holders.get(v.id, set()))
        tmp = await trio.to_thread.run_sync(TempFile.create, folder.root, path)
        if source is not None:
            await trio.to_thread.run_sync(copy_into, tmp, source)
        elif not await self._fetch(v, tmp, "\0restore:" + path):
            await trio.to_thread.run_sync(tmp.abort)
            raise UserError("could not fetch that version from the nodes that keep it")
        await trio.to_thread.run_sync(finish_restored, tmp, v, expect, mode, archive)
        folder.record_archived(archived)
        await folder.scan_some({path}, settle=False)
        await folder.all_published()  # the restored version is in the map: its id is the answer
        current = [x for x in history.from_map(self._state.metamap, path) if x.current]
        return {"path": path, "version": current[0].id if current else v.id}

    async def _fetch(self, v: Version, tmp: TempFile, key: str) -> bool:
        """Fetch a version only peers keep, in pieces, under the download key `key` (one per
        fetch under way); `finish` checks its whole hash."""
        return await self._folder.fetch_into(key, tmp, v.hash,
                                             history.RESTORE_PIECE, v.size,
                                             history.restore_pieces(v.size))

    async def fetch_bytes(self, v: Version, holders: set[bytes], limit: int) -> bytes:
        """The content of version `v`, which only peers keep (at most `limit` bytes), fetched
        into a temporary file of its own (never the path's: a download or restore of the path
        may be under way) and checked against the version's whole hash; for viewing it."""
        if v.size > limit:
            raise UserError(f"that version is larger than {limit} bytes")
        if not holders:
            raise UserError("that version's content is on no connected node")
        folder = self._folder
        n, self._next = self._next, self._next + 1  # two views of one version at once: two files
        scratch = f"{v.path}.view-{v.id}-{n}"  # its own temp name, next to the path
        tmp = await trio.to_thread.run_sync(TempFile.create, folder.root, scratch)
        try:
            if not await self._fetch(v, tmp, "\0view:" + scratch):
                raise UserError("could not fetch that version from the nodes that keep it")
            data = await trio.to_thread.run_sync(tmp.read_at, 0, v.size)
        finally:
            await trio.to_thread.run_sync(tmp.abort)
        hasher = FileHasher()
        hasher.update(data)
        if hasher.digest() != v.hash:
            raise UserError("the version fetched from a peer does not match its hash")
        return data


# -- the stopped node ------------------------------------------------------------------------
def offline_history(state, path: str) -> list[dict]:
    listing = local_history(state, path)
    if not listing:
        raise UserError(f"no such file in the mesh: {path}")
    return [v.to_json() for v in listing]


def offline_restore(state, path: str, version_id: str | None) -> dict:
    history.refuse_restore(state.is_read_only(), False, path)
    v = history.choose(local_history(state, path), version_id, path)
    index = {e.path: e for e in state.repo.index_all()}
    source = local_source(state, index, v, None)  # a stopped node asks no peer
    entry = index.get(path)
    current = apply.stat_of(state.root, path)
    mode = entry.mode if entry is not None and entry.kind == "file" else 0o644

    def archive(p: Path) -> None:
        """Keep what is there now, whatever it is (maybe an edit not yet scanned)."""
        hasher = FileHasher()
        with open(p, "rb") as f:
            while chunk := f.read(PIECE):
                hasher.update(chunk)
        h = hasher.digest()
        versions.archive(state.root, p, h)
        st = p.stat()
        state.repo.add_revision(path, h, st.st_size, st.st_mtime_ns, state.identity.public, time.time())
    tmp = TempFile.create(state.root, path)
    copy_into(tmp, source)
    mtime = finish_restored(tmp, v, current, mode, archive)
    new = Version(path, v.hash, v.size, mtime, state.identity.public, False)
    return {"path": path, "version": new.id}
