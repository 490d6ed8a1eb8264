"""File selection: per-file wanted/priority -> piece priorities; the pickers honour them."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from btd.core.availability import Availability, TorrentSwarm
from btd.core.bitfield import Bitfield
from btd.core.file_selection import (
    PRIORITIES,
    FileSelection,
    FileSelectionError,
    check_indices,
    check_priority,
)
from btd.core.pieces import PieceBook
from btd.plugins.rarest_first import RarestFirst
from btd.plugins.sequential import Sequential

LOW, NORMAL, HIGH = PRIORITIES["low"], PRIORITIES["normal"], PRIORITIES["high"]


@dataclass(frozen=True)
class F:
    length: int
    pad: bool = False


# piece length 10: file 0 = bytes 0..24 (pieces 0-2), file 1 = 25..44 (pieces 2-4),
# file 2 = 45..99 (pieces 4-9); pieces 2 and 4 span two files.
FILES = [F(25), F(20), F(55)]
PL, TOTAL = 10, 100


def selection() -> FileSelection:
    return FileSelection(FILES, PL, TOTAL)


def test_default_is_everything_at_normal() -> None:
    s = selection()
    assert s.default and s.skipped() == [] and s.to_options() == {}
    assert list(s.piece_priorities()) == [NORMAL] * 10


def test_a_spanning_piece_takes_the_highest_of_its_files() -> None:
    s = selection()
    assert s.set([1], wanted=False)
    assert list(s.piece_priorities()) == [4, 4, 4, 0, 4, 4, 4, 4, 4, 4]
    s.set([2], priority=HIGH)
    assert list(s.piece_priorities()) == [4, 4, 4, 0, 7, 7, 7, 7, 7, 7]
    s.set([0], wanted=False)
    assert list(s.piece_priorities()) == [0, 0, 0, 0, 7, 7, 7, 7, 7, 7]
    # a skipped file keeps its priority for when it is wanted again
    s.set([0], priority=LOW)
    assert not s.set([0], priority=LOW)
    s.set([0], wanted=True)
    assert list(s.piece_priorities()) == [1, 1, 1, 0, 7, 7, 7, 7, 7, 7]


def test_pad_and_empty_files_do_not_make_pieces_wanted() -> None:
    s = FileSelection([F(10), F(0), F(10, pad=True), F(10)], 10, 30)
    s.set([0, 3], wanted=False)
    assert list(s.piece_priorities()) == [0, 0, 0]


def test_options_round_trip_and_bad_values_name_the_field() -> None:
    s = selection()
    s.set([0, 2], wanted=False)
    s.set([1], priority=HIGH)
    stored = s.to_options()
    assert stored == {"files_skipped": [0, 2], "file_priorities": {"1": "high"}}
    back = selection()
    back.load_options(stored)
    assert list(back.piece_priorities()) == list(s.piece_priorities())
    assert back.priority_name(1) == "high" and back.priority_name(0) == "normal"
    for bad in ([3], [-1], ["1"], 1, [True]):
        with pytest.raises(FileSelectionError) as info:
            selection().load_options({"files_skipped": bad})
        assert info.value.field == "files_skipped"
    with pytest.raises(FileSelectionError, match="one of"):
        selection().load_options({"file_priorities": {"1": "urgent"}})
    with pytest.raises(FileSelectionError, match="file index"):
        selection().load_options({"file_priorities": {"7": "high"}})
    assert check_indices("indices", [2, 0, 2], 3) == [0, 2]
    assert check_priority("priority", "low") == LOW


def swarm(priorities: list[int]) -> tuple[PieceBook, TorrentSwarm]:
    book = PieceBook(10, PL, TOTAL, block_size=PL)
    view = TorrentSwarm(book, Availability(10), priorities)
    return book, view


@pytest.mark.parametrize("picker", [RarestFirst(random.Random(1)), Sequential(window=4)])
def test_pickers_take_higher_priorities_first_and_never_skipped_pieces(picker: object) -> None:
    s = selection()
    s.set([0], priority=HIGH)
    s.set([1], wanted=False)
    book, view = swarm(list(s.piece_priorities()))
    everything = Bitfield.full(10)
    assert view.priority_levels() == (HIGH, NORMAL)
    first = picker.choose(everything, view, 3)  # type: ignore[attr-defined]
    assert sorted(first) == [0, 1, 2]  # the high file's pieces (2 spans into skipped 1)
    for i in range(3):
        book.mark_have(i)
    rest = picker.choose(everything, view, 10)  # type: ignore[attr-defined]
    assert 3 not in rest and rest and set(rest) <= {4, 5, 6, 7, 8, 9}
    # nothing but priority 0 left once the wanted pieces are had: the book says complete
    for i in range(4, 10):
        book.mark_have(i)
    assert book.wanted_done and not book.have.complete
    assert picker.choose(everything, view, 10) == []  # type: ignore[attr-defined]


def test_sequential_keeps_index_order_within_a_priority() -> None:
    s = selection()
    s.set([2], priority=HIGH)
    _, view = swarm(list(s.piece_priorities()))
    got = Sequential(window=3).choose(Bitfield.full(10), view, 10)
    assert got[:3] == [4, 5, 6]  # the high file first, in order, within the window
    assert got[3:] == [0, 1, 2]  # then the normal ones, in order


def test_book_tracks_wanted_bytes_and_left() -> None:
    book, view = swarm([4] * 10)
    assert (book.wanted_bytes, book.wanted_left) == (100, 100)
    view.set_priorities([0, 0, 0, 4, 4, 4, 4, 4, 4, 4])
    assert (book.wanted_bytes, book.wanted_left) == (70, 70)
    book.mark_have(0)  # had before it was skipped: counts in neither
    book.mark_have(5)
    assert (book.wanted_bytes, book.wanted_left) == (70, 60)
    view.set_priorities([4] * 10)
    assert (book.wanted_bytes, book.wanted_left) == (100, 80)
    book.check()
    assert view.priority_levels() == (NORMAL,)
