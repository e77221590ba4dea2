"""protocol/live.py (and its door in the folder machine) as pairs of machines with no I/O: real
signed updates, real pycrdt documents. The map's compaction of live documents (core/metamap.py)."""

from __future__ import annotations

from gossip_backer.core.metamap import Outcome
from gossip_backer.core.record import LiveEdit, LiveGlob
from gossip_backer.events import LiveFallback
from gossip_backer.live.textdoc import TextDocs
from gossip_backer.protocol.effects import PublishLive, ReadText, SaveLiveBase, WriteText
from gossip_backer.protocol.live import BASE_ROWS, DEBOUNCE, LiveMachine, glob_matches, pieces
from tests.protocol.helpers import make_mesh


def _machines(n: int = 2):
    replicas = make_mesh(n)
    replicas[0].commit(LiveGlob("*.md", True, replicas[0].map.clock + 1))
    for r in replicas[1:]:
        for u in replicas[0].map.updates():
            r.take(u)
    return replicas, [LiveMachine(r.map, r.id, TextDocs(), 100 + i) for i, r in enumerate(replicas)]


def _publish(replica, effects) -> list:
    """Sign the machine's PublishLive pieces as the replica's updates."""
    return [replica.commit(e) for eff in effects if isinstance(eff, PublishLive) for e in eff.edits]


def _deliver(replicas, machines, updates, now=0.0) -> None:
    for r, m in zip(replicas, machines):
        fresh = [u for u in updates if u.origin != r.id]
        for u in fresh:
            r.take(u)
        m.remote(fresh, now, 0.0)


def test_globs() -> None:
    assert glob_matches("*.md", "notes/plan.md") and glob_matches("*.md", "a.md")
    assert glob_matches("notes/*.md", "notes/x/plan.md") and not glob_matches("notes/*.md", "a.md")
    assert not glob_matches("*.md", "a.txt")


def test_same_note_on_two_nodes_seeds_once_and_edits_merge_to_every_disk() -> None:
    replicas, machines = _machines()
    note = "shared ünï\n".encode()
    seeds = [_publish(r, m.text("n.md", note, 0.0, 0.0, writer=True)) for r, m in zip(replicas, machines)]
    _deliver(replicas, machines, seeds[0] + seeds[1])
    assert [m.docs["n.md"].data() for m in machines] == [note, note]
    assert [m.tick(0.5, writer=True) for m in machines] == [[], []]  # disks hold it already
    edit_a = _publish(replicas[0], machines[0].text("n.md", "A shared ünï\n".encode(), 1.0, 1.0, writer=True))
    edit_b = _publish(replicas[1], machines[1].text("n.md", "shared ünï B\n".encode(), 1.0, 1.0, writer=True))
    _deliver(replicas, machines, edit_a + edit_b, now=1.0)
    writes = [m.tick(1.0 + DEBOUNCE, writer=True) for m in machines]
    want = "A shared ünï B\n".encode()
    assert [[e.data for e in w if isinstance(e, WriteText)] for w in writes] == [[want], [want]]
    # while A's write is under way, B's next edit waits for it, then goes in one write
    machines[1].written("n.md", writes[1][0].base)
    more = _publish(replicas[1], machines[1].text("n.md", want + b"!", 1.1, 1.1, writer=True))
    _deliver(replicas, machines, more, now=1.1)
    assert machines[0].tick(1.2, writer=True) == [] and machines[0].next_due() > 1.2
    machines[0].written("n.md", writes[0][0].base)
    assert [e.data for e in machines[0].tick(1.3, writer=True)] == [want + b"!"]


def test_a_save_merged_against_the_disk_copy_keeps_peers_edits_not_on_disk_yet() -> None:
    replicas, (a, b) = _machines()
    seed = _publish(replicas[0], a.text("n.md", b"one\ntwo\n", 0.0, 0.0, writer=True))
    _deliver(replicas, [a, b], seed)
    b.text("n.md", b"one\ntwo\n", 0.0, 0.0, writer=True)
    peer = _publish(replicas[0], a.text("n.md", b"one!\ntwo\n", 1.0, 1.0, writer=True))
    _deliver(replicas, [a, b], peer, now=1.0)
    # B's user saves before B wrote the peer's edit: the save is merged, the edit stays
    _publish(replicas[1], b.text("n.md", b"one\ntwo?\n", 1.001, 1.0, writer=True))
    assert b.docs["n.md"].data() == b"one!\ntwo?\n"
    writes = [e for e in b.tick(2.0, writer=True) if isinstance(e, WriteText)]
    assert [w.data for w in writes] == [b"one!\ntwo?\n"]


def test_a_file_being_read_is_not_written_over() -> None:
    replicas, (a, b) = _machines()
    _deliver(replicas, [a, b], _publish(replicas[0], a.text("n.md", b"x", 0.0, 0.0, writer=True)))
    b.reading.add("n.md")
    assert b.tick(1.0, writer=True) == []
    b.text("n.md", b"x", 1.0, 1.0, writer=True)
    assert b.tick(1.0 + DEBOUNCE, writer=True) == []  # the disk holds the text already


def test_not_utf8_falls_back_with_the_reason() -> None:
    _replicas, (a, _b) = _machines()
    effects = a.text("bin.md", b"\xff\xfe", 0.0, 0.0, writer=True)
    assert [type(e.event) for e in effects] == [LiveFallback] and "bin.md" in a.fallback
    assert not a.wants("bin.md", 2)


def test_a_read_only_node_publishes_nothing_and_its_editors_cannot_write() -> None:
    replicas, (a, b) = _machines()
    _deliver(replicas, [a, b], _publish(replicas[0], a.text("n.md", b"x", 0.0, 0.0, writer=True)))
    assert b.text("n.md", b"x changed", 1.0, 1.0, writer=False) == []


def test_snapshots_drop_the_parts_they_cover_and_late_parts_are_duplicates() -> None:
    replicas, (a, b) = _machines()
    r = replicas[0]
    seed = _publish(r, a.text("n.md", b"a", 0.0, 0.0, writer=True))
    edits = []
    for k in range(5):
        edits += _publish(r, a.text("n.md", b"a" + b"b" * (k + 1), 1.0, 1.0, writer=True))
    before = len(r.map)
    snap = r.commit(pieces("n.md", a.docs["n.md"].update_since(), snapshot=True, part=5)[0])
    assert len(r.map) == before + 1 - 5 - 1  # five parts and the seed's snapshot left the log
    late = replicas[1]
    assert late.map.apply(snap) is Outcome.APPLIED
    assert late.map.apply(edits[2]) is Outcome.DUPLICATE
    b.remote([snap], 2.0, 2.0)
    assert b.docs["n.md"].data() == b"abbbbb" and seed


def test_a_big_update_travels_in_chunks_and_is_joined() -> None:
    replicas, (a, b) = _machines()
    big = ("ü" * 400_000).encode()
    updates = _publish(replicas[0], a.text("big.md", big, 0.0, 0.0, writer=True))
    assert len(updates) > 1 and all(isinstance(u.payload, LiveEdit) for u in updates)
    _deliver(replicas, [a, b], updates[:-1])
    assert "big.md" not in b.docs
    _deliver(replicas, [a, b], updates[-1:])
    assert b.docs["big.md"].data() == big


def test_file_versions_of_a_live_file_come_every_few_minutes_of_editing() -> None:
    from gossip_backer.protocol.live import CHECKPOINT

    replicas, (a, _b) = _machines()
    assert a.version_due("n.md", 0.0)  # a file new to the mesh: a version at once
    replicas[0].write("n.md", b"x")
    _publish(replicas[0], a.text("n.md", b"x", 0.0, 0.0, writer=True))
    assert not a.version_due("n.md", 1.0)  # seeding is no edit
    _publish(replicas[0], a.text("n.md", b"x y", 10.0, 10.0, writer=True))
    assert not a.version_due("n.md", 10.0 + CHECKPOINT - 1) and not a.checkpoints_due(100.0)
    assert a.version_due("n.md", 10.0 + CHECKPOINT) and a.checkpoints_due(10.0 + CHECKPOINT) == ["n.md"]
    a.versioned("n.md")
    assert not a.checkpoints_due(1e9)


def _carry(bases: dict, effects: list, written: bool = True) -> None:
    """What an interpreter keeps durably of a machine's effects: its base logs (SaveLiveBase,
    and the base of each WriteText once `written`)."""
    for e in effects:
        if isinstance(e, SaveLiveBase):
            log = bases.setdefault(e.path, [])
            if e.replace:
                log.clear()
            log.append(e.update)
        elif isinstance(e, WriteText) and written:
            bases.setdefault(e.path, []).append(e.base)


def _write(machine, bases: dict, now: float) -> bytes:
    """Run the machine's due writes as done: the text its file then holds."""
    writes = [e for e in machine.tick(now, writer=True) if isinstance(e, WriteText)]
    _carry(bases, writes)
    for w in writes:
        _carry(bases, machine.written(w.path, w.base))
    return writes[-1].data


def _killed_before_writing_a_peers_edit():
    """B holds the note; A's edit reaches B's store, and B is killed before writing it."""
    replicas, (a, b) = _machines()
    bases: dict = {}
    _deliver(replicas, [a, b], _publish(replicas[0], a.text("n.md", b"one\ntwo\n", 0.0, 0.0, writer=True)))
    _carry(bases, b.text("n.md", b"one\ntwo\n", 0.0, 0.0, writer=True))
    _deliver(replicas, [a, b], _publish(replicas[0], a.text("n.md", b"one\ntwo!\n", 1.0, 1.0, writer=True)))
    assert _write(b, bases, 2.0) == b"one\ntwo!\n"  # B's file follows once
    _deliver(replicas, [a, b], _publish(replicas[0], a.text("n.md", b"zero\none\ntwo!\n", 3.0, 3.0, writer=True)))
    return replicas, a, b, bases  # (B is killed with A's second edit unwritten)


def test_a_node_killed_before_writing_a_peers_edit_keeps_it_and_the_offline_save() -> None:
    replicas, a, _, bases = _killed_before_writing_a_peers_edit()
    b = LiveMachine(replicas[1].map, replicas[1].id, TextDocs(), 300)  # the restart
    stale = b.load_bases({**bases, "gone.md": [b"x"]})  # a log of a file no longer live
    assert stale == ["gone.md"]  # dropped: a later live gone.md starts a fresh log
    assert b.docs["n.md"].data() == b"zero\none\ntwo!\n"
    reads = b.tick(10.0, writer=True)  # after the first scan: the file is read once
    assert [e for e in reads if isinstance(e, ReadText)] == [ReadText("n.md")]
    assert not [e for e in b.tick(10.1, writer=True) if isinstance(e, ReadText)]
    offline = b"one\nthree\ntwo!\n"  # the user's save while B was down: a line added
    edit = _publish(replicas[1], b.text("n.md", offline, 10.2, 10.2, writer=True))
    want = b"zero\none\nthree\ntwo!\n"  # A's line is not undone, the user's is kept
    assert b.docs["n.md"].data() == want
    assert _write(b, bases, 11.0) == want
    _deliver([replicas[0]], [a], edit, now=11.0)
    assert a.docs["n.md"].data() == want


def test_a_write_in_the_base_log_that_never_reached_the_file_is_told_by_the_bytes() -> None:
    replicas, a, b0, bases = _killed_before_writing_a_peers_edit()
    writes = [e for e in b0.tick(4.0, writer=True) if isinstance(e, WriteText)]
    bases["n.md"].append(writes[0].base)  # stored before the rename; killed in between
    for i, (found, want) in enumerate([
            (b"one\ntwo!\n", b"zero\none\ntwo!\n"),  # the file as before: no edit at all
            (b"one\ntwo!\nend\n", b"zero\none\ntwo!\nend\n")]):  # and then saved offline
        b = LiveMachine(replicas[1].map, replicas[1].id, TextDocs(), 400 + i)
        b.load_bases({"n.md": list(bases["n.md"])})
        b.tick(10.0, writer=True)
        b.text("n.md", found, 10.1, 10.1, writer=True)
        assert b.docs["n.md"].data() == want
        assert _write(b, {}, 11.0) == want


def test_a_long_base_log_is_compacted() -> None:
    replicas, (a, b) = _machines()
    bases: dict = {}
    _deliver(replicas, [a, b], _publish(replicas[0], a.text("n.md", b"x", 0.0, 0.0, writer=True)))
    _carry(bases, b.text("n.md", b"x", 0.0, 0.0, writer=True))
    for k in range(BASE_ROWS + 5):
        _deliver(replicas, [a, b], _publish(replicas[0], a.text("n.md", b"x" * (k + 2), k, k, writer=True)), now=k)
        _write(b, bases, k + 1.0)
    assert len(bases["n.md"]) <= BASE_ROWS
    b2 = LiveMachine(replicas[1].map, replicas[1].id, TextDocs(), 500)
    b2.load_bases(bases)
    b2.tick(100.0, writer=True)
    assert b2.text("n.md", b"x" * (BASE_ROWS + 6), 100.0, 100.0, writer=True) == []  # nothing new
