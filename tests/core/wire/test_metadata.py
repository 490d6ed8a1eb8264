from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from btd.core.errors import MetainfoError, ProtocolError
from btd.core.wire.metadata import (
    DATA,
    METADATA_PIECE,
    REJECT,
    REQUEST,
    MetadataAssembler,
    decode_message,
    encode_data,
    encode_reject,
    encode_request,
)

INFO = bytes(range(256)) * 150  # 38400 bytes: 3 pieces, the last short
HASH = hashlib.sha1(INFO).digest()


def test_round_trips() -> None:
    assert decode_message(encode_request(2)).msg_type == REQUEST
    assert decode_message(encode_reject(1)).msg_type == REJECT
    msg = decode_message(encode_data(2, INFO))
    assert (msg.msg_type, msg.piece, msg.total_size) == (DATA, 2, len(INFO))
    assert msg.data == INFO[2 * METADATA_PIECE :]


def test_assembles_from_several_peers_and_verifies() -> None:
    asm = MetadataAssembler(HASH, len(INFO))
    assert asm.missing() == [0, 1, 2]
    assert not asm.add("a", decode_message(encode_data(0, INFO)))
    assert not asm.add("b", decode_message(encode_data(2, INFO)))
    assert asm.add("a", decode_message(encode_data(1, INFO)))
    assert asm.result() == INFO


def test_wrong_hash_starts_over_and_names_the_senders() -> None:
    bad = bytearray(INFO)
    bad[5] ^= 1
    asm = MetadataAssembler(HASH, len(INFO))
    for piece in range(3):
        asm.add("evil" if piece == 0 else "good", decode_message(encode_data(piece, bytes(bad))))
    with pytest.raises(MetainfoError, match="does not match"):
        asm.result()
    assert asm.bad_sources == {"evil", "good"}
    assert asm.missing() == [0, 1, 2]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"garbage", "ut_metadata"),
        (b"le", "not a dictionary"),
        (b"d8:msg_typei9e5:piecei0ee", "unknown msg_type"),
        (b"d8:msg_typei0e5:piecei-1ee", "bad piece"),
        (b"d8:msg_typei0e5:piecei0eeXX", "trailing bytes"),
        (b"d8:msg_typei1e5:piecei0e10:total_sizei999999999ee", "bad total_size"),
    ],
)
def test_malformed_messages(payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_message(payload)


def test_wrong_sizes_are_refused() -> None:
    asm = MetadataAssembler(HASH, len(INFO))
    short = decode_message(encode_data(0, INFO[:100]))
    with pytest.raises(ProtocolError, match="total_size"):
        asm.add("p", short)
    wrong_piece = decode_message(encode_data(0, INFO)[:-1])
    with pytest.raises(ProtocolError, match="has 16383 bytes"):
        asm.add("p", wrong_piece)
    with pytest.raises(ProtocolError, match="outside"):
        MetadataAssembler(HASH, 11 * 1024 * 1024)


@given(st.binary(max_size=200))
def test_fuzz_only_protocol_errors(data: bytes) -> None:
    try:
        decode_message(data)
    except ProtocolError:
        pass
