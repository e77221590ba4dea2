"""kill -9 at random moments of a sync (tests/fault/killnine.py): 5 trials here,
BACKER_KILL_TRIALS=100 in the soak campaign."""

from __future__ import annotations

import os

import pytest

from tests.fault.killnine import campaign

pytestmark = pytest.mark.e2e
TRIALS = int(os.environ.get("BACKER_KILL_TRIALS", "5"))


def test_kill9_of_sender_or_receiver_leaves_identical_trees(tmp_path):
    report = campaign(tmp_path, TRIALS, seed=int(os.environ.get("BACKER_KILL_SEED", "0")))
    assert report.failures == []
    assert (report.trials, report.identical) == (TRIALS, TRIALS)
    assert report.damaged == 0 and report.temp_left == 0 and report.crashes == 0
