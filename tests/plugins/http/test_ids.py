"""Transmission ids: in order of adding, stable in the file, never reused."""

from __future__ import annotations

import pytest

from btd.plugins.http.ids import TorrentIds


def test_ids_in_order_never_reused_and_kept() -> None:
    ids = TorrentIds()
    assert [ids.id_of(h) for h in ("a", "b", "c", "a")] == [1, 2, 3, 1]
    ids.forget("b")
    assert ids.known("b") is None and ids.hash_of(2) is None
    assert ids.id_of("d") == 4
    assert ids.id_of("b") == 5  # back again: a new id
    again = TorrentIds.loads(ids.dumps())
    assert [again.known(h) for h in "abcd"] == [1, 5, 3, 4]
    assert again.id_of("e") == 6 and again.hash_of(3) == "c"
    again.keep_only({"a", "e"})
    assert len(again) == 2 and again.id_of("x") == 7


def test_next_id_never_below_the_ids_in_the_file() -> None:
    table = TorrentIds.loads(b'{"version":1,"next_id":1,"ids":{"a":9}}')
    assert table.id_of("b") == 10


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"version":2,"next_id":1,"ids":{}}',
        b'{"version":1,"next_id":"1","ids":{}}',
        b'{"version":1,"next_id":3,"ids":{"a":1,"b":1}}',
        b'{"version":1,"next_id":3,"ids":{"a":0}}',
        b'{"version":1,"next_id":3,"ids":{"a":true}}',
    ],
)
def test_damaged_files_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        TorrentIds.loads(data)
