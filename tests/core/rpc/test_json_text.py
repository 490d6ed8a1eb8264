"""json_text: orjson's output where it can, the standard library's where it cannot."""

from __future__ import annotations

import json
import tracemalloc
from dataclasses import dataclass

import pytest

from btd.core.rpc.json_text import Encoded, dumps, dumps_kept, loads


def test_compact_utf8_like_the_standard_library() -> None:
    value = {"name": "Ünïcødé ✓", "n": [1, 2.5, None, True], "nested": {"a": []}}
    assert dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def test_integer_keys_become_strings() -> None:
    assert loads(dumps({1: "a", "b": 2})) == {"1": "a", "b": 2}


def test_integers_past_64_bits_go_through_the_standard_library() -> None:
    big = 2**70 + 1
    assert dumps({"x": big}) == b'{"x":%d}' % big


def test_non_finite_floats_are_null() -> None:
    assert dumps([float("nan"), float("inf")]) == b"[null,null]"


def test_dataclasses_are_their_fields() -> None:
    @dataclass
    class Point:
        x: int
        y: str

    assert loads(dumps(Point(1, "a"))) == {"x": 1, "y": "a"}


def test_what_is_not_json_raises() -> None:
    with pytest.raises(TypeError):
        dumps({"x": object()})
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises((ValueError, RecursionError)):
        dumps(deep)


def test_loads_refuses_what_is_not_json() -> None:
    for bad in (b"{", b"\xff", b"NaN", b"[1,]"):
        with pytest.raises(ValueError):
            loads(bad)
    assert loads(b'{"a":[1,"x"]}') == {"a": [1, "x"]}


def test_encoded_text_goes_in_as_it_is() -> None:
    row = Encoded(dumps({"name": "a", "size": 1}))
    assert dumps({"result": [row, {"name": "b"}], "id": 1}) == (
        b'{"result":[{"name":"a","size":1},{"name":"b"}],"id":1}'
    )
    # beside what only the standard library writes (an integer past 64 bits)
    assert loads(dumps({"result": [row], "id": 2**70})) == {
        "result": [{"name": "a", "size": 1}],
        "id": 2**70,
    }


def test_kept_text_is_its_own_size() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [dumps_kept({"row": i}) for i in range(1000)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert loads(kept[7]) == {"row": 7}
    assert held < 1000 * 200  # orjson's own bytes hold 4 KB each
