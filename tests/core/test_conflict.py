"""The one winner rule and the conflict-copy name (SPEC.md, "Conflicts")."""

from __future__ import annotations

import calendar
import posixpath
import re
import time

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gossip_backer.core.conflict import (
    CONFLICT_MARK, conflict_copy, conflict_name, is_conflict_copy, losers, rank, winner,
)
from gossip_backer.core.ids import NodeId
from gossip_backer.core.record import DIR, FILE, SYMLINK, FileRecord
from gossip_backer.core.vv import VersionVector
from replicas import content_hash, identity, make_record, quick

A, B, C = (identity(i).public for i in (1, 2, 3))
LO, HI = sorted([A, B])  # LO < HI as node ids
SEC = 1_000_000_000


def utc_ns(y, mo, d, h, mi, s, ns=0) -> int:
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * SEC + ns


def rec(origin, mtime_ns=0, *, deleted=False, content=b"x", path="f.txt", n=1) -> FileRecord:
    return make_record(path, VersionVector({origin: n}), origin, content=content,
                       mtime_ns=mtime_ns, deleted=deleted)


# -- winner -----------------------------------------------------------------------------------

def test_later_mtime_wins():
    old, new = rec(HI, 5 * SEC), rec(LO, 6 * SEC)
    assert winner([old, new]) is new
    assert winner([new, old]) is new


def test_mtime_compares_at_nanosecond_resolution():
    a, b = rec(HI, 5 * SEC), rec(LO, 5 * SEC + 1)
    assert winner([a, b]) is b and winner([b, a]) is b


def test_mtime_tie_goes_to_the_greater_node_id():
    lo, hi = rec(LO, 5 * SEC), rec(HI, 5 * SEC)
    assert NodeId(HI) > NodeId(LO)
    assert winner([lo, hi]) is hi
    assert winner([hi, lo]) is hi


def test_existing_beats_deleted_even_when_the_delete_is_later():
    edit = rec(LO, 1 * SEC)
    gone = rec(HI, 99 * SEC, deleted=True)
    assert winner([edit, gone]) is edit
    assert winner([gone, edit]) is edit


def test_between_deletions_the_later_wins_then_the_greater_node():
    a, b = rec(HI, 1 * SEC, deleted=True), rec(LO, 2 * SEC, deleted=True)
    assert winner([a, b]) is b
    c, d = rec(LO, 2 * SEC, deleted=True), rec(HI, 2 * SEC, deleted=True)
    assert winner([c, d]) is d


def test_a_single_version_wins_and_has_no_losers():
    only = rec(A)
    assert winner([only]) is only
    assert losers([only]) == []
    assert losers([]) == []


def test_winner_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        winner([])


def test_dir_and_symlink_versions_follow_the_same_rule():
    d = FileRecord("x", DIR, VersionVector({LO: 1}), LO, mtime_ns=7 * SEC, mode=0o755)
    s = FileRecord("x", SYMLINK, VersionVector({HI: 1}), HI, mtime_ns=7 * SEC, target="t")
    assert winner([d, s]) is s


# concurrent versions of one path come from distinct origins (a node's own versions are ordered)
origins = st.sampled_from([identity(i).public for i in range(1, 7)])
versions = st.builds(
    lambda o, t, deleted, content: rec(o, t, deleted=deleted, content=content),
    origins, st.integers(-3, 3).map(lambda t: t * SEC), st.booleans(),
    st.sampled_from([b"one", b"two", b"three"]),
)


@quick
@given(st.lists(versions, min_size=1, max_size=6, unique_by=lambda v: v.origin),
       st.randoms(use_true_random=False))
def test_winner_is_the_rule_and_ignores_order(vs, rnd):
    best = winner(vs)
    for v in vs:
        if v is best:
            continue
        # the rule, spelled out: existing > deleted, then later mtime, then greater node id
        assert (not best.deleted, best.mtime_ns, NodeId(best.origin)) >= (
            not v.deleted, v.mtime_ns, NodeId(v.origin))
    shuffled = list(vs)
    rnd.shuffle(shuffled)
    assert rank(winner(shuffled)) == rank(best)


@quick
@given(st.lists(versions, min_size=1, max_size=6, unique_by=lambda v: v.origin))
def test_a_deletion_wins_only_when_every_version_is_deleted(vs):
    assert winner(vs).deleted == all(v.deleted for v in vs)


# -- losers -----------------------------------------------------------------------------------

def test_losers_exclude_deletions():
    edit = rec(LO, 1 * SEC, content=b"a")
    gone = rec(HI, 9 * SEC, deleted=True)
    assert losers([edit, gone]) == []


def test_a_deletion_losing_to_a_later_edit_is_no_conflict():
    gone = rec(LO, 1 * SEC, deleted=True)
    edit = rec(HI, 9 * SEC, content=b"a")
    assert losers([gone, edit]) == []


def test_losers_exclude_the_same_content_made_twice():
    a = rec(LO, 1 * SEC, content=b"same")
    b = rec(HI, 2 * SEC, content=b"same")
    assert losers([a, b]) == []


def test_same_hash_but_other_mode_is_a_conflict():
    a = rec(LO, 1 * SEC, content=b"same")
    b = FileRecord(a.path, FILE, VersionVector({HI: 1}), HI, a.size, 2 * SEC, 0o755, a.hash)
    assert losers([a, b]) == [a]


def test_a_different_content_loses_and_is_reported():
    a = rec(LO, 1 * SEC, content=b"mine")
    b = rec(HI, 2 * SEC, content=b"yours")
    assert losers([a, b]) == [a]
    assert losers([b, a]) == [a]


@quick
@given(st.lists(versions, min_size=0, max_size=6, unique_by=lambda v: v.origin))
def test_losers_are_exactly_the_live_different_non_winners(vs):
    got = losers(vs)
    if len(vs) < 2:
        assert got == []
        return
    best = winner(vs)
    assert best not in got or any(v is not best and v == best for v in vs)
    for v in got:
        assert not v.deleted
        assert not v.same_content(best)
        assert rank(v) < rank(best)
    expected = [v for v in vs if v is not best and not v.deleted and not v.same_content(best)]
    assert got == expected


# -- conflict names -----------------------------------------------------------------------------

NODE = identity(1).public
SHORT = NodeId(NODE).short()
T = utc_ns(2024, 3, 5, 6, 7, 8)
STAMP = "20240305-060708"


@pytest.mark.parametrize("path, expected", [
    ("a.txt", f"a.sync-conflict-{STAMP}-{SHORT}.txt"),
    ("Makefile", f"Makefile.sync-conflict-{STAMP}-{SHORT}"),
    ("a.tar.gz", f"a.tar.sync-conflict-{STAMP}-{SHORT}.gz"),
    ("dir/sub/c.txt", f"dir/sub/c.sync-conflict-{STAMP}-{SHORT}.txt"),
    ("v1.2/readme", f"v1.2/readme.sync-conflict-{STAMP}-{SHORT}"),
    ("v1.2/notes.md", f"v1.2/notes.sync-conflict-{STAMP}-{SHORT}.md"),
    ("a b/c d.e f", f"a b/c d.sync-conflict-{STAMP}-{SHORT}.e f"),
    ("ünï/çödé.txt", f"ünï/çödé.sync-conflict-{STAMP}-{SHORT}.txt"),
    # dotfiles: the leading dot is no extension, the whole name is the stem (as the module says;
    # Syncthing's filepath.Ext would give ".sync-conflict-...bashrc" here)
    (".bashrc", f".bashrc.sync-conflict-{STAMP}-{SHORT}"),
    ("home/.profile", f"home/.profile.sync-conflict-{STAMP}-{SHORT}"),
    (".config.json", f".config.sync-conflict-{STAMP}-{SHORT}.json"),
    ("a.", f"a.sync-conflict-{STAMP}-{SHORT}."),
])
def test_conflict_name_examples(path, expected):
    assert conflict_name(path, T, NODE) == expected
    assert is_conflict_copy(expected)
    assert not is_conflict_copy(path)


def test_conflict_name_uses_utc_whatever_the_local_zone(monkeypatch):
    if not hasattr(time, "tzset"):
        pytest.skip("no tzset on this platform")
    for zone in ("Asia/Tokyo", "America/Los_Angeles", "UTC"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        assert conflict_name("a.txt", T, NODE) == f"a.sync-conflict-{STAMP}-{SHORT}.txt"
    monkeypatch.delenv("TZ")
    time.tzset()


@pytest.mark.parametrize("mtime_ns, stamp", [
    (utc_ns(2024, 3, 5, 6, 7, 8, 999_999_999), STAMP),  # sub-second part is dropped, not rounded
    (utc_ns(2024, 12, 31, 23, 59, 59, 500_000_000), "20241231-235959"),
    (0, "19700101-000000"),
    (1, "19700101-000000"),
    (-1, "19691231-235959"),  # a second before the epoch, not rounded towards it
    (-SEC, "19691231-235959"),
    (-SEC - 1, "19691231-235958"),
    (utc_ns(2000, 2, 29, 12, 0, 0), "20000229-120000"),
    (utc_ns(2038, 1, 19, 3, 14, 8), "20380119-031408"),  # past the 32-bit time_t limit
])
def test_conflict_name_timestamp(mtime_ns, stamp):
    assert conflict_name("f", mtime_ns, NODE) == f"f.sync-conflict-{stamp}-{SHORT}"


NAME_RE = re.compile(r"^(?P<stem>.+)\.sync-conflict-(?P<date>\d{8})-(?P<time>\d{6})-(?P<node>[A-Z2-7]{7})"
                     r"(?P<ext>(\.[^./]*)?)$", re.DOTALL)
segment = st.text(
    alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
    min_size=1, max_size=12,
).filter(lambda s: s not in (".", ".."))
paths = st.lists(segment, min_size=1, max_size=4).map("/".join)


@quick
@given(paths, st.integers(-(2**63), 2**64 - 1), st.binary(min_size=32, max_size=32))
def test_conflict_name_shape(path, mtime_ns, origin):
    """Any path, any mtime a peer can send (msgpack ints): folder kept, last suffix kept, the
    loser's UTC second and the first 7 characters of its node id in between."""
    name = conflict_name(path, mtime_ns, origin)
    folder, base = posixpath.split(path)
    new_folder, new_base = posixpath.split(name)
    assert new_folder == folder
    stem, ext = posixpath.splitext(base)
    assert new_base.startswith(stem + CONFLICT_MARK) and new_base.endswith(ext)
    middle = new_base[len(stem) + len(CONFLICT_MARK):len(new_base) - len(ext)]
    date, clock, node = middle.split("-")
    seconds = mtime_ns // SEC
    assert date + clock == time.strftime("%Y%m%d%H%M%S", time.gmtime(seconds))
    assert len(date) == 8 and len(clock) == 6
    assert node == NodeId(origin).short() == str(NodeId(origin))[:7]
    assert is_conflict_copy(name)


@quick
@given(paths, st.integers(0, 2**62), st.binary(min_size=32, max_size=32))
def test_conflict_name_matches_the_spec_pattern(path, mtime_ns, origin):
    name = posixpath.basename(conflict_name(path, mtime_ns, origin))
    m = NAME_RE.match(name)
    assert m, name


@quick
@given(paths, st.integers(0, 2**62), st.binary(min_size=32, max_size=32),
       st.integers(0, 2**62), st.binary(min_size=32, max_size=32))
def test_conflict_names_of_different_losers_differ(path, t1, o1, t2, o2):
    # different second or different node-id prefix -> a different copy (no copy overwrites another)
    assume(t1 // SEC != t2 // SEC or NodeId(o1).short() != NodeId(o2).short())
    assert conflict_name(path, t1, o1) != conflict_name(path, t2, o2)


# -- conflict copies ---------------------------------------------------------------------------

def test_conflict_copy_keeps_everything_but_the_path():
    loser = rec(LO, T, content=b"mine", path="docs/a.txt")
    copy = conflict_copy(loser)
    assert copy.path == conflict_name("docs/a.txt", T, LO)
    assert (copy.vv, copy.origin, copy.hash, copy.size, copy.mtime_ns, copy.mode, copy.deleted) == (
        loser.vv, loser.origin, loser.hash, loser.size, loser.mtime_ns, loser.mode, loser.deleted)
    assert conflict_copy(loser) == copy  # every node derives the same record
    assert copy.same_content(loser)


def test_every_node_picks_the_same_winner_and_names_the_same_copies():
    vs = [rec(A, T, content=b"a"), rec(B, T, content=b"b"), rec(C, T - SEC, content=b"c"),
          rec(A, T + SEC, deleted=True, n=2)]
    orders = [vs, vs[::-1], vs[1:] + vs[:1], vs[2:] + vs[:2]]
    results = {(rank(winner(o)), frozenset(conflict_copy(v).path for v in losers(o))) for o in orders}
    assert len(results) == 1
    (best_rank, copies), = results
    assert best_rank[0] and len(copies) == 2


def test_is_conflict_copy_looks_at_the_name_only():
    assert is_conflict_copy("x/a.sync-conflict-20240101-000000-AAAAAAA.txt")
    assert not is_conflict_copy("a.sync-conflict-dir/file.txt")
    assert not is_conflict_copy("plain.txt")


def test_same_content_ignores_mtime_and_origin_but_not_kind():
    a = rec(LO, 1, content=b"x")
    b = rec(HI, 2, content=b"x")
    assert a.same_content(b)
    d = FileRecord(a.path, DIR, a.vv, a.origin, mode=0o644)
    assert not a.same_content(d)
    assert content_hash(b"x") == a.hash


def test_a_conflict_copy_of_a_name_that_is_not_utf8_keeps_its_bytes():
    import os

    from gossip_backer.core.paths import check, to_bytes

    odd = os.fsdecode(b"dir\xfe/r\xe9sum\xe9.txt")
    name = conflict_name(odd, 1_700_000_000 * 10**9, b"\x07" * 32)
    assert to_bytes(name).startswith(b"dir\xfe/r\xe9sum\xe9.sync-conflict-20231114-221320-")
    assert name.endswith(".txt") and check(name) == name
    long = os.fsdecode(b"\xff" * 250 + b".txt")  # cut to the file-name limit, still exact bytes
    cut = conflict_name(long, 0, b"\x07" * 32)
    assert len(to_bytes(cut)) <= 255 and check(cut) == cut and to_bytes(cut).startswith(b"\xff")
