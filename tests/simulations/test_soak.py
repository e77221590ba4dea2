"""`make soak`'s code path on a small sample (3 seeds of every scenario at the soak sizes, two
worker processes): the table is complete, and every failing seed is a known open bug in
simulations/seeds.txt (anything else is a new bug: replay it and record it)."""

from __future__ import annotations

from pathlib import Path

from simulations.soak import SOAK_SCENARIOS, SOAK_SIZES, soak, table

SEEDS = Path(__file__).resolve().parents[2] / "simulations" / "seeds.txt"


def _open_seeds() -> set[tuple[str, int, int, tuple]]:
    out = set()
    for raw in SEEDS.read_text().splitlines():
        line, _, comment = raw.partition("#")
        if line.strip() and comment.strip().startswith("open:"):
            scenario, nodes, seed, _topology, *rest = line.split()
            out.add((scenario, int(nodes), int(seed), tuple(sorted(rest))))
    return out


def _key(scenario: str, seed: int) -> tuple[str, int, int, tuple]:
    from simulations import load

    size = dict(SOAK_SIZES[scenario])
    nodes = size.pop("nodes", load(scenario).DEFAULTS["nodes"])
    return scenario, nodes, seed, tuple(sorted(f"{k}={v}" for k, v in size.items()))


def test_soak_sample_fails_only_on_open_seeds() -> None:
    rows = soak(list(SOAK_SCENARIOS), range(3), workers=2)
    text = table(rows)
    by_name = {r["scenario"]: r for r in rows}
    assert set(SOAK_SCENARIOS) < set(by_name) and by_name["(total)"]["seeds"] == 3 * len(SOAK_SCENARIOS)
    known = _open_seeds()
    for name in SOAK_SCENARIOS:
        row = by_name[name]
        assert row["seeds"] == 3 and name in text
        assert row["s_per_seed"] > 0
        new = [s for s in row["failing_seeds"] if _key(name, s) not in known]
        assert not new, f"{name}: new failing seeds {new} (replay: python -m simulations {name} " \
                        f"--seed S with the soak size {SOAK_SIZES[name]})\n{text}"
        if not row["failing_seeds"]:
            assert row["lost_writes"] == 0 and row["stuck"] == 0
