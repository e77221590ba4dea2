"""Every decoder a peer can reach, fuzzed (tests/fault/fuzz.py): only the project's own errors
may come out. 10^4 inputs here; BACKER_FUZZ_INPUTS=1000000 for the soak campaign."""

from __future__ import annotations

import os

import pytest

from gossip_backer.crypto.identity import update_from_wire
from gossip_backer.errors import RemoteError
from gossip_backer.wire.codec import pack
from tests.fault import fuzz

INPUTS = int(os.environ.get("BACKER_FUZZ_INPUTS", "10000"))


def test_fuzz_every_network_decoder():
    report = fuzz.run(INPUTS, seed=int(os.environ.get("BACKER_FUZZ_SEED", "0")))
    assert report.total == INPUTS and set(report.inputs) == set(fuzz.targets())
    assert not report.unclean, "\n".join(f"{n}: {e}\n{d}\n{tb}" for n, e, d, tb in report.unclean[:3])


def test_the_fuzzer_finds_an_unclean_exception():
    """The harness itself: a decoder with a TypeError in it is caught and reported."""
    def broken(data: bytes) -> None:
        {}[[data]]  # unhashable: TypeError

    fuzz_targets = fuzz.targets
    try:
        fuzz.targets = lambda: {"broken": fuzz.Target(broken, [b"x"], False, 1)}
        report = fuzz.run(10)
    finally:
        fuzz.targets = fuzz_targets
    assert len(report.unclean) == 10 and "TypeError" in report.unclean[0][1]


@pytest.mark.parametrize("body", [pack([["a", "list"], []]), pack([{"k": 1}, []]), pack([None, []])])
def test_a_delta_payload_with_an_unhashable_tag_is_a_protocol_error(body):
    """Issue 11: this was a TypeError out of payload_from_plain (its caller caught ValueError)."""
    with pytest.raises(RemoteError):
        update_from_wire((b"\x01" * 32, 1, body, b"\x02" * 64))


def test_the_campaign_prints_its_table(capsys):
    from tests.fault.campaign import main

    assert main(["--trials", "0", "--fuzz", "300"]) == 0
    out = capsys.readouterr().out
    for column in ("trials", "trees identical", "files damaged", "temp files left", "crashes",
                   "fuzz inputs", "unclean exceptions"):
        assert column in out
    assert "PASS" in out and "300" in out
