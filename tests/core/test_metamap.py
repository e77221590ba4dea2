"""The MetaMap CRDT: outcomes, since(digest), the file multi-value register, and the CRDT laws
over random histories on 2-5 replicas (real signatures throughout)."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from gossip_backer.core.conflict import conflict_copy, losers, winner
from gossip_backer.protocol import mirror
from gossip_backer.core.metamap import MetaMap, Outcome
from gossip_backer.core.record import LiveGlob
from gossip_backer.core.vv import Order, VersionVector
from replicas import (
    Mesh, assert_converged, assert_no_write_lost, crdt, full_sync, heavy, held_updates, make_record,
    make_replicas, medium, next_vv, state_of,
)

APPLIED, HELD, DUPLICATE = Outcome.APPLIED, Outcome.HELD, Outcome.DUPLICATE
SEC = 1_000_000_000


def file_updates(m: MetaMap):
    return [u for u in m.updates() if u.key.startswith("f:")]


# -- basics -----------------------------------------------------------------------------------

def test_a_fresh_map_is_empty(mesh):
    m = mesh.new_map()
    assert m.digest() == {} and len(m) == 0 and m.files == {} and list(m.updates()) == []
    assert m.since({}) == [] and m.winner("p") is None and m.versions("p") == ()
    assert m.seq_of(mesh.founder.public) == 0


def test_a_local_edit_is_applied_and_readable(trio_of_replicas):
    r0 = trio_of_replicas[0]
    made = r0.edit("docs/a.txt", b"hello", mtime_ns=5 * SEC)
    m = r0.map
    assert m.winner("docs/a.txt") == made.record
    assert m.versions("docs/a.txt") == (made.record,)
    assert made.record.vv == VersionVector({r0.public: 1})
    assert m.seq_of(r0.public) == made.update.seq == m.digest()[r0.public]
    assert made.update in list(m.updates())


def test_the_default_verifier_accepts_everything(mesh):
    m = MetaMap(founder=mesh.founder.public)  # the core runs without keys
    u = mesh.founder.sign(make_record("p", VersionVector({mesh.founder.public: 1}), mesh.founder.public))
    assert m.apply(replace(u, sig=b"")) is APPLIED


def test_duplicates_and_superseded_updates(trio_of_replicas):
    r0, r1, _ = trio_of_replicas
    first = r0.edit("p", b"1").update
    second = r0.edit("p", b"2").update
    assert r1.receive([second, first, second]) == [APPLIED, DUPLICATE, DUPLICATE]
    assert r1.map.versions("p") == (second.payload,)
    assert first not in list(r1.map.updates())  # only the newest per (origin, key)
    assert r0.receive([first]) == [DUPLICATE]


def test_a_stale_version_from_another_origin_is_held_not_applied(trio_of_replicas):
    r0, r1, r2 = trio_of_replicas
    v1 = r0.edit("p", b"1").update
    r1.receive([v1])
    v2 = r1.edit("p", b"2").update  # dominates v1
    before = state_of(r2.map)
    assert r2.receive([v2]) == [APPLIED]
    assert r2.receive([v1]) == [HELD]  # valid and new to r2, but dominated
    assert r2.map.versions("p") == (v2.payload,)
    assert r2.map.digest()[r0.public] == v1.seq  # held for relaying
    assert v1 in r2.map.since({r0.public: 0})
    assert state_of(r2.map) != before


def test_equal_vectors_with_different_content_converge(trio_of_replicas):
    """Only a lying (or broken) origin makes two contents with one vector; the module promises
    that even then every node keeps the same one. O signs seq 1 = (p, {O:1}, "b", mtime 2) and
    seq 2 = (p, {O:1}, "a", mtime 1). r1 gets both, r2 only seq 2 (seq 1 is superseded in
    every log, so nobody will ever send it to r2)."""
    o, r1, r2 = trio_of_replicas
    vv = VersionVector({o.public: 1})
    s1 = o.signer.sign(make_record("p", vv, o.public, content=b"b", mtime_ns=2))
    s2 = o.signer.sign(make_record("p", vv, o.public, content=b"a", mtime_ns=1))
    r1.receive([s1, s2])
    assert r2.receive([s2, s1]) == [APPLIED, DUPLICATE]
    assert r1.map.digest() == r2.map.digest()
    assert held_updates(r1.map) == held_updates(r2.map)
    assert r1.map.files == r2.map.files, "same updates held, different state"


def test_an_origin_whose_newer_update_has_an_older_vector_still_converges(trio_of_replicas):
    """A node restored from an old backup reuses a smaller vector for its next update of a path:
    seq 1 = (p, {O:2}), seq 2 = (p, {O:1}). Holding the same log, nodes must hold the same
    state (the state is a fold of the updates held)."""
    o, r1, r2 = trio_of_replicas
    s1 = o.signer.sign(make_record("p", VersionVector({o.public: 2}), o.public, content=b"new"))
    s2 = o.signer.sign(make_record("p", VersionVector({o.public: 1}), o.public, content=b"old"))
    r1.receive([s1, s2])
    r2.receive([s2, s1])
    assert held_updates(r1.map) == held_updates(r2.map)
    assert r1.map.files == r2.map.files, "same updates held, different state"


# -- conflicts in the map -----------------------------------------------------------------------

def test_concurrent_edits_are_both_kept_and_every_node_picks_one_winner(trio_of_replicas):
    reps = trio_of_replicas
    r0, r1, r2 = reps
    base = r0.edit("p", b"base", mtime_ns=1 * SEC)
    full_sync(reps)
    e1 = r1.edit("p", b"one", mtime_ns=10 * SEC)
    e2 = r2.edit("p", b"two", mtime_ns=20 * SEC)
    full_sync(reps)
    assert_converged(reps)
    assert set(r0.map.versions("p")) == {e1.record, e2.record}
    assert r0.map.winner("p") == e2.record  # later mtime
    assert losers(r0.map.versions("p")) == [e1.record]
    copy = conflict_copy(e1.record)
    assert copy.path.startswith("p.sync-conflict-19700101-000010-")
    assert_no_write_lost([base, e1, e2], r0.map)


def test_an_edit_concurrent_with_a_delete_wins_in_any_order(trio_of_replicas):
    reps = trio_of_replicas
    r0, r1, r2 = reps
    r0.edit("p", b"v1", mtime_ns=1 * SEC)
    full_sync(reps)
    gone = r0.delete("p", mtime_ns=99 * SEC)  # later mtime than the edit
    edit = r1.edit("p", b"v2", mtime_ns=2 * SEC)
    assert gone.record.vv.compare(edit.record.vv) is Order.CONCURRENT
    r2.receive([gone.update, edit.update])
    r0.receive([edit.update])
    r1.receive([gone.update])
    for r in reps:
        assert r.map.winner("p") == edit.record
        assert set(r.map.versions("p")) == {gone.record, edit.record}
        assert losers(r.map.versions("p")) == []  # a deletion leaves no conflict copy
    full_sync(reps)
    assert_converged(reps)


def test_a_delete_that_saw_the_edit_wins(trio_of_replicas):
    reps = trio_of_replicas
    r0, r1, _ = reps
    r0.edit("p", b"v1", mtime_ns=50 * SEC)
    full_sync(reps)
    gone = r1.delete("p", mtime_ns=1 * SEC)  # even with an older clock
    full_sync(reps)
    for r in reps:
        assert r.map.versions("p") == (gone.record,)
        assert r.map.winner("p").deleted


def test_an_offline_node_cannot_resurrect_a_deleted_file(mesh):
    reps = make_replicas(mesh, 4)
    r0, r1, r2, r3 = reps
    r2.edit("p", b"v1", mtime_ns=1 * SEC)
    full_sync(reps[:3])  # r3 is offline from the start
    stale = r2.map.versions("p")[0]
    gone = r1.delete("p", mtime_ns=2 * SEC)
    full_sync(reps[:2])  # r2 is offline now, still holding its version
    assert r2.map.versions("p") == (stale,)
    # r2 comes back and offers everything it has; r3 meets the stale version after the tombstone
    r3.pull(r1)
    assert r3.map.winner("p") == gone.record
    stale_update = next(u for u in r2.map.updates() if u.key == "f:p")
    assert r3.receive([stale_update]) in ([DUPLICATE], [HELD])
    r1.pull(r2)
    r0.pull(r2)
    full_sync(reps)
    assert_converged(reps)
    for r in reps:
        assert r.map.versions("p") == (gone.record,)
    # a new edit after seeing the deletion does bring the file back: that is a real write
    back = r2.edit("p", b"v3", mtime_ns=3 * SEC)
    full_sync(reps)
    assert all(r.map.winner("p") == back.record for r in reps)


def test_state_grows_with_paths_times_writers_not_history(mesh):
    reps = make_replicas(mesh, 3)
    paths = ["a", "b", "c/d"]
    for rnd in range(15):
        for i, r in enumerate(reps):
            for p in paths:
                if (rnd + i) % 3:
                    r.edit(p, b"%d-%d" % (rnd, i))
                elif rnd % 2:
                    r.delete(p)
            full_sync(reps)
    grants = len(mesh.grants)
    for r in reps:
        assert len(file_updates(r.map)) <= len(paths) * len(reps)
        assert len(r.map) == len(file_updates(r.map)) + grants
        assert {(u.origin, u.key) for u in file_updates(r.map)} == {
            (x.public, "f:" + p) for x in reps for p in paths}
    assert_converged(reps)


def test_apply_all_takes_a_set_in_any_order(mesh):
    """A reload from the store: updates come in any order, grants possibly last."""
    reps = make_replicas(mesh, 3)
    for i, r in enumerate(reps):
        r.edit(f"f{i}")
        r.edit("shared", b"%d" % i)
    full_sync(reps)
    everything = list(reps[0].map.updates())
    fresh = mesh.new_map()
    stored = fresh.apply_all(reversed(everything))
    assert {(u.origin, u.seq) for u in stored} == {(u.origin, u.seq) for u in everything}
    assert fresh.files == reps[0].map.files and fresh.digest() == reps[0].map.digest()
    assert fresh.apply_all(everything) == []  # all duplicates now


def test_drain_dropped_reports_superseded_log_entries(trio_of_replicas):
    r0 = trio_of_replicas[0]
    r0.map.drain_dropped()
    first = r0.edit("p", b"1").update
    second = r0.edit("p", b"2").update
    assert r0.map.drain_dropped() == [(r0.public, first.seq)]
    assert r0.map.drain_dropped() == []
    assert second in list(r0.map.updates())


# -- live globs ---------------------------------------------------------------------------------

def test_live_globs_last_writer_wins_in_any_order(trio_of_replicas):
    r0, r1, r2 = trio_of_replicas
    on = r0.signer.sign(LiveGlob("*.md", True, 5))
    off = r1.signer.sign(LiveGlob("*.md", False, 7))
    other = r2.signer.sign(LiveGlob("notes/*", True, 6))
    r0.receive([on, off, other])
    r1.receive([other, off, on])
    assert r0.map.live_globs() == r1.map.live_globs() == ["notes/*"]
    assert r0.map.live == r1.map.live
    assert r0.map.clock >= 7


# -- since(digest) ------------------------------------------------------------------------------

def _busy_map(data) -> MetaMap:
    mesh = Mesh()
    reps = make_replicas(mesh, 3, cached=True)
    for _ in range(data.draw(st.integers(0, 12), label="edits")):
        r = reps[data.draw(st.integers(0, 2))]
        path = data.draw(st.sampled_from("abcd"))
        r.edit(path, data.draw(st.binary(max_size=40)) or b"-")
    hub = reps[0]
    for r in reps[1:]:
        hub.pull(r)
    return hub.map


@medium
@given(st.data())
def test_since_lists_exactly_what_the_digest_lacks_breadth_first(data):
    m = _busy_map(data)
    held = list(m.updates())
    origins = sorted({u.origin for u in held})
    digest = {o: data.draw(st.integers(0, m.seq_of(o) + 1)) for o in origins
              if data.draw(st.booleans())}
    start = data.draw(st.integers(0, 7))
    out = m.since(digest, start=start)
    expected = {(u.origin, u.seq) for u in held if u.seq > digest.get(u.origin, 0)}
    assert len(out) == len(expected)  # no update twice
    assert {(u.origin, u.seq) for u in out} == expected
    # per origin, in sequence order; origins interleaved round by round, rotated by `start`
    queues = {o: [u for u in held if u.origin == o and u.seq > digest.get(o, 0)] for o in origins}
    todo = [o for o in origins if queues[o]]
    if todo:
        k = start % len(todo)
        todo = todo[k:] + todo[:k]
    want = []
    for rnd in range(max((len(q) for q in queues.values()), default=0)):
        want += [queues[o][rnd] for o in todo if rnd < len(queues[o])]
    assert out == want


@medium
@given(st.data())
def test_since_respects_the_budget_but_always_makes_progress(data):
    m = _busy_map(data)
    start = data.draw(st.integers(0, 3))
    full = m.since({}, start=start)
    budget = data.draw(st.integers(1, 2000))
    part = m.since({}, budget=budget, start=start)
    assert part == full[:len(part)]
    if full:
        assert part, "no progress"
    if len(part) > 1:
        assert sum(u.size for u in part) <= budget
    if len(part) < len(full):
        assert sum(u.size for u in part) + full[len(part)].size > budget


def test_since_with_a_digest_ahead_of_us_sends_nothing(trio_of_replicas):
    r0 = trio_of_replicas[0]
    r0.edit("p")
    assert r0.map.since({o: s + 5 for o, s in r0.map.digest().items()}) == []
    assert r0.map.since(r0.map.digest()) == []


# -- CRDT laws over random histories ------------------------------------------------------------

PATHS = ["a", "b", "dir/c"]


@crdt
@given(st.data())
def test_crdt_laws_over_random_histories(data):
    """2-5 replicas edit and delete a few paths (vectors by `next_vv`, as the node makes them)
    while subsets of all updates reach random replicas in random orders, with duplicates.
    After every replica received every update: one digest, one state, nothing lost."""
    n = data.draw(st.integers(2, 5), label="replicas")
    mesh = Mesh()
    reps = make_replicas(mesh, n, cached=True)
    pool = list(mesh.grants)
    steps = data.draw(st.integers(1, 30), label="steps")
    for _ in range(steps):
        kind = data.draw(st.sampled_from(["edit", "edit", "delete", "deliver", "deliver"]))
        r = reps[data.draw(st.integers(0, n - 1))]
        if kind == "edit":
            made = r.edit(data.draw(st.sampled_from(PATHS)),
                          data.draw(st.sampled_from([b"x", b"y", b"z"])),
                          mtime_ns=data.draw(st.integers(0, 3)) * SEC)
            pool.append(made.update)
        elif kind == "delete":
            path = data.draw(st.sampled_from(PATHS))
            current = r.map.winner(path)
            if current is not None and not current.deleted:
                pool.append(r.delete(path, mtime_ns=data.draw(st.integers(0, 3)) * SEC).update)
        else:
            picks = data.draw(st.lists(st.integers(0, len(pool) - 1), max_size=12))
            outcomes = r.receive([pool[i] for i in picks])
            assert set(outcomes) <= {APPLIED, HELD, DUPLICATE}, outcomes
    # everyone gets everything: shuffled, plus a shuffled second helping of duplicates
    seed = data.draw(st.integers(0, 2**32), label="final seed")
    rnd = random.Random(seed)
    late = mesh.new_map(cached=True)  # a node that saw nothing until now
    reversed_map = mesh.new_map(cached=True)
    for m in [r.map for r in reps] + [late, reversed_map]:
        order = list(pool)
        if m is reversed_map:
            order.reverse()
        else:
            rnd.shuffle(order)
            order += rnd.sample(pool, k=rnd.randint(0, len(pool)))
        # a fresh node meets members' updates before their grants: NOT_YET, offered again later
        for _ in range(3):
            outcomes = [m.apply(u) for u in order]
            assert set(outcomes) <= {APPLIED, HELD, DUPLICATE, Outcome.NOT_YET}, outcomes
            if Outcome.NOT_YET not in outcomes:
                break

    created = [c for r in reps for c in r.created]
    maps = [r.map for r in reps] + [late, reversed_map]
    for m in maps[1:]:
        assert m.digest() == maps[0].digest()
        assert m.files == maps[0].files
        assert held_updates(m) == held_updates(maps[0])
        assert m.membership.members == maps[0].membership.members
    for m in maps:
        assert_no_write_lost(created, m)
        assert len(m) == len({(u.origin, u.key) for u in pool})
        for path, versions in m.files.items():
            # the state at a path is an antichain: the concurrent set
            for a in versions:
                for b in versions:
                    assert a is b or a.vv.compare(b.vv) is Order.CONCURRENT
            assert winner(versions) == m.winner(path)


@heavy
@given(st.data())
def test_a_new_local_version_supersedes_what_its_disk_holds_and_never_an_uncopied_loser(data):
    """The node's own rule (mirror.disk_version + mirror.fresh): an edit supersedes the winner
    its disk holds and what that settles, and our own earlier versions (the log keeps one
    update per origin and path); another node's concurrent loser whose conflict copy nobody
    made yet stays in the map, so the edit cannot erase it."""
    mesh = Mesh()
    reps = make_replicas(mesh, 3, cached=True)
    for _ in range(data.draw(st.integers(1, 15))):
        r = reps[data.draw(st.integers(0, 2))]
        if data.draw(st.booleans()):
            path = data.draw(st.sampled_from(PATHS))
            held = r.map.versions(path)
            on_disk = mirror.disk_version(r.map, path)
            settled = [v for v in held if on_disk.compare(v.vv) in (Order.GREATER, Order.EQUAL)
                       or v.origin == r.public]  # our own: one update per origin and path
            vv = next_vv(r.map, path, r.public)
            made = r.edit(path)
            assert made.record.vv == vv
            assert all(made.record.vv.compare(v.vv) is Order.GREATER for v in settled)
            assert set(r.map.versions(path)) == {made.record} | (set(held) - set(settled))
        else:
            r.pull(reps[data.draw(st.integers(0, 2))])
