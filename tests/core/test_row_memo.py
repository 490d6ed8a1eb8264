"""RowMemo: an idle torrent's list row is built once and reused until what it shows changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from session_harness import content, make_session, result, single

from btd.core import torrent_status as status
from btd.core.session import Session

DATA = content(40_000, 1)
FIELDS = ["info_hash", "state", "progress", "labels"]


def loaded(tmp_path: Path, n: int = 3) -> tuple[Session, list[Any]]:
    session = make_session(tmp_path)
    for i in range(n):
        result(session.add(single(f"f{i}.bin", content(20_000, i)), paused=True))
    return session, sorted(session.torrents.values(), key=lambda t: t.added_at)


def rows(memo: status.RowMemo, session: Session, torrents: list[Any], fields: Any = None) -> Any:
    return memo.rows(torrents, fields, session.clock.seconds(), lambda t: {"other": True})


def test_an_unchanged_idle_torrent_reuses_its_row(tmp_path: Path) -> None:
    session, torrents = loaded(tmp_path)
    memo = status.RowMemo()
    first = rows(memo, session, torrents)
    again = rows(memo, session, torrents)
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert again == [status.summary(t) for t in torrents]


def test_a_change_builds_that_row_again(tmp_path: Path) -> None:
    session, torrents = loaded(tmp_path)
    memo = status.RowMemo()
    first = rows(memo, session, torrents, FIELDS)
    result(torrents[1].resume())
    torrents[2].queue_move("top")  # every queue position moves
    again = rows(memo, session, torrents, FIELDS)
    assert again == [status.summary(t, FIELDS) for t in torrents]
    assert again[1]["state"] != first[1]["state"]


def test_field_sets_are_kept_apart_and_bounded(tmp_path: Path) -> None:
    session, torrents = loaded(tmp_path, 1)
    memo = status.RowMemo()
    sets = [["state"], ["name"], ["size"], ["progress"]]
    first = {}
    for fields in sets:
        first[fields[0]] = rows(memo, session, torrents, fields)[0]
        assert first[fields[0]] == status.summary(torrents[0], fields)
    for fields in sets[1:]:  # the newest MAX_FIELD_SETS (3) are kept
        assert rows(memo, session, torrents, fields)[0] is first[fields[0]]
    again = rows(memo, session, torrents, ["state"])[0]  # the oldest was dropped
    assert again == first["state"] and again is not first["state"]


def test_a_torrent_that_left_leaves_the_memo_and_others_pass_through(tmp_path: Path) -> None:
    session, torrents = loaded(tmp_path, 2)
    memo = status.RowMemo()
    first = rows(memo, session, torrents)
    out = memo.rows([torrents[0], "a magnet"], None, session.clock.seconds(), lambda t: {"m": t})
    assert out[0] is first[0] and out[1] == {"m": "a magnet"}
    back = rows(memo, session, torrents)
    assert back[1] == first[1] and back[1] is not first[1]


def test_seeding_time_moves_the_row(tmp_path: Path) -> None:
    session, torrents = loaded(tmp_path, 1)
    t = torrents[0]
    memo = status.RowMemo()
    before = rows(memo, session, torrents, ["seeding_time"])
    t.seed_clock.since = session.clock.seconds()  # seeding from now on
    session.clock.advance(5)
    assert rows(memo, session, torrents, ["seeding_time"]) != before
