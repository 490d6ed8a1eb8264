from __future__ import annotations

import random
from collections import Counter

import pytest

from btd.core.choker import ChokeCandidate, Choker


def cand(
    key: str,
    down: float = 0.0,
    up: float = 0.0,
    *,
    interested: bool = True,
    snubbed: bool = False,
    new: bool = False,
) -> ChokeCandidate:
    return ChokeCandidate(key, interested, down, up, snubbed=snubbed, new=new)


PEERS = [cand("a", 500), cand("b", 400), cand("c", 300), cand("d", 200), cand("e", 100),
         cand("f", 50)]  # fmt: skip


def test_tit_for_tat_picks_fastest_uploaders_plus_one_optimistic() -> None:
    choker = Choker(slots=4, rng=random.Random(1))
    chosen = choker.rechoke(PEERS, seeding=False, optimistic_due=True)
    assert {"a", "b", "c"} < chosen and len(chosen) == 4
    assert choker.optimistic in chosen and choker.optimistic in {"d", "e", "f"}


def test_optimistic_kept_until_due() -> None:
    choker = Choker(slots=4, rng=random.Random(2))
    choker.rechoke(PEERS, seeding=False, optimistic_due=True)
    first = choker.optimistic
    for _ in range(5):
        assert first in choker.rechoke(PEERS, seeding=False, optimistic_due=False)
        assert choker.optimistic == first
    seen = {choker.optimistic}
    for _ in range(30):
        choker.rechoke(PEERS, seeding=False, optimistic_due=True)
        seen.add(choker.optimistic)
    assert seen == {"d", "e", "f"}  # rotates among the choked interested peers


def test_kept_optimistic_does_not_take_a_regular_slot() -> None:
    choker = Choker(slots=3, rng=random.Random(3))
    choker.rechoke(PEERS, seeding=False, optimistic_due=True)
    opt = choker.optimistic
    # the optimistic peer becomes the fastest; it keeps its slot and two others are regular
    faster = [cand(c.key, 10_000 if c.key == opt else c.download_rate) for c in PEERS]
    chosen = choker.rechoke(faster, seeding=False, optimistic_due=False)
    others = [c.key for c in PEERS if c.key != opt][:2]
    assert chosen == frozenset({opt, *others})


def test_uninterested_and_snubbed() -> None:
    peers = [cand("fast", 900, interested=False), cand("snub", 800, snubbed=True),
             cand("x", 10), cand("y", 5)]  # fmt: skip
    choker = Choker(slots=3, rng=random.Random(4))
    chosen = choker.rechoke(peers, seeding=False, optimistic_due=True)
    assert "fast" not in chosen
    assert {"x", "y"} <= chosen  # snubbed peers do not get tit-for-tat slots
    assert chosen == {"x", "y", "snub"}  # ... but may be the optimistic unchoke


def test_seeding_ranks_by_upload_rate() -> None:
    peers = [cand("a", down=1000, up=1), cand("b", up=300), cand("c", up=200), cand("d", up=100),
             cand("e", up=0)]  # fmt: skip
    choker = Choker(slots=3, rng=random.Random(5))
    chosen = choker.rechoke(peers, seeding=True, optimistic_due=True)
    assert {"b", "c"} <= chosen and len(chosen) == 3


def test_gone_optimistic_is_replaced_at_once_and_few_peers() -> None:
    choker = Choker(slots=4, rng=random.Random(6))
    choker.rechoke(PEERS, seeding=False, optimistic_due=True)
    opt = choker.optimistic
    rest = [c for c in PEERS if c.key != opt]
    chosen = choker.rechoke(rest, seeding=False, optimistic_due=False)
    assert opt not in chosen and len(chosen) == 4 and choker.optimistic in chosen
    assert choker.rechoke([], seeding=False, optimistic_due=True) == frozenset()
    assert choker.optimistic is None
    assert choker.rechoke(PEERS[:2], seeding=False, optimistic_due=True) == {"a", "b"}


def test_new_peers_are_likelier_optimistic() -> None:
    peers = [cand("a", 500), cand("old1"), cand("old2"), cand("new", new=True)]
    choker = Choker(slots=2, rng=random.Random(7))
    picks = Counter()
    for _ in range(2000):
        choker.rechoke(peers, seeding=False, optimistic_due=True)
        picks[choker.optimistic] += 1
    assert picks["a"] == 0
    assert 2.2 < picks["new"] / ((picks["old1"] + picks["old2"]) / 2) < 4.0


def test_ties_broken_at_random_but_deterministically() -> None:
    peers = [cand(k, 100) for k in "abcdefgh"]
    runs = [
        Choker(slots=4, rng=random.Random(8)).rechoke(peers, seeding=False, optimistic_due=True)
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    many = {
        Choker(slots=4, rng=random.Random(s)).rechoke(peers, seeding=False, optimistic_due=True)
        for s in range(20)
    }
    assert len(many) > 1


def test_slots_validated_and_single_slot() -> None:
    with pytest.raises(ValueError):
        Choker(slots=0)
    choker = Choker(slots=1, rng=random.Random(9))
    assert len(choker.rechoke(PEERS, seeding=False, optimistic_due=True)) == 1
