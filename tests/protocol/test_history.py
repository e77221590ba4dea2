"""History of a path: version ids, merging the map's and the archives' lists, the default restore."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from gossip_backer.core.ids import NodeId
from gossip_backer.core.metamap import MetaMap, Outcome
from gossip_backer.core.record import DIR, FILE, FileRecord, Grant
from gossip_backer.core.vv import VersionVector
from gossip_backer.crypto.identity import make_update
from gossip_backer.protocol.history import (
    Version,
    default_restore,
    from_archive,
    from_map,
    merged,
)
from helpers import MESH_ID, identity

HYPO = settings(deadline=None, derandomize=True, max_examples=200)
A, B = identity(31).public, identity(32).public
S = 1_000_000_000


def h(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


def ver(mtime_s: int, content: bytes | None, origin: bytes = A, *, current: bool = False,
        path: str = "doc.txt") -> Version:
    deleted = content is None
    return Version(path, None if deleted else h(content), 0 if deleted else len(content),
                   mtime_s * S, origin, deleted, current)


# --- ids ------------------------------------------------------------------------------------


def test_id_is_deterministic_and_ignores_current_and_size() -> None:
    v = ver(10, b"one")
    assert v.id == ver(10, b"one").id
    assert v.id == ver(10, b"one", current=True).id
    assert isinstance(v.id, str) and len(v.id) == 16 and int(v.id, 16) >= 0


keys = st.tuples(st.text(min_size=1, max_size=12), st.none() | st.binary(min_size=32, max_size=32),
                 st.integers(-(2**63), 2**63), st.sampled_from([A, B]))


@HYPO
@given(keys, keys)
def test_id_is_distinct_per_path_hash_mtime_and_per_origin_of_a_deletion(k1, k2) -> None:
    """Content: (path, hash, mtime), whoever is said to have made it (issue 11: a relaying
    node's archive listed one version a second time under its own id). Deletion: + origin."""
    def make(k):
        path, digest, mtime, origin = k
        return Version(path, digest, 1, mtime, origin, digest is None)
    same = k1[:3] == k2[:3] and (k1[1] is not None or k1[3] == k2[3])
    assert (make(k1).id == make(k2).id) == same


def test_id_has_no_ambiguity_between_fields() -> None:
    """Length-prefixed parts: moving bytes from one field into its neighbour changes the id."""
    a = Version("ab", h(b"x"), 1, 12, A, False)
    b = Version("a", h(b"x"), 1, 12, A, False)
    c = Version("ab", h(b"x"), 1, 1, A, False)
    assert len({a.id, b.id, c.id}) == 3
    assert Version("p", None, 0, 5, A, True).id != Version("p", h(b""), 0, 5, A, False).id


def test_to_json() -> None:
    v = ver(1_700_000_000, b"hello", B)
    assert v.to_json() == {"version": v.id, "time": 1_700_000_000.0, "size": 5,
                           "hash": h(b"hello").hex(), "node_id": str(NodeId(B)), "deleted": False}
    gone = ver(5, None).to_json()
    assert gone["hash"] is None and gone["deleted"] is True and gone["size"] == 0


# --- merged -----------------------------------------------------------------------------------


def test_merged_dedupes_by_id_keeps_current_and_sorts_newest_first() -> None:
    old, mid, cur = ver(10, b"one"), ver(20, b"two"), ver(30, b"three", current=True)
    from_peer = [ver(20, b"two"), ver(10, b"one"), ver(30, b"three")]  # not current over there
    ours = [old]
    out = merged(from_peer, ours, [cur, mid])
    assert [v.mtime_ns for v in out] == [30 * S, 20 * S, 10 * S]
    assert [v.current for v in out] == [True, False, False]
    assert len({v.id for v in out}) == 3
    # the order of the lists does not matter
    assert merged([cur, mid], ours, from_peer) == out


def test_merged_same_mtime_puts_current_first() -> None:
    a = ver(10, b"a", A)
    b = ver(10, b"b", B, current=True)
    assert merged([a, b])[0] is b
    assert merged([b, a])[0] is b


def test_merged_empty() -> None:
    assert merged() == [] and merged([], []) == []


# --- default restore --------------------------------------------------------------------------


def test_default_restore_is_the_one_before_the_current() -> None:
    versions = merged([ver(10, b"one"), ver(20, b"two"), ver(30, b"three", current=True)])
    assert default_restore(versions) == ver(20, b"two")


def test_default_restore_skips_older_versions_with_the_current_content() -> None:
    versions = merged([ver(10, b"one"), ver(20, b"same"), ver(30, b"same", B, current=True)])
    assert default_restore(versions) == ver(10, b"one")


def test_default_restore_of_a_deleted_file_is_its_last_content() -> None:
    versions = merged([ver(10, b"one"), ver(20, b"two"), ver(30, None, current=True)])
    assert default_restore(versions) == ver(20, b"two")


def test_default_restore_without_a_current_is_the_newest_content() -> None:
    assert default_restore(merged([ver(10, b"one"), ver(20, b"two")])) == ver(20, b"two")


def test_default_restore_none() -> None:
    assert default_restore([]) is None
    assert default_restore([ver(30, b"only", current=True)]) is None
    assert default_restore(merged([ver(20, None), ver(30, None, current=True)])) is None
    assert default_restore(merged([ver(10, b"x"), ver(30, b"x", B, current=True)])) is None


@HYPO
@given(st.lists(st.tuples(st.integers(0, 50), st.sampled_from([b"a", b"b", b"c", None]),
                          st.sampled_from([A, B])), min_size=1, max_size=8),
       st.data())
def test_default_restore_properties(rows, data) -> None:
    versions = [ver(m, c, o) for m, c, o in rows]
    i = data.draw(st.integers(0, len(versions) - 1))
    cur = versions[i]
    versions[i] = Version(cur.path, cur.hash, cur.size, cur.mtime_ns, cur.origin, cur.deleted, True)
    listed = merged(versions)
    pick = default_restore(listed)
    current = next((v for v in listed if v.current), None)
    if pick is None:
        if current is None or current.deleted:
            assert all(v.deleted for v in listed)
        else:
            assert not any(not v.deleted and v.hash != current.hash
                           and v.mtime_ns <= current.mtime_ns for v in listed)
        return
    assert pick in listed and not pick.deleted and pick.hash is not None
    if current is not None and not current.deleted:
        assert pick.hash != current.hash and pick.mtime_ns <= current.mtime_ns
        assert pick.mtime_ns == max(v.mtime_ns for v in listed if not v.deleted
                                    and v.hash != current.hash and v.mtime_ns <= current.mtime_ns)
    else:
        assert pick.mtime_ns == max(v.mtime_ns for v in listed if not v.deleted)


# --- from the map and the archive -------------------------------------------------------------


def _map_with(*records: FileRecord) -> MetaMap:
    founder = identity(30)
    m = MetaMap(founder.public)
    seq = {founder.public: 1}
    ups = [make_update(founder, MESH_ID, 1, Grant(founder.public, "f", False, 1))]
    for node in (A, B):
        seq[founder.public] += 1
        ups.append(make_update(founder, MESH_ID, seq[founder.public], Grant(node, "", False, 2)))
    for rec in records:
        ident = identity(31) if rec.origin == A else identity(32)
        seq[rec.origin] = seq.get(rec.origin, 0) + 1
        ups.append(make_update(ident, MESH_ID, seq[rec.origin], rec))
    for u in ups:
        assert m.apply(u) in (Outcome.APPLIED, Outcome.HELD)
    return m


def _file(path, vv, origin, content, mtime_s, deleted=False) -> FileRecord:
    if deleted:
        return FileRecord(path, FILE, vv, origin, mtime_ns=mtime_s * S, deleted=True)
    return FileRecord(path, FILE, vv, origin, len(content), mtime_s * S, 0o644, h(content))


def test_from_map_lists_concurrent_versions_and_marks_the_winner() -> None:
    m = _map_with(_file("p", VersionVector({A: 1}), A, b"mine", 10),
                  _file("p", VersionVector({B: 1}), B, b"theirs", 20),
                  FileRecord("d", DIR, VersionVector({A: 2}), A))
    listed = from_map(m, "p")
    assert len(listed) == 2
    assert [v.current for v in sorted(listed, key=lambda v: v.mtime_ns)] == [False, True]
    assert from_map(m, "d") == []  # folders have no history
    assert from_map(m, "nothing") == []
    cur = next(v for v in listed if v.current)
    assert (cur.hash, cur.size, cur.origin) == (h(b"theirs"), 6, B)


def test_from_map_deleted_then_archive_gives_the_last_content() -> None:
    m = _map_with(_file("p", VersionVector({A: 1}), A, b"v1", 10),
                  _file("p", VersionVector({A: 2}), A, b"", 40, deleted=True))
    listed = from_map(m, "p")
    assert len(listed) == 1 and listed[0].deleted and listed[0].current
    assert listed[0].hash is None and listed[0].size == 0
    archive = from_archive("p", [(h(b"v1"), 2, 10 * S, A), (h(b"v0"), 2, 5 * S, B)])
    assert all(not v.deleted and not v.current for v in archive)
    versions = merged(listed, archive)
    assert versions[0] == listed[0]
    assert default_restore(versions) == Version("p", h(b"v1"), 2, 10 * S, A, False)


def test_archive_rows_reported_by_several_nodes_are_listed_once() -> None:
    m = _map_with(_file("p", VersionVector({A: 2}), A, b"v2", 20))
    row = (h(b"v1"), 2, 10 * S, A)
    mine, theirs = from_archive("p", [row]), from_archive("p", [row])
    listed = merged(from_map(m, "p"), mine, theirs)
    assert len(listed) == 2
    # the current version reported by a peer's archive too: still one entry, still current
    again = merged(from_archive("p", [(h(b"v2"), 2, 20 * S, A)]), from_map(m, "p"), mine)
    assert len(again) == 2 and again[0].current


def test_one_version_reported_under_two_origins_is_listed_once_with_the_map_origin() -> None:
    """Issue 11: a node that archived a relayed version recorded the relay as its origin."""
    mine = ver(20, b"two", A)
    relayed = ver(20, b"two", B)  # the same version, as a relaying node's archive reports it
    out = merged([relayed], [ver(10, b"one", B)], known=[mine])
    assert [(v.mtime_ns, v.origin) for v in out] == [(20 * S, A), (10 * S, B)]
    # without the map's word, the least origin, whatever the order of the reports
    assert merged([relayed], [mine]) == merged([mine], [relayed]) == [min(mine, relayed, key=lambda v: v.origin)]


def test_ties_come_out_in_the_same_order_on_every_node() -> None:
    tied = [ver(10, bytes([i])) for i in range(6)]
    first = merged(tied)
    assert merged(list(reversed(tied))) == first
    assert merged(tied[3:], tied[:3]) == first
    assert [v.id for v in first] == sorted((v.id for v in tied), reverse=True)


# -- history requests (protocol/history.Ask): whom to ask, until when, what replies count ------
from gossip_backer.protocol import history  # noqa: E402
from gossip_backer.wire.messages import HistoryReply, HistoryRequest  # noqa: E402

C = identity(33).public


def test_a_request_asks_every_peer_once_and_waits_for_the_asked_ones():
    ask = history.Ask(7, "a.txt", now=100.0, started=0.0)  # an old node: connected peers only
    assert ask.deadline == 100.0 + history.ASK_TIMEOUT
    assert ask.to_ask([A]) == [A] and ask.to_ask([A, B]) == [B]  # B connected meanwhile
    assert ask.request == HistoryRequest(7, "a.txt")
    assert not ask.complete(100.5, members=[A, B, C])
    ask.on_reply(A, HistoryReply(7, ()))
    ask.on_reply(C, HistoryReply(7, ([h(b"x"), 1, 5, C],)))  # never asked: ignored
    ask.on_reply(B, HistoryReply(6, ()))  # another request's reply
    assert not ask.complete(100.5, members=[A, B, C])
    ask.on_reply(B, HistoryReply(7, ()))
    assert ask.complete(100.5, members=[A, B, C]) and ask.rows == []


def test_a_young_node_waits_for_members_it_has_not_reached_yet():
    """The issue's bug: a node back from a stop must not answer from its stale view alone."""
    ask = history.Ask(1, "a.txt", now=1.0, started=0.0)
    assert ask.deadline == history.CONNECT_GRACE
    ask.to_ask([A])
    ask.on_reply(A, HistoryReply(1, ()))
    assert not ask.complete(2.0, members=[A, B])  # B keeps versions and is not connected yet
    assert ask.complete(history.CONNECT_GRACE + 0.1, members=[A, B])
    assert ask.to_ask([A, B]) == [B]
    old = (h(b"only B archived it"), 17, 3 * S, C)
    ask.on_reply(B, HistoryReply(1, (list(old), [b"bad"], [h(b"y"), "1", 2, C])))
    assert ask.complete(2.0, members=[A, B])
    current = Version("a.txt", h(b"now"), 3, 9 * S, A, False, current=True)
    listing, holders = ask.listing([current], known=[current])
    assert [v.hash for v in listing] == [h(b"now"), old[0]]
    assert holders == {listing[1].id: {B}}


def test_replies_carry_the_archived_rows_and_bad_paths_get_none():
    rows = [(h(b"v1"), 2, 5 * S, A)]
    assert history.reply(HistoryRequest(3, "a.txt"), rows) == HistoryReply(3, ([h(b"v1"), 2, 5 * S, A],))
    assert history.requested_path(HistoryRequest(3, "a.txt")) == "a.txt"
    assert history.requested_path(HistoryRequest(3, "../etc/passwd")) is None


# -- restore: whether it may run, where its bytes come from --------------------------------------
import pytest  # noqa: E402

from gossip_backer.core.record import IndexEntry  # noqa: E402
from gossip_backer.errors import UserError  # noqa: E402


def test_a_restore_is_refused_on_a_read_only_node_a_path_being_synced_and_a_second_restore():
    history.refuse_restore(False, False, "a.txt")  # may run
    for args, words in (((True, False), "read-only member"), ((False, True), "being synced"),
                        ((False, False, True), "restore of a.txt is under way")):
        with pytest.raises(UserError, match=words):
            history.refuse_restore(args[0], args[1], "a.txt", *args[2:])


def _entry(path: str, content: bytes, kind: str = FILE) -> IndexEntry:
    return IndexEntry(path=path, kind=kind, size=len(content), mtime_ns=S, mode=0o644,
                      hash=h(content), inode=1)


def test_a_restore_takes_the_archive_then_a_current_file_with_that_content_then_peers():
    v = ver(5, b"old")
    index = {"doc.txt": _entry("doc.txt", b"new"), "copy.txt": _entry("copy.txt", b"old")}
    assert history.restore_source(v, True, index, set()) == (history.ARCHIVE, None)
    assert history.restore_source(v, False, index, set()) == (history.CURRENT, "copy.txt")
    del index["copy.txt"]
    assert history.restore_source(v, False, index, {B}) == (history.PEERS, None)
    with pytest.raises(UserError, match="on no connected node"):
        history.restore_source(v, False, index, set())
    with pytest.raises(UserError, match="start `backer run`"):  # a stopped node asks no one
        history.restore_source(v, False, index, None)


def test_a_version_is_fetched_in_whole_pieces_with_no_block_hash():
    assert history.restore_pieces(0) == []
    pieces = history.restore_pieces(2 * history.RESTORE_PIECE + 1)
    assert [i for i, _ in pieces] == [0, 1, 2] and all(b.hash == b"" for _, b in pieces)
