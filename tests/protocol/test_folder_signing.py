"""The folder machine while our versions are signed in the background (the daemon signs a
`Publish` in a worker thread and says so: `signing`, then `published`): their paths wait, so no
change made meanwhile is judged against a map that does not hold our version yet."""

from __future__ import annotations

from gossip_backer.protocol import mirror
from gossip_backer.protocol.effects import IndexWrite, Publish, Rescan
from gossip_backer.protocol.folder import FolderMachine
from helpers import make_mesh
from test_folder import WALL, published, result, scanned, sync


def _signing(machine: FolderMachine, effects: list) -> list:
    records = published(effects)
    machine.signing(records)
    return records


def test_a_deletion_while_the_new_file_is_signed_is_judged_once_it_is_published() -> None:
    (a,) = make_mesh(1)
    machine = FolderMachine(a.map, a.id)
    new = _signing(machine, machine.scanned_root(result(scanned("f.txt", b"v1", 900)), WALL, full=True))
    assert [r.path for r in new] == ["f.txt"] and not machine.in_sync()
    gone = machine.scanned_root(result(deleted=("f.txt",)), WALL, full=False)
    assert published(gone) == []  # no deletion of a version the map lacks yet...
    assert any(isinstance(e, Rescan) and "f.txt" in e.paths for e in gone)
    assert "f.txt" in machine.index  # ...and the row stays until it is judged
    assert not any(isinstance(e, IndexWrite) and "f.txt" in e.drops for e in gone)
    for record in new:
        a.commit(record)
    machine.published(new, lambda h: True, WALL)
    again = machine.scanned_root(result(deleted=("f.txt",)), WALL, full=False)
    deletion = published(again)
    assert len(deletion) == 1 and deletion[0].deleted and deletion[0].vv.dominates(new[0].vv)


def test_a_peer_s_version_waits_while_ours_is_signed() -> None:
    a, b = make_mesh(2)
    machine = FolderMachine(a.map, a.id)
    ours = _signing(machine, machine.scanned_root(result(scanned("f.txt", b"ours", 900)), WALL,
                                                  full=True))
    b.write("f.txt", b"theirs", mtime_ns=950 * 10**9)  # a later edit arrives meanwhile
    sync(a, b)
    machine.map_changed(["f.txt"], lambda h: True, WALL)
    assert not [n for n in machine.next_work(0.0) if n.path == "f.txt"]  # no disk work there
    assert not [n for n in machine.pending() if n.path == "f.txt"] and not machine.in_sync()
    for record in ours:
        a.commit(record)
    machine.published(ours, lambda h: True, WALL)
    work = [n for n in machine.next_work(1.0) if n.path == "f.txt"]
    assert [n.action for n in work] == [mirror.WRITE_FILE]  # now judged: theirs wins (later)
    assert work[0].record.hash == b.map.winner("f.txt").hash
