"""store.repo: every named operation round-trips through a real SQLite file."""

from __future__ import annotations

import threading

import pytest

from gossip_backer.core.metamap import MetaMap, Outcome
from gossip_backer.core.record import Block, FileRecord, Grant, LiveGlob, MemberInfo, Revoke
from gossip_backer.core.vv import VersionVector
from gossip_backer.crypto.identity import Identity, Verifier, make_update
from gossip_backer.errors import LocalError, StoreError
from gossip_backer.store.db import open_db
from gossip_backer.store.repo import IndexEntry, Repo

MESH = "mesh-test"
H1, H2 = b"\x01" * 32, b"\x02" * 32


@pytest.fixture
def repo(tmp_path):
    r = Repo.open(tmp_path / "store.db")
    yield r
    r.close()


def record(ident: Identity, path: str, counter: int, **kw) -> FileRecord:
    vv = VersionVector({ident.public: counter})
    return FileRecord(path=path, kind="file", vv=vv, origin=ident.public, size=5,
                      mtime_ns=counter * 1000, hash=H1, block_size=128 * 1024,
                      blocks=(Block(H1, 7),), **kw)


def apply_batch(m: MetaMap, batch: list) -> tuple[list, list]:
    """Apply a batch as the node would; return (updates to save, (origin, seq) to remove)."""
    before = {(u.origin, u.seq) for u in m.updates()}
    for u in batch:
        assert m.apply(u) in (Outcome.APPLIED, Outcome.HELD), u
    after = {(u.origin, u.seq): u for u in m.updates()}
    return [u for k, u in after.items() if k not in before], sorted(before - after.keys())


def replay(founder: bytes, updates: list) -> MetaMap:
    """Fold stored updates into a fresh map, retrying those whose signer is not known yet."""
    m = MetaMap(founder, Verifier(MESH))
    pending = list(updates)
    while pending:
        later = [u for u in pending if m.apply(u) is Outcome.NOT_YET]
        assert len(later) < len(pending), "no progress"
        pending = later
    return m


# -- update log ----------------------------------------------------------------------------
def test_saved_batches_reload_into_the_same_map(tmp_path):
    f, a, c = Identity.generate(), Identity.generate(), Identity.generate()
    m = MetaMap(f.public, Verifier(MESH))
    batches = [
        [make_update(f, MESH, 1, Grant(f.public, "founder", False, 1)),
         make_update(f, MESH, 2, Grant(a.public, "a", False, 2)),
         make_update(f, MESH, 3, Grant(c.public, "c", False, 3))]
        + [make_update(a, MESH, i, record(a, f"docs/a{i}.txt", i)) for i in range(1, 6)],
        [make_update(a, MESH, 6, record(a, "docs/a1.txt", 6)),  # supersedes a's seq 1
         make_update(a, MESH, 7, MemberInfo(a.public, "laptop", ("10.0.0.1:7440",), 4)),
         make_update(a, MESH, 8, LiveGlob("*.md", True, 5))]
        + [make_update(c, MESH, i, record(c, f"c/{i}", i)) for i in range(1, 5)]
        + [make_update(f, MESH, 4, record(f, "docs/a2.txt", 1))],  # concurrent with a's
        [make_update(f, MESH, 5, Revoke(c.public, 2, 6))],  # voids c's seq 3 and 4
    ]
    removed_all = []
    with Repo.open(tmp_path / "s.db") as repo:
        for batch in batches:
            save, removed = apply_batch(m, batch)
            repo.save_updates(save, removed)
            removed_all += removed
    # a's seq 1 was superseded; c's seq 3 and 4 are void but kept (metamap.py), so not removed
    assert (a.public, 1) in removed_all and not {(c.public, 3), (c.public, 4)} & set(removed_all)

    with Repo.open(tmp_path / "s.db") as repo:
        loaded = repo.load_updates()
    wire = lambda us: [(u.origin, u.seq, u.key, u.body, u.sig) for u in us]  # noqa: E731
    assert wire(loaded) == wire(m.updates())  # same order, exact bytes
    fresh = replay(f.public, loaded)
    assert fresh.digest() == m.digest()
    assert fresh.files == m.files and len(fresh.files["docs/a2.txt"]) == 2
    assert fresh.live == m.live
    assert fresh.membership.members == m.membership.members


def test_payloads_decode_to_equal_values(repo):
    ident = Identity.generate()
    updates = [make_update(ident, MESH, i, record(ident, f"p{i}", i, mode=0o755)) for i in (1, 2)]
    repo.save_updates(updates, [])
    assert [u.payload for u in repo.load_updates()] == [u.payload for u in updates]


def test_removed_entries_leave_in_the_same_transaction(repo):
    ident = Identity.generate()
    repo.save_updates([make_update(ident, MESH, i, record(ident, f"p{i}", i)) for i in (1, 2, 3)], [])
    repo.save_updates([make_update(ident, MESH, 4, record(ident, "p4", 4))], [(ident.public, 2)])
    assert [u.seq for u in repo.load_updates()] == [1, 3, 4]


def test_newer_update_of_a_key_replaces_the_older_and_never_the_reverse(repo):
    ident = Identity.generate()
    old, new = (make_update(ident, MESH, s, record(ident, "same", s)) for s in (1, 2))
    repo.save_updates([old], [])
    repo.save_updates([new], [])  # the caller forgot to list (origin, 1) as removed
    repo.save_updates([old], [])  # a late duplicate of the older one
    repo.save_updates([new], [])  # a re-save
    assert [(u.seq, u.body) for u in repo.load_updates()] == [(2, new.body)]


def test_a_failing_batch_leaves_nothing_behind(repo):
    ident = Identity.generate()
    good = [make_update(ident, MESH, i, record(ident, f"p{i}", i)) for i in (1, 2)]
    bad = make_update(ident, MESH, 3, record(ident, "p3", 3))
    bad = type(bad)(b"short", 3, bad.payload, bad.body, bad.sig)  # origin fails the CHECK
    with pytest.raises(LocalError):
        repo.save_updates(good + [bad], [])
    assert repo.count_updates() == 0


def test_a_damaged_body_is_a_store_error(repo):
    repo.db.run("INSERT INTO updates VALUES (?, 1, 'f:x', x'c1', x'00')", (b"\0" * 32,))
    with pytest.raises(StoreError, match="undecodable"):
        repo.load_updates()


# -- config --------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["mesh-abc", b"\x00secret\xff", 7440, -1, True, None,
                                   ["a", b"b", 3], 2**63 - 1])
def test_config_round_trip(tmp_path, value):
    with Repo.open(tmp_path / "s.db") as repo:
        repo.set_config("k", value)
    with Repo.open(tmp_path / "s.db") as repo:
        assert repo.get_config("k") == value


def test_config_overwrite_default_and_delete(repo):
    assert repo.get_config("name") is None
    assert repo.get_config("name", "unnamed") == "unnamed"
    repo.set_config("name", "a")
    repo.set_config("name", "b")
    assert repo.get_config("name") == "b"
    assert repo.delete_config("name") is True
    assert repo.delete_config("name") is False
    assert repo.get_config("name") is None


# -- local file index ----------------------------------------------------------------------
def entry(path: str, **kw) -> IndexEntry:
    base = dict(path=path, size=10, mtime_ns=123456789012345678, inode=42, mode=0o100644,
                kind="file", hash=H1, block_size=4096, blocks=(Block(H1, 1), Block(H2, 2**32 - 1)))
    return IndexEntry(**{**base, **kw})


def test_index_round_trip(tmp_path):
    entries = [entry("a.txt"), entry("d", kind="dir", size=0, hash=None, block_size=0, blocks=()),
               entry("l", kind="symlink", hash=None, blocks=(), target="a.txt")]
    with Repo.open(tmp_path / "s.db") as repo:
        repo.index_put(entries)
    with Repo.open(tmp_path / "s.db") as repo:
        assert repo.index_all() == sorted(entries, key=lambda e: e.path)
        assert repo.index_get("l") == entries[2]
        assert repo.index_get("missing") is None


def test_index_put_replaces_and_delete_removes(repo):
    repo.index_put([entry("a"), entry("b"), entry("c")])
    repo.index_put([entry("a", size=99, blocks=())])
    repo.index_delete(["b", "c", "not-there"])
    assert repo.index_all() == [entry("a", size=99, blocks=())]


def test_index_rejects_an_unknown_kind(repo):
    with pytest.raises(LocalError):
        repo.index_put([entry("ok"), entry("x", kind="fifo")])
    assert repo.index_all() == []  # the whole batch rolled back


# -- invites -------------------------------------------------------------------------------
def test_invite_is_claimed_once(repo):
    repo.add_invite(b"inv1", H1, True, expires=2000.0, created=1000.0)
    assert repo.invite_usable(b"inv1", now=1500.0) is True
    assert repo.invite_usable(b"inv1", now=1500.0) is True  # looking does not use it
    got = repo.claim_invite(b"inv1", now=1500.0)
    assert (got.invite_id, got.secret_hash, got.read_only, got.expires, got.created, got.used_at) == (
        b"inv1", H1, True, 2000.0, 1000.0, 1500.0)
    assert repo.claim_invite(b"inv1", now=1501.0) is None
    assert repo.invite_usable(b"inv1", now=1501.0) is False


def test_expired_or_unknown_invite_is_not_claimed(repo):
    repo.add_invite(b"inv1", H1, False, expires=2000.0, created=1000.0)
    assert repo.claim_invite(b"inv1", now=2000.0) is None
    assert repo.claim_invite(b"nope", now=1500.0) is None
    assert not repo.invite_usable(b"inv1", now=2000.0) and not repo.invite_usable(b"nope", 1.0)
    assert repo.claim_invite(b"inv1", now=1999.0).read_only is False  # unused by the failed try


def test_invite_rows_say_each_invites_role_expiry_and_use(repo):
    """What the running node holds in memory (core.invite.InviteTable)."""
    repo.add_invite(b"inv1", H1, True, expires=2000.0, created=1000.0)
    repo.add_invite(b"inv2", H1, False, expires=3000.0, created=1000.0)
    repo.claim_invite(b"inv2", now=1500.0)
    assert sorted(repo.invite_rows()) == [(b"inv1", True, 2000.0, None),
                                          (b"inv2", False, 3000.0, 1500.0)]


def test_invite_single_use_under_concurrency(tmp_path):
    with Repo.open(tmp_path / "s.db") as repo:
        repo.add_invite(b"inv", H1, False, expires=2000.0, created=1000.0)
    repos = [Repo.open(tmp_path / "s.db") for _ in range(8)]  # one connection per claimer
    start, results = threading.Barrier(len(repos)), []

    def claim(r: Repo) -> None:
        start.wait()
        results.append(r.claim_invite(b"inv", now=1500.0))

    threads = [threading.Thread(target=claim, args=(r,)) for r in repos]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in repos:
        r.close()
    assert len(results) == 8 and sum(r is not None for r in results) == 1


# -- shares --------------------------------------------------------------------------------
def test_shares_round_trip_and_revoke(tmp_path):
    with Repo.open(tmp_path / "s.db") as repo:
        repo.add_share("tok-b", "photos", None, created=20.0)
        repo.add_share("tok-a", "docs/report.pdf", expires=99.5, created=10.0)
    with Repo.open(tmp_path / "s.db") as repo:
        assert [(s.token, s.path, s.expires, s.created) for s in repo.list_shares()] == [
            ("tok-a", "docs/report.pdf", 99.5, 10.0), ("tok-b", "photos", None, 20.0)]
        assert repo.get_share("tok-b").path == "photos"
        assert repo.revoke_share("tok-b") is True
        assert repo.revoke_share("tok-b") is False
        assert repo.get_share("tok-b") is None
        assert [s.token for s in repo.list_shares()] == ["tok-a"]


# -- revisions -----------------------------------------------------------------------------
def test_revisions_round_trip(repo):
    node = b"\x07" * 32
    first = repo.add_revision("a.txt", H1, 5, 1_000, node, 50.0)
    second = repo.add_revision("a.txt", H2, 6, 2_000, node, 60.0)
    repo.add_revision("b.txt", H1, 5, 1_000, node, 50.0)
    revs = repo.revisions("a.txt")
    assert [(r.id, r.hash, r.size, r.mtime_ns, r.node, r.archived_at) for r in revs] == [
        (second, H2, 6, 2_000, node, 60.0), (first, H1, 5, 1_000, node, 50.0)]
    assert repo.delete_revision(first) is True
    assert repo.delete_revision(first) is False
    assert [r.id for r in repo.revisions("a.txt")] == [second]
    assert repo.revisions("nothing") == []


def test_repo_shares_one_database(tmp_path):
    db = open_db(tmp_path / "s.db")
    repo = Repo(db)
    with db.transaction():  # a caller may group several repo writes in one transaction
        repo.set_config("a", 1)
        repo.add_share("t", "p", None, 1.0)
    assert repo.get_config("a") == 1 and repo.get_share("t") is not None
    db.close()


def test_names_that_are_not_utf8_are_stored_escaped_and_come_back_exact(tmp_path):
    """SQLite text must be UTF-8: such a path is stored as core.paths.escape writes it."""
    import os

    odd = os.fsdecode(b"dir\xfe/bad\xffname.txt")
    ident = Identity.from_seed(b"\x09" * 32)
    update = make_update(ident, MESH, 1, record(ident, odd, 1))
    with Repo.open(tmp_path / "s.db") as repo:
        repo.save_updates([update])
        repo.index_put([entry(odd), entry("plain.txt")])
        repo.add_revision(odd, H1, 5, 1000, ident.public, 1.0)
    with Repo.open(tmp_path / "s.db") as repo:
        assert [u.payload.path for u in repo.load_updates()] == [odd]
        assert repo.load_updates()[0].body == update.body  # the signed bytes, untouched
        assert {e.path for e in repo.index_all()} == {odd, "plain.txt"}
        assert repo.index_get(odd) == entry(odd)
        assert [r.path for r in repo.revisions(odd)] == [odd] and repo.revision_paths() == [odd]
        assert repo.db.query_one("SELECT path FROM revisions")[0] == "dir\\xfe/bad\\xffname.txt"
        repo.index_delete([odd])
        assert [e.path for e in repo.index_all()] == ["plain.txt"]


# -- holding 100,000 files: one copy of each value ---------------------------------------------
def test_a_body_encoded_otherwise_than_we_would_keeps_its_exact_bytes(tmp_path):
    """A record's body is made again from the record when that gives the signed bytes back;
    a body its origin encoded otherwise (here: wide ints, vector pairs unsorted) is kept whole,
    so relays forward and verify the origin's exact bytes."""
    from gossip_backer.core.record import payload_to_plain
    from gossip_backer.crypto.identity import signed_bytes, update_from_wire, update_to_wire
    from gossip_backer.wire.codec import encode_payload

    a, b = Identity.generate(), Identity.generate()
    rec = record(a, "x.txt", 2)
    rec = FileRecord(**{**{f: getattr(rec, f) for f in rec.__slots__},
                        "vv": VersionVector({a.public: 2, b.public: 1})})
    own = make_update(a, MESH, 1, record(a, "w.txt", 1))  # (another key: both stay stored)
    assert own.kept_body is None and own.body == encode_payload(own.payload) and Verifier(MESH)(own)
    assert own.size == len(own.body) + 64 + 48

    import msgpack
    tag, plain = payload_to_plain(rec)
    plain[2] = list(reversed(plain[2]))  # the vector's pairs, unsorted
    odd = msgpack.Packer(use_bin_type=True, autoreset=True).pack([tag, plain])
    odd = odd.replace(b"\xcd\x01\xa4", b"\xce\x00\x00\x01\xa4")  # mode 0o644 as a uint32
    assert odd != encode_payload(rec)
    sig = a.sign(signed_bytes(MESH, a.public, 2, odd))
    relayed = update_from_wire((a.public, 2, odd, sig))
    assert relayed.kept_body == odd and update_to_wire(relayed)[2] == odd and Verifier(MESH)(relayed)
    assert relayed.payload == rec and relayed.size == len(odd) + 64 + 48

    with Repo.open(tmp_path / "s.db") as repo:
        repo.save_updates([own, relayed])
    with Repo.open(tmp_path / "s.db") as repo:
        loaded = repo.load_updates()
    assert [u.body for u in loaded] == [own.body, odd] and [u.kept_body is None for u in loaded] == [True, False]
    assert loaded == [own, relayed] and all(Verifier(MESH)(u) for u in loaded)


def test_an_index_row_of_a_held_version_shares_its_values(tmp_path):
    a = Identity.generate()
    rec = record(a, "x.txt", 1)
    with Repo.open(tmp_path / "s.db") as repo:
        repo.index_put([entry("x.txt", hash=rec.hash, blocks=rec.blocks), entry("y.txt")])
    with Repo.open(tmp_path / "s.db") as repo:
        x, y = repo.index_all(like={"x.txt": (rec,)})
    assert x.path is rec.path and x.hash is rec.hash and x.blocks == rec.blocks
    assert x.blocks[0].hash is rec.hash  # (a record holds a one-block file's block as its weak sum)
    assert x.mtime_ns is not rec.mtime_ns  # (not equal here: the row's own value stays)
    assert x == entry("x.txt", hash=rec.hash, blocks=rec.blocks) and y == entry("y.txt")


def test_an_index_row_of_exactly_a_held_version_is_loaded_as_it_and_saved_back(tmp_path):
    from gossip_backer.core.indexrow import VersionRow

    a = Identity.generate()
    rec = record(a, "x.txt", 1)
    same = IndexEntry("x.txt", rec.size, rec.mtime_ns, 77, rec.mode, "file", rec.hash, rec.block_size,
                      rec.blocks, None, rec.vv)
    with Repo.open(tmp_path / "s.db") as repo:
        repo.index_put([same, entry("y.txt")])
    with Repo.open(tmp_path / "s.db") as repo:
        x, y = repo.index_all(like={"x.txt": (rec,), "y.txt": (rec,)})
        assert isinstance(x, VersionRow) and x.version is rec and x == same
        assert type(y) is IndexEntry and y == entry("y.txt")
        repo.index_put([x])  # (the index saver writes rows of either form)
        assert repo.index_all() == [same, entry("y.txt")]
