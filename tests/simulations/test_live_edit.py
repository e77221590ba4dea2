"""The live_edit scenario (simulations/scenarios/live_edit.py): live notes edited on every node
at once, with multi-byte characters, offline nodes and a split mesh; one text everywhere, every
disk equal to it, no conflict copy, no word lost, no seed doubled."""

from __future__ import annotations

import pytest

from simulations import run

LIVE_CHECKS = ("live_documents_identical", "live_disk_equals_document", "live_no_conflict_copy",
               "live_no_edit_lost", "live_seed_not_doubled")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_live_edit_converges_to_one_text(seed: int) -> None:
    report = run("live_edit", seed=seed)
    assert report["converged"], report["invariants"]
    assert all(report["invariants"][name] for name in LIVE_CHECKS)


def test_live_edit_replays_exactly() -> None:
    assert run("live_edit", seed=5)["trace_hash"] == run("live_edit", seed=5)["trace_hash"]
