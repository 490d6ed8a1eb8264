from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from btd.core.availability import Availability, TorrentSwarm
from btd.core.bitfield import Bitfield, BitIndexError
from btd.core.pieces import PieceBook


def bf_of(n: int, members: list[int]) -> Bitfield:
    bf = Bitfield(n)
    for i in members:
        bf.add(i)
    return bf


def buckets(av: Availability) -> list[set[int]]:
    return [set(seq[lo:hi]) for seq, lo, hi in av.rarity_buckets()]


def test_counts_and_seeds() -> None:
    av = Availability(4)
    av.add_bitfield(bf_of(4, [0, 1]))
    av.add_have(1)
    av.add_all()
    assert [av.count(i) for i in range(4)] == [2, 3, 1, 1]
    av.remove_all()
    av.remove_bitfield(bf_of(4, [0, 1]))
    assert [av.count(i) for i in range(4)] == [0, 1, 0, 0]
    with pytest.raises(ValueError):
        av.remove_all()
    with pytest.raises(ValueError):
        av.remove_bitfield(bf_of(4, [2]))
    with pytest.raises(BitIndexError):
        av.add_have(4)
    with pytest.raises(ValueError):
        av.add_bitfield(Bitfield(5))
    av.check()


def test_rarity_buckets_ascend_and_seeds_do_not_reorder() -> None:
    av = Availability(5)
    av.add_bitfield(bf_of(5, [0, 1, 2]))
    av.add_bitfield(bf_of(5, [0, 1]))
    av.add_have(0)
    av.add_all()
    assert buckets(av) == [{3, 4}, {2}, {1}, {0}]
    av.retire(1)
    av.retire(3)
    assert buckets(av) == [{4}, {2}, {0}]
    av.check()
    av.restore(1)
    av.restore(3)
    av.restore(3)
    assert buckets(av) == [{3, 4}, {2}, {1}, {0}]
    av.check()


def test_retired_piece_counts_still_change() -> None:
    av = Availability(3)
    av.retire(2)
    for _ in range(3):
        av.add_have(2)
    assert av.count(2) == 3 and buckets(av) == [{0, 1}]
    av.restore(2)
    assert buckets(av) == [{0, 1}, {2}]
    av.check()


class AvailabilityMachine(RuleBasedStateMachine):
    """Availability against a plain dict model, through every kind of change."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 7
        self.av = Availability(self.n)
        self.peers: list[set[int]] = []
        self.seeds = 0
        self.retired: set[int] = set()

    @rule(members=st.sets(st.integers(0, 6)))
    def connect(self, members: set[int]) -> None:
        self.av.add_bitfield(bf_of(self.n, sorted(members)))
        self.peers.append(set(members))

    @precondition(lambda self: self.peers)
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        k = data.draw(st.integers(0, len(self.peers) - 1))
        self.av.remove_bitfield(bf_of(self.n, sorted(self.peers.pop(k))))

    @precondition(lambda self: self.peers)
    @rule(data=st.data(), piece=st.integers(0, 6))
    def have(self, data: st.DataObject, piece: int) -> None:
        k = data.draw(st.integers(0, len(self.peers) - 1))
        if piece not in self.peers[k]:
            self.peers[k].add(piece)
            self.av.add_have(piece)

    @rule()
    def seed_joins(self) -> None:
        self.av.add_all()
        self.seeds += 1

    @precondition(lambda self: self.seeds)
    @rule()
    def seed_leaves(self) -> None:
        self.av.remove_all()
        self.seeds -= 1

    @rule(piece=st.integers(0, 6))
    def retire(self, piece: int) -> None:
        self.av.retire(piece)
        self.retired.add(piece)

    @rule(piece=st.integers(0, 6))
    def restore(self, piece: int) -> None:
        self.av.restore(piece)
        self.retired.discard(piece)

    @invariant()
    def matches_model(self) -> None:
        self.av.check()
        counts = [sum(i in p for p in self.peers) for i in range(self.n)]
        assert [self.av.count(i) for i in range(self.n)] == [c + self.seeds for c in counts]
        seen: list[int] = []
        for seq, lo, hi in self.av.rarity_buckets():
            group = list(seq[lo:hi])
            assert len({counts[i] for i in group}) == 1
            seen.extend(group)
        assert sorted(seen) == sorted(set(range(self.n)) - self.retired)
        assert [counts[i] for i in seen] == sorted(counts[i] for i in seen)


AvailabilityMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None
)
TestAvailability = AvailabilityMachine.TestCase


def test_torrent_swarm_view() -> None:
    book = PieceBook(4, 16, 60, block_size=8)
    book.mark_have(0)
    av = Availability(4)
    av.add_bitfield(bf_of(4, [1, 2]))
    av.add_all()
    swarm = TorrentSwarm(book, av, [1, 1, 0, 1])
    assert swarm.num_pieces == 4 and swarm.num_have == 1
    assert swarm.have(0) and not swarm.have(1)
    assert swarm.availability(1) == 2 and swarm.availability(3) == 1
    assert swarm.priority(2) == 0 and not swarm.in_progress(1)
    # only pieces we lack with priority > 0 are ranked, rarest first
    assert [set(s[lo:hi]) for s, lo, hi in swarm.rarity_buckets()] == [{3}, {1}]
    book.mark_have(3)  # the swarm hears of it and retires the piece
    assert [set(s[lo:hi]) for s, lo, hi in swarm.rarity_buckets()] == [{1}]
    swarm.set_priority(2, 1)
    assert [set(s[lo:hi]) for s, lo, hi in swarm.rarity_buckets()] == [{1, 2}]
    swarm.set_priority(1, 0)
    assert [set(s[lo:hi]) for s, lo, hi in swarm.rarity_buckets()] == [{2}]
    with pytest.raises(ValueError):
        swarm.set_priority(1, 256)
    with pytest.raises(ValueError):
        TorrentSwarm(book, Availability(5))
    av.check()
