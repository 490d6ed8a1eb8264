from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from btd.core.bitfield import Bitfield, BitIndexError
from btd.core.errors import ProtocolError


def test_empty_and_add_discard() -> None:
    bf = Bitfield(10)
    assert bf.count == 0 and not bf.complete and list(bf) == []
    assert bf.add(0) and bf.add(9) and not bf.add(9)
    assert 0 in bf and bf.has(9) and 5 not in bf
    assert bf.count == 2
    assert bf.to_bytes() == bytes([0x80, 0x40])
    assert bf.discard(0) and not bf.discard(0)
    assert list(bf) == [9] and bf.count == 1


def test_full() -> None:
    bf = Bitfield.full(10)
    assert bf.complete and bf.count == 10
    assert bf.to_bytes() == b"\xff\xc0"
    assert list(bf) == list(range(10)) and list(bf.missing()) == []
    assert Bitfield.full(0).complete and Bitfield.full(8).to_bytes() == b"\xff"


def test_missing() -> None:
    bf = Bitfield.from_bytes(bytes([0b10100000, 0x00]), 12)
    assert list(bf) == [0, 2]
    assert list(bf.missing()) == [1, 3, 4, 5, 6, 7, 8, 9, 10, 11]


@pytest.mark.parametrize(
    ("data", "n"),
    [(b"", 1), (b"\x00\x00", 8), (b"\x00", 9), (b"\x01", 7), (b"\xff\xc0", 9)],
)
def test_from_bytes_rejects_bad_shape(data: bytes, n: int) -> None:
    with pytest.raises(ProtocolError):
        Bitfield.from_bytes(data, n)


def test_index_out_of_range_is_both_errors() -> None:
    bf = Bitfield(5)
    for bad in (-1, 5):
        for op in (bf.has, bf.add, bf.discard):
            with pytest.raises(IndexError):
                op(bad)
            with pytest.raises(ProtocolError):
                op(bad)
    assert issubclass(BitIndexError, IndexError)
    with pytest.raises(BitIndexError):
        _ = 5 in bf


def test_copy_is_independent_and_eq() -> None:
    bf = Bitfield(20)
    bf.add(3)
    cp = bf.copy()
    cp.add(4)
    assert list(bf) == [3] and list(cp) == [3, 4] and bf != cp
    bf.add(4)
    assert bf == cp


def test_and_and_intersects() -> None:
    a = Bitfield.from_bytes(b"\xf0", 8)
    b = Bitfield.from_bytes(b"\x3c", 8)
    both = a & b
    assert list(both) == [2, 3] and both.count == 2
    assert a.intersects(b) and not a.intersects(Bitfield.from_bytes(b"\x0f", 8))
    with pytest.raises(ValueError):
        a.intersects(Bitfield(9))


@given(
    st.integers(0, 100).flatmap(
        lambda n: st.tuples(st.just(n), st.sets(st.integers(0, max(n - 1, 0))))
    )
)
def test_round_trip_matches_a_set(case: tuple[int, set[int]]) -> None:
    n, members = case
    members = {i for i in members if i < n}
    bf = Bitfield(n)
    for i in members:
        bf.add(i)
    assert set(bf) == members and bf.count == len(members)
    assert set(bf.missing()) == set(range(n)) - members
    again = Bitfield.from_bytes(bf.to_bytes(), n)
    assert again == bf and again.count == len(members)
    assert again.complete == (len(members) == n)
