from __future__ import annotations

from collections.abc import Hashable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from btd.core.availability import Availability, TorrentSwarm
from btd.core.bitfield import Bitfield, BitIndexError
from btd.core.picking import SwarmView
from btd.core.pieces import MAX_SPARE_BUFFERS, BlockResult, PieceBook, PieceState
from btd.core.types import BLOCK_SIZE, BlockRef

BS = 4  # a tiny block size keeps the tests small


class IndexOrder:
    """The simplest picker that keeps the contract."""

    def __init__(self) -> None:
        self.calls = 0

    def choose(self, peer_has: Bitfield, view: SwarmView, count: int) -> list[int]:
        self.calls += 1
        out = [
            i
            for i in peer_has
            if not view.have(i) and not view.in_progress(i) and view.priority(i) > 0
        ]
        return out[:count]


class Rogue:
    """A broken picker: the book must not trust it."""

    def __init__(self, answer: list[int]) -> None:
        self.answer = answer

    def choose(self, peer_has: Bitfield, view: SwarmView, count: int) -> list[int]:
        return list(self.answer)


def content(book: PieceBook, piece: int) -> bytes:
    return bytes((piece * 7 + k) % 251 for k in range(book.piece_size(piece)))


def block_data(book: PieceBook, ref: BlockRef) -> bytes:
    return content(book, ref.piece)[ref.begin : ref.begin + ref.length]


def make(
    n: int = 3, piece_length: int = 3 * BS, total: int | None = None
) -> tuple[PieceBook, Availability, TorrentSwarm]:
    total = n * piece_length if total is None else total
    book = PieceBook(n, piece_length, total, block_size=BS)
    av = Availability(n)
    return book, av, TorrentSwarm(book, av)


def deliver(book: PieceBook, peer: Hashable, refs: list[BlockRef]) -> list[BlockResult]:
    return [book.on_block(peer, r.piece, r.begin, block_data(book, r)) for r in refs]


def test_geometry_and_every_block_once() -> None:
    book, _, swarm = make(3, 3 * BS, 2 * 3 * BS + BS + 1)  # last piece: one block + 1 byte
    full = Bitfield.full(3)
    refs = book.next_requests("a", full, 100, IndexOrder(), swarm)
    assert [(r.piece, r.begin, r.length) for r in refs] == [
        (0, 0, 4), (0, 4, 4), (0, 8, 4),
        (1, 0, 4), (1, 4, 4), (1, 8, 4),
        (2, 0, 4), (2, 4, 1),
    ]  # fmt: skip
    assert book.requests_of("a") == set(refs) and book.pending_count("a") == 8
    assert book.next_requests("a", full, 100, IndexOrder(), swarm) == []  # endgame: nobody else
    assert book.in_endgame
    book.check()


def test_started_pieces_are_continued_before_new_ones() -> None:
    book, _, swarm = make()
    full = Bitfield.full(3)
    picker = IndexOrder()
    first = book.next_requests("a", full, 2, picker, swarm)
    assert [(r.piece, r.begin) for r in first] == [(0, 0), (0, 4)]
    assert book.piece_state(0) is PieceState.DOWNLOADING and swarm.in_progress(0)
    calls = picker.calls
    second = book.next_requests("b", full, 1, picker, swarm)
    assert [(r.piece, r.begin) for r in second] == [(0, 8)]
    assert picker.calls == calls  # no new piece was needed
    third = book.next_requests("b", full, 1, picker, swarm)
    assert [(r.piece, r.begin) for r in third] == [(1, 0)]
    book.check()


def test_book_ignores_what_a_broken_picker_returns() -> None:
    book, _, swarm = make(4)
    book.mark_have(0)
    swarm.set_priority(1, 0)
    peer_has = Bitfield.full(4)
    peer_has.discard(2)
    assert book.next_requests("a", peer_has, 10, Rogue([0, 1, 2, -1, 9]), swarm) == []
    assert book.next_requests("a", peer_has, 10, Rogue([3, 3]), swarm) != []
    assert {r.piece for r in book.requests_of("a")} == {3}
    book.check()


def test_allowed_fast_restricts() -> None:
    book, _, swarm = make(3)
    full = Bitfield.full(3)
    allowed = Bitfield(3)
    allowed.add(2)
    refs = book.next_requests("a", full, 10, IndexOrder(), swarm, allowed=allowed)
    assert {r.piece for r in refs} == {2}
    book.next_requests("b", full, 1, IndexOrder(), swarm)  # starts piece 0, leaves blocks open
    refs = book.next_requests("c", full, 10, IndexOrder(), swarm, allowed=allowed)
    assert refs == []  # piece 0's open blocks are not allowed, piece 2 is fully requested
    book.check()


def test_blocks_complete_verify_and_take() -> None:
    book, _, swarm = make(2)
    full = Bitfield.full(2)
    refs = book.next_requests("a", full, 3, IndexOrder(), swarm)
    results = deliver(book, "a", refs)
    assert results == [BlockResult.ACCEPTED, BlockResult.ACCEPTED, BlockResult.COMPLETE]
    assert book.piece_state(0) is PieceState.VERIFYING and swarm.in_progress(0)
    data = book.take_piece_data(0)
    assert bytes(data) == content(book, 0)
    with pytest.raises(ValueError):
        book.take_piece_data(0)
    assert book.on_verified(0, True) == {"a"}
    assert book.piece_state(0) is PieceState.HAVE and 0 in book.have
    assert book.bytes_left == book.left == 3 * BS and book.progress == 0.5
    with pytest.raises(ValueError):
        book.on_verified(0, True)
    book.check()


def test_unexpected_blocks() -> None:
    book, _, swarm = make(2)
    refs = book.next_requests("a", Bitfield.full(2), 1, IndexOrder(), swarm)
    (ref,) = refs
    good = block_data(book, ref)
    assert book.on_block("b", 0, 0, good) is BlockResult.UNEXPECTED  # not asked of b
    assert book.on_block("a", 0, 4, good) is BlockResult.UNEXPECTED  # not asked for that block
    assert book.on_block("a", 0, 1, good) is BlockResult.UNEXPECTED  # misaligned
    assert book.on_block("a", 5, 0, good) is BlockResult.UNEXPECTED  # no such piece
    assert book.on_block("a", 0, 0, good[:-1]) is BlockResult.UNEXPECTED  # short
    assert book.on_block("a", 0, 0, good) is BlockResult.ACCEPTED
    assert book.on_block("a", 0, 0, good) is BlockResult.UNEXPECTED  # twice
    book.check()


def test_failed_hash_resets_piece_and_names_contributors() -> None:
    book, _, swarm = make(1)
    full = Bitfield.full(1)
    a = book.next_requests("a", full, 2, IndexOrder(), swarm)
    b = book.next_requests("b", full, 2, IndexOrder(), swarm)
    deliver(book, "a", a)
    assert deliver(book, "b", b) == [BlockResult.COMPLETE]
    assert book.on_verified(0, False) == {"a", "b"}
    assert book.piece_state(0) is PieceState.MISSING and not swarm.in_progress(0)
    assert len(book.next_requests("a", full, 10, IndexOrder(), swarm)) == 3
    book.check()


def test_endgame_duplicates_cancels_and_late_copies() -> None:
    book, _, swarm = make(1)
    full = Bitfield.full(1)
    a = book.next_requests("a", full, 10, IndexOrder(), swarm)
    assert len(a) == 3 and book.in_endgame
    b = book.next_requests("b", full, 10, IndexOrder(), swarm)
    assert set(b) == set(a)  # duplicates of a's requests
    assert book.next_requests("c", full, 10, IndexOrder(), swarm) == []  # at most 2 per block
    assert book.next_requests("b", full, 10, IndexOrder(), swarm) == []  # never twice to b
    assert book.on_block("a", 0, 0, block_data(book, a[0])) is BlockResult.ACCEPTED
    assert book.pop_cancels() == [("b", a[0])] and book.pop_cancels() == []
    assert a[0] not in book.requests_of("b")
    assert book.on_block("b", 0, 0, block_data(book, a[0])) is BlockResult.DUPLICATE
    assert book.on_block("b", 0, 0, block_data(book, a[0])) is BlockResult.UNEXPECTED
    # the cancelled block is free again for another duplicate requester
    assert deliver(book, "b", [a[1]]) == [BlockResult.ACCEPTED]
    assert book.pop_cancels() == [("a", a[1])]
    book.check()


def test_reject_choke_gone_return_blocks() -> None:
    book, _, swarm = make(2)
    full = Bitfield.full(2)
    refs = book.next_requests("a", full, 4, IndexOrder(), swarm)
    assert book.on_reject("a", refs[0]) and not book.on_reject("a", refs[0])
    assert not book.on_reject("b", refs[1])
    assert book.next_requests("b", full, 1, IndexOrder(), swarm) == [refs[0]]
    assert set(book.peer_choked("a")) == set(refs[1:])
    assert book.requests_of("a") == set()
    again = book.next_requests("c", full, 10, IndexOrder(), swarm)
    assert set(refs[1:]) <= set(again)
    assert set(book.peer_gone("c")) == set(again) and book.requests_of("c") == set()
    book.check()


def test_timed_out_blocks_are_still_welcome() -> None:
    book, _, swarm = make(1)
    full = Bitfield.full(1)
    refs = book.next_requests("a", full, 3, IndexOrder(), swarm)
    assert set(book.drop_requests("a")) == set(refs) and book.drop_requests("a") == []
    b = book.next_requests("b", full, 1, IndexOrder(), swarm)
    assert b == [refs[-1]] or len(b) == 1
    results = deliver(book, "a", refs)  # late, but the data is still needed
    assert results.count(BlockResult.COMPLETE) == 1
    assert [c[0] for c in book.pop_cancels()] == ["b"]
    assert book.requests_of("b") == set()
    book.check()


def test_mark_have_wanted_and_endgame_flag() -> None:
    book, _, swarm = make(3)
    book.mark_have(1)
    book.mark_have(1)
    assert book.bytes_left == 2 * 3 * BS and swarm.num_have == 1
    with pytest.raises(BitIndexError):
        book.mark_have(3)
    book.next_requests("a", Bitfield.full(3), 3, IndexOrder(), swarm)
    with pytest.raises(ValueError):
        book.mark_have(0)  # in progress
    assert not book.in_endgame  # piece 2 not started
    swarm.set_priority(2, 0)
    assert book.in_endgame
    book.check()


def test_constructor_checks_geometry() -> None:
    with pytest.raises(ValueError):
        PieceBook(3, 10, 31)
    with pytest.raises(ValueError):
        PieceBook(1, 0, 10)


# --- the property-based state machine ------------------------------------------------

PEERS = ("p0", "p1", "p2", "p3")


class PieceBookMachine(RuleBasedStateMachine):
    """Random peers, requests, blocks (good or corrupt), rejects, chokes, departures."""

    @initialize(
        n=st.integers(1, 5),
        blocks=st.integers(1, 3),
        short=st.integers(0, 3 * BS - 1),
    )
    def setup(self, n: int, blocks: int, short: int) -> None:
        piece_length = blocks * BS
        total = n * piece_length - min(short, piece_length - 1)
        self.book = PieceBook(n, piece_length, total, block_size=BS)
        self.av = Availability(n)
        self.swarm = TorrentSwarm(self.book, self.av)
        self.picker = IndexOrder()
        self.n = n
        self.has: dict[str, Bitfield] = {}
        self.asked: dict[str, set[BlockRef]] = {}  # requested and not answered
        self.late: dict[str, set[BlockRef]] = {}  # withdrawn: the peer may still send
        self.corrupt: set[int] = set()
        self.verifying: set[int] = set()
        self.delivered: dict[int, set[str]] = {}

    @rule(peer=st.sampled_from(PEERS), members=st.sets(st.integers(0, 4)), seed=st.booleans())
    def connect(self, peer: str, members: set[int], seed: bool) -> None:
        if peer in self.has:
            return
        if seed:
            members = set(range(self.n))
        bf = Bitfield(self.n)
        for i in members:
            if i < self.n:
                bf.add(i)
        self.has[peer] = bf
        self.av.add_bitfield(bf)
        self.asked[peer] = set()
        self.late[peer] = set()

    @rule(peer=st.sampled_from(PEERS))
    def leave(self, peer: str) -> None:
        if peer not in self.has:
            return
        assert set(self.book.peer_gone(peer)) == self.asked[peer]
        self.av.remove_bitfield(self.has.pop(peer))
        del self.asked[peer], self.late[peer]
        self._drain_cancels()

    @rule(count=st.integers(1, 4))
    def everyone_requests(self, count: int) -> None:
        for peer in sorted(self.has):
            self.request(peer, count, 1)

    @rule(peer=st.sampled_from(PEERS), count=st.integers(1, 6), fast=st.integers(0, 4))
    def request(self, peer: str, count: int, fast: int) -> None:
        if peer not in self.has:
            return
        allowed = None
        if fast == 0:  # choked, with piece 0 allowed-fast
            allowed = Bitfield(self.n)
            allowed.add(0)
        refs = self.book.next_requests(
            peer, self.has[peer], count, self.picker, self.swarm, allowed=allowed
        )
        assert len(refs) <= count and len(set(refs)) == len(refs)
        for r in refs:
            assert r.piece in self.has[peer] and (allowed is None or r.piece in allowed)
            assert self.book.piece_state(r.piece) is PieceState.DOWNLOADING
            assert r not in self.asked[peer]
        self.asked[peer].update(refs)

    @rule(peer=st.sampled_from(PEERS), data=st.data(), bad=st.booleans(), late=st.booleans())
    def block(self, peer: str, data: st.DataObject, bad: bool, late: bool) -> None:
        pool = self.late.get(peer) if late else self.asked.get(peer)
        if not pool:
            return
        ref = data.draw(st.sampled_from(sorted(pool, key=lambda r: (r.piece, r.begin))))
        if ref in self.asked[peer]:  # asked again after a timeout: the live request matches
            self.asked[peer].discard(ref)
            late = False
        else:
            pool.discard(ref)
        payload = bytearray(block_data(self.book, ref))
        if bad:
            payload[0] ^= 0xFF
        result = self.book.on_block(peer, ref.piece, ref.begin, memoryview(payload))
        if not late:
            assert result in (BlockResult.ACCEPTED, BlockResult.COMPLETE)
        if result in (BlockResult.ACCEPTED, BlockResult.COMPLETE):
            self.delivered.setdefault(ref.piece, set()).add(peer)
            if bad:
                self.corrupt.add(ref.piece)
        else:
            assert result is BlockResult.DUPLICATE
        if result is BlockResult.COMPLETE:
            self.verifying.add(ref.piece)
        self._drain_cancels()

    def _drain_cancels(self) -> None:
        for other, ref in self.book.pop_cancels():
            self.asked[other].remove(ref)
            self.late[other].add(ref)

    @rule(peer=st.sampled_from(PEERS), piece=st.integers(0, 4), begin=st.integers(0, 3))
    def stray_block(self, peer: str, piece: int, begin: int) -> None:
        if peer not in self.has:
            return
        ref = BlockRef(piece, begin * BS, BS)
        mine = self.asked[peer] | self.late[peer]
        if any((r.piece, r.begin) == (ref.piece, ref.begin) for r in mine):
            return
        result = self.book.on_block(peer, piece, begin * BS, b"x" * BS)
        assert result is BlockResult.UNEXPECTED, ref

    @rule(peer=st.sampled_from(PEERS), data=st.data())
    def reject(self, peer: str, data: st.DataObject) -> None:
        pool = self.asked.get(peer)
        if not pool:
            return
        ref = data.draw(st.sampled_from(sorted(pool, key=lambda r: (r.piece, r.begin))))
        assert self.book.on_reject(peer, ref)
        pool.discard(ref)

    @rule(peer=st.sampled_from(PEERS))
    def choke(self, peer: str) -> None:
        if peer not in self.has:
            return
        assert set(self.book.peer_choked(peer)) == self.asked[peer]
        self.asked[peer].clear()
        self.late[peer].clear()

    @rule(peer=st.sampled_from(PEERS))
    def timeout(self, peer: str) -> None:
        if peer not in self.has:
            return
        assert set(self.book.drop_requests(peer)) == self.asked[peer]
        self.late[peer] |= self.asked[peer]
        self.asked[peer].clear()

    @precondition(lambda self: self.verifying)
    @rule(data=st.data())
    def verify(self, data: st.DataObject) -> None:
        piece = data.draw(st.sampled_from(sorted(self.verifying)))
        self.verifying.discard(piece)
        got = self.book.take_piece_data(piece)
        ok = bytes(got) == content(self.book, piece)
        assert ok == (piece not in self.corrupt)
        contributors = self.book.on_verified(piece, ok)
        assert contributors == self.delivered.pop(piece)
        self.corrupt.discard(piece)

    @invariant()
    def consistent(self) -> None:
        if not hasattr(self, "book"):
            return
        book = self.book
        book.check()
        self.av.check()
        for peer in PEERS:
            assert book.requests_of(peer) == self.asked.get(peer, set())
        for i in range(self.n):
            state = book.piece_state(i)
            assert (state is PieceState.HAVE) == (i in book.have)
            assert (state is PieceState.VERIFYING) == (i in self.verifying)
        lacking = (i for i in range(self.n) if i not in book.have)
        assert book.bytes_left == sum(book.piece_size(i) for i in lacking)

    def teardown(self) -> None:
        """Every piece completes once a good seed stays long enough."""
        if not hasattr(self, "book"):
            return
        book = self.book
        for piece in sorted(self.verifying):
            book.on_verified(piece, bytes(book.take_piece_data(piece)) == content(book, piece))
        for peer in list(self.has):
            book.peer_gone(peer)
        seed = Bitfield.full(self.n)
        for _ in range(4 * self.n * book.bpp + 4):
            if book.have.complete:
                break
            refs = book.next_requests("seed", seed, 3, self.picker, self.swarm)
            for r in refs:
                result = book.on_block("seed", r.piece, r.begin, block_data(book, r))
                if result is BlockResult.COMPLETE:
                    # may fail: earlier corrupt blocks from peers now gone; then it is redone
                    good = bytes(book.take_piece_data(r.piece)) == content(book, r.piece)
                    book.on_verified(r.piece, good)
        assert book.have.complete and book.bytes_left == 0 and book.progress == 1.0
        book.check()


PieceBookMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=50, deadline=None
)
TestPieceBookMachine = PieceBookMachine.TestCase


def test_recycled_buffer_is_reused_and_fully_overwritten() -> None:
    """A reused piece buffer still yields exactly the new piece's bytes."""
    book = PieceBook(2, 2 * BLOCK_SIZE, 4 * BLOCK_SIZE)

    class InOrder:
        def choose(self, peer_has, view, count):
            return [i for i in range(2) if i in peer_has and not view.in_progress(i)][:count]

    class View:
        num_pieces = 2

        def priority(self, i):
            return 1

        def in_progress(self, i):
            return book.in_progress(i)

    seed = Bitfield.full(2)
    refs = book.next_requests("p", seed, 4, InOrder(), View())
    assert [r.piece for r in refs] == [0, 0, 1, 1]
    for r in refs[:2]:
        book.on_block("p", r.piece, r.begin, b"\x01" * r.length)
    first = book.take_piece_data(0)
    book.on_verified(0, True)
    book.recycle(first)
    for r in refs[2:]:
        book.on_block("p", r.piece, r.begin, b"\x02" * r.length)
    second = book.take_piece_data(1)
    assert second is first  # the same memory, reused
    assert bytes(second) == b"\x02" * (2 * BLOCK_SIZE)


def test_spare_buffers_are_kept_while_downloading_and_dropped_when_complete() -> None:
    """Recycled buffers (up to MAX_SPARE_BUFFERS, more than 16: a full-speed download has
    ~25 pieces in flight or queued) are kept for the next pieces; once every wanted piece
    is had, none is held (a completed torrent that stays loaded keeps no piece memory)."""
    n = MAX_SPARE_BUFFERS + 2
    book, _, swarm = make(n)
    assert MAX_SPARE_BUFFERS >= 32
    refs = book.next_requests("a", Bitfield.full(n), 3 * n, IndexOrder(), swarm)
    deliver(book, "a", refs)
    buffers = [book.take_piece_data(i) for i in range(n)]
    for i in range(n - 1):  # all but the last verified: their buffers come back
        book.recycle(buffers[i])
        book.on_verified(i, True)
    assert book.spare_buffers == MAX_SPARE_BUFFERS
    book.recycle(buffers[n - 1])
    book.on_verified(n - 1, True)
    assert book.wanted_done and book.spare_buffers == 0
    book.recycle(bytearray(3 * BS))  # a late one after completion is not kept either
    assert book.spare_buffers == 0
    book.check()


def test_late_block_in_the_unrequested_part_of_a_restarted_piece() -> None:
    """Found in review: a withdrawn request's late block must not be requested again."""
    bs = 4
    book = PieceBook(1, 8 * bs, 8 * bs, block_size=bs)
    full = Bitfield.full(1)

    class Only0:
        def choose(self, source, view, need):
            return [0][:need] if 0 in source else []

    class View:
        def priority(self, i):
            return 1

    picker, view = Only0(), View()
    book.next_requests("A", full, 8, picker, view)
    book.drop_requests("A")  # A timed out: its late blocks stay welcome
    for r in book.next_requests("B", full, 8, picker, view):
        book.on_block("B", r.piece, r.begin, b"x" * r.length)
    book.take_piece_data(0)
    book.on_verified(0, False)  # B's data was bad: the piece starts over
    first = book.next_requests("C", full, 2, picker, view)
    assert book.on_block("A", 0, 5 * bs, b"a" * bs) is BlockResult.ACCEPTED  # A's late block
    rest = book.next_requests("C", full, 8, picker, view)
    asked = sorted(r.begin // bs for r in first + rest)
    assert asked == [0, 1, 2, 3, 4, 6, 7]  # every block but 5, once
    book.check()
    results = [book.on_block("C", r.piece, r.begin, b"c" * r.length) for r in first + rest]
    assert results[-1] is BlockResult.COMPLETE and results.count(BlockResult.COMPLETE) == 1
