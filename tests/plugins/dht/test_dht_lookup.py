"""Iterative lookup on a simulated DHT of 200 nodes, each with a real routing table."""

from __future__ import annotations

import random

import pytest

from btd.plugins.dht.krpc import NodeInfo
from btd.plugins.dht.lookup import ALPHA, Lookup
from btd.plugins.dht.routing import BAD_AFTER, RoutingTable, id_int

OWN = b"\xee" * 20


class FakeDht:
    """200 nodes; each one's table holds what it learned from every other node."""

    def __init__(self, n: int = 200, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.rng = rng
        self.infos = [
            NodeInfo(rng.randbytes(20), f"10.{i // 250}.{i % 250}.1", 6881) for i in range(n)
        ]
        self.by_id = {i.node_id: i for i in self.infos}
        self.tables: dict[bytes, RoutingTable] = {}
        for info in self.infos:
            table = RoutingTable(info.node_id)
            for other in rng.sample(self.infos, len(self.infos)):
                table.responded(other.node_id, other.address, 0.0)
            self.tables[info.node_id] = table
        self.dead: set[bytes] = set()
        self.peers: dict[bytes, list[tuple[str, int]]] = {}

    def answer(self, node_id: bytes, target: bytes) -> list[NodeInfo]:
        return [NodeInfo(n.node_id, n.host, n.port) for n in self.tables[node_id].closest(target)]

    def true_closest(self, target: bytes, k: int = 8) -> list[bytes]:
        live = [i.node_id for i in self.infos if i.node_id not in self.dead]
        return sorted(live, key=lambda x: id_int(x) ^ id_int(target))[:k]


def run(dht: FakeDht, lk: Lookup, *, shuffle: bool = True) -> int:
    """Answer queries in a random order until the lookup says it is done; returns rounds."""
    in_flight: list[NodeInfo] = []
    rounds = 0
    while True:
        new = lk.next_queries()
        assert len(in_flight) + len(new) <= ALPHA
        in_flight += new
        if lk.done:
            assert not in_flight
            break
        assert in_flight, "not done, yet nothing to ask or wait for"
        rounds += 1
        assert rounds < 1000
        if shuffle:
            dht.rng.shuffle(in_flight)
        info = in_flight.pop()
        if info.node_id in dht.dead:
            lk.failed(info.node_id)
        else:
            lk.answered(
                info.node_id,
                dht.answer(info.node_id, lk.target),
                token=b"tok" + info.node_id[:2],
                values=dht.peers.get(info.node_id, []),
            )
    return rounds


@pytest.mark.parametrize("seed", range(3))
def test_lookup_converges_to_the_k_closest(seed: int) -> None:
    dht = FakeDht(seed=seed)
    target = dht.rng.randbytes(20)
    seeds = dht.rng.sample(dht.infos, 3)
    lk = Lookup(target, OWN, seeds)
    run(dht, lk)
    found = [n.node_id for n, _ in lk.closest_answered()]
    assert found == dht.true_closest(target)
    assert lk.queried < 60  # far fewer than the 200 nodes
    targets = lk.announce_targets()
    assert [n.node_id for n, _ in targets] == found
    assert all(token == b"tok" + n.node_id[:2] for n, token in targets)


@pytest.mark.parametrize("seed", range(3))
def test_lookup_routes_around_dead_nodes(seed: int) -> None:
    dht = FakeDht(seed=seed)
    target = dht.rng.randbytes(20)
    dht.dead = set(dht.true_closest(target, 3))  # the nearest nodes are gone
    for table in dht.tables.values():  # ... and most nodes noticed: seeds may still list them
        if dht.rng.random() < 0.8:
            for dead in dht.dead:
                for _ in range(BAD_AFTER):
                    table.failed(dead, 1.0)
    seeds = [i for i in dht.rng.sample(dht.infos, 6) if i.node_id not in dht.dead][:3]
    lk = Lookup(target, OWN, seeds)
    run(dht, lk)
    assert [n.node_id for n, _ in lk.closest_answered()] == dht.true_closest(target)


def test_lookup_with_many_dead_nodes_still_finds_live_near_ones() -> None:
    dht = FakeDht(seed=11)
    target = dht.rng.randbytes(20)
    dht.dead = set(dht.rng.sample([i.node_id for i in dht.infos], 40))
    seeds = [i for i in dht.infos if i.node_id not in dht.dead][:3]
    lk = Lookup(target, OWN, seeds)
    run(dht, lk)
    found = [n.node_id for n, _ in lk.closest_answered()]
    assert len(found) == 8 and not set(found) & dht.dead
    # The dead stay in everyone's table, so a live node may hide behind them; most do not.
    assert len(set(found) & set(dht.true_closest(target))) >= 6


def test_lookup_collects_peers_once() -> None:
    dht = FakeDht(seed=3)
    target = dht.rng.randbytes(20)
    holders = dht.true_closest(target, 3)
    for h in holders:
        dht.peers[h] = [("10.9.9.9", 1), ("10.9.9.8", 2), ("0.0.0.0", 3)]
    lk = Lookup(target, OWN, dht.rng.sample(dht.infos, 3))
    run(dht, lk)
    assert list(lk.peers) == [("10.9.9.9", 1), ("10.9.9.8", 2)]


def test_at_most_alpha_in_flight_and_waits_for_answers() -> None:
    seeds = [NodeInfo(bytes([i]) * 20, f"10.0.0.{i}", 1) for i in range(1, 9)]
    lk = Lookup(b"\0" * 20, OWN, seeds)
    first = lk.next_queries()
    assert len(first) == ALPHA and lk.next_queries() == []
    # closest first
    assert [n.node_id for n in first] == [bytes([i]) * 20 for i in (1, 2, 3)]
    assert not lk.done
    lk.failed(first[0].node_id)
    assert len(lk.next_queries()) == 1


def test_hostile_answers_are_bounded() -> None:
    target = b"\0" * 20
    seed = NodeInfo(b"\x01" * 20, "10.0.0.1", 1)
    lk = Lookup(target, OWN, [seed], max_candidates=50)
    (asked,) = lk.next_queries()
    junk = [NodeInfo(i.to_bytes(20, "big"), "10.1.0.1", 1000 + i % 60000) for i in range(1, 1000)]
    junk += [
        NodeInfo(OWN, "10.2.0.1", 1),
        NodeInfo(b"\x05" * 20, "10.2.0.2", 0),
        NodeInfo(b"\x06" * 20, "10.1.0.1", 1001),
    ]  # own id, port 0, reused address
    lk.answered(asked.node_id, junk)
    assert len(lk._candidates) <= 50
    assert OWN not in lk._candidates and b"\x05" * 20 not in lk._candidates
    assert b"\x06" * 20 not in lk._candidates


def test_lookup_stops_at_max_queries() -> None:
    dht = FakeDht(n=60, seed=2)
    lk = Lookup(dht.rng.randbytes(20), OWN, dht.infos[:20], max_queries=5)
    run(dht, lk)
    assert lk.queried == 5 and lk.done


def test_empty_lookup_is_done_and_late_answers_are_ignored() -> None:
    lk = Lookup(b"\0" * 20, OWN)
    assert lk.done and lk.next_queries() == [] and lk.closest_answered() == []
    assert lk.answered(b"\x01" * 20, values=[("10.0.0.1", 1)]) == []
    assert not lk.peers
