"""Message values: handshake feature bits, reserved bytes, equality rules."""

from __future__ import annotations

import typing

import pytest

from btd.core.types import BlockRef
from btd.core.wire import messages as m
from btd.core.wire.messages import Handshake, Piece, make_reserved

IH = bytes(range(20))
PID = b"-BT0100-" + b"x" * 12


def test_default_reserved_advertises_extensions_and_fast_not_dht() -> None:
    hs = Handshake(IH, PID)
    assert hs.reserved == make_reserved() == bytes([0, 0, 0, 0, 0, 0x10, 0, 0x04])
    assert hs.supports_extensions and hs.supports_fast and not hs.supports_dht


@pytest.mark.parametrize(
    ("ext", "fast", "dht"),
    [(e, f, d) for e in (False, True) for f in (False, True) for d in (False, True)],
)
def test_make_reserved_bits_round_trip(ext: bool, fast: bool, dht: bool) -> None:
    hs = Handshake(IH, PID, make_reserved(extensions=ext, fast=fast, dht=dht))
    assert (hs.supports_extensions, hs.supports_fast, hs.supports_dht) == (ext, fast, dht)


def test_foreign_reserved_bits_are_kept_and_ignored() -> None:
    hs = Handshake(IH, PID, b"\xff" * 8)
    assert hs.supports_extensions and hs.supports_fast and hs.supports_dht
    assert not Handshake(IH, PID, bytes(8)).supports_extensions


@pytest.mark.parametrize(
    "kwargs",
    [
        {"info_hash": b"x" * 19, "peer_id": PID},
        {"info_hash": IH, "peer_id": b"x" * 21},
        {"info_hash": IH, "peer_id": PID, "reserved": b"\x00" * 7},
    ],
)
def test_handshake_rejects_wrong_sizes(kwargs: dict[str, bytes]) -> None:
    with pytest.raises(ValueError):
        Handshake(**kwargs)


def test_messages_are_frozen_and_compare_by_value() -> None:
    have = m.Have(3)
    with pytest.raises(AttributeError):
        have.index = 4  # type: ignore[misc]
    assert m.Have(3) == have and m.Have(4) != have
    assert m.Request(1, 2, 3) != m.Cancel(1, 2, 3)
    assert m.Choke() == m.CHOKE_MSG and m.KeepAlive() == m.KEEP_ALIVE


def test_piece_block_compares_by_content_even_as_memoryview() -> None:
    data = bytearray(b"abcdef")
    assert Piece(0, 0, memoryview(data)[1:4]) == Piece(0, 0, b"bcd")
    assert Piece(0, 0, b"bcd") != Piece(0, 0, b"bce")


def test_message_alias_lists_every_message_class() -> None:
    classes = set(typing.get_args(m.Message))
    expected = {
        m.KeepAlive,
        m.Choke,
        m.Unchoke,
        m.Interested,
        m.NotInterested,
        m.Have,
        m.Bitfield,
        m.Request,
        m.Piece,
        m.Cancel,
        m.Port,
        m.SuggestPiece,
        m.HaveAll,
        m.HaveNone,
        m.RejectRequest,
        m.AllowedFast,
        m.Extended,
        m.HashRequest,
        m.Hashes,
        m.HashReject,
    }
    assert classes == expected


def test_message_ids_match_the_beps() -> None:
    assert (m.CHOKE, m.UNCHOKE, m.INTERESTED, m.NOT_INTERESTED, m.HAVE) == (0, 1, 2, 3, 4)
    assert (m.BITFIELD, m.REQUEST, m.PIECE, m.CANCEL, m.PORT) == (5, 6, 7, 8, 9)
    assert (m.SUGGEST_PIECE, m.HAVE_ALL, m.HAVE_NONE, m.REJECT_REQUEST) == (13, 14, 15, 16)
    assert (m.ALLOWED_FAST, m.EXTENDED) == (17, 20)
    assert m.HANDSHAKE_LENGTH == 68


def test_piece_and_block_ref_are_immutable_values() -> None:
    piece = Piece(1, 0, b"abc")
    with pytest.raises(AttributeError):
        piece.index = 2  # type: ignore[misc]
    assert piece == Piece(1, 0, b"abc") and piece.block == b"abc"
    ref = BlockRef(1, 0, 3)
    with pytest.raises(AttributeError):
        ref.length = 4  # type: ignore[misc]
    assert {ref: 1}[BlockRef(1, 0, 3)] == 1
