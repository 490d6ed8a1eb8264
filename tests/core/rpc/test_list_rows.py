"""Kept ``torrent.list`` rows (core/rpc/list_rows.py) with stand-in torrents and keys."""

from __future__ import annotations

from typing import Any

from btd.core.rpc.json_text import dumps, loads
from btd.core.rpc.list_rows import FIELD_SETS, ListRows


class Item:
    def __init__(self, name: str) -> None:
        self.name = name
        self.version = 0
        self.live = False


class Rows:
    """A ListRows with a queue counter, and a row builder that counts its calls."""

    def __init__(self) -> None:
        self.queue = 0
        self.built: list[str] = []
        self.rows = ListRows(lambda: self.queue)

    def row(self, item: Item) -> dict[str, Any]:
        self.built.append(item.name)
        return {"name": item.name, "version": item.version}

    @staticmethod
    def key(item: Item) -> Any:
        return None if item.live else (item.version,)

    def list(self, items: list[Item], fields: list[str] | None = None, whole: bool = True) -> Any:
        self.built = []
        return loads(dumps(self.rows.rows(items, fields, self.row, self.key, whole=whole)))


def test_quiet_rows_are_built_once_until_their_key_changes() -> None:
    r = Rows()
    a, b = Item("a"), Item("b")
    assert r.list([a, b], ["name"]) == [{"name": "a", "version": 0}, {"name": "b", "version": 0}]
    assert r.built == ["a", "b"]
    assert r.list([a, b], ["name"]) == [{"name": "a", "version": 0}, {"name": "b", "version": 0}]
    assert r.built == []
    b.version = 1
    assert r.list([a, b], ["name"])[1] == {"name": "b", "version": 1}
    assert r.built == ["b"]


def test_live_rows_are_built_every_time_and_not_kept() -> None:
    r = Rows()
    a = Item("a")
    a.live = True
    r.list([a])
    r.list([a])
    assert r.built == ["a"] and r.rows.kept() == 0


def test_queue_order_matters_only_to_field_sets_with_the_position() -> None:
    r = Rows()
    a = Item("a")
    r.list([a], ["name"])
    r.list([a], ["queue_position"])
    r.queue += 1
    r.list([a], ["name"])
    assert r.built == []
    r.list([a], ["queue_position"])
    assert r.built == ["a"]


def test_a_whole_list_drops_removed_torrents_a_filtered_one_keeps_them() -> None:
    r = Rows()
    a, b, c = Item("a"), Item("b"), Item("c")
    c.live = True
    r.list([a, b, c])
    assert r.rows.kept() == 2
    r.list([a], whole=False)  # a filter: b is still there
    assert r.rows.kept() == 2
    r.list([a, c])  # b was removed
    assert r.rows.kept() == 1


def test_only_the_last_field_sets_are_kept() -> None:
    r = Rows()
    a = Item("a")
    sets = [[f"f{i}"] for i in range(FIELD_SETS + 1)]
    for fields in sets:
        r.list([a], fields)
    assert r.rows.kept() == FIELD_SETS
    r.list([a], sets[0])  # the oldest was dropped
    assert r.built == ["a"]
    r.list([a], sets[-1])
    assert r.built == []
