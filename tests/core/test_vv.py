"""VersionVector: bump / merge / compare laws, against a pointwise oracle; encode / decode."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossip_backer.core.vv import Order, VersionVector
from gossip_backer.wire.codec import pack, unpack
from replicas import flip, quick

NODES = [bytes([i]) * 32 for i in range(1, 5)]  # few nodes, so vectors overlap
nodes = st.sampled_from(NODES)
vvs = st.dictionaries(nodes, st.integers(0, 4), max_size=4).map(VersionVector)
big_vvs = st.dictionaries(st.binary(min_size=1, max_size=32), st.integers(0, 2**64 - 1),
                          max_size=6).map(VersionVector)


def pointwise(a: VersionVector, b: VersionVector) -> Order:
    keys = {k for k, _ in a.items()} | {k for k, _ in b.items()}
    ge = all(a.get(k) >= b.get(k) for k in keys)
    le = all(a.get(k) <= b.get(k) for k in keys)
    if ge and le:
        return Order.EQUAL
    if ge:
        return Order.GREATER
    if le:
        return Order.LESSER
    return Order.CONCURRENT


# -- construction ---------------------------------------------------------------------------

def test_empty_and_zero_counters():
    assert VersionVector() == VersionVector({}) == VersionVector(None)
    assert VersionVector({NODES[0]: 0}) == VersionVector()
    assert len(VersionVector({NODES[0]: 0, NODES[1]: 2})) == 1
    assert VersionVector().get(NODES[0]) == 0
    assert hash(VersionVector({NODES[0]: 0})) == hash(VersionVector())


def test_negative_counter_is_refused():
    with pytest.raises(ValueError):
        VersionVector({NODES[0]: -1})


@quick
@given(vvs)
def test_items_are_sorted_by_node(v):
    keys = [k for k, _ in v.items()]
    assert keys == sorted(keys)
    assert all(c > 0 for _, c in v.items())


@quick
@given(st.dictionaries(nodes, st.integers(0, 4)))
def test_construction_does_not_depend_on_insertion_order(d):
    a = VersionVector(d)
    b = VersionVector(dict(reversed(list(d.items()))))
    assert a == b and hash(a) == hash(b) and a.encode() == b.encode()


@quick
@given(vvs, nodes)
def test_operations_do_not_mutate(v, n):
    before = v.encode()
    v.bump(n)
    v.merge(VersionVector({n: 9}))
    v.compare(VersionVector({n: 9}))
    assert v.encode() == before


# -- bump ------------------------------------------------------------------------------------

@quick
@given(vvs, nodes)
def test_bump_makes_greater(v, n):
    b = v.bump(n)
    assert b.compare(v) is Order.GREATER
    assert v.compare(b) is Order.LESSER
    assert b.get(n) == v.get(n) + 1
    assert all(b.get(k) == v.get(k) for k in NODES if k != n)
    assert b.dominates(v) and not v.dominates(b)


@quick
@given(vvs, nodes, nodes)
def test_bumps_on_two_nodes_are_concurrent(v, n, m):
    if n == m:
        assert v.bump(n) == v.bump(m)
    else:
        assert v.bump(n).compare(v.bump(m)) is Order.CONCURRENT
        assert v.bump(n).merge(v.bump(m)).compare(v.bump(n)) is Order.GREATER


# -- merge ----------------------------------------------------------------------------------

@quick
@given(vvs, vvs)
def test_merge_is_pointwise_max_and_commutative(a, b):
    m = a.merge(b)
    assert m == b.merge(a)
    for k in NODES:
        assert m.get(k) == max(a.get(k), b.get(k))


@quick
@given(vvs, vvs, vvs)
def test_merge_is_associative(a, b, c):
    assert a.merge(b).merge(c) == a.merge(b.merge(c))


@quick
@given(vvs)
def test_merge_is_idempotent(a):
    assert a.merge(a) == a
    assert a.merge(VersionVector()) == a


@quick
@given(vvs, vvs, vvs)
def test_merge_is_the_least_upper_bound(a, b, c):
    m = a.merge(b)
    assert m.dominates(a) and m.dominates(b)
    if c.dominates(a) and c.dominates(b):
        assert c.dominates(m)


@quick
@given(vvs, vvs)
def test_merge_absorbs_a_dominated_vector(a, b):
    assert (a.merge(b) == a) == a.dominates(b)


# -- compare --------------------------------------------------------------------------------

@quick
@given(vvs, vvs)
def test_compare_matches_the_pointwise_definition(a, b):
    assert a.compare(b) is pointwise(a, b)


@quick
@given(big_vvs, big_vvs)
def test_compare_matches_pointwise_on_any_keys_and_counters(a, b):
    assert a.compare(b) is pointwise(a, b)
    assert a.merge(b) == b.merge(a)


@quick
@given(vvs, vvs)
def test_compare_is_antisymmetric(a, b):
    assert b.compare(a) is flip(a.compare(b))
    assert (a.compare(b) is Order.EQUAL) == (a == b)
    if a == b:
        assert hash(a) == hash(b)


@quick
@given(vvs)
def test_compare_is_reflexive(a):
    assert a.compare(a) is Order.EQUAL
    assert a.dominates(a)


@quick
@given(vvs, vvs, vvs)
def test_dominance_is_transitive(a, b, c):
    if a.dominates(b) and b.dominates(c):
        assert a.dominates(c)
    if a.compare(b) is Order.GREATER and b.compare(c) is Order.GREATER:
        assert a.compare(c) is Order.GREATER


@quick
@given(vvs, vvs)
def test_dominates_means_greater_or_equal(a, b):
    assert a.dominates(b) == (a.compare(b) in (Order.GREATER, Order.EQUAL))


# -- encoding -------------------------------------------------------------------------------

@quick
@given(big_vvs)
def test_encode_decode_round_trip(v):
    plain = v.encode()
    assert plain == sorted(plain)
    assert all(isinstance(k, bytes) and isinstance(c, int) and c > 0 for k, c in plain)
    assert VersionVector.decode(plain) == v
    assert VersionVector.decode(unpack(pack(plain))) == v  # through msgpack, as on the wire
    assert VersionVector.decode(unpack(pack(plain))).encode() == plain


@quick
@given(big_vvs, st.randoms(use_true_random=False))
def test_decode_accepts_any_pair_order(v, rnd):
    plain = v.encode()
    rnd.shuffle(plain)
    assert VersionVector.decode(plain) == v
    assert VersionVector.decode([tuple(p) for p in plain]) == v


def test_decode_drops_zero_counters():
    assert VersionVector.decode([[NODES[0], 0]]) == VersionVector()
    assert VersionVector.decode([]) == VersionVector()


K = NODES[0]
MALFORMED = [
    pytest.param([["k", 1]], id="str-key"),
    pytest.param([[1, 1]], id="int-key"),
    pytest.param([[None, 1]], id="none-key"),
    pytest.param([[K, -1]], id="negative"),
    pytest.param([[K, 1.0]], id="float"),
    pytest.param([[K, "1"]], id="str-counter"),
    pytest.param([[K, None]], id="none-counter"),
    pytest.param([[K, b"\x01"]], id="bytes-counter"),
    pytest.param([[K, True]], id="bool-counter"),  # msgpack true is no counter
    pytest.param([[K, 1], [K, 2]], id="duplicate-key"),
    pytest.param([[K, 1], [K, 1]], id="duplicate-pair"),
    pytest.param([[K]], id="short-pair"),
    pytest.param([[K, 1, 2]], id="long-pair"),
    pytest.param([[]], id="empty-pair"),
    pytest.param([b"ab"], id="bytes-as-pair"),
    pytest.param(["ab"], id="str-as-pair"),
    # not even a pair: a peer's record can carry these inside its list-shaped vector
    pytest.param([5], id="int-as-pair"),
    pytest.param([None], id="none-as-pair"),
    pytest.param([True], id="bool-as-pair"),
    pytest.param([[K, 1], 7], id="int-after-a-good-pair"),
    pytest.param(None, id="none"),
    pytest.param(5, id="int"),
    pytest.param(b"\x01\x02", id="bytes"),
    pytest.param({K: 1}, id="dict"),
]


@pytest.mark.parametrize("plain", MALFORMED)
def test_decode_rejects_malformed_input_with_value_error(plain):
    """Malformed input is refused with ValueError (what `FileRecord.from_plain` and
    `update_from_wire` turn into a RemoteError); any other exception escapes them."""
    with pytest.raises(ValueError):
        VersionVector.decode(plain)


def test_decoded_node_keys_are_one_shared_object_and_the_table_is_bounded(monkeypatch) -> None:
    from gossip_backer.core import vv as vv_mod

    monkeypatch.setattr(vv_mod.node_key, "kept", {})
    monkeypatch.setattr(vv_mod.node_key, "limit", 2)
    a1, a2 = bytes([7]) * 32, bytearray([7]) * 32
    v1 = VersionVector.decode([[a1, 1]])
    v2 = VersionVector.decode([[bytes(a2), 2]])
    (k1,), (k2,) = [[k for k, _ in v.encode()] for v in (v1, v2)]
    assert k1 is k2 and v1 != v2
    for i in range(5):  # strangers beyond the bound are used, not kept
        assert vv_mod.node_key(bytes([i]) * 32) == bytes([i]) * 32
    assert len(vv_mod.node_key.kept) == 2


# -- one object per value --------------------------------------------------------------------

@quick
@given(vvs, vvs)
def test_equal_vectors_are_one_object_and_compare_as_the_oracle(a, b):
    assert VersionVector(dict(a.items())) is a  # interned: 100,000 files share a few vectors
    assert (a is b) == (a == b)
    assert a.compare(b) == pointwise(a, b) and b.compare(a) == flip(pointwise(a, b))
    assert a.merge(b) == VersionVector({k: max(a.get(k), b.get(k)) for k, _ in a.items() + b.items()})


def test_a_copy_is_the_same_vector():
    import copy
    import pickle

    v = VersionVector({NODES[0]: 3, NODES[1]: 1})
    assert copy.copy(v) is v and copy.deepcopy(v) is v and pickle.loads(pickle.dumps(v)) is v
