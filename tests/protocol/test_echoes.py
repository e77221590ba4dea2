"""OwnWrites: the stats of files we just placed, handed out once, for a short while."""

from __future__ import annotations

from gossip_backer.protocol import echoes
from gossip_backer.protocol.echoes import OwnWrites, Placed


def test_a_placed_stat_is_handed_out_once() -> None:
    own = OwnWrites()
    own.placed("a", 3, 10, 7, 0o644, 100.0)
    assert own.take("a", 100.1) == Placed(3, 10, 7, 0o644, 100.0)
    assert own.take("a", 100.2) is None
    assert own.take("never", 100.2) is None


def test_placed_again_keeps_the_newest_stat_and_old_ones_go() -> None:
    own = OwnWrites(window=5.0)
    own.placed("a", 1, 1, 1, 0o644, 100.0)
    own.placed("b", 2, 2, 2, 0o644, 101.0)
    own.placed("a", 3, 3, 3, 0o600, 102.0)  # a newer version at the same path
    own.placed("c", 4, 4, 4, 0o644, 106.5)  # b (placed at 101) is older than 5 s now
    assert len(own) == 2
    assert own.take("b", 106.5) is None
    assert own.take("a", 106.5) == Placed(3, 3, 3, 0o600, 102.0)
    assert own.take("c", 120.0) is None  # its event came too late: scanned as any change


def test_a_clock_stepping_back_does_not_keep_them_forever(monkeypatch) -> None:
    monkeypatch.setattr(echoes, "MOST", 3)
    own = OwnWrites()
    for i in range(10):
        own.placed(f"f{i}", i, i, i, 0o644, 1000.0 - i)
    assert len(own) == 3 and own.take("f9", 990.0) is not None


def test_the_permission_bits_are_kept_as_the_puller_sets_them() -> None:
    """disk.apply sets a placed file's mode & 0o777: a version's setuid bit is not on disk, and
    must not make our own event look like a user's chmod."""
    own = OwnWrites()
    own.placed("s", 1, 1, 1, 0o4755, 100.0)
    assert own.take("s", 100.0).mode == 0o755
