from __future__ import annotations

from types import SimpleNamespace

import pytest

from btd.core.availability import Availability, TorrentSwarm
from btd.core.bitfield import Bitfield
from btd.core.errors import ConfigError
from btd.core.pieces import PieceBook
from btd.core.plugin import make_plugin_manager
from btd.plugins import sequential
from btd.plugins.sequential import Sequential


def make(n: int, prio: list[int] | None = None) -> tuple[PieceBook, TorrentSwarm]:
    book = PieceBook(n, 16, 16 * n, block_size=16)
    return book, TorrentSwarm(book, Availability(n), prio)


def bf(n: int, members) -> Bitfield:
    out = Bitfield(n)
    for i in members:
        out.add(i)
    return out


def test_hook_answers_only_its_name() -> None:
    host = make_plugin_manager({"sequential": {}})
    _, view = make(2)
    assert isinstance(host.first("btd_piece_picker", name="sequential", view=view), Sequential)
    assert host.first("btd_piece_picker", name="rarest-first", view=view) is None


def test_index_order_from_first_missing() -> None:
    book, view = make(10)
    book.mark_have(0)
    book.mark_have(2)
    picker = Sequential(window=5)
    assert picker.choose(Bitfield.full(10), view, 3) == [1, 3, 4]
    book.mark_have(1)
    assert picker.choose(bf(10, [3, 5, 9]), view, 10) == [3, 5]  # 9 is beyond the window
    assert picker.choose(bf(10, [9]), view, 10) == []
    assert picker.choose(Bitfield.full(10), view, 0) == []


def test_skips_in_progress_and_unwanted() -> None:
    book, view = make(8, [1, 0, 0, 1, 1, 1, 1, 1])
    picker = Sequential(window=3)
    book.next_requests("p", Bitfield.full(8), 1, picker, view)  # starts piece 0
    assert view.in_progress(0)
    # the window is 3 wanted pieces: 0 (in progress), 3, 4; unwanted 1 and 2 do not count
    assert picker.choose(Bitfield.full(8), view, 10) == [3, 4]


def test_cursor_moves_forward() -> None:
    book, view = make(1000)
    picker = Sequential(window=2)
    for i in range(990):
        book.mark_have(i)
    assert picker.choose(Bitfield.full(1000), view, 5) == [990, 991]
    assert picker._cursor == 990


def test_window_validated_and_configured() -> None:
    with pytest.raises(ValueError):
        Sequential(window=0)
    plugin = sequential.SequentialPlugin()
    plugin.btd_configure(SimpleNamespace(plugins={"sequential": {"window": 8}}))
    assert plugin.btd_piece_picker(name="sequential", view=None).window == 8
    other = sequential.SequentialPlugin()
    assert other.btd_piece_picker(name="sequential", view=None).window == 64
    plugin.btd_configure(SimpleNamespace(plugins={}))
    assert plugin.btd_piece_picker(name="sequential", view=None).window == 64
    for bad in ({"window": 0}, {"window": "8"}, {"other": 1}):
        with pytest.raises(ConfigError):
            plugin.btd_configure(SimpleNamespace(plugins={"sequential": bad}))
