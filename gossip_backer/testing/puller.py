"""The disk side of a simulated node: bring the disk to the map, and serve and fetch blocks.

Theory of operation. After any change `settle` runs once (coalesced): a read-write member
publishes the conflict copies of the paths just touched whose loser's content it holds
(`mirror.conflict_copies` with `holds`, as runtime/folder.py does), then `mirror.needed` lists what the disk lacks. Folders, links and
deletions are applied at once (memdisk's `make_dir`, `make_symlink`, `remove`, each checking the
disk is still what the index says); a file is assembled in a temp file from a partial download
left by a crash, then from blocks found on this disk, then from peers through the real
`transfer.Scheduler` (BlockRequest / BlockData / BlockMissing, each block checked against its
hash). When the last block arrives the need is computed again: if the map moved on the download
is dropped, else `TempFile.finish` checks the whole file and moves it into place unless the user
changed the path meanwhile (`LocalChanged`: rescan, which turns it into a conflict). A file no
connected peer can serve is retried with back-off (peers may have fetched it since).

`Puller` is a mixin of `SimNode` (testing/node.py); it uses the node's map, store, disk,
scheduler and connections.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gossip_backer.core import blocks as coreblocks
from gossip_backer.core.record import FILE, FileRecord
from gossip_backer.core.vv import VersionVector
from gossip_backer.errors import IntegrityError, LocalError, RemoteError
from gossip_backer.protocol import mirror
from gossip_backer.store.repo import IndexEntry
from gossip_backer.testing import memdisk
from gossip_backer.testing.memdisk import TempFile
from gossip_backer.wire.messages import BlockData, BlockMissing, BlockRequest, Message

__all__ = ["Puller"]

MAX_STALL_BACKOFF = 4.0


@dataclass
class _Pull:
    record: FileRecord
    temp: TempFile


class Puller:
    """The disk side of SimNode (see the module docstring)."""

    # -- bringing the disk to the map --------------------------------------------------------
    def schedule_settle(self) -> None:
        if self._settle_timer is None and self.alive:
            self._settle_timer = self.cluster.loop.call_later(
                self.cluster.cfg.settle_delay, self._settle, self.incarnation)

    def _settle(self, inc: int) -> None:
        if inc != self.incarnation:
            return
        self._settle_timer = None
        if self._scan_todo and self._scan_timer is None:
            self._scan_now(inc)
        touched, self.touched = sorted(self.touched), set()
        if self.can_write():
            for path in touched:
                for copy in mirror.conflict_copies(self.metamap, path, self.holds):
                    self.publish(copy)
        needs = mirror.needed(self.metamap, self.store.index)
        wanted = {n.path for n in needs if n.action == mirror.WRITE_FILE}
        for path in [p for p in self.pulls if p not in wanted]:
            self._cancel_pull(path)  # the map or the disk moved on: not needed any more
        for need in needs:
            try:
                self._do(need)
            except memdisk.LocalChanged:
                self.user_changed(need.path)
            except LocalError as exc:  # DiskError, a folder in the way...: try again later
                self.local_errors.append(f"{need.action} {need.path}: {exc}")
        self.request_blocks()
        self.cluster.changed(self)

    def holds(self, content_hash: bytes) -> bool:
        """Is this content on our disk (as last scanned) or in our archive? (runtime.folder)"""
        return (any(e.hash == content_hash for e in self.store.index.values())
                or memdisk.has_version(self.disk, content_hash))

    def _expect(self, path: str) -> memdisk.Stat | None:
        e = self.store.index.get(path)
        return None if e is None else memdisk.Stat(e.size, e.mtime_ns, e.inode, e.kind)

    def _archive(self, where: memdisk.MemPath) -> None:
        e = self.store.index.get(where.rel)
        if e is not None and e.hash is not None:
            try:
                memdisk.archive(self.disk, where, e.hash, hasher_factory=coreblocks.FileHasher)
            except memdisk.ArchiveMismatch:
                pass

    def _do(self, need: mirror.Need) -> None:
        path, rec, index = need.path, need.record, self.store.index
        if need.action == mirror.ADOPT:
            index[path] = replace(index[path], vv=need.disk_vv)
        elif need.action == mirror.DELETE:
            self._cancel_pull(path)
            if memdisk.remove(self.disk, path, self._expect(path), archive=self._archive):
                index.pop(path, None)
                self._blocks = None
        else:
            prev = index.get(path)
            if prev is not None and prev.kind != rec.kind:  # a file became a folder, or ...
                self._cancel_pull(path)
                if not memdisk.remove(self.disk, path, self._expect(path), archive=self._archive):
                    return
                index.pop(path)
                self._blocks = None
            if need.action == mirror.WRITE_FILE:
                self._pull(need)
                return
            self._cancel_pull(path)
            if need.action == mirror.CREATE_DIR:
                memdisk.make_dir(self.disk, path, rec.mode, rec.mtime_ns)
            else:
                memdisk.make_symlink(self.disk, path, rec.target or "", self._expect(path),
                                     archive=self._archive)
            self._index_from_disk(path, rec, need.disk_vv)

    def _index_from_disk(self, path: str, rec: FileRecord, vv: VersionVector) -> None:
        st = self.disk.lstat(path)
        self.store.index[path] = IndexEntry(path, st.size, st.mtime_ns, st.inode,
                                            self.disk.mode(path), st.kind, rec.hash,
                                            rec.block_size, rec.blocks, rec.target, vv)
        self._blocks = None

    def _pull(self, need: mirror.Need) -> None:
        rec = need.record
        current = self.pulls.get(need.path)
        if current is not None and current.record == rec:
            return
        self._cancel_pull(need.path)
        partial = memdisk.find_partial(self.disk, need.path)
        if partial is not None:
            temp = TempFile.open_existing(partial, target=memdisk.MemPath(self.disk, need.path),
                                          hasher_factory=coreblocks.FileHasher)
        else:
            temp = TempFile.create(self.disk, need.path, hasher_factory=coreblocks.FileHasher)
        temp.truncate(rec.size)
        todo = []
        for i, block in enumerate(rec.blocks):
            offset = i * rec.block_size
            length = min(rec.block_size, rec.size - offset)
            if partial is not None and coreblocks.strong_hash(temp.read_at(offset, length)) == block.hash:
                continue  # verified in an earlier try (a resumed download)
            data = self._local_block(block.hash)
            if data is not None and len(data) == length:
                temp.write_at(offset, data)
            else:
                todo.append((i, block))
        self.pulls[need.path] = _Pull(rec, temp)
        if todo:
            self.scheduler.add(need.path, rec.hash, rec.block_size, rec.size, todo)
        else:
            self._finish(need.path)

    def _cancel_pull(self, path: str) -> None:
        pull = self.pulls.pop(path, None)
        if pull is not None:
            self.scheduler.cancel(path)
            pull.temp.close()

    def _finish(self, path: str) -> None:
        pull = self.pulls.pop(path)
        self.scheduler.cancel(path)
        need = mirror.need_for(self.metamap, path, self.store.index.get(path))
        if need is None or need.action != mirror.WRITE_FILE or need.record != pull.record:
            pull.temp.close()  # the map moved on meanwhile: the next settle decides again
            self.schedule_settle()
            return
        rec = pull.record
        try:
            pull.temp.finish(None, rec.hash, rec.mode, rec.mtime_ns, self._expect(path),
                             archive=self._archive)
        except memdisk.LocalChanged:
            self.user_changed(path)  # the user's change wins the race: it becomes a conflict
            return
        except IntegrityError as exc:  # blocks that each check out but not the whole: a bad record
            self.local_errors.append(f"{path}: {exc}")
            return
        self._index_from_disk(path, rec, need.disk_vv)
        self.schedule_settle()
        self.cluster.changed(self)

    def _local_block(self, block_hash: bytes) -> bytes | None:
        """A block with this hash from a file on our disk (as last scanned), if still there."""
        if self._blocks is None:
            self._blocks = {}
            for e in self.store.index.values():
                if e.kind == FILE and e.hash is not None:
                    for i, b in enumerate(e.blocks):
                        off = i * e.block_size
                        self._blocks.setdefault(b.hash, (e.path, off, min(e.block_size, e.size - off)))
        where = self._blocks.get(block_hash)
        if where is None:
            return None
        data = self.disk.read(where[0])
        if data is None:
            return None
        chunk = data[where[1]:where[1] + where[2]]
        return chunk if coreblocks.strong_hash(chunk) == block_hash else None

    # -- blocks over the network -------------------------------------------------------------
    def request_blocks(self) -> None:
        if not self.pulls or not self.alive:
            return
        cl = self.cluster
        peers = [cl.nodes[p].key for p in self.conns]
        for key, req in self.scheduler.requests(peers, self.now):
            self.send(cl.by_key[key], req)
        if any(self.scheduler.stalled(p, peers) for p in self.pulls) and self._stall_timer is None:
            self._stall_backoff = min(MAX_STALL_BACKOFF, max(cl.cfg.tick, self._stall_backoff * 2))
            self._stall_timer = cl.loop.call_later(self._stall_backoff, self._unstall,
                                                   self.incarnation)

    def _unstall(self, inc: int) -> None:
        """Peers that lacked a file may have fetched it since: ask again (with back-off)."""
        if inc != self.incarnation:
            return
        self._stall_timer = None
        self.scheduler.forget_lacking()
        self.request_blocks()

    def _on_block_message(self, peer: int, message: Message) -> None:
        key = self.cluster.nodes[peer].key
        if isinstance(message, BlockRequest):
            self.send(peer, self.serve_block(message))
        elif isinstance(message, BlockData):
            arrived = self.scheduler.on_data(key, message.request_id, message.data)
            if arrived is not None:
                self._stall_backoff = 0.0
                pull = self.pulls.get(arrived.path)
                if pull is not None:
                    pull.temp.write_at(arrived.offset, arrived.data)
                    if self.scheduler.remaining(arrived.path) == 0:
                        self._finish(arrived.path)
            self.request_blocks()
        else:
            self.scheduler.on_missing(key, message.request_id)
            self.request_blocks()

    def serve_block(self, req: BlockRequest) -> Message:
        if not 0 < req.size <= coreblocks.MAX_BLOCK_SIZE or req.offset < 0:
            raise RemoteError("BlockRequest of an impossible size")
        for e in self.store.index.values():
            if e.kind == FILE and e.hash == req.file_hash:
                data = (self.disk.read(e.path) or b"")[req.offset:req.offset + req.size]
                if len(data) == req.size and coreblocks.strong_hash(data) == req.hash:
                    return BlockData(req.request_id, data)
        data = self._local_block(req.hash)
        if data is None:  # a version this node replaced and archived (history, restores)
            kept = memdisk.read_version(self.disk, req.file_hash)
            if kept is not None:
                data = kept[req.offset:req.offset + req.size]
                if coreblocks.strong_hash(data) != req.hash:
                    data = None
        if data is not None and len(data) == req.size:
            return BlockData(req.request_id, data)
        return BlockMissing(req.request_id)

    # -- observation -------------------------------------------------------------------------
    def idle(self) -> bool:
        """Nothing left to do: no download, no pending scan, the disk holds what the map says."""
        if not self.alive:
            return True
        if self.pulls or self._scan_todo or self.touched:
            return False
        return not mirror.needed(self.metamap, self.store.index)
