"""uTP datagrams: round trips, BEP 29's byte layout, and strict parsing of strangers' bytes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from btd.core.errors import ProtocolError
from btd.core.limits import UTP_MAX_EXTENSIONS
from btd.plugins.utp import packet as p

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def packets(draw: st.DrawFn) -> p.Packet:
    sack = draw(
        st.none() | st.integers(1, 63).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))
    )
    return p.Packet(
        type=draw(st.sampled_from(sorted(p.TYPE_NAMES))),
        connection_id=draw(u16),
        seq_nr=draw(u16),
        ack_nr=draw(u16),
        timestamp=draw(u32),
        timestamp_diff=draw(u32),
        wnd_size=draw(u32),
        sack=sack,
        payload=draw(st.binary(max_size=1500)),
    )


@given(packets())
def test_round_trip(packet: p.Packet) -> None:
    assert p.decode(packet.encode()) == packet


def test_header_layout_is_bep29() -> None:
    raw = p.Packet(
        p.ST_SYN, 0x1234, seq_nr=1, ack_nr=0, timestamp=5, timestamp_diff=6, wnd_size=7
    ).encode()
    assert raw == bytes([0x41, 0]) + struct.pack(">HIIIHH", 0x1234, 5, 6, 7, 1, 0)
    assert len(raw) == p.HEADER_SIZE == 20


def test_sack_extension_layout() -> None:
    raw = p.Packet(p.ST_STATE, 1, 2, 3, sack=b"\x01\x00\x00\x80").encode()
    assert raw[1] == p.EXT_SACK
    assert raw[20:] == bytes([0, 4, 1, 0, 0, 0x80])


def test_unknown_extension_is_skipped() -> None:
    raw = bytearray(p.Packet(p.ST_DATA, 1, 2, 3, payload=b"xyz").encode())
    raw[1] = 2  # libtorrent's close reason: 4 bytes
    raw[20:20] = bytes([p.EXT_SACK, 4]) + b"\0\0\0\7" + bytes([0, 4]) + b"\1\0\0\0"
    got = p.decode(bytes(raw))
    assert got.sack == b"\1\0\0\0"
    assert got.payload == b"xyz"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"\x41" + bytes(18), "header alone"),
        (b"\x42" + bytes(19), "version 2"),
        (b"\x51" + bytes(19), "type 5"),
        (b"\x01\x01" + bytes(18), "cut off"),
        (b"\x01\x01" + bytes(18) + b"\x00", "cut off"),
        (b"\x01\x01" + bytes(18) + b"\x00\x08\x00", "cut off"),
        (b"\x01\x01" + bytes(18) + b"\x01\x04abcd\x00\x04abcd", "two selective-ack"),
    ],
)
def test_malformed_datagrams(raw: bytes, words: str) -> None:
    with pytest.raises(ProtocolError, match=words):
        p.decode(raw)


def test_sack_of_any_length_is_taken_as_libtorrent_sends_it() -> None:
    """libtorrent 2.1 sent 23-byte bitmasks on loopback; BEP 29 says multiples of 4."""
    got = p.decode(b"\x21\x01" + bytes(18) + b"\x00\x03\x01\x00\x80")
    assert got.sack == b"\x01\x00\x80"
    assert sorted(p.sack_seqs(0, got.sack)) == [2, 2 + 23]
    assert p.decode(b"\x21\x01" + bytes(18) + b"\x00\x00").sack is None


def test_extension_chain_is_bounded() -> None:
    chain = b"".join(bytes([7, 0]) for _ in range(UTP_MAX_EXTENSIONS))
    ok = b"\x01\x07" + bytes(18) + chain[:-2] + b"\x00\x00"
    assert p.decode(ok).payload == b""
    with pytest.raises(ProtocolError, match="chain longer"):
        p.decode(b"\x01\x07" + bytes(18) + chain + b"\x00\x00")


@given(st.binary(max_size=300))
def test_decode_raises_only_protocol_error(raw: bytes) -> None:
    try:
        p.decode(raw)
    except ProtocolError:
        pass


def test_seq_compare_wraps() -> None:
    assert p.seq_less(0xFFFF, 0)
    assert p.seq_less(1, 2)
    assert not p.seq_less(2, 2)
    assert not p.seq_less(0, 0xFFFF)
    assert p.seq_add(0xFFFF, 2) == 1


def test_sack_mask_bits_follow_bep29() -> None:
    # ack_nr 10: bit 0 of byte 0 is 12; 19 is bit 7; 20 is bit 0 of byte 1
    mask = p.sack_mask(10, [12, 19, 20], 32)
    assert mask == b"\x81\x01\x00\x00"
    assert sorted(p.sack_seqs(10, mask)) == [12, 19, 20]


@given(u16, st.sets(st.integers(2, 200)))
def test_sack_mask_round_trip(ack: int, offsets: set[int]) -> None:
    received = {(ack + o) & 0xFFFF for o in offsets}
    mask = p.sack_mask(ack, received, 252)
    if not received:
        assert mask is None
        return
    assert mask is not None and len(mask) % 4 == 0
    assert set(p.sack_seqs(ack, mask)) == received


def test_sack_mask_is_capped() -> None:
    mask = p.sack_mask(0, [2, 2 + 32 * 4], 4)
    assert mask == b"\x01\x00\x00\x00"
    assert p.sack_mask(0, [1000], 4) is None
