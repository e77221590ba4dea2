"""Mirroring decisions: what the disk lacks, what a local change becomes, which conflict copies
to publish. Real FileRecords in a real MetaMap (founder grant applied, updates made with
`crypto.identity.make_update`), index entries shaped like `store.repo.IndexEntry`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import pytest

from gossip_backer.core import conflict
from gossip_backer.core.metamap import MetaMap, Outcome
from gossip_backer.core.paths import is_valid
from gossip_backer.core.record import DIR, FILE, SYMLINK, FileRecord, Grant, Revoke
from gossip_backer.core.vv import Order, VersionVector
from gossip_backer.crypto.identity import Identity, make_update
from gossip_backer.protocol import mirror
from gossip_backer.protocol.mirror import (
    ADOPT,
    CREATE_DIR,
    DELETE,
    WRITE_FILE,
    WRITE_LINK,
    Need,
)
from helpers import MESH_ID, identity

S = 1_000_000_000
FOUNDER, NODE_A, NODE_B = identity(40), identity(41), identity(42)
F, A, B = FOUNDER.public, NODE_A.public, NODE_B.public
IDENTS = {F: FOUNDER, A: NODE_A, B: NODE_B}


def h(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


def vv(**counts: int) -> VersionVector:
    names = {"f": F, "a": A, "b": B}
    return VersionVector({names[k]: v for k, v in counts.items()})


def file(path: str, v: VersionVector, origin: bytes, content: bytes = b"x", mtime_s: int = 1,
         mode: int = 0o644) -> FileRecord:
    return FileRecord(path, FILE, v, origin, len(content), mtime_s * S, mode, h(content))


def folder(path: str, v: VersionVector, origin: bytes, mtime_s: int = 1) -> FileRecord:
    return FileRecord(path, DIR, v, origin, 0, mtime_s * S, 0o755)


def link(path: str, v: VersionVector, origin: bytes, target: str, mtime_s: int = 1) -> FileRecord:
    return FileRecord(path, SYMLINK, v, origin, 0, mtime_s * S, 0o777, target=target)


def tomb(path: str, v: VersionVector, origin: bytes, mtime_s: int = 1,
         kind: str = FILE) -> FileRecord:
    return FileRecord(path, kind, v, origin, mtime_ns=mtime_s * S, deleted=True)


@dataclass(frozen=True)
class Entry:
    """What the local index holds for a path (the fields of store.repo.IndexEntry we use)."""

    path: str
    kind: str
    size: int
    mode: int
    hash: bytes | None
    target: str | None
    vv: VersionVector
    mtime_ns: int = 0


def entry_of(rec: FileRecord, v: VersionVector | None = None) -> Entry:
    return Entry(rec.path, rec.kind, rec.size, rec.mode, rec.hash, rec.target,
                 rec.vv if v is None else v, rec.mtime_ns)


class World:
    """A MetaMap (default verify) with the founder's grants of A and B applied."""

    def __init__(self) -> None:
        self.map = MetaMap(F)
        self.seq: dict[bytes, int] = {}
        self.publish(FOUNDER, Grant(F, "founder", False, 1))
        self.publish(FOUNDER, Grant(A, "a", False, 2))
        self.publish(FOUNDER, Grant(B, "b", False, 3))

    def publish(self, ident: Identity, payload) -> Outcome:
        self.seq[ident.public] = self.seq.get(ident.public, 0) + 1
        outcome = self.map.apply(make_update(ident, MESH_ID, self.seq[ident.public], payload))
        assert outcome in (Outcome.APPLIED, Outcome.HELD), outcome
        return outcome

    def put(self, *records: FileRecord, by: bytes | None = None) -> "World":
        for rec in records:
            self.publish(IDENTS[by or rec.origin], rec)
        return self


# --- need_for / needed ----------------------------------------------------------------------


def test_nothing_needed_for_an_unknown_path_or_when_the_disk_holds_the_winner() -> None:
    w = World().put(file("a.txt", vv(a=1), A, b"hello"))
    assert mirror.need_for(w.map, "nope", None) is None
    win = w.map.winner("a.txt")
    assert mirror.need_for(w.map, "a.txt", entry_of(win)) is None
    assert mirror.needed(w.map, {"a.txt": entry_of(win)}) == []


def test_missing_file_folder_link_are_written() -> None:
    w = World().put(file("f.txt", vv(a=1), A, b"data"), folder("d", vv(a=2), A),
                    link("l", vv(a=3), A, "f.txt"))
    for path, action in (("f.txt", WRITE_FILE), ("d", CREATE_DIR), ("l", WRITE_LINK)):
        need = mirror.need_for(w.map, path, None)
        assert need == Need(action, path, w.map.winner(path), w.map.winner(path).vv)
    assert mirror.need_for(w.map, "f.txt", None).bytes == 4
    assert mirror.need_for(w.map, "d", None).bytes == 0


def test_different_content_on_disk_is_overwritten_by_the_winner() -> None:
    w = World().put(file("f", vv(a=1), A, b"old"), file("f", vv(a=1, b=1), B, b"new", 2))
    stale = entry_of(file("f", vv(a=1), A, b"old"))
    need = mirror.need_for(w.map, "f", stale)
    assert need.action == WRITE_FILE and need.record.hash == h(b"new")
    assert need.disk_vv == vv(a=1, b=1)
    # a mode-only change is a change too, carried out in place (no content moves)
    w2 = World().put(file("f", vv(a=1), A, b"same", mode=0o755))
    need = mirror.need_for(w2.map, "f", entry_of(file("f", vv(), A, b"same", mode=0o644)))
    assert need.action == mirror.META
    # and so is an mtime-only change (`touch -d`)
    w3 = World().put(file("f", vv(a=1), A, b"same", mtime_s=5))
    need = mirror.need_for(w3.map, "f", entry_of(file("f", vv(), A, b"same", mtime_s=1)))
    assert need.action == mirror.META and need.record.mtime_ns == 5 * S


def test_adopt_when_the_content_is_equal_but_the_vv_differs() -> None:
    w = World().put(file("f", vv(a=1), A, b"same"), file("f", vv(a=1, b=1), B, b"same", 5))
    disk = entry_of(file("f", vv(a=1), A, b"same", 5))
    need = mirror.need_for(w.map, "f", disk)
    assert need.action == ADOPT and need.disk_vv == vv(a=1, b=1) and need.bytes == 0
    # the same bytes with another mtime: the winner's mtime is put on the disk in place
    need = mirror.need_for(w.map, "f", entry_of(file("f", vv(a=1), A, b"same", 1)))
    assert need.action == mirror.META and need.bytes == 0
    # folders and links adopt on kind / target alone
    w2 = World().put(folder("d", vv(b=1), B), link("l", vv(b=2), B, "t"))
    assert mirror.need_for(w2.map, "d", entry_of(folder("d", vv(a=9), A))).action == ADOPT
    assert mirror.need_for(w2.map, "l", entry_of(link("l", vv(), A, "t"))).action == ADOPT
    assert mirror.need_for(w2.map, "l", entry_of(link("l", vv(), A, "u"))).action == WRITE_LINK


def test_deletions() -> None:
    w = World().put(file("f", vv(a=1), A), tomb("f", vv(a=1, b=1), B, 2))
    on_disk = entry_of(file("f", vv(a=1), A))
    need = mirror.need_for(w.map, "f", on_disk)
    assert need.action == DELETE and need.disk_vv == vv(a=1, b=1) and need.bytes == 0
    assert mirror.need_for(w.map, "f", None) is None  # already gone from disk


def test_kind_change_rewrites() -> None:
    w = World().put(folder("x", vv(a=1), A), file("x", vv(a=1, b=1), B, b"now a file", 2))
    need = mirror.need_for(w.map, "x", entry_of(folder("x", vv(a=1), A)))
    assert need.action == WRITE_FILE


def test_needed_orders_folders_then_files_then_deletions_deepest_first() -> None:
    w = World()
    w.put(folder("a", vv(a=1), A), folder("a/b", vv(a=2), A), folder("a/b/c", vv(a=3), A),
          file("a/b/c/f.txt", vv(a=4), A), file("top.txt", vv(a=5), A),
          link("a/ln", vv(a=6), A, "top.txt"))
    gone = ["old", "old/sub", "old/sub/deep.txt", "old/x.txt"]
    for i, p in enumerate(gone):
        kind = DIR if "." not in p else FILE
        w.put(tomb(p, vv(b=i + 1), B, kind=kind))
    index = {p: Entry(p, DIR if "." not in p else FILE, 0, 0o644, None, None, vv())
             for p in gone}
    order = [(n.action, n.path) for n in mirror.needed(w.map, index)]
    assert order == [
        (CREATE_DIR, "a"), (CREATE_DIR, "a/b"), (CREATE_DIR, "a/b/c"),
        (WRITE_FILE, "top.txt"), (WRITE_LINK, "a/ln"), (WRITE_FILE, "a/b/c/f.txt"),
        (DELETE, "old/sub/deep.txt"), (DELETE, "old/sub"), (DELETE, "old/x.txt"), (DELETE, "old"),
    ]
    actions = [a for a, _ in order]
    assert actions.index(DELETE) > max(i for i, a in enumerate(actions) if a != DELETE)


def test_needed_skips_what_the_disk_holds() -> None:
    w = World().put(file("a", vv(a=1), A), file("b", vv(a=2), A, b"b"))
    index = {"a": entry_of(w.map.winner("a"))}
    assert [n.path for n in mirror.needed(w.map, index)] == ["b"]



def test_paths_to_judge_are_read_as_judged_each_once() -> None:
    """A full refresh judges every path: they are read one by one from the map and the index,
    each once, with no set of all of them made (three passing sets of 100,000 paths every 30 s
    in a node holding that many)."""
    w = World().put(file("a", vv(a=1), A), file("b", vv(a=2), A, b"b"))
    index = {"b": entry_of(w.map.winner("b")), "c": entry_of(file("c", vv(b=9), B)),
             "mine": entry_of(file("mine", VersionVector(), A))}  # unpublished: not the map's
    paths = mirror.paths_to_judge(w.map, index)
    assert iter(paths) is paths  # read lazily, not a set of every path
    assert list(paths) == ["a", "b", "c"]

# --- disk_version ---------------------------------------------------------------------------


def test_disk_version_merges_a_loser_only_once_its_copy_is_held() -> None:
    w = World().put(file("f", vv(a=2), A, b"mine", 10), file("f", vv(a=1, b=1), B, b"theirs", 20))
    assert len(w.map.versions("f")) == 2
    # no copy of the loser yet: the disk holds the winner's vv only, so an edit stays concurrent
    assert mirror.disk_version(w.map, "f") == vv(a=1, b=1)
    w.put(*mirror.conflict_copies(w.map, "f"))
    assert mirror.disk_version(w.map, "f") == vv(a=2, b=1)
    assert mirror.disk_version(w.map, "unknown") == VersionVector()
    need = mirror.need_for(w.map, "f", entry_of(file("f", vv(a=2), A, b"mine")))
    assert need.action == WRITE_FILE and need.record.origin == B  # later mtime wins
    assert need.disk_vv == vv(a=2, b=1)
    # once the disk holds the winner with the merged vv: nothing more to do
    assert mirror.need_for(w.map, "f", entry_of(need.record, need.disk_vv)) is None


# --- local_version ----------------------------------------------------------------------------


def scanned(path: str, content: bytes, mtime_s: int = 9, kind: str = FILE) -> FileRecord:
    """What a scan found: vv and origin left empty."""
    if kind == DIR:
        return FileRecord(path, DIR, VersionVector(), b"\0" * 32, 0, mtime_s * S, 0o755)
    return FileRecord(path, FILE, VersionVector(), b"\0" * 32, len(content), mtime_s * S,
                      0o644, h(content))


def test_local_version_bumps_the_disk_versions_vv_at_me() -> None:
    w = World().put(file("f", vv(a=1, b=2), B, b"v1"))
    disk = entry_of(w.map.winner("f"))
    rec = mirror.local_version(w.map, A, "f", disk, scanned("f", b"v2"))
    assert rec.vv == vv(a=2, b=2) and rec.origin == A
    assert rec.hash == h(b"v2") and rec.mtime_ns == 9 * S and rec.path == "f"
    assert rec.vv.compare(w.map.winner("f").vv) is Order.GREATER


def test_local_edit_while_a_remote_version_is_in_flight_is_concurrent_with_it() -> None:
    w = World().put(file("f", vv(a=1), A, b"v1"))
    disk = entry_of(w.map.winner("f"))
    w.put(file("f", vv(a=1, b=1), B, b"remote edit", 5))  # arrived, not yet on disk
    rec = mirror.local_version(w.map, A, "f", disk, scanned("f", b"local edit"))
    assert rec.vv == vv(a=2)
    assert rec.vv.compare(w.map.winner("f").vv) is Order.CONCURRENT


def test_a_new_path_supersedes_only_tombstones() -> None:
    w = World().put(file("f", vv(a=1), A, b"v1"), tomb("f", vv(a=2), A, 3))
    rec = mirror.local_version(w.map, B, "f", None, scanned("f", b"again"))
    assert rec.vv == vv(a=2, b=1)
    assert rec.vv.compare(vv(a=2)) is Order.GREATER
    # a live version from elsewhere that the disk does not hold yet is not superseded
    w2 = World().put(tomb("g", vv(a=1), A), file("g", vv(b=1), B, b"theirs"))
    assert len(w2.map.versions("g")) == 2
    rec = mirror.local_version(w2.map, F, "g", None, scanned("g", b"mine"))
    assert rec.vv == vv(a=1, f=1)
    assert rec.vv.compare(vv(b=1)) is Order.CONCURRENT
    # a path the mesh never heard of starts at me:1
    fresh = mirror.local_version(World().map, A, "new", None, scanned("new", b"n"))
    assert fresh.vv == vv(a=1) and fresh.origin == A


def test_local_version_is_none_when_the_winner_already_has_that_content() -> None:
    w = World().put(file("f", vv(b=1), B, b"same", 9), folder("d", vv(b=2), B))
    assert mirror.local_version(w.map, A, "f", None, scanned("f", b"same")) is None
    assert mirror.local_version(w.map, A, "f", entry_of(file("f", vv(), A, b"old")),
                                scanned("f", b"same")) is None
    # the same bytes with a new modification time (`touch -d`) are a change that spreads
    touched = mirror.local_version(w.map, A, "f", entry_of(file("f", vv(b=1), B, b"same", 9)),
                                   scanned("f", b"same", mtime_s=12))
    assert touched is not None and touched.mtime_ns == 12 * S and touched.vv == vv(a=1, b=1)
    assert mirror.local_version(w.map, A, "d", None, scanned("d", b"", kind=DIR)) is None
    # but content equal to a deleted winner's last content is news
    w.put(tomb("f", vv(b=3), B, 5))
    rec = mirror.local_version(w.map, A, "f", None, scanned("f", b"same"))
    assert rec is not None and rec.vv == vv(a=1, b=3)


# --- deletion ---------------------------------------------------------------------------------


def test_deletion_bumps_the_disk_vv() -> None:
    w = World().put(file("f", vv(b=1), B, b"x"))
    disk = entry_of(w.map.winner("f"))
    rec = mirror.deletion(w.map, A, "f", disk, 77 * S)
    assert rec == FileRecord("f", FILE, vv(a=1, b=1), A, mtime_ns=77 * S, deleted=True)
    assert rec.vv.compare(w.map.winner("f").vv) is Order.GREATER


def test_deletion_is_none_when_already_deleted_or_unknown() -> None:
    w = World().put(file("f", vv(b=1), B), tomb("f", vv(b=2), B))
    disk = entry_of(file("f", vv(b=1), B))
    assert mirror.deletion(w.map, A, "f", disk, 1) is None
    assert mirror.deletion(w.map, A, "never", replace(disk, path="never"), 1) is None


def test_deletion_of_a_folder_keeps_its_kind() -> None:
    w = World().put(folder("d", vv(b=1), B))
    rec = mirror.deletion(w.map, A, "d", entry_of(w.map.winner("d")), 5)
    assert rec.kind == DIR and rec.deleted


# --- conflict copies ----------------------------------------------------------------------------


def _conflict(mine_mtime: int = 10, theirs_mtime: int = 20) -> tuple[FileRecord, FileRecord]:
    return (file("docs/report.txt", vv(a=1), A, b"mine", mine_mtime),
            file("docs/report.txt", vv(b=1), B, b"theirs", theirs_mtime))


def test_conflict_copy_is_derived_from_the_loser_only() -> None:
    mine, theirs = _conflict()
    w = World().put(mine, theirs)
    copies = mirror.conflict_copies(w.map, "docs/report.txt")
    assert len(copies) == 1
    copy = copies[0]
    assert copy == replace(mine, path=conflict.conflict_name(mine.path, mine.mtime_ns, A),
                           source_seq=1)  # A's update 1 carried `mine`
    assert copy.path.startswith("docs/report.sync-conflict-19700101-000010-")
    assert copy.path.endswith(".txt")
    assert (copy.vv, copy.origin, copy.hash) == (mine.vv, A, mine.hash)


def test_two_losers_of_one_author_within_one_second_never_share_a_name() -> None:
    """SPEC: when the copy's name is taken by another version, the copy gets a suffix derived
    from its own version, the same on every node (the open seed concurrent_edit 8 44: A lost
    twice within one second, the second copy's vector dominated the first and replaced it)."""
    first = file("f.txt", vv(a=1), A, b"first", 10)
    w = World().put(first, file("f.txt", vv(b=1), B, b"theirs", 20))
    (copy1,) = mirror.conflict_copies(w.map, "f.txt")
    w.put(copy1, by=A)
    second = file("f.txt", vv(a=2), A, b"second", 10)  # same second, same author, still losing
    w.put(second)
    (copy2,) = mirror.conflict_copies(w.map, "f.txt")
    assert copy2.hash == h(b"second") and copy2.path != copy1.path
    assert copy2.path == conflict.conflict_name("f.txt", 10 * S, A, conflict.version_suffix(second))
    assert conflict.original_of(copy2.path) == "f.txt"
    w.put(copy2, by=B)
    assert {v.hash for p in (copy1.path, copy2.path) for v in w.map.versions(p)} == {
        h(b"first"), h(b"second")}  # both edits kept
    assert mirror.conflict_copies(w.map, "f.txt") == []  # and nothing more to publish
    other = World().put(first, file("f.txt", vv(b=1), B, b"theirs", 20), copy1, second)
    assert mirror.conflict_copies(other.map, "f.txt") == [copy2]  # the same name on every node


def test_two_nodes_produce_the_identical_copy_record_and_it_merges_as_one() -> None:
    mine, theirs = _conflict()
    on_a = World().put(mine, theirs)
    on_b = World().put(theirs, mine)
    copy_a = mirror.conflict_copies(on_a.map, mine.path)
    copy_b = mirror.conflict_copies(on_b.map, mine.path)
    assert copy_a == copy_b and len(copy_a) == 1
    # both publish it (signed by different nodes): one version at the copy's path
    on_a.put(copy_a[0], by=A)
    outcome = on_a.map.apply(make_update(NODE_B, MESH_ID, 99, copy_b[0]))
    assert outcome in (Outcome.HELD, Outcome.APPLIED)
    assert on_a.map.versions(copy_a[0].path) == (copy_a[0],)
    # not again once the map holds it
    assert mirror.conflict_copies(on_a.map, mine.path) == []


def test_a_copy_names_the_update_that_carried_its_loser_and_a_copy_of_it_keeps_that() -> None:
    w = World().put(file("other", vv(a=1), A))  # A's update 1
    mine, theirs = _conflict()
    w.put(mine, theirs)  # `mine` is A's update 2
    (copy,) = mirror.conflict_copies(w.map, mine.path)
    assert copy.source_seq == 2 and w.map.source_seq(mine) == 2
    w.put(copy, by=B)
    assert w.map.source_seq(copy) == 2  # B's update carries it, but the version is A's update 2
    rival = replace(copy, vv=vv(f=5), origin=F, hash=h(b"rival"), mtime_ns=copy.mtime_ns + S,
                    source_seq=0)
    w.put(rival)  # the copy loses at its own path: its copy repeats A's update 2 still
    (again,) = mirror.conflict_copies(w.map, copy.path)
    assert again.source_seq == 2 and again.origin == A and again.hash == mine.hash


def test_copies_naming_different_sources_of_one_version_converge_in_any_order() -> None:
    """Only an origin that signed one version twice makes two nodes' copies differ (in
    `source_seq` alone): the map keeps one of them by its fixed order, the same on every node,
    and a revocation voiding the later source leaves the other."""
    mine, theirs = _conflict()
    (copy,) = mirror.conflict_copies(World().put(mine, theirs).map, mine.path)
    two = [replace(copy, source_seq=2), replace(copy, source_seq=3)]
    maps = []
    for order in (two, two[::-1]):
        w = World()
        for signer, rec in zip((NODE_B, FOUNDER), order):
            w.map.apply(make_update(signer, MESH_ID, 5, rec))
        maps.append(w.map)
    assert maps[0].versions(copy.path) == maps[1].versions(copy.path) == (two[1],)
    maps[0].apply(make_update(FOUNDER, MESH_ID, 10, Revoke(A, 2, 10)))
    assert maps[0].versions(copy.path) == (two[0],)


def _revoked(cutoff: int, copy_first: bool = True) -> tuple[World, FileRecord]:
    """A's `mine` (A's update 2) loses to B's `theirs`; B publishes its copy; then (or before
    the copy arrives) the founder removes A with `cutoff`."""
    w = World().put(file("other", vv(a=1), A))
    mine, theirs = _conflict()
    w.put(mine, theirs)
    (copy,) = mirror.conflict_copies(w.map, mine.path)
    revoke = make_update(FOUNDER, MESH_ID, 10, Revoke(A, cutoff, 10))
    if copy_first:
        w.put(copy, by=B)
        w.map.apply(revoke)
    else:
        w.map.apply(revoke)
        w.map.apply(make_update(NODE_B, MESH_ID, 10, copy))
    return w, copy


@pytest.mark.parametrize("copy_first", [True, False])
def test_a_copy_of_a_version_its_origin_published_after_its_cutoff_is_void(copy_first) -> None:
    """Churn seed 29128: a remover that saw none of A's updates (cutoff 0, or 1 here) voids
    `mine`, and B's copy of it with it: the disk's copy goes, as a voided version does."""
    w, copy = _revoked(cutoff=1, copy_first=copy_first)
    assert w.map.versions(copy.path) == () and w.map.versions("docs/report.txt")[0].origin == B
    assert mirror.need_for(w.map, copy.path, entry_of(copy)).action == DELETE
    assert mirror.conflict_copies(w.map, "docs/report.txt") == []


@pytest.mark.parametrize("copy_first", [True, False])
def test_a_copy_of_a_version_within_its_origins_cutoff_stays(copy_first) -> None:
    """A remover that saw `mine` (cutoff 2): the honest copy is not dropped (a lost write)."""
    w, copy = _revoked(cutoff=2, copy_first=copy_first)
    assert w.map.versions(copy.path) == (copy,)
    assert mirror.need_for(w.map, copy.path, entry_of(copy)) is None


def test_no_copy_once_the_copy_was_edited_or_deleted() -> None:
    mine, theirs = _conflict()
    w = World().put(mine, theirs)
    copy = mirror.conflict_copies(w.map, mine.path)[0]
    w.put(replace(copy, vv=copy.vv.bump(B), origin=B), by=B)  # a later edit of the copy
    assert mirror.conflict_copies(w.map, mine.path) == []
    w2 = World().put(mine, theirs)
    w2.put(tomb(copy.path, copy.vv.bump(F), F))
    assert mirror.conflict_copies(w2.map, mine.path) == []


def test_no_copy_for_deleted_losers_same_content_or_a_single_version() -> None:
    w = World().put(file("f", vv(a=1), A, b"x", 10), tomb("f", vv(b=1), B, 20))
    assert mirror.conflict_copies(w.map, "f") == []  # an edit beats a delete; no copy of a delete
    w2 = World().put(file("g", vv(a=1), A, b"same", 10), file("g", vv(b=1), B, b"same", 20))
    assert len(w2.map.versions("g")) == 2 and mirror.conflict_copies(w2.map, "g") == []
    w3 = World().put(file("h", vv(a=1), A))
    assert mirror.conflict_copies(w3.map, "h") == []
    assert mirror.conflict_copies(w3.map, "nothing") == []


def test_no_copy_for_a_folder_or_link_loser() -> None:
    w = World().put(folder("x", vv(a=1), A, 10), file("x", vv(b=1), B, b"f", 20))
    assert mirror.conflict_copies(w.map, "x") == []


def test_three_way_conflict_gives_a_copy_per_loser() -> None:
    w = World().put(file("f.md", vv(a=1), A, b"a", 10), file("f.md", vv(b=1), B, b"b", 20),
                    file("f.md", vv(f=1), F, b"f", 30))
    copies = mirror.conflict_copies(w.map, "f.md")
    assert sorted(c.origin for c in copies) == sorted([A, B])
    assert len({c.path for c in copies}) == 2


def test_disk_version_after_conflict_lets_the_next_edit_settle_it() -> None:
    mine, theirs = _conflict()
    w = World().put(mine, theirs)
    w.put(*mirror.conflict_copies(w.map, mine.path))
    merged = mirror.disk_version(w.map, mine.path)
    assert merged == vv(a=1, b=1)
    rec = mirror.local_version(w.map, A, mine.path, entry_of(theirs, merged),
                               scanned(mine.path, b"settled"))
    assert rec.vv.dominates(mine.vv) and rec.vv.dominates(theirs.vv)


def test_conflict_copy_of_a_long_name_is_a_valid_path() -> None:
    """A loser named near the 255-byte component limit must still get a copy every node can
    store. A copy whose name is too long is FORBIDDEN by every MetaMap: it is never held, so it
    is computed and published again on every remote update of the path, and the losing content
    is mirrored nowhere (while disk_version already merged the loser's vv, so the next edit of
    the winner supersedes the loser for good)."""
    name = "d/" + "n" * 240 + ".txt"
    assert is_valid(name)
    w = World().put(file(name, vv(a=1), A, b"mine", 10), file(name, vv(b=1), B, b"theirs", 20))
    copies = mirror.conflict_copies(w.map, name)
    assert len(copies) == 1
    assert is_valid(copies[0].path), f"conflict copy path is invalid: {len(copies[0].path)} chars"


def test_file_totals_count_files_and_bytes_and_list_the_conflict_copies_present() -> None:
    index = {"a.txt": Entry("a.txt", FILE, 1, 0o644, h(b"a"), None, vv()),
             "a.sync-conflict-20240101-000000-AAAAAAA.txt":
                 Entry("a.sync-conflict-20240101-000000-AAAAAAA.txt", FILE, 1, 0o644, h(b"b"),
                       None, vv()),
             "d.sync-conflict-x": Entry("d.sync-conflict-x", DIR, 0, 0o755, None, None, vv())}
    assert mirror.file_totals(index) == (2, 2, ["a.sync-conflict-20240101-000000-AAAAAAA.txt"])


@pytest.mark.parametrize("winner_deleted", [False, True])
def test_same_as_disk(winner_deleted: bool) -> None:
    rec = tomb("f", vv(a=1), A) if winner_deleted else file("f", vv(a=1), A, b"x")
    assert mirror.same_as_disk(rec, None) is winner_deleted
    assert mirror.same_as_disk(rec, entry_of(file("f", vv(), B, b"x"))) is (not winner_deleted)


def test_a_mesh_version_the_map_no_longer_has_is_removed_but_the_user_s_own_file_stays() -> None:
    """Every version of a path was voided (made by a member after its revocation's cutoff): the
    disk must not keep it (make soak: churn 8 368). A row without a vv is the user's own
    unpublished file (a node not admitted yet, a read-only member): it stays."""
    w = World()
    need = mirror.need_for(w.map, "v.txt", entry_of(file("v.txt", vv(a=3), A, b"void")))
    assert need is not None and need.action == DELETE and need.record.deleted
    assert need.record.origin == A
    assert mirror.need_for(w.map, "mine.txt", entry_of(file("mine.txt", vv(), A, b"x"))) is None
    assert {n.path for n in mirror.needed(w.map, {
        "v.txt": entry_of(file("v.txt", vv(a=3), A, b"void")),
        "mine.txt": entry_of(file("mine.txt", vv(), A, b"x"))})} == {"v.txt"}
