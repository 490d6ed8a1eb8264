"""Tests for btd.core.bencode: strictness with offsets, limits, spans, round trips."""

from __future__ import annotations

import fastbencode
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btd.core.bencode import decode, decode_prefix, decode_with_span, encode
from btd.core.errors import BencodeError, BtdError

# --- valid input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"i0e", 0),
        (b"i42e", 42),
        (b"i-42e", -42),
        (b"i9223372036854775808e", 2**63),
        (b"0:", b""),
        (b"4:spam", b"spam"),
        (b"10:0123456789", b"0123456789"),
        (b"le", []),
        (b"de", {}),
        (b"l4:spami1ee", [b"spam", 1]),
        (b"d3:cow3:moo4:spaml1:a1:bee", {b"cow": b"moo", b"spam": [b"a", b"b"]}),
        (b"lllleeee", [[[[]]]]),
    ],
)
def test_decode_valid(data: bytes, value: object) -> None:
    assert decode(data) == value
    assert fastbencode.bdecode(data) == value


def test_decode_accepts_unsorted_keys_keeping_order() -> None:
    # Lenient like libtorrent: the info hash is taken on raw bytes, so this is harmless.
    assert list(decode(b"d1:bi1e1:ai2ee")) == [b"b", b"a"]


def test_decode_accepts_bytearray_and_memoryview() -> None:
    assert decode(bytearray(b"i1e")) == 1
    assert decode(memoryview(b"4:spam")) == b"spam"


def test_decode_refuses_str() -> None:
    with pytest.raises(TypeError):
        decode("i1e")  # type: ignore[arg-type]


# --- malformed input, each with its offset --------------------------------------------------


@pytest.mark.parametrize(
    ("data", "offset", "reason"),
    [
        (b"", 0, "unexpected end"),
        (b"i-0e", 0, "leading zero or negative zero"),
        (b"i03e", 0, "leading zero"),
        (b"i-03e", 0, "leading zero"),
        (b"ie", 0, "malformed integer"),
        (b"i-e", 0, "malformed integer"),
        (b"-", 0, "unexpected byte"),
        (b"i+1e", 0, "malformed integer"),
        (b"i 1e", 0, "malformed integer"),
        (b"i1_0e", 0, "malformed integer"),
        (b"i1.5e", 0, "malformed integer"),
        (b"i--1e", 0, "malformed integer"),
        (b"i" + b"1" * 65 + b"e", 0, "longer than 64 digits"),
        (b"i" + b"1" * 100 + b"e", 0, "overlong"),
        (b"i12", 3, "unexpected end"),
        (b"i-", 2, "unexpected end"),
        (b"li1x", 1, "malformed"),
        (b"03:abc", 0, "leading zero"),
        (b"00:", 0, "leading zero"),
        (b"5:ab", 0, "runs past the end"),
        (b"l99999999999:e", 1, "runs past the end"),
        (b"1:", 0, "runs past the end"),
        (b"12", 2, "unexpected end"),
        (b"1_0:aaaaaaaaaa", 0, "malformed string length"),
        (b"1" * 30 + b":", 0, "malformed string length"),
        (b"l5:abe", 1, "runs past the end"),
        (b"d1:ai1e1:ai2ee", 7, "duplicate dict key"),
        (b"di1e1:ae", 1, "dict key must be a byte string"),
        (b"dlee", 1, "dict key must be a byte string"),
        (b"dde1:ae", 1, "dict key must be a byte string"),
        (b"d1:ae", 4, "dict key without a value"),
        (b"i1ei2e", 3, "trailing data"),
        (b"lee", 2, "trailing data"),
        (b"e", 0, "unexpected end marker"),
        (b"l", 1, "unexpected end"),
        (b"li1e", 4, "unexpected end"),
        (b"d1:a", 4, "unexpected end"),
        (b"x", 0, "unexpected byte"),
        (b"lxe", 1, "unexpected byte"),
        (b" i1e", 0, "unexpected byte"),
    ],
)
def test_decode_malformed(data: bytes, offset: int, reason: str) -> None:
    with pytest.raises(BencodeError) as info:
        decode(data)
    assert info.value.offset == offset
    assert reason in info.value.reason
    assert isinstance(info.value, BtdError)


def test_string_length_past_end_is_refused_before_slicing() -> None:
    # A huge declared length must not allocate anything: it fails on arithmetic alone.
    with pytest.raises(BencodeError, match="runs past the end"):
        decode(b"9999999999999999999:x")


# --- limits --------------------------------------------------------------------------------


def test_depth_100_ok_101_refused() -> None:
    assert decode(b"l" * 100 + b"e" * 100) is not None
    with pytest.raises(BencodeError) as info:
        decode(b"l" * 101 + b"e" * 101)
    assert info.value.offset == 100
    assert "nesting deeper than 100" in info.value.reason


def test_depth_counts_dicts_too() -> None:
    ok = b"d1:a" * 100 + b"i1e" + b"e" * 100
    decode(ok)
    with pytest.raises(BencodeError, match="nesting"):
        decode(b"d1:a" * 101 + b"i1e" + b"e" * 101)


def test_custom_depth_limit() -> None:
    decode(b"llee", max_depth=2)
    with pytest.raises(BencodeError):
        decode(b"llee", max_depth=1)


def test_million_nested_lists_no_recursion_error() -> None:
    data = b"l" * 1_000_000
    with pytest.raises(BencodeError) as info:
        decode(data)
    assert info.value.offset == 100
    # Even with the depth limit lifted the decoder never recurses.
    with pytest.raises(BencodeError) as info:
        decode(data, max_depth=2_000_000)
    assert info.value.offset == 1_000_000


def test_token_limit() -> None:
    assert decode(b"li1ei2ee", max_tokens=3) == [1, 2]
    with pytest.raises(BencodeError) as info:
        decode(b"li1ei2ei3ee", max_tokens=3)
    assert info.value.offset == 7
    assert "tokens" in info.value.reason


def test_token_limit_counts_dict_keys() -> None:
    decode(b"d1:ai1ee", max_tokens=3)
    with pytest.raises(BencodeError):
        decode(b"d1:ai1ee", max_tokens=2)


def test_size_limit() -> None:
    assert decode(b"4:spam", max_size=6) == b"spam"
    with pytest.raises(BencodeError) as info:
        decode(b"4:spam", max_size=5)
    assert info.value.offset == 5


def test_default_size_limit_is_10_mb() -> None:
    big = b"10000000:" + b"x" * 10_000_000
    with pytest.raises(BencodeError, match="over the limit"):
        decode(big)


# --- prefix and span -------------------------------------------------------------------------


def test_decode_prefix_returns_end_offset() -> None:
    data = b"d8:msg_typei1e5:piecei0ee" + b"RAW METADATA"
    value, end = decode_prefix(data)
    assert value == {b"msg_type": 1, b"piece": 0}
    assert data[end:] == b"RAW METADATA"


def test_decode_prefix_still_strict() -> None:
    with pytest.raises(BencodeError):
        decode_prefix(b"i03eRAW")
    with pytest.raises(BencodeError, match="unexpected end"):
        decode_prefix(b"d1:a")


def test_span_of_info() -> None:
    info = b"d4:name1:x6:lengthi3ee"  # unsorted on purpose
    data = b"d8:announce3:url4:info" + info + b"1:zi1ee"
    value, span = decode_with_span(data)
    assert span is not None
    assert data[span[0] : span[1]] == info
    assert value[b"z"] == 1


def test_span_ignores_nested_info_keys() -> None:
    data = b"d1:ad4:infoi1ee4:infoi2ee"
    value, span = decode_with_span(data)
    assert span is not None
    assert data[span[0] : span[1]] == b"i2e"


def test_span_absent() -> None:
    assert decode_with_span(b"d1:ai1ee") == ({b"a": 1}, None)
    assert decode_with_span(b"l4:infoe") == ([b"info"], None)
    assert decode_with_span(b"i1e") == (1, None)


def test_span_of_deeper_path() -> None:
    data = b"d1:ad1:bl1:xee1:bi1ee"
    _, span = decode_with_span(data, (b"a", b"b"))
    assert span is not None and data[span[0] : span[1]] == b"l1:xe"
    _, span = decode_with_span(b"d1:al1:bee", (b"a", b"b"))
    assert span is None


def test_span_refuses_trailing_data() -> None:
    with pytest.raises(BencodeError, match="trailing"):
        decode_with_span(b"d4:infodeeX")


# --- encode ----------------------------------------------------------------------------------


def test_encode_basic() -> None:
    assert encode(0) == b"i0e"
    assert encode(-7) == b"i-7e"
    assert encode(b"spam") == b"4:spam"
    assert encode("é") == b"2:\xc3\xa9"
    assert encode([1, (b"a",)]) == b"li1el1:aee"
    assert encode(bytearray(b"ab")) == b"2:ab"


def test_encode_sorts_keys_by_raw_bytes() -> None:
    assert encode({"b": 1, b"a": 2}) == b"d1:ai2e1:bi1ee"
    # "é" is b"\xc3\xa9", which sorts after "z" as bytes.
    assert encode({"é": 1, "z": 2}) == b"d1:zi2e2:\xc3\xa9i1ee"


@pytest.mark.parametrize("bad", [True, False, 1.5, None, {1, 2}, object()])
def test_encode_refuses_other_types(bad: object) -> None:
    with pytest.raises(TypeError):
        encode(bad)
    with pytest.raises(TypeError):
        encode([bad])


def test_encode_refuses_bad_keys() -> None:
    with pytest.raises(TypeError):
        encode({1: b"x"})
    with pytest.raises(ValueError):
        encode({"a": 1, b"a": 2})


def test_encode_refuses_cycles_but_allows_shared_values() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError):
        encode(loop)
    shared = [1]
    assert encode([shared, shared]) == b"lli1eeli1eee"


def test_encode_deep_nesting_without_recursion() -> None:
    value: list[object] = []
    for _ in range(100_000):
        value = [value]
    assert encode(value) == b"l" * 100_001 + b"e" * 100_001


# --- properties ------------------------------------------------------------------------------

ints = st.integers(min_value=-(10**30), max_value=10**30)
values = st.recursive(
    ints | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.binary(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_round_trip_and_agreement_with_fastbencode(value: object) -> None:
    data = encode(value)
    assert data == fastbencode.bencode(value)
    assert decode(data) == value
    assert decode(data) == fastbencode.bdecode(data)
    assert decode_prefix(data + b"tail") == (value, len(data))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.binary(max_size=8), values, max_size=5), values)
def test_span_matches_encoding_of_value(rest: dict[bytes, object], info: object) -> None:
    rest[b"info"] = info
    data = encode(rest)
    _, span = decode_with_span(data)
    assert span is not None
    assert data[span[0] : span[1]] == encode(info)
