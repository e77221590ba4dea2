"""The sign of life: a mark from another boot of the machine means the previous run ended with a
power loss; a killed process (same boot) or a clean stop (no mark) does not."""

from __future__ import annotations

import pytest

from gossip_backer.disk import alive


def test_a_mark_of_this_boot_is_a_killed_process_not_a_power_loss(tmp_path) -> None:
    alive.beat(tmp_path, now=1234.5)
    assert (tmp_path / alive.NAME).stat().st_mode & 0o777 == 0o600
    assert alive.power_lost_at(tmp_path) is None


@pytest.mark.skipif(not alive.boot_id(), reason="no /proc/sys/kernel/random/boot_id here")
def test_a_mark_of_another_boot_gives_the_last_sign_of_life(tmp_path) -> None:
    (tmp_path / alive.NAME).write_text("a-boot-before-the-power-cut 1234.500")
    assert alive.power_lost_at(tmp_path) == 1234.5


def test_a_clean_stop_leaves_no_mark_and_garbage_is_no_power_loss(tmp_path) -> None:
    alive.beat(tmp_path)
    alive.clear(tmp_path)
    alive.clear(tmp_path)  # twice is fine
    assert alive.power_lost_at(tmp_path) is None
    (tmp_path / alive.NAME).write_text("garbage")
    assert alive.power_lost_at(tmp_path) is None
