"""Routing table: insert, split of our own range, replacement cache, bad nodes, states."""

from __future__ import annotations

import random

from btd.plugins.dht.routing import BAD_AFTER, GOOD_FOR, K, RoutingTable, id_int

OWN = bytes(20)  # id 0: our bucket is always the lowest one


def nid(n: int) -> bytes:
    return n.to_bytes(20, "big")


def top(i: int) -> bytes:
    """Ids in the upper half of the space (far from OWN)."""
    return nid((1 << 159) + i)


def addr(i: int) -> tuple[str, int]:
    return (f"10.0.{i // 250}.{i % 250 + 1}", 6881)


def check_invariants(table: RoutingTable) -> None:
    lo = 0
    for b in table.buckets:
        assert b.lo == lo and b.hi > b.lo
        assert len(b.nodes) <= K and len(b.replacements) <= K
        for n in b.nodes + b.replacements:
            assert b.covers(id_int(n.node_id))
        lo = b.hi
    assert lo == 1 << 160


def test_first_k_fit_then_our_bucket_splits() -> None:
    t = RoutingTable(OWN)
    for i in range(K):
        assert t.responded(top(i), addr(i), 0.0) is None
    assert len(t.buckets) == 1 and len(t) == K
    # The ninth node is near us: the full bucket holds our id, so it splits.
    assert t.responded(nid(5), addr(100), 0.0) is None
    assert len(t.buckets) == 2 and len(t) == K + 1
    assert [len(b.nodes) for b in t.buckets] == [1, K]
    check_invariants(t)


def test_full_far_bucket_keeps_replacements_and_offers_a_ping() -> None:
    t = RoutingTable(OWN)
    for i in range(K):
        t.responded(top(i), addr(i), 0.0)
    t.responded(nid(5), addr(100), 0.0)  # split: the upper half is now a far bucket
    # While all nodes are good, a newcomer only waits in the replacement cache.
    assert t.responded(top(50), addr(50), 10.0) is None
    far = t.bucket_for(top(0))
    assert [n.node_id for n in far.replacements] == [top(50)]
    assert t.get(top(50)) is None
    # Once they went quiet for 15 minutes, the least recently seen one is offered for a ping.
    t.responded(top(3), addr(3), GOOD_FOR - 1)  # heard from recently
    to_ping = t.responded(top(51), addr(51), GOOD_FOR + 1)
    assert to_ping is not None and to_ping.node_id == top(0)
    assert [n.node_id for n in far.replacements] == [top(50), top(51)]


def test_replacement_cache_is_bounded_newest_kept() -> None:
    t = RoutingTable(OWN)
    for i in range(K):
        t.responded(top(i), addr(i), 0.0)
    t.responded(nid(5), addr(100), 0.0)
    for i in range(20):
        t.responded(top(100 + i), addr(100 + i), 1.0)
    far = t.bucket_for(top(0))
    assert [n.node_id for n in far.replacements] == [top(100 + i) for i in range(12, 20)]


def test_node_failing_twice_is_replaced_by_newest_replacement() -> None:
    t = RoutingTable(OWN)
    for i in range(K):
        t.responded(top(i), addr(i), 0.0)
    t.responded(nid(5), addr(100), 0.0)
    t.responded(top(50), addr(50), 1.0)
    t.responded(top(51), addr(51), 2.0)
    t.failed(top(2), 3.0)
    assert t.get(top(2)) is not None and t.get(top(2)).state(3.0) == "good"
    t.failed(top(2), 4.0)
    assert t.get(top(2)) is None
    assert t.get(top(51)) is not None  # the newest replacement moved in
    assert [n.node_id for n in t.bucket_for(top(0)).replacements] == [top(50)]
    assert t.by_address(addr(2)) is None and t.by_address(addr(51)).node_id == top(51)
    check_invariants(t)


def test_bad_node_is_evicted_by_a_newcomer() -> None:
    t = RoutingTable(OWN)
    for i in range(K):
        t.responded(top(i), addr(i), 0.0)
    t.responded(nid(5), addr(100), 0.0)
    for _ in range(BAD_AFTER):
        t.failed(top(4), 1.0)  # no replacements yet: stays, but bad
    assert t.get(top(4)).state(1.0) == "bad"
    assert t.live_count() == K
    assert top(4) not in [n.node_id for n in t.closest(top(4))]
    t.responded(top(60), addr(60), 2.0)
    assert t.get(top(4)) is None and t.get(top(60)) is not None


def test_states_follow_time_and_queries() -> None:
    t = RoutingTable(OWN)
    t.responded(top(1), addr(1), 100.0)
    node = t.get(top(1))
    assert node.state(100.0 + GOOD_FOR - 1) == "good"
    assert node.state(100.0 + GOOD_FOR) == "questionable"
    assert t.queried_us(top(1), addr(1), 2000.0) is False  # known: no ping needed
    assert node.state(2000.0 + 10) == "good"  # answered once and queried us lately
    t.responded(top(1), addr(1), 3000.0)
    assert node.failures == 0


def test_loaded_nodes_are_questionable_until_they_answer() -> None:
    t = RoutingTable(OWN)
    assert t.add_loaded(top(1), addr(1))
    assert not t.add_loaded(top(1), addr(1))
    assert t.get(top(1)).state(0.0) == "questionable"
    t.responded(top(1), addr(1), 5.0)
    assert t.get(top(1)).state(5.0) == "good"


def test_refused_contacts() -> None:
    t = RoutingTable(OWN)
    assert t.responded(OWN, addr(1), 0.0) is None and len(t) == 0
    assert t.responded(top(1), ("10.0.0.1", 0), 0.0) is None and len(t) == 0
    assert not t.queried_us(OWN, addr(1), 0.0)
    t.responded(top(1), addr(1), 0.0)
    t.responded(top(2), addr(1), 0.0)  # same address, other id: ignored
    assert len(t) == 1 and t.get(top(2)) is None
    t.responded(top(1), addr(2), 0.0)  # same id from another address: ignored
    assert t.get(top(1)).address == addr(1)


def test_queried_us_asks_for_a_ping_only_if_there_is_room() -> None:
    t = RoutingTable(OWN)
    assert t.queried_us(top(1), addr(1), 0.0)
    assert len(t) == 0  # a query alone does not get a node in
    for i in range(K):
        t.responded(top(i), addr(i), 0.0)
    t.responded(nid(5), addr(100), 0.0)
    assert not t.queried_us(top(99), addr(99), 0.0)  # far bucket full
    assert t.queried_us(nid(7), addr(98), 0.0)  # our own bucket has room


def test_closest_is_sorted_by_xor_distance() -> None:
    t = RoutingTable(OWN)
    rng = random.Random(5)
    ids = [rng.randbytes(20) for _ in range(300)]
    for i, node_id in enumerate(ids):
        t.responded(node_id, addr(i), 0.0)
    check_invariants(t)
    target = rng.randbytes(20)
    got = t.closest(target, 8)
    distances = [id_int(n.node_id) ^ id_int(target) for n in got]
    assert distances == sorted(distances)
    inside = {n.node_id for n in t.nodes()}
    best = sorted(inside, key=lambda x: id_int(x) ^ id_int(target))[:8]
    assert [n.node_id for n in got] == best
    # Detail near us: the table has many buckets, the nearest hold the closest ids.
    assert len(t.buckets) > 5 and len(t) <= K * len(t.buckets)


def test_stale_buckets_touch_and_random_ids() -> None:
    t = RoutingTable(OWN)
    for i in range(K + 1):
        t.responded(top(i) if i < K else nid(3), addr(i), 0.0)
    assert len(t.stale_buckets(900.0)) == 2
    t.touch(t.buckets[0], 800.0)
    assert t.stale_buckets(900.0) == [t.buckets[1]]
    rng = random.Random(1)
    for bucket in t.buckets:
        for _ in range(20):
            assert bucket.covers(id_int(t.random_id_in(bucket, rng)))
