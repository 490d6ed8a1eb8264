"""Wire codec: encoding, incremental decoding, limits, and value validation."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btd.core.errors import ProtocolError
from btd.core.wire.codec import (
    WireDecoder,
    check_bitfield,
    encode,
    encode_handshake,
    piece_header,
    validate,
)
from btd.core.wire.messages import (
    AllowedFast,
    Bitfield,
    Cancel,
    Choke,
    Extended,
    Handshake,
    Have,
    HaveAll,
    HaveNone,
    Interested,
    KeepAlive,
    Message,
    NotInterested,
    Piece,
    Port,
    RejectRequest,
    Request,
    SuggestPiece,
    Unchoke,
    make_reserved,
)

IH = bytes(range(20))
PID = b"-BT0100-abcdefghijkl"
HS = Handshake(IH, PID, make_reserved(dht=True))

u32 = st.integers(0, 2**32 - 1)
messages: st.SearchStrategy[Message] = st.one_of(
    st.sampled_from(
        [KeepAlive(), Choke(), Unchoke(), Interested(), NotInterested(), HaveAll(), HaveNone()]
    ),
    st.builds(Have, u32),
    st.builds(Bitfield, st.binary(max_size=40)),
    st.builds(Request, u32, u32, u32),
    st.builds(Piece, u32, u32, st.binary(max_size=200)),
    st.builds(Cancel, u32, u32, u32),
    st.builds(Port, st.integers(0, 65535)),
    st.builds(SuggestPiece, u32),
    st.builds(RejectRequest, u32, u32, u32),
    st.builds(AllowedFast, u32),
    st.builds(Extended, st.integers(0, 255), st.binary(max_size=100)),
)

SAMPLE: list[Message] = [
    KeepAlive(),
    Choke(),
    Unchoke(),
    Interested(),
    NotInterested(),
    Have(7),
    Bitfield(b"\xff\xe0"),
    Request(1, 16384, 16384),
    Piece(2, 0, b"hello" * 100),
    Cancel(1, 16384, 16384),
    Port(6881),
    SuggestPiece(3),
    HaveAll(),
    HaveNone(),
    RejectRequest(4, 0, 16384),
    AllowedFast(5),
    Extended(0, b"d1:md6:ut_pexi1eee"),
]


def frame(mid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IB", 1 + len(payload), mid) + payload


def decode_all(data: bytes, **kw: object) -> list[object]:
    return WireDecoder(expect_handshake=False, **kw).feed(data)  # type: ignore[arg-type]


# ----------------------------------------------------------------- encoding


def test_handshake_is_68_bytes_with_protocol_name() -> None:
    raw = encode_handshake(HS)
    assert len(raw) == 68 and raw[:20] == b"\x13BitTorrent protocol"
    assert raw[20:28] == HS.reserved and raw[28:48] == IH and raw[48:] == PID
    assert encode(HS) == raw


def test_known_encodings() -> None:
    assert encode(KeepAlive()) == b"\0\0\0\0"
    assert encode(Interested()) == b"\0\0\0\x01\x02"
    assert encode(Have(258)) == b"\0\0\0\x05\x04\0\0\x01\x02"
    assert encode(Port(6881)) == b"\0\0\0\x03\x09\x1a\xe1"
    assert encode(Extended(3, b"xy")) == b"\0\0\0\x04\x14\x03xy"
    assert encode(Request(1, 2, 3)) == b"\0\0\0\x0d\x06" + struct.pack(">III", 1, 2, 3)


def test_piece_header_plus_block_equals_encoded_piece() -> None:
    block = bytes(range(256)) * 64
    assert piece_header(9, 16384, len(block)) + block == encode(Piece(9, 16384, block))
    assert len(piece_header(0, 0, 0)) == 13


def test_encode_refuses_out_of_range_and_non_messages() -> None:
    with pytest.raises(ValueError):
        encode(Have(-1))
    with pytest.raises(ValueError):
        encode(Port(70000))
    with pytest.raises(TypeError):
        encode("choke")  # type: ignore[arg-type]


# ----------------------------------------------------------------- round trips


def test_every_message_round_trips() -> None:
    stream = encode_handshake(HS) + b"".join(encode(msg) for msg in SAMPLE)
    assert WireDecoder().feed(stream) == [HS, *SAMPLE]


def test_one_byte_feeds() -> None:
    stream = encode_handshake(HS) + b"".join(encode(msg) for msg in SAMPLE)
    dec = WireDecoder()
    got: list[object] = []
    for i in range(len(stream)):
        got.extend(dec.feed(stream[i : i + 1]))
    assert got == [HS, *SAMPLE]
    assert dec.buffered == 0


@settings(max_examples=150, deadline=None)
@given(st.lists(messages, max_size=25), st.lists(st.integers(0, 4000), max_size=8))
def test_round_trip_any_split(msgs: list[Message], cuts: list[int]) -> None:
    stream = encode_handshake(HS) + b"".join(encode(msg) for msg in msgs)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    dec = WireDecoder()
    got: list[object] = []
    for a, b in zip(bounds, bounds[1:]):
        got.extend(dec.feed(stream[a:b]))
    assert got == [HS, *msgs]
    assert dec.buffered == 0


def test_many_coalesced_pieces_in_odd_chunks() -> None:
    blocks = [bytes([i]) * 16384 for i in range(200)]
    stream = b"".join(encode(Piece(i, 0, b)) for i, b in enumerate(blocks))
    dec = WireDecoder(expect_handshake=False)
    got: list[object] = []
    for a in range(0, len(stream), 65536 - 7):
        got.extend(dec.feed(stream[a : a + 65536 - 7]))
    assert got == [Piece(i, 0, b) for i, b in enumerate(blocks)]
    # whole in one feed: a read-only view of that bytes; straddling two feeds: a copy
    assert all(type(p.block) is bytes or p.block.readonly for p in got)  # type: ignore[attr-defined]


def test_blocks_of_a_bytes_feed_are_views_of_it_and_of_other_buffers_copies() -> None:
    stream = encode(Piece(1, 0, b"A" * 32)) + encode(Piece(2, 0, b"B" * 32))
    first, second = WireDecoder(expect_handshake=False).feed(stream)
    assert type(first.block) is memoryview and first.block.obj is stream  # no copy
    assert first == Piece(1, 0, b"A" * 32) and second == Piece(2, 0, b"B" * 32)
    (third,) = WireDecoder(expect_handshake=False).feed(bytearray(stream[:45]))
    assert type(third.block) is bytes  # a caller's bytearray may be reused: copied


def test_accepts_bytearray_and_memoryview_and_leaves_no_export() -> None:
    raw = bytearray(encode(Have(1)) + encode(Piece(0, 0, b"abc"))[:7])
    dec = WireDecoder(expect_handshake=False)
    assert dec.feed(memoryview(raw)) == [Have(1)]
    raw.clear()  # would raise BufferError if the decoder kept a view on it
    assert dec.feed(bytearray(encode(Piece(0, 0, b"abc"))[7:])) == [Piece(0, 0, b"abc")]


def test_piece_block_is_a_copy_of_the_fed_buffer() -> None:
    raw = bytearray(encode(Piece(1, 0, b"A" * 32)) + encode(Piece(2, 0, b"B" * 32))[:20])
    dec = WireDecoder(expect_handshake=False)
    (first,) = dec.feed(raw)
    rest = bytearray(encode(Piece(2, 0, b"B" * 32))[20:])
    (second,) = dec.feed(rest)
    raw[:] = b"\0" * len(raw)
    rest[:] = b"\0" * len(rest)
    assert first == Piece(1, 0, b"A" * 32) and second == Piece(2, 0, b"B" * 32)
    assert type(first.block) is bytes and type(second.block) is bytes


# ----------------------------------------------------------------- handshake


def test_handshake_split_and_pending_info_hash() -> None:
    raw = encode_handshake(HS)
    dec = WireDecoder()
    assert dec.feed(raw[:48]) == [] and not dec.handshake_done
    assert dec.pending_info_hash == IH
    assert dec.feed(raw[48:] + encode(Choke())) == [HS, Choke()]
    assert dec.handshake_done and dec.pending_info_hash is None


def test_bad_pstrlen_fails_on_the_first_byte() -> None:
    dec = WireDecoder()
    with pytest.raises(ProtocolError, match="length 18"):
        dec.feed(b"\x12")


def test_bad_pstr_fails_as_soon_as_it_differs() -> None:
    dec = WireDecoder()
    assert dec.feed(b"\x13Bit") == []
    with pytest.raises(ProtocolError, match="protocol name"):
        dec.feed(b"X")


def test_decoder_stays_failed() -> None:
    dec = WireDecoder()
    with pytest.raises(ProtocolError):
        dec.feed(b"GET / HTTP/1.1\r\n")
    with pytest.raises(ProtocolError):
        dec.feed(encode_handshake(HS))


# ----------------------------------------------------------------- limits and structure


def test_keep_alive_alone_and_split() -> None:
    assert decode_all(b"\0\0\0\0" * 3) == [KeepAlive()] * 3
    dec = WireDecoder(expect_handshake=False)
    assert dec.feed(b"\0\0") == []
    assert dec.feed(b"\0\0\0") == [KeepAlive()]
    assert dec.feed(b"\0\0\x01\x01") == [Unchoke()]


def test_oversized_prefix_refused_with_only_the_prefix() -> None:
    dec = WireDecoder(expect_handshake=False, max_message_length=1 << 20)
    with pytest.raises(ProtocolError, match="exceeds limit"):
        dec.feed(struct.pack(">I", (1 << 20) + 1))


def test_oversized_prefix_refused_when_split_after_handshake() -> None:
    dec = WireDecoder()
    dec.feed(encode_handshake(HS) + b"\x7f")
    with pytest.raises(ProtocolError, match="exceeds limit"):
        dec.feed(b"\xff\xff\xff")


def test_limit_is_inclusive() -> None:
    payload = b"\0" * 99
    assert decode_all(frame(5, payload), max_message_length=100) == [Bitfield(payload)]


@pytest.mark.parametrize(
    ("mid", "size"),
    [
        (0, 1),
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 5),
        (6, 13),
        (8, 13),
        (9, 3),
        (13, 5),
        (14, 1),
        (15, 1),
        (16, 13),
        (17, 5),
    ],
)
def test_fixed_size_mismatch_is_refused(mid: int, size: int) -> None:
    with pytest.raises(ProtocolError, match=f"expected {size}"):
        decode_all(frame(mid, b"\0" * size))  # one byte too long
    if size > 1:
        with pytest.raises(ProtocolError):
            decode_all(frame(mid, b"\0" * (size - 2)))  # one byte too short


def test_short_piece_and_extended_are_refused() -> None:
    with pytest.raises(ProtocolError):
        decode_all(frame(7, b"\0" * 7))
    with pytest.raises(ProtocolError):
        decode_all(frame(20))


def test_unknown_ids_are_skipped() -> None:
    stream = frame(99, b"junk" * 10) + encode(Have(1)) + frame(10) + encode(Choke())
    assert decode_all(stream) == [Have(1), Choke()]


def test_unknown_id_split_is_skipped_without_buffering() -> None:
    dec = WireDecoder(expect_handshake=False)
    big = frame(200, b"z" * 500_000)
    assert dec.feed(big[:3]) == []
    assert dec.feed(big[3:1000]) == []
    assert dec.buffered == 0
    assert dec.feed(big[1000:400_000]) == []
    assert dec.feed(big[400_000:] + encode(Have(2))) == [Have(2)]


def test_bitfield_checked_when_piece_count_known() -> None:
    assert decode_all(frame(5, b"\xff\xc0"), num_pieces=10) == [Bitfield(b"\xff\xc0")]
    with pytest.raises(ProtocolError, match="spare bits"):
        decode_all(frame(5, b"\xff\xe0"), num_pieces=10)
    with pytest.raises(ProtocolError, match="expected 2"):
        decode_all(frame(5, b"\xff\xc0\x00"), num_pieces=10)
    with pytest.raises(ProtocolError, match="expected 2"):
        decode_all(frame(5, b"\xff"), num_pieces=10)


def test_set_num_pieces_after_handshake() -> None:
    dec = WireDecoder()
    assert dec.feed(encode_handshake(HS)) == [HS]
    dec.set_num_pieces(8)
    assert dec.feed(frame(5, b"\xff")) == [Bitfield(b"\xff")]
    dec2 = WireDecoder(num_pieces=7)
    dec2.feed(encode_handshake(HS))
    with pytest.raises(ProtocolError):
        dec2.feed(frame(5, b"\xff"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_garbage_only_raises_protocol_error(data: bytes, hs: bool) -> None:
    dec = WireDecoder(expect_handshake=hs, max_message_length=4096, num_pieces=13)
    try:
        dec.feed(data)
    except ProtocolError:
        pass


# ----------------------------------------------------------------- validate


def test_check_bitfield_exact_multiple_of_eight() -> None:
    check_bitfield(b"\xff", 8)
    check_bitfield(b"", 0)


@pytest.mark.parametrize(
    "msg",
    [
        Have(10),
        SuggestPiece(10),
        AllowedFast(11),
        Request(10, 0, 16384),
        Cancel(12, 0, 16384),
        RejectRequest(10, 0, 1),
        Piece(10, 0, b"x"),
        Have(-1),
    ],
)
def test_validate_refuses_out_of_range_index(msg: Message) -> None:
    with pytest.raises(ProtocolError, match="out of range"):
        validate(msg, 10)


@pytest.mark.parametrize("length", [0, 16385, 131072])
def test_validate_refuses_bad_request_length(length: int) -> None:
    with pytest.raises(ProtocolError, match="length"):
        validate(Request(0, 0, length), 10)


def test_validate_checks_block_inside_piece() -> None:
    def plen(index: int) -> int:
        return 32768 if index < 9 else 20000

    validate(Request(9, 16384, 3616), 10, plen)
    with pytest.raises(ProtocolError, match="past end"):
        validate(Request(9, 16384, 16384), 10, plen)
    with pytest.raises(ProtocolError, match="past end"):
        validate(Piece(9, 16384, b"x" * 4000), 10, plen)
    with pytest.raises(ProtocolError, match="empty"):
        validate(Piece(1, 0, b""), 10, plen)


def test_validate_accepts_good_messages_and_checks_bitfields() -> None:
    for msg in [
        Have(9),
        Request(0, 0, 16384),
        Piece(9, 0, b"x" * 16384),
        Choke(),
        KeepAlive(),
        Port(1),
        Extended(1, b""),
        Bitfield(b"\xff\xc0"),
    ]:
        validate(msg, 10)
    validate(Request(0, 0, 32768), 10, max_request=32768)
    with pytest.raises(ProtocolError):
        validate(Bitfield(b"\xff\xe0"), 10)
