"""UpdateLog against a plain dict kept sorted: the same updates after any mix of adds and drops,
whether an update is held in the columns or whole."""

import random

import pytest

from gossip_backer.core.record import LiveGlob, SignedUpdate
from gossip_backer.core.updatelog import UpdateLog

ORIGIN = b"o" * 32


def encode(payload: LiveGlob) -> bytes:
    return repr(payload).encode()


def update(seq: int, rng: random.Random) -> SignedUpdate:
    payload = LiveGlob(f"g{seq}", True, rng.randint(0, 9))
    sig = rng.randbytes(64)
    if rng.random() < 0.8:  # as the map holds our own and most relayed updates
        return SignedUpdate(ORIGIN, seq, payload, None, sig, encode, len(encode(payload)))
    if rng.random() < 0.5:  # a body kept as it came
        return SignedUpdate(ORIGIN, seq, payload, b"as it came", sig)
    return SignedUpdate(ORIGIN, seq, payload, None, sig[:63], encode, 5)  # an odd signature


def same(a: SignedUpdate | None, b: SignedUpdate | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.origin, a.seq, a.payload, a.kept_body, a.sig, a.body, a.size) == (
        b.origin, b.seq, b.payload, b.kept_body, b.sig, b.body, b.size)


@pytest.mark.parametrize("seed", range(20))
def test_updatelog_answers_as_a_sorted_dict(seed):
    rng = random.Random(seed)
    log = UpdateLog(ORIGIN)
    oracle: dict[int, SignedUpdate] = {}
    top = 0
    for step in range(3000):
        op = rng.random()
        if op < 0.5:  # mostly in order, as updates arrive; sometimes below the top
            seq = top + rng.randint(1, 3) if rng.random() < 0.8 else rng.randint(1, top + 1)
            top = max(top, seq)
            log[seq] = oracle[seq] = update(seq, rng)
            assert log.holds(oracle[seq]) and same(log[seq], oracle[seq])
        elif op < 0.9 and oracle:
            seq = rng.choice(list(oracle))
            assert log.payload(seq) is oracle[seq].payload
            del log[seq], oracle[seq]
        else:
            seq = rng.randint(-1, top + 2)
            assert (seq in log) == (seq in oracle)
            assert same(log.get(seq), oracle.get(seq))
            if seq not in oracle:
                with pytest.raises(KeyError):
                    log[seq]
                with pytest.raises(KeyError):
                    del log[seq]
        if step % 100 == 0:
            ordered = sorted(oracle)
            assert list(log) == ordered and len(log) == len(oracle)
            assert all(same(a, oracle[s]) for a, s in zip(log.values(), ordered, strict=True))
            cut = rng.randint(0, top + 1)
            assert [u.seq for u in log.after(cut)] == [s for s in ordered if s > cut]
            odd = [s for s in ordered if oracle[s].payload.clock % 2]
            assert [u.seq for u in log.matching(lambda p: p.clock % 2)] == odd
            copy = log.copy()
            copy[top + 10] = update(top + 10, rng)
            assert top + 10 not in log and list(log) == ordered


def test_another_update_of_the_same_seq_is_not_the_one_held():
    rng = random.Random(1)
    log = UpdateLog(ORIGIN)
    held = log[5] = update(5, rng)
    forged = SignedUpdate(ORIGIN, 5, held.payload, None, bytes(64), encode, held.size)
    assert log.holds(held) and not log.holds(forged)
    with pytest.raises(ValueError):
        log[6] = update(7, rng)


def test_dropped_updates_leave_no_memory_behind():
    rng = random.Random(2)
    log = UpdateLog(ORIGIN)
    for seq in range(1, 10_001):
        log[seq] = update(seq, rng)
        if seq > 1:
            del log[seq - 1]  # one key edited 10,000 times: one update held
    assert list(log) == [10_000] and len(log._seqs) < 200 and len(log._sigs) < 200 * 64
