"""announce tokens, rate-limit buckets and the announced-peer store (pure bookkeeping)."""

from __future__ import annotations

import itertools
import random

import pytest

from btd.plugins.dht.limits import IpRateLimiter, TokenBucket
from btd.plugins.dht.peerstore import PeerStore
from btd.plugins.dht.tokens import ROTATE_EVERY, TokenManager


def counter_bytes():
    n = itertools.count()
    return lambda size: next(n).to_bytes(size, "big")


def test_token_is_bound_to_the_ip() -> None:
    tm = TokenManager(0.0, random_bytes=counter_bytes())
    token = tm.issue("10.0.0.1", 1.0)
    assert tm.check(token, "10.0.0.1", 2.0)
    assert not tm.check(token, "10.0.0.2", 2.0)
    assert not tm.check(b"x" * len(token), "10.0.0.1", 2.0)
    assert not tm.check(b"", "10.0.0.1", 2.0)


def test_token_survives_one_rotation_not_two() -> None:
    tm = TokenManager(0.0, random_bytes=counter_bytes())
    token = tm.issue("10.0.0.1", ROTATE_EVERY - 1)
    assert tm.check(token, "10.0.0.1", ROTATE_EVERY + 1)  # previous secret
    assert tm.issue("10.0.0.1", ROTATE_EVERY + 1) != token
    assert not tm.check(token, "10.0.0.1", 2 * ROTATE_EVERY + 1)


def test_token_expires_after_a_long_silence() -> None:
    tm = TokenManager(0.0, random_bytes=counter_bytes())
    token = tm.issue("10.0.0.1", 10.0)
    assert not tm.check(token, "10.0.0.1", 10 * ROTATE_EVERY)


def test_secrets_differ_between_managers() -> None:
    a, b = TokenManager(0.0), TokenManager(0.0)
    assert a.issue("10.0.0.1", 0.0) != b.issue("10.0.0.1", 0.0)


def test_token_bucket_burst_and_refill() -> None:
    b = TokenBucket(2.0, 3, 0.0)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.wait_time(0.0) == pytest.approx(0.5)
    assert b.take(0.5) and not b.take(0.5)
    b.take(100.0)
    assert b.tokens == 2.0  # refilled to the burst, then one taken
    with pytest.raises(ValueError):
        TokenBucket(0, 1, 0.0)


def test_ip_limiter_is_per_ip_and_bounded() -> None:
    lim = IpRateLimiter(1.0, 2, max_ips=3)
    assert [lim.allow("a", 0.0) for _ in range(3)] == [True, True, False]
    assert lim.allow("b", 0.0) and lim.allow("c", 0.0)
    assert lim.allow("d", 0.0) and len(lim) == 3  # the least recently used one went
    assert lim.allow("a", 10.0)
    assert len(lim) <= 3


def test_peer_store_limits_and_expiry() -> None:
    store = PeerStore(per_hash=3, total=5, ttl=100.0)
    h1, h2 = b"1" * 20, b"2" * 20
    for i in range(4):
        store.add(h1, (f"10.0.0.{i}", 1), float(i))
    assert sorted(store.get(h1, 4.0)) == [("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]
    store.add(h1, ("10.0.0.1", 1), 5.0)  # refresh: now the newest
    for i in range(3):
        store.add(h2, (f"10.0.1.{i}", 1), 6.0 + i)
    assert len(store) == 5 and store.info_hashes == 2
    # the store was full: the oldest entry of any hash (10.0.0.2) went
    assert sorted(store.get(h1, 9.0)) == [("10.0.0.1", 1), ("10.0.0.3", 1)]
    assert store.expire(105.5) == 2 and store.get(h1, 105.5) == []
    assert len(store.get(h2, 105.5)) == 3
    assert store.get(h2, 200.0) == [] and len(store) == 0 and store.info_hashes == 0


def test_peer_store_sample_is_bounded() -> None:
    store = PeerStore()
    for i in range(150):
        store.add(b"h" * 20, (f"10.0.{i // 200}.{i % 200}", 1000 + i), 0.0)
    assert len(store) == 100
    got = store.get(b"h" * 20, 1.0, 30, random.Random(1))
    assert len(got) == 30 and len(set(got)) == 30


def test_peer_store_total_bound() -> None:
    store = PeerStore()
    for i in range(2500):
        store.add(i.to_bytes(20, "big"), ("10.0.0.1", 1), i / 10)
    assert len(store) == 2000 and store.info_hashes == 2000
    assert store.get((0).to_bytes(20, "big"), 250.0) == []  # the oldest went first
    assert store.get((2499).to_bytes(20, "big"), 250.0) == [("10.0.0.1", 1)]
