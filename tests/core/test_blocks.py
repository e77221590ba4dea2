"""core.blocks: weak sums, block hashing, the block-size rule and the rolling matcher.

The matcher is checked against a naive reference that looks at every window of every target
block length in the data (tiny block sizes keep it fast). Bulk bytes come from random.Random(seed)
with the seed drawn by Hypothesis, so every example replays exactly (derandomize=True)."""

from __future__ import annotations

import random
from collections import defaultdict

import blake3
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossip_backer.core import blocks
from gossip_backer.core.blocks import (
    BLOCK_SIZES, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, BlockHasher, FileHasher, RollingMatcher,
    block_size_for, hash_bytes, plan_reuse, rolling_weak_sums, strong_hash, weak_sum,
)
from gossip_backer.core.record import Block

_COMMON = dict(deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
quick = settings(max_examples=200, **_COMMON)
medium = settings(max_examples=80, **_COMMON)

seeds = st.integers(0, 2**32 - 1)
tiny_block = st.sampled_from([16, 24, 32, 64])


def naive_weak(data: bytes) -> int:
    n = len(data)
    a = sum(data)
    b = sum((n - i) * x for i, x in enumerate(data))
    return (a & 0xFFFF) | (b & 0xFFFF) << 16


def random_bytes(rnd: random.Random, n: int, alphabet: int = 256) -> bytes:
    if alphabet >= 256:
        return rnd.randbytes(n)
    return bytes(rnd.randrange(alphabet) for _ in range(n))


# --- weak sums -------------------------------------------------------------------------------


def test_weak_sum_known_values() -> None:
    assert weak_sum(b"") == 0
    assert weak_sum(b"\x01") == 0x0001_0001
    assert weak_sum(b"\x01\x02") == (3 | (2 * 1 + 1 * 2) << 16)
    big = b"\xff" * 300_000  # sums far beyond 2^32 before the modulus
    assert weak_sum(big) == naive_weak(big)
    for n in (16383, 16384, 16385):  # around the one-dot-product path's limit (uint16 wraps)
        for data in (b"\xff" * n, random.Random(n).randbytes(n)):
            assert weak_sum(data) == naive_weak(data)


@quick
@given(seeds, st.integers(0, 9000), st.sampled_from([256, 2]))
def test_weak_sum_matches_the_formula(seed, n, alphabet) -> None:
    data = random_bytes(random.Random(seed), n, alphabet)
    assert weak_sum(data) == naive_weak(data)
    assert weak_sum(np.frombuffer(data, np.uint8)) == weak_sum(memoryview(data))


@quick
@given(seeds, st.integers(0, 700), st.integers(1, 300), st.sampled_from([256, 3]))
def test_rolling_equals_weak_sum_at_every_offset(seed, n, length, alphabet) -> None:
    data = random_bytes(random.Random(seed), n, alphabet)
    rolled = rolling_weak_sums(data, length)
    assert rolled.dtype == np.uint32
    assert rolled.tolist() == [weak_sum(data[i : i + length]) for i in range(n - length + 1)]


def test_rolling_over_pieces_and_large_values(monkeypatch) -> None:
    monkeypatch.setattr(blocks, "_PIECE", 1000)  # force several pieces
    data = random.Random(7).randbytes(20_000) + b"\xff" * 20_000
    rolled = rolling_weak_sums(np.frombuffer(data, np.uint8), 3000)
    assert len(rolled) == len(data) - 2999
    for i in list(range(0, len(rolled), 997)) + [len(rolled) - 1]:
        assert int(rolled[i]) == naive_weak(data[i : i + 3000])


def test_rolling_rejects_bad_length() -> None:
    with pytest.raises(ValueError):
        rolling_weak_sums(b"abc", 0)
    assert len(rolling_weak_sums(b"abc", 4)) == 0


# --- hashing ---------------------------------------------------------------------------------


def test_hashes_are_blake3() -> None:
    assert strong_hash(b"abc") == blake3.blake3(b"abc").digest()
    assert len(strong_hash(b"")) == 32
    h = FileHasher()
    h.update(b"ab")
    h.update(memoryview(b"c"))
    assert h.digest() == strong_hash(b"abc")


@quick
@given(seeds, st.integers(0, 3000), st.integers(1, 300), st.lists(st.integers(0, 3000)))
def test_block_hasher_chunking_invariance(seed, n, block_size, cuts) -> None:
    data = random.Random(seed).randbytes(n)
    whole, size, expected = hash_bytes(data, block_size)
    assert size == block_size and whole == strong_hash(data)
    assert expected == tuple(
        Block(strong_hash(data[i : i + block_size]), weak_sum(data[i : i + block_size]))
        for i in range(0, n, block_size)
    )
    hasher = BlockHasher(block_size)
    points = sorted({0, n, *(c % (n + 1) for c in cuts)})
    for a, b in zip(points, points[1:]):
        hasher.update(data[a:b] if a % 2 else memoryview(data)[a:b])
    hasher.update(b"")
    assert hasher.finish() == (whole, expected)
    blocks_only = BlockHasher(block_size, whole=False)  # the whole hash is the caller's
    blocks_only.update(data)
    assert blocks_only.finish(b"given") == (b"given", expected)


def test_empty_file_has_no_blocks_and_the_hash_of_nothing() -> None:
    file_hash, size, blks = hash_bytes(b"")
    assert (file_hash, size, blks) == (strong_hash(b""), MIN_BLOCK_SIZE, ())
    assert BlockHasher(16).finish() == (strong_hash(b""), ())
    with pytest.raises(ValueError):
        BlockHasher(16, whole=False).finish()  # a blocks-only hasher needs the caller's hash


def test_small_file_is_one_block_with_the_rule() -> None:
    data = b"x" * 1000
    file_hash, size, blks = hash_bytes(data)
    assert size == MIN_BLOCK_SIZE and len(blks) == 1 and blks[0].hash == file_hash


# --- block size rule -------------------------------------------------------------------------

sizes = st.integers(0, 2**50)


@quick
@given(sizes, sizes)
def test_block_size_rule_monotone_and_bounded(a, b) -> None:
    lo, hi = sorted((a, b))
    assert block_size_for(lo) <= block_size_for(hi)
    for size in (lo, hi):
        bs = block_size_for(size)
        assert bs in BLOCK_SIZES and MIN_BLOCK_SIZE <= bs <= MAX_BLOCK_SIZE
        assert bs & (bs - 1) == 0
        if bs < MAX_BLOCK_SIZE:
            assert -(-size // bs) <= 2048  # at most ~2,000 blocks below the cap
        if bs > MIN_BLOCK_SIZE:
            assert -(-size // bs) > 1024  # not needlessly large: more than 1,024 blocks


def test_block_size_thresholds() -> None:
    mib = 1 << 20
    assert [block_size_for(s) for s in (0, 1, 256 * mib, 256 * mib + 1, 512 * mib,
                                       512 * mib + 1, 1024 * mib, 1024 * mib + 1, 2**45)] == [
        128 << 10, 128 << 10, 128 << 10, 256 << 10, 256 << 10, 512 << 10, 512 << 10, mib, mib]


@quick
@given(sizes, st.sampled_from((0, 1000, *BLOCK_SIZES)))
def test_block_size_keeps_current_within_a_factor_of_two(size, current) -> None:
    rule, got = block_size_for(size), block_size_for(size, current)
    assert got in BLOCK_SIZES and max(got, rule) <= 2 * min(got, rule)
    if current in BLOCK_SIZES and max(current, rule) <= 2 * min(current, rule):
        assert got == current
    else:
        assert got == rule


def test_block_size_keeps_current_across_a_threshold() -> None:
    mib = 1 << 20
    assert block_size_for(512 * mib + 100) == 512 << 10
    assert block_size_for(512 * mib + 100, current=256 << 10) == 256 << 10
    assert block_size_for(4 * 1024 * mib, current=128 << 10) == mib  # too far: the rule wins


# --- plan_reuse ------------------------------------------------------------------------------


def test_plan_reuse_splits_present_and_missing() -> None:
    blks = [Block(strong_hash(bytes([i])), 0) for i in range(4)] + [Block(strong_hash(b"\0"), 0)]
    index = {strong_hash(b"\0"): ("a.txt", 0), strong_hash(b"\2"): ("b/c", 262144)}
    reusable, missing = plan_reuse(blks, index)
    assert reusable == {0: ("a.txt", 0), 2: ("b/c", 262144), 4: ("a.txt", 0)}
    assert missing == [1, 3]
    assert plan_reuse([], index) == ({}, [])


# --- rolling matcher: the naive reference and the edits ----------------------------------------


def target_pieces(target: bytes, bs: int) -> list[bytes]:
    return [target[i : i + bs] for i in range(0, len(target), bs)]


def naive_hits(target: bytes, bs: int, data: bytes) -> dict[int, list[int]]:
    """Every (block, offset) where a target block's content is a window of `data`."""
    by_content: dict[bytes, list[int]] = defaultdict(list)
    for k, piece in enumerate(target_pieces(target, bs)):
        by_content[piece].append(k)
    hits: dict[int, list[int]] = defaultdict(list)
    for length in sorted({len(p) for p in by_content}):
        for s in range(len(data) - length + 1):
            for k in by_content.get(data[s : s + length], ()):
                hits[k].append(s)
    return dict(hits)


def matcher_for(target: bytes, bs: int, **kw) -> RollingMatcher:
    _, _, blks = hash_bytes(target, bs)
    return RollingMatcher(blks, bs, len(target), **kw)


SAFE_EDITS = ("insert", "delete", "overwrite", "dup_block", "shift")
edit = st.tuples(st.sampled_from(SAFE_EDITS + ("paste",)), st.integers(0, 10**6),
                 st.integers(1, 150))


def apply_edits(base: bytes, edits, bs: int, rnd: random.Random, alphabet: int) -> bytes:
    t = bytearray(base)
    for kind, where, n in edits:
        p = where % (len(t) + 1)
        if kind == "insert":
            t[p:p] = random_bytes(rnd, n, alphabet)
        elif kind == "delete":
            del t[p : p + n]
        elif kind == "overwrite":
            t[p : p + n] = random_bytes(rnd, min(n, len(t) - p), alphabet)
        elif kind == "shift":
            t[0:0] = random_bytes(rnd, n % bs or 1, alphabet)
        elif kind == "dup_block" and len(t) >= 2 * bs:
            full = len(t) // bs
            i, j = where % full, (where // full + n) % full
            t[j * bs : (j + 1) * bs] = t[i * bs : (i + 1) * bs]
        elif kind == "paste":  # a copy of nearby content at an arbitrary alignment
            t[(p + 3 * n) % (len(t) + 1) : (p + 3 * n) % (len(t) + 1)] = t[p : p + 2 * n]
    return bytes(t)


def assert_sound(found: dict[int, int], target: bytes, bs: int, data: bytes, base: int = 0):
    pieces = target_pieces(target, bs)
    for k, off in found.items():
        assert data[off - base : off - base + len(pieces[k])] == pieces[k], (k, off)


def assert_missed_only_inside_matches(found, hits, target: bytes, bs: int) -> None:
    """rsync's rule: a block is missed only where every window holding it starts strictly
    inside another matched window, or (the short block) where a full block matched first."""
    pieces = target_pieces(target, bs)
    spans = [(o, o + len(pieces[i])) for i, offs in hits.items() for o in offs]
    full_at = {o for i, offs in hits.items() if len(pieces[i]) == bs for o in offs}
    for k in set(hits) - set(found):
        for s in hits[k]:
            short_shadowed = len(pieces[k]) < bs and s in full_at
            assert short_shadowed or any(a < s < b for a, b in spans), (k, s)


scenario = st.tuples(seeds, st.integers(0, 2500), tiny_block, st.lists(edit, max_size=5))


def build(seed, n, bs, edits, alphabet=256, safe=False):
    """(data, target): random data and an edited copy. `safe` keeps the edits that move no
    content out of order, where rsync's rule of skipping matched windows loses nothing: no
    paste, and at most one aligned block copy, done last (shifting a copied block afterwards
    would make it an unaligned paste)."""
    rnd = random.Random(seed)
    data = random_bytes(rnd, n, alphabet)
    if safe:
        dups = [e for e in edits if e[0] == "dup_block"][:1]
        edits = [e for e in edits if e[0] not in ("paste", "dup_block")] + dups
    return data, apply_edits(data, edits, bs, rnd, alphabet)


@medium
@given(scenario)
def test_matcher_finds_what_the_naive_reference_finds(sc) -> None:
    data, target = build(*sc, safe=True)
    bs = sc[2]
    hits = naive_hits(target, bs, data)
    m = matcher_for(target, bs)
    found = m.scan(data)
    assert_sound(found, target, bs, data)
    assert all(off in hits[k] for k, off in found.items())
    full = {k for k in hits if not (m.short_len and k == m.total - 1)}
    assert full <= set(found)
    # the short block (it may be a byte or two) can hide inside matched data, as in rsync
    assert_missed_only_inside_matches(found, hits, target, bs)


@medium
@given(scenario, st.sampled_from([256, 2, 4]))
def test_matcher_misses_only_inside_matched_windows(sc, alphabet) -> None:
    data, target = build(*sc, alphabet=alphabet)
    bs = sc[2]
    hits = naive_hits(target, bs, data)
    found = matcher_for(target, bs).scan(data)
    assert_sound(found, target, bs, data)
    assert set(found) <= set(hits)
    assert_missed_only_inside_matches(found, hits, target, bs)


@medium
@given(scenario, st.sampled_from([256, 2]))
def test_exhaustive_matcher_equals_the_naive_reference(sc, alphabet) -> None:
    data, target = build(*sc, alphabet=alphabet)
    bs = sc[2]
    hits = naive_hits(target, bs, data)
    found = matcher_for(target, bs, exhaustive=True).scan(data)
    assert found == {k: min(offs) for k, offs in hits.items()}


@medium
@given(scenario, st.lists(st.integers(1, 400), min_size=1), st.booleans(),
       st.integers(0, 10**9), st.sampled_from([256, 2]))
def test_scan_chunks_equals_scan_of_the_concatenation(sc, sizes, exhaustive, base, alphabet):
    data, target = build(*sc, alphabet=alphabet)
    m = matcher_for(target, sc[2], exhaustive=exhaustive)
    chunks, off, i = [], 0, 0
    while off < len(data):
        step = sizes[i % len(sizes)]
        chunks.append((base + off, data[off : off + step]))
        off, i = off + step, i + 1
    assert m.scan_chunks(chunks) == m.scan(data, base_offset=base)


def test_scan_chunks_with_a_gap_starts_a_new_run() -> None:
    rnd = random.Random(3)
    target = rnd.randbytes(320)
    m = matcher_for(target, 32)
    # block 2 straddles the gap in offsets: it must not be found across it
    chunks = [(0, target[:80]), (1000, target[80:])]
    found = m.scan_chunks(chunks)
    assert 2 not in found and found[1] == 32 and found[3] == 1000 + 96 - 80


# --- rolling matcher: particular cases -------------------------------------------------------


def test_short_last_block_is_found_shifted_and_at_the_end() -> None:
    rnd = random.Random(5)
    target = rnd.randbytes(100)  # blocks of 32: 3 full + a short one of 4 bytes
    m = matcher_for(target, 32)
    assert m.short_len == 4
    assert m.scan(b"junk" + target) == {0: 4, 1: 36, 2: 68, 3: 100}
    assert m.scan(target[96:] + b"zz") == {3: 0}
    assert m.scan(target[96:99]) == {}


def test_target_smaller_than_a_block() -> None:
    m = matcher_for(b"hello", 64)
    assert m.scan(b"say hello") == {0: 4}
    assert m.scan(b"say hell") == {}


def test_duplicate_blocks_all_map() -> None:
    rnd = random.Random(9)
    a, b = rnd.randbytes(16), rnd.randbytes(16)
    target = a + b + a + a + b[:5]
    # b[:5] at 18 is shadowed by the full block matched there; it is found again at 35
    found = matcher_for(target, 16).scan(b"xx" + a + b + b"z" + b[:5])
    assert found == {0: 2, 2: 2, 3: 2, 1: 18, 4: 35}


def test_empty_data_and_empty_target() -> None:
    m = matcher_for(b"0123456789abcdef" * 3, 16)
    assert m.scan(b"") == {} and m.scan_chunks([]) == {}
    empty = RollingMatcher([], 16, 0)
    assert empty.scan(b"anything at all") == {} and empty.scan(b"") == {}


def test_matcher_rejects_inconsistent_targets() -> None:
    _, _, blks = hash_bytes(b"x" * 100, 32)
    with pytest.raises(ValueError):
        RollingMatcher(blks, 32, 200)
    with pytest.raises(ValueError):
        RollingMatcher(blks, 0, 100)


def test_scan_accepts_numpy_and_memoryview() -> None:
    target = random.Random(1).randbytes(200)
    m = matcher_for(target, 32)
    data = b"-" + target
    expected = m.scan(data)
    assert m.scan(np.frombuffer(data, np.uint8)) == expected == m.scan(memoryview(data))


@pytest.mark.parametrize("edit_kind", ["none", "insert", "overwrite"])
def test_unchanged_regions_cost_hashing_not_rolling(monkeypatch, edit_kind) -> None:
    """Rolling runs only around a change: count the bytes given to the prefix sums."""
    rolled: list[int] = []
    real_load = blocks._Sums.load
    monkeypatch.setattr(blocks._Sums, "load", lambda self, x: (rolled.append(len(x)),
                                                               real_load(self, x))[1])
    bs, rnd = 4096, random.Random(11)
    data = rnd.randbytes(1 << 20)
    mid = len(data) // 2 + 123
    target = {"none": data, "insert": data[:mid] + b"x" * 100 + data[mid:],
              "overwrite": data[:mid] + rnd.randbytes(3 * bs) + data[mid + 3 * bs :]}[edit_kind]
    m = matcher_for(target, bs)
    found = m.scan(data)
    assert len(found) >= m.total - (1 if edit_kind == "insert" else 4)
    limit = {"none": 0, "insert": 3 * bs, "overwrite": 12 * bs}[edit_kind]
    assert sum(rolled) <= limit


@quick
@given(seeds, st.integers(0, 5000), st.sampled_from([1, 7, 128, 1024]), st.sampled_from([256, 2]))
def test_chunk_weak_sums_are_each_whole_chunks_weak_sum(seed, n, chunk, alphabet) -> None:
    from gossip_backer.core.blocks import chunk_weak_sums
    data = random_bytes(random.Random(seed), n, alphabet)
    assert chunk_weak_sums(data, chunk) == [weak_sum(data[i: i + chunk])
                                            for i in range(0, n - chunk + 1, chunk)]
    big = b"\xff" * (4096 * 70)  # sums far beyond 2^32, in more than one group of rows
    assert chunk_weak_sums(big, 4096) == [naive_weak(big[:4096])] * 70
