"""The folder machine's decisions, with no I/O: real signed updates in real MetaMaps (the replicas
of helpers.py), scan results shaped as `disk.scan` makes them, and the effects the daemon and the
simulator both carry out. Each test holds a rule a user relies on: no write is lost."""

from __future__ import annotations

import hashlib

from gossip_backer.core import conflict
from gossip_backer.core.record import DIR, FILE, Block, FileRecord
from gossip_backer.core.vv import VersionVector
from gossip_backer.disk.scan import ScanEntry, ScanResult
from gossip_backer.events import Conflict, RootPaused, RootResumed
from gossip_backer.protocol import mirror
from gossip_backer.protocol.effects import Emit, IndexWrite, Publish, Rescan
from gossip_backer.protocol.folder import (READ_WRITE, SETTLE, SMALL_BYTES, SMALL_FILE,
                                           UNAVAILABLE_AFTER, DiskStat, FolderMachine, settle_wait)
from helpers import Replica, empty_replica, make_mesh

S = 1_000_000_000
WALL = 1_800_000_000.0  # "now", in Unix seconds: every mtime below is older than SETTLE


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def scanned(path: str, data: bytes, mtime_s: float, inode: int = 1, mode: int = 0o644) -> ScanEntry:
    h = digest(data)
    return ScanEntry(path, len(data), int(mtime_s * S), inode, mode, FILE, h, 128 * 1024,
                     (Block(h, 0),))


def result(*entries: ScanEntry, deleted: tuple[str, ...] = ()) -> ScanResult:
    res = ScanResult(entries={e.path: e for e in entries})
    res.changed = sorted(e.path for e in entries)
    res.deleted = list(deleted)
    return res


def published(effects: list) -> list[FileRecord]:
    return [r for e in effects if isinstance(e, Publish) for r in e.records]


def sign_all(node: Replica, machine: FolderMachine, effects: list, holds=lambda h: True) -> list:
    """What an interpreter does with `Publish`: sign and apply each record, then tell the
    machine the map moved. Returns every effect, the follow-ups included."""
    out = list(effects)
    for effect in effects:
        if isinstance(effect, Publish):
            for record in effect.records:
                node.commit(record)
            out += sign_all(node, machine, machine.map_changed(
                [r.path for r in effect.records], holds, WALL), holds)
    return out


def sync(a: Replica, b: Replica) -> None:
    """Both maps hold every update of the other (what gossip achieves)."""
    for u in a.map.since(b.map.digest()):
        b.take(u)
    for u in b.map.since(a.map.digest()):
        a.take(u)


def test_an_offline_edit_older_than_the_mesh_s_becomes_a_conflict_copy_whatever_the_order() -> None:
    """The lost write of the issue: C edits big0.txt while stopped, A edits it 2 s later. When C
    starts, A's version reaches C's map BEFORE C's first scan publishes the offline edit. A wins
    everywhere (later mtime), and C, the only node holding its text, must publish its copy."""
    a, b, c = make_mesh(3)
    first = a.write("big0.txt", b"v1", mtime_ns=100 * S)
    for r in (b, c):
        r.take(first)
    machine_c = FolderMachine(c.map, c.id)
    effects = sign_all(c, machine_c, machine_c.scanned_root(
        result(scanned("big0.txt", b"v1", 100)), WALL, full=True))
    assert not published(effects)  # C's disk holds the mesh's version: nothing new
    for need in machine_c.next_work(0.0):  # ...whose vv the index adopts
        machine_c.done(need, DiskStat(2, 100 * S, 1), WALL)
    # C stopped; the offline edit on C, then A's edit two seconds later, which reaches C first
    a.write("big0.txt", b"A's text", mtime_ns=202 * S)
    sync(a, c)
    machine_c.map_changed(["big0.txt"], lambda h: True, WALL)
    effects = sign_all(c, machine_c, machine_c.scanned_root(
        result(scanned("big0.txt", b"C's offline text", 200, inode=2)), WALL, full=True))
    records = published(effects)
    mine = [r for r in records if r.path == "big0.txt"]
    copies = [r for r in records if conflict.is_conflict_copy(r.path)]
    assert len(mine) == 1 and mine[0].hash == digest(b"C's offline text")
    assert [c_.hash for c_ in copies] == [digest(b"C's offline text")]
    assert copies[0].path == conflict.conflict_name("big0.txt", 200 * S, c.id)
    assert any(isinstance(e, Emit) and isinstance(e.event, Conflict) for e in effects)
    assert c.map.winner("big0.txt").hash == digest(b"A's text")  # A's later edit wins
    # and C's disk work: A's text at the path, C's at the copy (from C's own bytes, no loss)
    work = {n.path: n for n in machine_c.next_work(1.0)}
    assert work["big0.txt"].record.hash == digest(b"A's text")
    assert work[copies[0].path].record.hash == digest(b"C's offline text")


def test_a_copy_is_published_only_by_a_node_that_holds_the_loser_s_bytes() -> None:
    a, b = make_mesh(2)
    machine = FolderMachine(b.map, b.id)
    a.write("f", b"A", mtime_ns=10 * S)
    b.commit(FileRecord("f", FILE, VersionVector().bump(b.id), b.id, 1, 5 * S, 0o644, digest(b"B")))
    sync(a, b)
    assert not published(machine.map_changed(["f"], lambda h: False, WALL))
    copies = published(machine.map_changed(["f"], lambda h: h == digest(b"B"), WALL))
    assert [r.hash for r in copies] == [digest(b"B")]


def test_files_found_before_admission_are_published_once_admitted_and_never_overwritten() -> None:
    """Files in ROOT at `backer join` (and written before the grant arrives) are the user's:
    while the node does not know its role they wait; once admitted read-write they are published
    and the conflict rule decides (the later mtime wins, the other becomes a conflict copy)."""
    founder = make_mesh(1)[0]
    founder.write("same.txt", b"mesh copy", mtime_ns=100 * S)  # older than the joiner's
    founder.write("theirs.txt", b"mesh text", mtime_ns=300 * S)  # newer than the joiner's
    joiner = empty_replica(founder, 7)
    sync(founder, joiner)  # the joiner may hear the map before its grant arrives
    machine = FolderMachine(joiner.map, joiner.id)
    effects = machine.scanned_root(result(scanned("same.txt", b"my newer text", 200),
                                          scanned("theirs.txt", b"my older text", 250, inode=2),
                                          scanned("mine.txt", b"only here", 150, inode=3)),
                                   WALL, full=True)
    assert not published(effects)  # not a member yet: nothing may be signed
    assert machine.next_work(0.0) == []  # and the mesh's versions overwrite nothing
    assert not machine.in_sync()  # unpublished changes: not in sync
    joiner.take(founder.grant(joiner.id))
    mine = {digest(b"my newer text"), digest(b"my older text"), digest(b"only here")}
    effects = sign_all(joiner, machine, machine.map_changed(None, mine.__contains__, WALL),
                       mine.__contains__)
    records = {r.path: r for r in published(effects)}
    assert machine.role() == READ_WRITE
    assert records["mine.txt"].hash == digest(b"only here")
    assert records["same.txt"].hash == digest(b"my newer text")
    assert joiner.map.winner("same.txt").hash == digest(b"my newer text")  # later mtime wins
    assert joiner.map.winner("theirs.txt").hash == digest(b"mesh text")
    copy = conflict.conflict_name("theirs.txt", 250 * S, joiner.id)
    assert records[copy].hash == digest(b"my older text")  # kept, as a conflict copy
    copy = conflict.conflict_name("same.txt", 100 * S, founder.id)
    assert copy not in records  # the founder holds that loser: its node publishes the copy


def test_an_mtime_only_change_is_a_new_version() -> None:
    a, b = make_mesh(2)
    machine = FolderMachine(a.map, a.id)
    sign_all(a, machine, machine.scanned_root(result(scanned("f", b"x", 100)), WALL, full=True))
    effects = machine.scanned_root(result(scanned("f", b"x", 50)), WALL, full=False)  # touch -d
    (record,) = published(effects)
    assert record.mtime_ns == 50 * S and record.hash == digest(b"x")


def test_a_watcher_batch_waits_only_until_its_youngest_path_is_settled() -> None:
    """A save is scanned once it is SETTLE old (and so announced by that first scan); a folder
    moved in whole, whose content is older, is scanned at once (issue 14: the 512 MiB drop
    waited 0.15 s for nothing)."""
    step = 0.05  # the watcher's own quiet wait
    longest = SETTLE - step
    now = int(WALL * S)
    assert settle_wait(WALL, [now - int(0.05 * S)], step) == longest  # a save just made
    wait = settle_wait(WALL, [now - int(0.12 * S)], step)  # made 0.12 s ago: the rest, and a hair
    assert 0.08 < wait < 0.09
    assert settle_wait(WALL, [now - 60 * S], step) == 0.0  # a folder moved in, made a minute ago
    assert settle_wait(WALL, [None], step) == 0.0  # a deletion
    assert settle_wait(WALL, [now - 60 * S, now - int(0.1 * S), None], step) > 0.1  # the youngest
    assert settle_wait(WALL, [now + 5 * S], step) == longest  # a clock ahead: the whole wait
    assert settle_wait(WALL, None, step) == longest  # ages not read (a large batch)
    assert settle_wait(WALL, [], step) == 0.0
    # what it waited is what the machine asks: a file that waited is not held back again
    young = scanned("f", b"v", WALL - 0.12)
    a = make_mesh(1)[0]
    machine = FolderMachine(a.map, a.id)
    later = WALL + settle_wait(WALL, [young.mtime_ns], step)
    assert not any(isinstance(e, Rescan)
                   for e in machine.scanned_root(result(young), later, full=False))


def test_young_files_wait_and_a_suddenly_empty_root_pauses() -> None:
    a, b = make_mesh(2)
    machine = FolderMachine(a.map, a.id)
    young = scanned("f", b"half", WALL - 0.05)
    effects = machine.scanned_root(result(young), WALL, full=True)
    assert not published(effects) and Rescan(("f",), 0.2) in effects
    sign_all(a, machine, machine.scanned_root(result(scanned("f", b"x", 1), scanned("g", b"y", 1, 2)),
                                              WALL, full=True))
    effects = machine.scanned_root(result(deleted=("f", "g")), WALL, full=True)
    assert machine.paused and any(isinstance(e, Emit) and isinstance(e.event, RootPaused)
                                  for e in effects)
    assert not published(effects) and not any(isinstance(e, IndexWrite) for e in effects)
    assert machine.next_work(0.0) == [] and not machine.in_sync()
    effects = machine.scanned_root(result(scanned("f", b"x", 1), scanned("g", b"y", 1, 2)), WALL,
                                   full=True)
    assert not machine.paused and any(isinstance(e.event, RootResumed)
                                      for e in effects if isinstance(e, Emit))


def test_a_round_starts_files_up_to_its_slots_and_deletes_only_when_no_file_is_assembled() -> None:
    a, b = make_mesh(2)
    for i in range(3):
        a.commit(FileRecord(f"dir{i}", DIR, VersionVector({a.id: 100 + i}), a.id, 0, S, 0o755))
    for i in range(50):
        a.write(f"dir{i % 3}/f{i:02d}", b"%d" % i, mtime_ns=S)
    machine = FolderMachine(b.map, b.id, max_small_files=16)  # small files: their own limit
    sign_all(b, machine, machine.scanned_root(result(*(scanned(f"old/x{i}", b"o%d" % i, 1, 10 + i)
                                                       for i in range(4))), WALL, full=True))
    sync(a, b)
    a.write("old/x0", b"gone", mtime_ns=2 * S)
    for i in range(4):  # the mesh deleted what b holds under old/
        a.commit(FileRecord(f"old/x{i}", FILE, b.map.versions(f"old/x{i}")[0].vv.merge(
            a.map.versions(f"old/x{i}")[0].vv).bump(a.id), a.id, mtime_ns=3 * S, deleted=True))
    sync(a, b)
    machine.map_changed(None, lambda h: True, WALL)
    work = machine.next_work(0.0)
    kinds = [n.action for n in work]
    assert kinds == [mirror.CREATE_DIR] * 3 + [mirror.WRITE_FILE] * machine.max_small_files
    assert machine.next_work(0.0) == []  # every slot taken; deletions wait for the files
    for n in work:
        machine.done(n, DiskStat(n.record.size, n.record.mtime_ns, 1), WALL)
    rest = machine.next_work(1.0)
    assert [n.action for n in rest] == [mirror.WRITE_FILE] * machine.max_small_files
    for n in rest:
        machine.done(n, DiskStat(n.record.size, n.record.mtime_ns, 1), WALL)
    while True:
        more = machine.next_work(2.0)
        if not more or more[0].action == mirror.DELETE:
            break
        for n in more:
            machine.done(n, DiskStat(n.record.size, n.record.mtime_ns, 1), WALL)
    assert [n.action for n in more] == [mirror.DELETE] * 4  # deepest first, once no file is built


def _receiving(files: dict[str, bytes]) -> FolderMachine:
    """The machine of a node whose map holds another node's `files`, none on its disk yet."""
    a, b = make_mesh(2)
    for path, data in files.items():
        a.write(path, data, mtime_ns=S)
    sync(a, b)
    machine = FolderMachine(b.map, b.id)
    machine.scanned_root(result(), WALL, full=True)
    return machine


def test_counts_walk_the_index_again_only_after_a_row_was_put_or_dropped(monkeypatch) -> None:
    """`status` is asked each time an event arrives while a benchmark waits for a sync: the
    files, bytes and conflict copies come from one walk of the index until a row is put or
    dropped, and are right after each."""
    walks = []
    real = mirror.file_totals
    monkeypatch.setattr(mirror, "file_totals", lambda index: walks.append(1) or real(index))
    machine = _receiving({"f": b"content", "g": b"other!"})
    assert (machine.counts()["files"], machine.counts()["bytes"]) == (0, 0)
    assert len(walks) == 1
    needs = {n.path: n for n in machine.next_work(0.0)}
    machine.done(needs["f"], DiskStat(7, S, 1), WALL)
    assert (machine.counts()["files"], machine.counts()["bytes"]) == (1, 7)
    machine.done(needs["g"], DiskStat(6, S, 2), WALL)
    copy = "f.sync-conflict-20240101-000000-AAAAAAA"
    machine.scanned_root(result(ScanEntry(copy, 3, S, 3, 0o644, FILE, digest(b"old"), 3,
                                          (Block(digest(b"old"), 1),))), WALL, full=False)
    counts = machine.counts()
    assert (counts["files"], counts["bytes"], counts["conflicts"]) == (3, 16, [copy])
    assert len(walks) == 3 and machine.counts() == counts and len(walks) == 3


def test_small_files_written_to_their_temp_files_make_room_for_more_before_they_are_placed():
    """The small files' byte budget is what the puller holds in memory: once a file's bytes are
    sealed in its temp file, more files start while it is made durable and placed; it still
    counts among the files under way, and it is not handed out again."""
    a, b = make_mesh(2)
    per_file = SMALL_FILE // 2
    count = SMALL_BYTES // per_file + 8  # more than the byte budget takes at once
    for i in range(count):
        a.write(f"f{i:03d}", bytes([i % 256]) * (per_file - 3) + b"%03d" % i, mtime_ns=S)
    sync(a, b)
    machine = FolderMachine(b.map, b.id)
    machine.scanned_root(result(), WALL, full=True)
    first = machine.next_work(0.0)
    assert len(first) == SMALL_BYTES // per_file  # the byte budget, not the file count, bound it
    assert machine.next_work(0.0) == []
    for need in first[:4]:
        machine.sealed(need)
    more = machine.next_work(0.0)
    assert len(more) == 4 and not {n.path for n in more} & {n.path for n in first}
    assert machine.counts()["pending_files"] == count  # nothing is done yet
    for need in first + more:
        machine.done(need, DiskStat(need.record.size, need.record.mtime_ns, 1), WALL)
    assert len(machine.next_work(1.0)) == count - len(first) - len(more)


def test_a_sealed_files_watcher_event_is_ours_before_it_is_done() -> None:
    """A round's renames are reported done only after the next round's sync; the watcher's
    event for such a file is known for ours from the seal on (its stat: size, mtime, inode),
    not scanned again. A stat that differs (a user's write) is not taken for ours."""
    machine = _receiving({"f": b"content", "g": b"other"})
    needs = {n.path: n for n in machine.next_work(0.0)}
    machine.sealed(needs["f"], DiskStat(7, S, 42), WALL)
    machine.sealed(needs["g"])  # (no stat given: nothing known)
    assert machine.own_writes.take("f", WALL + 1) == (7, S, 42, needs["f"].record.mode & 0o777,
                                                       WALL)
    assert machine.own_writes.take("g", WALL + 1) is None


def test_a_file_waiting_for_a_slot_of_its_kind_holds_back_no_file_of_the_other_kind() -> None:
    a, b = make_mesh(2)
    big = b"x" * (SMALL_FILE + 1)
    for name in ("a1", "a2", "a3"):
        a.write(name, big + name.encode(), mtime_ns=S)  # large files first in the order
    for name in ("b1", "b2", "b3"):
        a.write(name, name.encode(), mtime_ns=S)
    for name in ("c1", "c2"):
        a.write(name, big + name.encode(), mtime_ns=S)  # and large ones after the small ones
    sync(a, b)
    machine = FolderMachine(b.map, b.id, max_files=1, max_small_files=1)
    machine.scanned_root(result(), WALL, full=True)
    assert [n.path for n in machine.next_work(0.0)] == ["a1", "b1"]  # one slot of each kind
    assert machine.next_work(0.0) == []
    done = [n for n in machine.needs if n.path == "a1"]
    machine.done(done[0], DiskStat(done[0].record.size, S, 1), WALL)
    assert [n.path for n in machine.next_work(0.0)] == ["a2"]  # past b2, b3 (small: full)


def test_content_nobody_reachable_holds_is_unavailable_and_never_blocks_in_sync() -> None:
    a, b = make_mesh(2)
    a.write("f", b"only on a", mtime_ns=S)
    sync(a, b)
    machine = FolderMachine(b.map, b.id)
    machine.scanned_root(result(), WALL, full=True)
    (need,) = machine.next_work(0.0)
    machine.content_unavailable(need, 0.0, WALL)  # every connected peer said "missing"
    assert not machine.in_sync() and machine.counts()["pending_files"] == 1  # spreading, maybe
    assert machine.next_work(0.1) == []  # asked again a moment later
    (need,) = machine.next_work(0.3)
    machine.content_unavailable(need, UNAVAILABLE_AFTER + 1, WALL)
    counts = machine.counts()
    assert machine.in_sync() and counts["unavailable"] == ["f"] and counts["pending_files"] == 0
    machine.peers_changed()  # a peer connects: asked again at once
    assert [n.path for n in machine.next_work(UNAVAILABLE_AFTER + 1.01)] == ["f"]


def test_after_a_power_loss_what_the_disk_took_back_is_fetched_again_not_published() -> None:
    """A user's write reached the mesh but not its own disk (unsynced when the power went): the
    restarted node sees the file gone, or older. That is not a deletion or an edit by the user:
    nothing is published over the mesh's version, which comes back from the peers."""
    a, b = make_mesh(2)
    machine = FolderMachine(a.map, a.id)
    sign_all(a, machine, machine.scanned_root(
        result(scanned("old.txt", b"synced long ago", 100), scanned("new.txt", b"v2", 1000, 2),
               scanned("gone.txt", b"fresh", 1000, 3)), WALL, full=True))
    # power lost at t=1001: new.txt went back to its older bytes, gone.txt vanished
    machine = FolderMachine(a.map, a.id, machine.index.values())
    machine.after_power_loss(1001.0)
    effects = machine.scanned_root(result(scanned("old.txt", b"synced long ago", 100),
                                          scanned("new.txt", b"v1", 900, 2),
                                          deleted=("gone.txt",)), WALL, full=True)
    assert not published(effects)
    work = {n.path: n.record.hash for n in machine.next_work(0.0)}
    assert work == {"new.txt": digest(b"v2"), "gone.txt": digest(b"fresh")}
    # without the power loss the same scan is the user's doing: published
    machine = FolderMachine(b.map, b.id)
    sync(a, b)
    sign_all(b, machine, machine.scanned_root(
        result(scanned("old.txt", b"synced long ago", 100), scanned("new.txt", b"v2", 1000, 2),
               scanned("gone.txt", b"fresh", 1000, 3)), WALL, full=True))
    effects = machine.scanned_root(result(scanned("old.txt", b"synced long ago", 100),
                                          scanned("new.txt", b"v1", 900, 2),
                                          deleted=("gone.txt",)), WALL, full=True)
    assert {r.path for r in published(effects)} == {"new.txt", "gone.txt"}


def test_adopting_a_version_never_takes_a_stat_of_what_the_user_wrote_since() -> None:
    """An ADOPT changes nothing on disk, only the row's version. A stat taken when it ends could
    be of the user's newer write, not yet scanned: recorded as the adopted content, that write
    would never be published (found by the offline_edit scenario, seed 2)."""
    a, b = make_mesh(2)
    machine = FolderMachine(b.map, b.id)
    sign_all(b, machine, machine.scanned_root(result(scanned("f", b"same", 100)), WALL, full=True))
    a.write("f", b"same", mtime_ns=100 * S)  # the same bytes, made on A too: B only adopts
    sync(a, b)
    machine.map_changed(["f"], lambda h: True, WALL)
    (need,) = machine.next_work(0.0)
    assert need.action == mirror.ADOPT
    machine.done(need, DiskStat(9, 300 * S, 1), WALL)  # the user's write, as a late stat shows
    assert (machine.index["f"].size, machine.index["f"].mtime_ns) == (4, 100 * S)
    effects = machine.scanned_root(result(scanned("f", b"the user's", 300)), WALL, full=False)
    assert [r.hash for r in published(effects)] == [digest(b"the user's")]


def test_a_full_disk_pauses_pulling_says_why_and_resumes_by_itself() -> None:
    from gossip_backer.events import DiskFull, DiskSpaceBack
    from gossip_backer.protocol.folder import DISK_FULL_RETRY

    a, b = make_mesh(2)
    for i in range(3):
        a.write(f"f{i}", b"%d" % i * 1000, mtime_ns=S)
    sync(a, b)
    machine = FolderMachine(b.map, b.id)
    machine.scanned_root(result(), WALL, full=True)
    first, *others = machine.next_work(0.0)
    effects = machine.failed_work(first, "cannot write f0: disk full", 0.0, WALL, no_space=True)
    assert [type(e.event) for e in effects] == [DiskFull]
    for n in others:  # the others fail the same way: said once
        assert machine.failed_work(n, "disk full", 0.1, WALL, no_space=True) == []
    assert machine.counts()["disk_full"].startswith("cannot write f0: disk full")
    assert not machine.in_sync() and machine.next_work(1.0) == []  # paused, not spinning
    work = machine.next_work(DISK_FULL_RETRY + 0.1)  # tried again a few seconds later
    assert work
    effects = machine.done(work[0], DiskStat(work[0].record.size, S, 5), WALL)
    assert any(isinstance(e, Emit) and isinstance(e.event, DiskSpaceBack) for e in effects)
    assert "disk_full" not in machine.counts()


def test_an_edit_after_a_power_loss_keeps_the_version_it_never_saw_as_a_copy() -> None:
    """A's write reached B, then A's power went before A's disk had it; A's user then edits the
    file, on whatever bytes the disk had left. That edit supersedes A's lost version (a node's
    own versions are ordered), so the lost version's bytes are kept as a conflict copy, which B
    can serve (found by make soak: crash_restart 5 51)."""
    a, b = make_mesh(2)
    machine = FolderMachine(a.map, a.id)
    sign_all(a, machine, machine.scanned_root(result(scanned("f", b"v1", 1000)), WALL, full=True))
    lost = a.map.winner("f")
    machine = FolderMachine(a.map, a.id, machine.index.values())
    machine.after_power_loss(1001.0)
    effects = sign_all(a, machine, machine.scanned_root(
        result(scanned("f", b"edited after the cut", 1500, 2)), WALL, full=True))
    records = published(effects)
    assert a.map.winner("f").hash == digest(b"edited after the cut")
    (copy,) = [r for r in records if conflict.is_conflict_copy(r.path)]
    assert copy.hash == lost.hash == digest(b"v1") and copy.vv == lost.vv


def test_an_edit_after_a_power_loss_succeeds_the_last_version_we_made_and_keeps_it() -> None:
    """B made v0, A fetched it and made v1 on it; A's power went before A's disk had v1 (back to
    v0). A's user edits before the refetch. An update log keeps one update per origin and path,
    so A's new version evicts v1 everywhere: were it not v1's successor, v1 would vanish unkept
    and B's v0 would come back as a spurious loser (make soak: crash_restart 5 734)."""
    a, b = make_mesh(2)
    v0 = b.write("f", b"v0", mtime_ns=500 * S)
    a.take(v0)
    machine = FolderMachine(a.map, a.id)
    machine.scanned_root(result(), WALL, full=True)
    (need,) = machine.next_work(0.0)
    machine.done(need, DiskStat(2, 500 * S, 1), WALL)
    sign_all(a, machine, machine.scanned_root(result(scanned("f", b"v1", 1000)), WALL, full=False))
    v1 = a.map.winner("f")
    assert v1.hash == digest(b"v1") and v1.vv.dominates(v0.payload.vv)
    machine = FolderMachine(a.map, a.id, machine.index.values())
    machine.after_power_loss(1001.0)  # the disk went back to v0
    assert not published(machine.scanned_root(result(scanned("f", b"v0", 500)), WALL, full=True))
    (need,) = machine.next_work(0.0)
    assert need.record.hash == digest(b"v1")
    machine.changed_under_us(need)  # the user's edit came first
    effects = sign_all(a, machine, machine.scanned_root(
        result(scanned("f", b"edited", 1500, 2)), WALL, full=False))
    records = published(effects)
    (edit,) = [r for r in records if r.path == "f"]
    assert edit.vv.dominates(v1.vv)
    assert [v.hash for v in a.map.versions("f")] == [digest(b"edited")]  # v0 stays superseded
    (copy,) = [r for r in records if conflict.is_conflict_copy(r.path)]
    assert copy.hash == digest(b"v1")


def test_a_root_a_power_loss_emptied_is_fetched_again_not_paused() -> None:
    """Every file of the root was written in the last seconds before the power went: the disk
    comes back empty. That is the loss, not an unmounted disk: the files are fetched again
    (a pause would wait for ever; make soak: crash_restart 5 663)."""
    a, b = make_mesh(2)
    machine = FolderMachine(a.map, a.id)
    sign_all(a, machine, machine.scanned_root(
        result(scanned("x", b"x", 1000), scanned("y", b"y", 1000, 2)), WALL, full=True))
    sync(a, b)
    rows = list(machine.index.values())
    machine = FolderMachine(a.map, a.id, rows)
    machine.after_power_loss(1001.0)
    effects = machine.scanned_root(result(deleted=("x", "y")), WALL, full=True)
    assert machine.paused is None and not published(effects)
    assert sorted(n.path for n in machine.next_work(0.0)) == ["x", "y"]
    # an old root emptied after a power loss is still an unmounted disk
    machine = FolderMachine(a.map, a.id, rows)
    machine.after_power_loss(5000.0)
    machine.scanned_root(result(deleted=("x", "y")), WALL, full=True)
    assert machine.paused is not None


def test_our_own_version_a_power_loss_destroyed_settles_to_what_the_disk_kept() -> None:
    """A's write never left A before A's power went (nobody fetched it): no node can ever get
    it, and left so every node would keep a different older content for good. Once it has been
    unavailable for a while, what A's disk kept becomes the version at the path and the lost
    one its conflict copy, fetched the day a holder comes back (make soak: crash_restart 5 95)."""
    a, b = make_mesh(2)
    machine = FolderMachine(a.map, a.id)
    sign_all(a, machine, machine.scanned_root(result(scanned("f", b"v0", 500)), WALL, full=True))
    sync(a, b)
    sign_all(a, machine, machine.scanned_root(result(scanned("f", b"v1", 1000)), WALL, full=False))
    lost = a.map.winner("f")
    machine = FolderMachine(a.map, a.id, machine.index.values())
    machine.after_power_loss(1001.0)
    machine.scanned_root(result(scanned("f", b"v0", 500)), WALL, full=True)
    (need,) = machine.next_work(0.0)
    assert machine.content_unavailable(need, 0.0, WALL) == []  # it may still be spreading
    (need,) = machine.next_work(0.3)
    effects = sign_all(a, machine, machine.content_unavailable(need, UNAVAILABLE_AFTER + 1, WALL))
    assert a.map.winner("f").hash == digest(b"v0") and machine.index["f"].vv == a.map.winner("f").vv
    (copy,) = [r for r in published(effects) if conflict.is_conflict_copy(r.path)]
    assert copy.hash == lost.hash and copy.path in machine.unavailable or copy.path in {
        n.path for n in machine.next_work(UNAVAILABLE_AFTER + 2)}
    assert any(isinstance(e, Emit) and isinstance(e.event, Conflict) for e in effects)
    # the copy itself, unavailable too, is never settled again (no chain of copies)
    copy_need = next(n for n in machine.needs if n.path == copy.path)
    assert machine.content_unavailable(copy_need, 3 * UNAVAILABLE_AFTER, WALL) == []


def test_an_edit_after_a_power_loss_keeps_our_lost_winner_whose_row_covers_a_loser_too() -> None:
    """A's version beat B's concurrent one; A's row holds the disk's vv, which covers the loser
    too (so a later edit supersedes both). A's power went, the disk lost A's version, and A's
    user wrote the file anew: A's lost winner must be kept as a copy although its vv is not the
    row's (make soak: crash_restart 5 2383)."""
    a, b = make_mesh(2)
    machine = FolderMachine(a.map, a.id)
    machine.scanned_root(result(), WALL, full=True)
    theirs = b.write("f", b"b's", mtime_ns=600 * S)
    sign_all(a, machine, machine.scanned_root(result(scanned("f", b"a's", 1000)), WALL, full=False))
    a.take(theirs)
    sign_all(a, machine, machine.map_changed(["f"], lambda h: True, WALL))
    ours = a.map.winner("f")
    assert ours.hash == digest(b"a's") and len(a.map.versions("f")) == 2
    (adopt,) = [n for n in machine.next_work(0.0) if n.path == "f"]
    machine.done(adopt, None, WALL)
    assert machine.index["f"].vv.dominates(ours.vv)  # the row covers the loser as well
    machine = FolderMachine(a.map, a.id, machine.index.values())
    machine.after_power_loss(1001.0)
    effects = sign_all(a, machine, machine.scanned_root(
        result(scanned("f", b"written anew", 1500, 2)), WALL, full=True))
    copies = {r.hash for r in published(effects) if conflict.is_conflict_copy(r.path)}
    assert digest(b"a's") in copies


def test_a_second_power_loss_does_not_forget_that_the_disk_went_back_in_time() -> None:
    """crash_restart seed 20167: A's write reached its peers but a power loss took it back on
    A's disk. The restarted node stored the older bytes as a row with no version (awaiting the
    mesh's) and lost power again before the refetch: the next start must still fetch A's version,
    not publish the older bytes as a new version of ours that supersedes it without a copy."""
    a, b = make_mesh(2)
    machine = FolderMachine(a.map, a.id)
    sign_all(a, machine, machine.scanned_root(result(scanned("f.txt", b"v1", 900)), WALL, full=True))
    sign_all(a, machine, machine.scanned_root(result(scanned("f.txt", b"v2", 1000, 2)), WALL,
                                              full=False))
    sync(a, b)  # the peer has v2
    machine = FolderMachine(a.map, a.id, machine.index.values())
    machine.after_power_loss(1001.0)  # the disk went back to v1
    assert not published(machine.scanned_root(result(scanned("f.txt", b"v1", 900)), WALL,
                                              full=True))
    # power lost again before v2 came back: memory is gone, the stored rows remain
    machine = FolderMachine(a.map, a.id, machine.index.values())
    machine.after_power_loss(1002.0)
    unchanged = ScanResult(entries={"f.txt": scanned("f.txt", b"v1", 900)})
    assert not published(machine.scanned_root(unchanged, WALL, full=True))
    assert {n.path: n.record.hash for n in machine.next_work(0.0)} == {"f.txt": digest(b"v2")}
    # and a user's edit before the refetch keeps v2 as a copy, as after one power loss
    effects = machine.scanned_root(result(scanned("f.txt", b"v3", 1100, 3)), WALL, full=False)
    assert [r.hash for r in published(effects)] == [digest(b"v3"), digest(b"v2")]


def test_a_new_file_a_power_loss_took_back_twice_is_kept_when_the_user_writes_it_again() -> None:
    """crash_restart seed 20527: A's new file reached its peers, a power loss took it back (the
    file is gone, so is its row), A lost power again before the refetch, and A's user then wrote
    the path anew while A was stopped. A's new write must not supersede the lost one unseen: the
    lost one is kept as a copy."""
    a, b = make_mesh(2)
    machine = FolderMachine(a.map, a.id)
    sign_all(a, machine, machine.scanned_root(result(scanned("new.txt", b"v1", 1000)), WALL,
                                              full=True))
    sync(a, b)
    machine = FolderMachine(a.map, a.id, machine.index.values())
    machine.after_power_loss(1001.0)
    assert not published(machine.scanned_root(result(deleted=("new.txt",)), WALL, full=True))
    assert "new.txt" not in machine.index  # nothing on disk, nothing in the row
    machine = FolderMachine(a.map, a.id, machine.index.values())  # power lost again
    machine.after_power_loss(1002.0)
    effects = machine.scanned_root(result(scanned("new.txt", b"v2", 1100, 2)), WALL, full=True)
    assert [r.hash for r in published(effects)] == [digest(b"v2"), digest(b"v1")]


def test_an_edit_after_a_power_loss_still_settling_at_the_first_scan_keeps_the_lost_version() -> None:
    """crash_restart seed 21236: the user wrote the file again just after the restart, so the
    first full scan (the one that knows about the power loss) leaves it to settle; when it is
    judged later, the version the disk may never have held is still kept as a copy."""
    a, b = make_mesh(2)
    machine = FolderMachine(a.map, a.id)
    sign_all(a, machine, machine.scanned_root(result(scanned("f.txt", b"v1", 1000)), WALL,
                                              full=True))
    sync(a, b)
    machine = FolderMachine(a.map, a.id, machine.index.values())
    machine.after_power_loss(1001.0)
    young = scanned("f.txt", b"v2", WALL - 0.1, 2)  # written a moment ago: still settling
    effects = machine.scanned_root(result(young), WALL, full=True)
    assert not published(effects) and any(isinstance(e, Rescan) for e in effects)
    effects = machine.scanned_root(result(young), WALL + 5, full=False)
    assert [r.hash for r in published(effects)] == [digest(b"v2"), digest(b"v1")]


def scanned_dir(path: str, mtime_s: float, inode: int = 2) -> ScanEntry:
    return ScanEntry(path, 0, int(mtime_s * S), inode, 0o755, DIR)


def folder_deleted_by_b() -> tuple[Replica, Replica, FolderMachine]:
    """A and B hold folder d; B deleted it (A has not heard yet). Returns A, B, A's machine."""
    a, b = make_mesh(2)
    ma, mb = FolderMachine(a.map, a.id), FolderMachine(b.map, b.id)
    sign_all(a, ma, ma.scanned_root(result(scanned_dir("d", 100)), WALL, full=True))
    sync(a, b)
    sign_all(b, mb, mb.scanned_root(result(scanned_dir("d", 100)), WALL, full=True))
    sign_all(b, mb, mb.scanned_root(result(deleted=("d",)), WALL, full=False))
    return a, b, ma


def test_a_folder_deleted_elsewhere_that_still_holds_a_kept_file_stays_and_is_ours_again() -> None:
    """B deletes folder d while A adds a file in it: A cannot delete d (it holds d/new, which
    the mesh keeps), so A publishes d as its own, and the folder's deletion is superseded."""
    a, b, ma = folder_deleted_by_b()
    assert b.map.winner("d").deleted
    sign_all(a, ma, ma.scanned_root(result(scanned("d/new", b"n", 110)), WALL, full=False))
    sync(a, b)
    sign_all(a, ma, ma.map_changed(None, lambda h: True, WALL))
    need = mirror.need_for(a.map, "d", ma.index["d"])
    assert need is not None and need.action == mirror.DELETE  # b's deletion wins the map...

    effects = sign_all(a, ma, ma.folder_kept(need, WALL))  # ...but the disk refused: d/new
    (record,) = published(effects)
    assert record.kind == DIR and not record.deleted
    sync(a, b)
    for node in (a, b):
        assert node.map.winner("d") == record and not node.map.winner("d/new").deleted
    assert mirror.need_for(a.map, "d", ma.index["d"]) is None


def test_a_folder_whose_entries_the_mesh_does_not_keep_is_asked_to_go_again_later() -> None:
    """What keeps the folder is local only (or being deleted too): no new version of it."""
    a, b, ma = folder_deleted_by_b()
    sync(a, b)
    sign_all(a, ma, ma.map_changed(None, lambda h: True, WALL))
    need = mirror.need_for(a.map, "d", ma.index["d"])
    assert need.action == mirror.DELETE
    assert ma.folder_kept(need, WALL) == []
    assert a.map.winner("d").deleted


def test_a_row_of_what_we_publish_is_held_as_that_version_and_its_inode() -> None:
    """(memory: a row that is a map version's content costs 48 bytes, not 128; core/indexrow.py)"""
    from gossip_backer.core.indexrow import VersionRow

    (a,) = make_mesh(1)
    machine = FolderMachine(a.map, a.id)
    effects = sign_all(a, machine, machine.scanned_root(
        result(scanned("f", b"x", 100, inode=7), scanned("s", b"y", 100, mode=0o4755)), WALL, full=True))
    row, odd = machine.index["f"], machine.index["s"]
    assert isinstance(row, VersionRow) and row.version is a.map.winner("f") and row.inode == 7
    assert type(odd) is not VersionRow and odd.mode == 0o4755  # (the map's mode has no setuid bit)
    (write,) = [e for e in effects if isinstance(e, IndexWrite)]
    assert write.puts == (row, odd)
