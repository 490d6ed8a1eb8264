from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from btd.core.rpc.framing import LineFramer


def test_one_byte_at_a_time() -> None:
    framer = LineFramer(100)
    frames: list[bytes] = []
    for byte in b'{"a":1}\n{"b":2}\n':
        frames += framer.feed(bytes([byte]))
    assert frames == [b'{"a":1}', b'{"b":2}']
    assert framer.buffered == 0


def test_three_in_one_write_and_a_partial_tail() -> None:
    framer = LineFramer(100)
    assert framer.feed(b"one\ntwo\nthree\nfo") == [b"one", b"two", b"three"]
    assert framer.buffered == 2
    assert framer.feed(b"ur\n") == [b"four"]


def test_empty_lines_are_frames() -> None:
    assert LineFramer(10).feed(b"\n\n") == [b"", b""]


def test_exactly_the_cap_passes() -> None:
    framer = LineFramer(5)
    assert framer.feed(b"12345\n") == [b"12345"]
    assert not framer.too_large


def test_cap_checked_while_buffering_never_past_it() -> None:
    framer = LineFramer(5)
    assert framer.feed(b"1234") == []
    assert framer.buffered == 4
    assert framer.feed(b"56") == []  # 6 bytes, no newline yet: refused now
    assert framer.too_large
    assert framer.buffered == 0
    assert framer.feed(b"\nok\n") == []  # the stream is dead


def test_oversized_line_in_one_chunk_keeps_earlier_frames() -> None:
    framer = LineFramer(5)
    assert framer.feed(b"ok\n1234567\nlater\n") == [b"ok"]
    assert framer.too_large


def test_split_oversized_across_buffer_and_chunk() -> None:
    framer = LineFramer(5)
    framer.feed(b"123")
    assert framer.feed(b"456\n") == []
    assert framer.too_large


def test_bad_cap() -> None:
    with pytest.raises(ValueError):
        LineFramer(0)


@given(
    st.lists(st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")), max_size=10),
    st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=10),
)
def test_any_chunking_gives_the_same_frames(lines: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    framer = LineFramer(20)
    out: list[bytes] = []
    pos = i = 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        out += framer.feed(stream[pos : pos + step])
        pos += step
        i += 1
    assert out == lines
    assert framer.buffered == 0
