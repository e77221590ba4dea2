"""`MetaMap.clone`: equal to its original, independent of it, and cheap (logs shared until one
side writes). The simulator boots thousands of nodes from one loaded map this way."""

from __future__ import annotations

from gossip_backer.core.metamap import Outcome
from replicas import Mesh, make_replicas


def test_a_clone_copies_every_container_of_state() -> None:
    """Every mutable field of a map is either copied by `clone` or shared on purpose (the logs,
    copied on write; the member table, replaced whole): a new field must be named here."""
    mesh = Mesh()
    (a,) = make_replicas(mesh, 1)
    clone = a.map.clone()
    shared_on_purpose = {"founder", "_verify", "membership", "clock"}
    for name, value in vars(a.map).items():
        if isinstance(value, (dict, list, set)) and name not in shared_on_purpose:
            assert getattr(clone, name) is not value, name
    assert set(vars(a.map)) == set(vars(clone))
    assert set(vars(a.map)) == {"founder", "_verify", "_logs", "_newest", "_shared", "_max",
                                "files", "live", "shares", "share_counts", "membership",
                                "clock", "_dropped", "_live_cover", "_live_keys", "_batching",
                                "_membership_stale"}


def test_a_clone_is_equal_then_independent_both_ways() -> None:
    mesh = Mesh()
    a, b = make_replicas(mesh, 2)
    a.edit("x", b"one")
    b.receive(list(a.map.updates()))
    clone = a.map.clone()
    assert clone.digest() == a.map.digest() and clone.files == a.map.files
    assert list(clone.updates()) == list(a.map.updates())
    # a write on the original's side does not reach the clone, nor the reverse
    a.edit("x", b"two")
    assert clone.winner("x").hash != a.map.winner("x").hash
    assert len(list(clone.updates())) == len(list(a.map.updates()))  # the older update went
    b.edit("y", b"from b")
    news = [u for u in b.map.updates() if getattr(u.payload, "path", None) == "y"]
    assert [clone.apply(u) for u in news] == [Outcome.APPLIED]
    assert a.map.winner("y") is None and clone.winner("y").hash == b.map.winner("y").hash
    # the clone's own write copied the shared log; the original's log is intact
    assert a.map.seq_of(b.public) == 0 < clone.seq_of(b.public)
