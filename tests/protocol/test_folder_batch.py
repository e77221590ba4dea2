"""The folder machine told of several files at once (`done_many`, a batch of small files the
daemon placed in one worker hop): the same decisions as `done` for each, in one index write."""

from __future__ import annotations

from gossip_backer.core.indexrow import VersionRow
from gossip_backer.disk.scan import ScanResult
from gossip_backer.events import FileUpdated
from gossip_backer.protocol import mirror
from gossip_backer.protocol.effects import Emit, IndexWrite
from gossip_backer.protocol.folder import DiskStat, FolderMachine
from helpers import make_mesh

S = 1_000_000_000
WALL = 1_800_000_000.0


def _machine_with_needs(n: int):
    a, b = make_mesh(2)
    for i in range(n):
        a.write(f"d/f{i}", f"content {i}".encode(), mtime_ns=S)
    for u in a.map.since(b.map.digest()):
        b.map.apply(u)
    machine = FolderMachine(b.map, b.id)
    machine.scanned_root(ScanResult(entries={}), WALL, full=True)
    work = machine.next_work(0.0)
    files = [w for w in work if w.action == mirror.WRITE_FILE]
    assert len(files) == n
    return machine, files


def _stat(need: mirror.Need, inode: int) -> DiskStat:
    return DiskStat(need.record.size, need.record.mtime_ns, inode)


def test_done_many_is_done_of_each_with_one_index_write() -> None:
    one, files_one = _machine_with_needs(3)
    many, files_many = _machine_with_needs(3)
    singly = [e for i, n in enumerate(files_one) for e in one.done(n, _stat(n, i + 1), WALL)]
    together = many.done_many([(n, _stat(n, i + 1)) for i, n in enumerate(files_many)], WALL)
    writes = [e for e in together if isinstance(e, IndexWrite)]
    assert len(writes) == 1 and together[0] is writes[0]  # one write, ahead of the events
    assert writes[0].puts == tuple(p for e in singly if isinstance(e, IndexWrite) for p in e.puts)
    assert [e for e in together if not isinstance(e, IndexWrite)] == [
        e for e in singly if not isinstance(e, IndexWrite)]
    assert all(isinstance(e.event, FileUpdated) for e in together[1:] if isinstance(e, Emit))
    assert many.index == one.index and set(many.index) == {n.path for n in files_many}
    assert not any(n.action == mirror.WRITE_FILE for n in many.next_work(1.0) + many.needs)


def test_done_many_of_nothing_says_nothing() -> None:
    machine, _ = _machine_with_needs(1)
    assert machine.done_many([], WALL) == []



def test_a_need_is_computed_once_while_nothing_moves_at_its_path(monkeypatch) -> None:
    """Handed out, checked before placing, placed: one computation of the need per file
    (not three); a new version at the path is still seen before placing."""
    a, b = make_mesh(2)
    for i in range(3):
        a.write(f"d/f{i}", f"content {i}".encode(), mtime_ns=S)
    for u in a.map.since(b.map.digest()):
        b.map.apply(u)
    machine = FolderMachine(b.map, b.id)
    machine.scanned_root(ScanResult(entries={}), WALL, full=True)
    files = [w for w in machine.next_work(0.0) if w.action == mirror.WRITE_FILE]
    asked = []
    real = mirror.need_for
    monkeypatch.setattr(mirror, "need_for", lambda m, p, e: asked.append(p) or real(m, p, e))
    assert not any(machine.superseded(n) for n in files)
    machine.done_many([(n, _stat(n, i + 1)) for i, n in enumerate(files[:2])], WALL)
    assert machine.next_work(1.0) == [] and asked == []
    assert [n.path for n in machine.needs] == [files[2].path]
    row = machine.index[files[0].path]  # the map's record itself, as `_compact` would keep it
    assert isinstance(row, VersionRow) and row.version is files[0].record
    assert row == machine.entry_after(files[0], _stat(files[0], 1))
    seen = b.map.digest()
    a.write(files[2].path, b"newer", mtime_ns=2 * S)
    for u in a.map.since(seen):
        b.map.apply(u)
    machine.map_changed([files[2].path], lambda h: False, WALL)
    assert machine.superseded(files[2]) and asked == [files[2].path]
    machine.abandoned(files[2])
    again = machine.next_work(2.0)
    assert [n.record.size for n in again] == [len(b"newer")]
