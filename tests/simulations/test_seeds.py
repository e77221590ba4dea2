"""Replay simulations/seeds.txt: every seed that ever broke an invariant must pass now, except the
ones marked "open:" (known bugs not fixed yet), which are expected failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulations import command_line, run

SEEDS = Path(__file__).resolve().parents[2] / "simulations" / "seeds.txt"


def _value(text: str):
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def entries() -> list:
    out = []
    for raw in SEEDS.read_text().splitlines():
        line, _, comment = raw.partition("#")
        if not line.strip():
            continue
        scenario, nodes, seed, topology, *rest = line.split()
        options = {k: _value(v) for k, v in (kv.split("=", 1) for kv in rest)}
        marks = [pytest.mark.xfail(reason=comment.strip(), strict=True)] \
            if comment.strip().startswith("open:") else []
        out.append(pytest.param(scenario, int(nodes), int(seed), topology, options,
                                id=f"{scenario}-{nodes}-{seed}", marks=marks))
    return out


@pytest.mark.parametrize("scenario,nodes,seed,topology,options", entries())
def test_replay(scenario: str, nodes: int, seed: int, topology: str, options: dict) -> None:
    max_settle = options.pop("max_settle", None)
    report = run(scenario, nodes=nodes, seed=seed, topology=topology, options=options)
    failed = [k for k, v in report["invariants"].items() if not v]
    assert report["converged"], f"{command_line(report)}: {failed or 'did not settle'}"
    if max_settle is not None:
        assert report["settle_s"] is not None and report["settle_s"] <= max_settle
