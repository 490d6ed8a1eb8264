from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btd.core.availability import Availability, TorrentSwarm
from btd.core.bitfield import Bitfield
from btd.core.errors import ConfigError
from btd.core.pieces import PieceBook
from btd.core.plugin import make_plugin_manager
from btd.plugins import rarest_first
from btd.plugins.rarest_first import RarestFirst


def swarm_with(counts: list[int], have: set[int] = frozenset(), prio: list[int] | None = None):
    n = len(counts)
    book = PieceBook(n, 16, 16 * n, block_size=16)
    for i in have:
        book.mark_have(i)
    av = Availability(n)
    for i, c in enumerate(counts):
        for _ in range(c):
            av.add_have(i)
    return book, av, TorrentSwarm(book, av, prio)


class CountingView:
    """Wraps a view and counts how many pieces the picker looked at."""

    def __init__(self, view: TorrentSwarm) -> None:
        self.view = view
        self.looked = 0

    def __getattr__(self, name: str):
        return getattr(self.view, name)

    def in_progress(self, index: int) -> bool:
        self.looked += 1
        return self.view.in_progress(index)

    def have(self, index: int) -> bool:
        self.looked += 1
        return self.view.have(index)


def test_hook_answers_only_its_name() -> None:
    host = make_plugin_manager({"rarest_first": {}})
    _, _, view = swarm_with([0])
    assert isinstance(host.first("btd_piece_picker", name="rarest-first", view=view), RarestFirst)
    assert host.first("btd_piece_picker", name="sequential", view=view) is None
    assert rarest_first.RarestFirstPlugin().btd_piece_picker(name="other", view=view) is None


def test_rarest_first_after_random_start() -> None:
    _, _, view = swarm_with([3, 1, 2, 5, 1, 9, 9, 9, 9], have={5, 6, 7, 8})
    picker = RarestFirst(random.Random(1))
    full = Bitfield.full(9)
    assert set(picker.choose(full, view, 2)) == {1, 4}
    assert picker.choose(full, view, 5)[2:] == [2, 0, 3]
    peer = Bitfield(9)
    peer.add(0)
    peer.add(3)
    assert picker.choose(peer, view, 5) == [0, 3]


def test_skips_in_progress_unwanted_and_had() -> None:
    prio = [1, 0, 1, 1, 1, 1, 1, 1, 1]
    book, _, view = swarm_with([1, 1, 1, 2, 2, 9, 9, 9, 9], have={5, 6, 7, 8}, prio=prio)
    book.next_requests("x", Bitfield.full(9), 1, SimpleNamespace(choose=lambda *a: [2]), view)
    assert view.in_progress(2)
    got = RarestFirst(random.Random(2)).choose(Bitfield.full(9), view, 10)
    assert got[0] == 0 and set(got) == {0, 3, 4}


def test_ties_are_broken_at_random() -> None:
    _, _, view = swarm_with([1] * 20 + [5] * 4, have={20, 21, 22, 23})
    full = Bitfield.full(24)
    firsts = {RarestFirst(random.Random(s)).choose(full, view, 1)[0] for s in range(30)}
    assert len(firsts) > 5 and firsts <= set(range(20))


def test_random_start_picks_among_available_pieces() -> None:
    _, _, view = swarm_with([1] + [9] * 63)
    picks = {RarestFirst(random.Random(s)).choose(Bitfield.full(64), view, 1)[0] for s in range(20)}
    assert len(picks) > 5  # not always the rarest piece 0
    sparse = Bitfield(64)
    sparse.add(7)
    sparse.add(40)
    assert sorted(RarestFirst(random.Random(3)).choose(sparse, view, 4)) == [7, 40]
    assert RarestFirst(random.Random(3), random_start=0).choose(Bitfield.full(64), view, 1) == [0]


def test_nothing_to_offer() -> None:
    _, _, view = swarm_with([1, 1], have={0})
    peer = Bitfield(2)
    picker = RarestFirst(random.Random(4))
    assert picker.choose(peer, view, 3) == []
    peer.add(0)
    assert picker.choose(peer, view, 3) == [] and picker.choose(Bitfield.full(2), view, 0) == []


def test_large_torrent_looks_at_few_pieces() -> None:
    n = 100_000
    book = PieceBook(n, 16, 16 * n, block_size=16)
    av = Availability(n)
    rng = random.Random(5)
    for _ in range(3):  # three partial peers with random pieces, plus seeds
        bf = Bitfield(n)
        for i in rng.sample(range(n), n // 2):
            bf.add(i)
        av.add_bitfield(bf)
    av.add_all()
    view = TorrentSwarm(book, av)
    for i in range(4):
        book.mark_have(i)
    counting = CountingView(view)
    picker = RarestFirst(random.Random(6))
    got = picker.choose(Bitfield.full(n), counting, 4)
    assert len(got) == 4 and counting.looked < 50
    rarest = min(av.count(i) for i in range(4, n))
    assert all(av.count(i) == rarest for i in got)
    # a peer with 10 pieces, all common: the picker scans the peer, not the torrent
    few = Bitfield(n)
    common = [i for i in range(4, n) if av.count(i) == 4][:10]
    for i in common:
        few.add(i)
    counting.looked = 0
    assert sorted(picker.choose(few, counting, 20)) == common
    assert counting.looked < 200


@settings(max_examples=150, deadline=None)
@given(
    counts=st.lists(st.integers(0, 4), min_size=1, max_size=30),
    data=st.data(),
    count=st.integers(1, 8),
)
def test_matches_brute_force(counts: list[int], data: st.DataObject, count: int) -> None:
    n = len(counts)
    have = data.draw(st.sets(st.integers(0, n - 1)))
    prio = data.draw(st.lists(st.sampled_from([0, 1, 1]), min_size=n, max_size=n))
    peer_pieces = data.draw(st.sets(st.integers(0, n - 1)))
    _, av, view = swarm_with(counts, have, prio)
    peer = Bitfield(n)
    for i in peer_pieces:
        peer.add(i)
    picker = RarestFirst(random.Random(data.draw(st.integers(0, 99))), random_start=0)
    got = picker.choose(peer, view, count)
    eligible = [i for i in peer_pieces if i not in have and prio[i] > 0]
    assert len(got) == len(set(got)) == min(count, len(eligible))
    assert set(got) <= set(eligible)
    assert sorted(av.count(i) for i in got) == sorted(av.count(i) for i in eligible)[: len(got)]
    assert [av.count(i) for i in got] == sorted(av.count(i) for i in got)
    early = RarestFirst(random.Random(1)).choose(peer, view, count)
    assert set(early) <= set(eligible) and len(early) == min(count, len(eligible))


def test_configure() -> None:
    plugin = rarest_first.RarestFirstPlugin()
    plugin.btd_configure(SimpleNamespace(plugins={"rarest_first": {"random_start": 0}}))
    assert plugin.btd_piece_picker(name="rarest-first", view=None).random_start == 0
    assert (
        rarest_first.RarestFirstPlugin()
        .btd_piece_picker(name="rarest-first", view=None)
        .random_start
        == 4
    )  # another instance: its own setting
    plugin.btd_configure(SimpleNamespace(plugins={}))
    assert plugin.btd_piece_picker(name="rarest-first", view=None).random_start == 4
    for bad in ({"random_start": -1}, {"random_start": True}, {"nope": 1}):
        with pytest.raises(ConfigError):
            plugin.btd_configure(SimpleNamespace(plugins={"rarest_first": bad}))
    with pytest.raises(ConfigError, match=r"did you mean random_start\?"):
        plugin.btd_configure(SimpleNamespace(plugins={"rarest_first": {"random_starts": 1}}))
