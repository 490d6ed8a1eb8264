"""Fuzzing btd.core.bencode: hostile bytes raise BencodeError and nothing else."""

from __future__ import annotations

import fastbencode
from hypothesis import given, settings
from hypothesis import strategies as st

from btd.core.bencode import decode, decode_prefix, decode_with_span, encode
from btd.core.errors import BencodeError

# Bytes biased toward bencode's alphabet so the decoder goes deep, not just fails at byte 0.
alphabet_bytes = st.lists(
    st.sampled_from(list(b"ilde0123456789:-")) | st.integers(0, 255), max_size=200
).map(bytes)


def _decode_all_ways(data: bytes) -> None:
    for fn in (decode, decode_prefix, decode_with_span):
        try:
            fn(data, max_depth=20, max_tokens=500)
        except BencodeError as e:
            assert 0 <= e.offset <= len(data)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_bencode_error(data: bytes) -> None:
    _decode_all_ways(data)


@settings(max_examples=1000, deadline=None)
@given(alphabet_bytes)
def test_bencode_like_bytes_only_raise_bencode_error(data: bytes) -> None:
    _decode_all_ways(data)


nested = st.recursive(
    st.integers(-1000, 1000) | st.binary(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.binary(max_size=4), c, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(nested, st.data())
def test_mutated_valid_input(value: object, data: st.DataObject) -> None:
    raw = bytearray(encode(value))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["flip", "drop", "insert", "truncate"]))
        if op == "flip":
            raw[i] = data.draw(st.integers(0, 255))
        elif op == "drop":
            del raw[i]
        elif op == "insert":
            raw.insert(i, data.draw(st.sampled_from(list(b"ilde0123456789:-"))))
        else:
            del raw[i:]
        if not raw:
            raw = bytearray(b"x")
    mutated = bytes(raw)
    try:
        ours = decode(mutated)
    except BencodeError:
        return
    # Whatever we accept must be canonical-compatible: fastbencode reads it the same way
    # (unless keys are unsorted, which we accept and fastbencode may not).
    try:
        theirs = fastbencode.bdecode(mutated)
    except Exception:
        return
    assert ours == theirs
