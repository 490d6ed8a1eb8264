"""PieceReadCache: one read per piece, shared by concurrent requests, bounded by bytes."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer

from btd.core.errors import StorageError
from btd.core.piece_cache import PieceReadCache


class Reads:
    """A read function whose Deferreds the test fires by hand."""

    def __init__(self) -> None:
        self.pending: dict[int, defer.Deferred[bytes]] = {}
        self.calls: list[int] = []

    def __call__(self, index: int) -> defer.Deferred[bytes]:
        self.calls.append(index)
        d: defer.Deferred[bytes] = defer.Deferred()
        self.pending[index] = d
        return d

    def finish(self, index: int, size: int = 10) -> None:
        self.pending.pop(index).callback(bytes([index]) * size)


def results(ds: list[defer.Deferred[Any]]) -> list[Any]:
    out: list[Any] = []
    for d in ds:
        d.addBoth(out.append)
    return out


def test_concurrent_gets_share_one_read() -> None:
    reads = Reads()
    cache = PieceReadCache(reads)
    got = results([cache.get(3), cache.get(3), cache.get(4), cache.get(3)])
    assert reads.calls == [3, 4] and got == []
    reads.finish(3)
    assert got == [b"\x03" * 10] * 3
    reads.finish(4)
    assert len(got) == 4
    assert results([cache.get(3)]) == [b"\x03" * 10]  # a hit: no new read
    assert reads.calls == [3, 4]


def test_least_recently_used_piece_goes_past_the_budget() -> None:
    reads = Reads()
    cache = PieceReadCache(reads, budget=30)
    for i in (1, 2, 3):
        cache.get(i)
        reads.finish(i)
    cache.get(1)  # 1 is now the most recent; 2 the least
    cache.get(4)
    reads.finish(4)
    assert reads.calls == [1, 2, 3, 4]
    for i in (1, 3, 4):
        cache.get(i)
    assert reads.calls == [1, 2, 3, 4]
    cache.get(2)
    assert reads.calls == [1, 2, 3, 4, 2]


def test_a_piece_over_the_budget_is_served_but_not_kept() -> None:
    reads = Reads()
    cache = PieceReadCache(reads, budget=5)
    got = results([cache.get(1)])
    reads.finish(1, size=10)
    assert got == [b"\x01" * 10]
    cache.get(1)
    assert reads.calls == [1, 1]


def test_an_error_reaches_every_waiter_and_is_not_cached() -> None:
    reads = Reads()
    cache = PieceReadCache(reads)
    got = results([cache.get(7), cache.get(7)])
    reads.pending.pop(7).errback(StorageError("disk gone"))
    assert len(got) == 2
    for f in got:
        assert isinstance(f, defer.Failure) and f.check(StorageError)
    cache.get(7)
    assert reads.calls == [7, 7]  # tried again


def test_a_read_that_raises_at_once_fails_the_get_and_does_not_block_the_piece() -> None:
    calls = []

    def read(index: int) -> defer.Deferred[bytes]:
        calls.append(index)
        if len(calls) == 1:
            raise StorageError("no such piece")
        return defer.succeed(b"ok")

    cache = PieceReadCache(read)
    first = results([cache.get(2)])
    assert isinstance(first[0], defer.Failure) and first[0].check(StorageError)
    assert results([cache.get(2)]) == [b"ok"]


def test_clear_empties_the_cache() -> None:
    reads = Reads()
    cache = PieceReadCache(reads)
    cache.get(1)
    reads.finish(1)
    cache.clear()
    cache.get(1)
    assert reads.calls == [1, 1]


@pytest.mark.parametrize("n", [1, 50])
def test_a_read_finishing_during_clear_still_answers(n: int) -> None:
    reads = Reads()
    cache = PieceReadCache(reads)
    got = results([cache.get(5) for _ in range(n)])
    cache.clear()
    reads.finish(5)
    assert got == [b"\x05" * 10] * n


def test_get_many_reads_the_missing_pieces_in_one_call() -> None:
    reads = Reads()
    batches: list[list[int]] = []
    pending: list[defer.Deferred[list[bytes]]] = []

    def read_many(indices: list[int]) -> defer.Deferred[list[bytes]]:
        batches.append(list(indices))
        pending.append(defer.Deferred())
        return pending[-1]

    cache = PieceReadCache(reads, read_many=read_many)
    first = results([cache.get(1)])  # a single read in flight for piece 1
    got = results(cache.get_many([1, 2, 3]))
    assert batches == [[2, 3]] and reads.calls == [1]
    pending[0].callback([b"\x02" * 10, b"\x03" * 10])
    reads.finish(1)
    assert first == [b"\x01" * 10]
    assert sorted(got) == [b"\x01" * 10, b"\x02" * 10, b"\x03" * 10]
    assert results(cache.get_many([2, 3])) == [b"\x02" * 10, b"\x03" * 10] and len(batches) == 1
    failed = results(cache.get_many([4, 5]))
    pending[1].errback(StorageError("disk gone"))
    assert [f.check(StorageError) for f in failed] == [StorageError, StorageError]
    assert not cache.loading(4) and not cache.loading(5)
