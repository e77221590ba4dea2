"""The live_edit scenario (simulations/scenarios/live_edit.py): live notes edited on every node
at once, with multi-byte characters, offline nodes and a split mesh; one text everywhere, every
disk equal to it, no conflict copy, no word lost, no seed doubled."""

from __future__ import annotations

import io
import re

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


@pytest.mark.parametrize("seed", [1, 4])
def test_a_node_killed_with_a_peers_edit_unwritten_keeps_it_and_its_offline_edit(seed: int) -> None:
    """(seeds where a diff against the document, not the disk base, loses a word)"""
    trace = io.StringIO()
    report = run("live_edit", seed=seed, options={"kills": 2}, trace=trace)
    assert re.search(r" kill \d with unwritten edits of \['", trace.getvalue())
    assert report["converged"], report["invariants"]
    assert all(report["invariants"][name] for name in LIVE_CHECKS)
