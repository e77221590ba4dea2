"""SeqLog against a plain dict kept sorted: the same answers after any mix of adds and drops."""

import random

import pytest

from gossip_backer.core.seqlog import SeqLog


@pytest.mark.parametrize("seed", range(20))
def test_seqlog_answers_as_a_sorted_dict(seed):
    rng = random.Random(seed)
    log: SeqLog[str] = SeqLog()
    oracle: dict[int, str] = {}
    top = 0
    for step in range(3000):
        op = rng.random()
        if op < 0.5:  # mostly in order, as updates arrive; sometimes below the top
            seq = top + rng.randint(1, 3) if rng.random() < 0.8 else rng.randint(1, top + 1)
            top = max(top, seq)
            log[seq] = oracle[seq] = f"u{seq}.{step}"
        elif op < 0.9 and oracle:
            seq = rng.choice(list(oracle))
            del log[seq], oracle[seq]
        else:
            seq = rng.randint(-1, top + 2)
            assert (seq in log) == (seq in oracle)
            assert log.get(seq) == oracle.get(seq)
            if seq not in oracle:
                with pytest.raises(KeyError):
                    log[seq]
                with pytest.raises(KeyError):
                    del log[seq]
        if step % 100 == 0:
            ordered = sorted(oracle)
            assert list(log) == ordered and len(log) == len(oracle)
            assert list(log.values()) == [oracle[s] for s in ordered]
            cut = rng.randint(0, top + 1)
            assert list(log.after(cut)) == [oracle[s] for s in ordered if s > cut]
            copy = log.copy()
            copy[top + 10] = "only in the copy"
            assert top + 10 not in log and list(log) == ordered


def test_dropped_updates_leave_no_memory_behind():
    log: SeqLog[int] = SeqLog()
    for seq in range(1, 10_001):
        log[seq] = seq
        if seq > 1:
            del log[seq - 1]  # one key edited 10,000 times: one update held
    assert list(log) == [10_000] and len(log._seqs) < 200
