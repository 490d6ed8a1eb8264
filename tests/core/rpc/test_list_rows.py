"""Kept ``torrent.list`` rows (core/rpc/list_rows.py) with stand-in torrents and keys."""

from __future__ import annotations

from typing import Any

from btd.core.rpc.json_text import dumps, loads
from btd.core.rpc.list_rows import FIELD_SETS, FULL_CHECK_SECONDS, ListRows
from btd.core.status_log import StatusLog


class Item:
    def __init__(self, name: str, added_at: float) -> None:
        self.name = name
        self.added_at = added_at
        self.version = 0
        self.live = False


class Rows:
    """A ListRows over stand-ins, with a row builder that counts its calls."""

    def __init__(self, *items: Item) -> None:
        self.items = list(items)
        self.queue = 0
        self.now = 0.0
        self.log = StatusLog()
        self.built: list[str] = []
        self.rows = ListRows(lambda: self.queue, self.log, lambda: self.now)

    def row(self, item: Item) -> dict[str, Any]:
        self.built.append(item.name)
        return {"name": item.name, "version": item.version}

    @staticmethod
    def key(item: Item) -> Any:
        return None if item.live else (item.version,)

    def change(self, item: Item) -> None:
        """What a Torrent does: its row's inputs change and the log is told."""
        item.version += 1
        self.log.touch(item)

    def whole(self, fields: list[str] | None = None) -> list[dict[str, Any]]:
        self.built = []
        return loads(
            dumps(self.rows.whole(list(self.items), fields, self.row, self.key, table=False))
        )

    def filtered(self, items: list[Item], fields: list[str] | None = None) -> Any:
        self.built = []
        return loads(dumps(self.rows.rows(items, fields, self.row, self.key, table=False)))


def test_a_whole_list_builds_only_what_changed_oldest_first() -> None:
    b, a = Item("b", 2.0), Item("a", 1.0)
    r = Rows(b, a)
    assert r.whole() == [{"name": "a", "version": 0}, {"name": "b", "version": 0}]
    assert sorted(r.built) == ["a", "b"]
    assert r.whole() == [{"name": "a", "version": 0}, {"name": "b", "version": 0}]
    assert r.built == []
    r.change(b)
    assert r.whole()[1] == {"name": "b", "version": 1}
    assert r.built == ["b"]


def test_what_the_log_was_not_told_waits_for_the_full_check() -> None:
    """The contract: every change of a quiet torrent's row goes through the log; a change
    that did not is still caught by the check of every row every FULL_CHECK_SECONDS."""
    a = Item("a", 1.0)
    r = Rows(a)
    r.whole()
    a.version = 5  # not logged
    assert r.whole() == [{"name": "a", "version": 0}]
    r.now += FULL_CHECK_SECONDS
    assert r.whole() == [{"name": "a", "version": 5}]


def test_live_rows_are_built_every_time_and_not_kept() -> None:
    a, b = Item("a", 1.0), Item("b", 2.0)
    a.live = True
    r = Rows(a, b)
    r.whole()
    r.whole()
    assert r.built == ["a"] and r.rows.kept() == 1
    a.live = False  # its peers left: a Torrent logs that
    r.log.touch(a)
    r.whole()
    assert r.built == ["a"]
    r.whole()
    assert r.built == [] and r.rows.kept() == 2


def test_torrents_coming_and_going_and_the_queue_order() -> None:
    a, b = Item("a", 1.0), Item("b", 2.0)
    r = Rows(a, b)
    r.whole(["name"])
    r.whole(["queue_position"])
    r.items.append(Item("c", 3.0))
    assert [x["name"] for x in r.whole(["name"])] == ["a", "b", "c"]
    assert r.built == ["c"]
    r.items.remove(a)
    assert [x["name"] for x in r.whole(["name"])] == ["b", "c"]
    assert r.built == [] and r.rows.kept() == 2 + 2  # a's row went with it
    r.queue += 1  # positions moved: only the field set with queue_position is rebuilt
    r.whole(["name"])
    assert r.built == []
    r.whole(["queue_position"])
    assert sorted(r.built) == ["b", "c"]


def test_filtered_lists_check_each_row() -> None:
    a, b = Item("a", 1.0), Item("b", 2.0)
    r = Rows(a, b)
    assert r.filtered([b]) == [{"name": "b", "version": 0}]
    a.version = b.version = 3  # not logged: a filtered list checks every key
    assert r.filtered([a, b]) == [{"name": "a", "version": 3}, {"name": "b", "version": 3}]
    assert r.filtered([a, b]) and r.built == []


def test_only_the_last_field_sets_are_kept_and_the_log_is_trimmed() -> None:
    a = Item("a", 1.0)
    r = Rows(a)
    sets = [[f"f{i}"] for i in range(FIELD_SETS + 1)]
    for fields in sets:
        r.whole(fields)
    assert r.rows.kept() == FIELD_SETS
    r.whole(sets[0])  # the oldest was dropped
    assert r.built == ["a"]
    r.whole(sets[-1])
    assert r.built == []
    r.change(a)
    assert len(r.log) == 1
    for fields in sets[-FIELD_SETS:]:
        r.whole(fields)
    assert len(r.log) == 0  # every kept field set has seen it


def test_status_log_since_and_forget() -> None:
    log = StatusLog()
    x, y, z = object(), object(), object()
    log.touch(x)
    log.touch(y)
    mark = log.epoch
    log.touch(z)
    log.touch(x)  # moves to the newest end
    assert log.since(mark) == [x, z]
    assert log.since(log.epoch) == []
    log.forget_before(mark + 1)  # y (2) and z (3) go
    assert log.since(0) == [x] and len(log) == 1
    log.forget(x)
    assert len(log) == 0
