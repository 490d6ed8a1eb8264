"""BEP 9 ``ut_metadata``: fetch and serve the info dictionary in 16 KiB pieces (pure).

A message is a bencoded dict (``msg_type`` 0 request, 1 data, 2 reject; ``piece``; for
data also ``total_size``) followed, for data, by the piece's raw bytes. The assembler
collects pieces from any peers, checks each piece's size, and accepts the whole only if
its SHA-1 is the info hash; otherwise it starts over and names the peers to penalise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from dataclasses import dataclass

from btd.core.bencode import decode_prefix, encode
from btd.core.errors import BencodeError, MetainfoError, ProtocolError

EXTENSION_NAME = "ut_metadata"
METADATA_PIECE = 16 * 1024
MAX_METADATA_SIZE = 10 * 1024 * 1024  # DESIGN.md: 10 MiB (libtorrent allows 30)
REQUEST, DATA, REJECT = 0, 1, 2


@dataclass(frozen=True)
class MetadataMessage:
    msg_type: int
    piece: int
    total_size: int | None = None
    data: bytes = b""


def encode_request(piece: int) -> bytes:
    return encode({b"msg_type": REQUEST, b"piece": piece})


def encode_reject(piece: int) -> bytes:
    return encode({b"msg_type": REJECT, b"piece": piece})


def encode_data(piece: int, info_bytes: bytes) -> bytes:
    """A data message carrying piece ``piece`` of our metadata."""
    chunk = info_bytes[piece * METADATA_PIECE : (piece + 1) * METADATA_PIECE]
    header = encode({b"msg_type": DATA, b"piece": piece, b"total_size": len(info_bytes)})
    return header + chunk


def num_pieces(size: int) -> int:
    return -(-size // METADATA_PIECE)


def decode_message(payload: bytes) -> MetadataMessage:
    """Parse one ut_metadata payload; ProtocolError for anything malformed."""
    try:
        header, end = decode_prefix(payload, max_depth=4, max_tokens=64)
    except BencodeError as exc:
        raise ProtocolError(f"ut_metadata: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("ut_metadata: the message is not a dictionary")
    msg_type = header.get(b"msg_type")
    piece = header.get(b"piece")
    if not isinstance(msg_type, int) or msg_type not in (REQUEST, DATA, REJECT):
        raise ProtocolError(f"ut_metadata: unknown msg_type {msg_type!r}")
    if not isinstance(piece, int) or not 0 <= piece < num_pieces(MAX_METADATA_SIZE):
        raise ProtocolError(f"ut_metadata: bad piece {piece!r}")
    if msg_type != DATA:
        if end != len(payload):
            raise ProtocolError("ut_metadata: trailing bytes after a request or reject")
        return MetadataMessage(msg_type, piece)
    total = header.get(b"total_size")
    if not isinstance(total, int) or not 0 < total <= MAX_METADATA_SIZE:
        raise ProtocolError(f"ut_metadata: bad total_size {total!r}")
    return MetadataMessage(DATA, piece, total, bytes(payload[end:]))


class MetadataAssembler:
    """Collects the info dictionary for one info hash: a v1 (SHA-1, 20 bytes) or a v2
    (SHA-256, 32 bytes: a btmh magnet's) one."""

    def __init__(self, info_hash: bytes, size: int) -> None:
        if not 0 < size <= MAX_METADATA_SIZE:
            raise ProtocolError(f"metadata size {size} outside 1..{MAX_METADATA_SIZE}")
        self.info_hash = info_hash
        self.size = size
        self.count = num_pieces(size)
        self._pieces: dict[int, bytes] = {}
        self._sources: dict[int, Hashable] = {}

    def missing(self) -> list[int]:
        return [i for i in range(self.count) if i not in self._pieces]

    def piece_length(self, piece: int) -> int:
        if piece == self.count - 1:
            return self.size - piece * METADATA_PIECE
        return METADATA_PIECE

    def add(self, peer: Hashable, msg: MetadataMessage) -> bool:
        """Store a data piece; True once every piece is here. ProtocolError if it cannot fit."""
        if msg.total_size != self.size:
            raise ProtocolError(
                f"ut_metadata: total_size {msg.total_size} differs from {self.size}"
            )
        if msg.piece >= self.count:
            raise ProtocolError(f"ut_metadata: piece {msg.piece} beyond {self.count} pieces")
        if len(msg.data) != self.piece_length(msg.piece):
            raise ProtocolError(
                f"ut_metadata: piece {msg.piece} has {len(msg.data)} bytes, "
                f"expected {self.piece_length(msg.piece)}"
            )
        self._pieces.setdefault(msg.piece, msg.data)
        self._sources.setdefault(msg.piece, peer)
        return len(self._pieces) == self.count

    def result(self) -> bytes:
        """The verified info dictionary; MetainfoError (and a fresh start) if the hash differs."""
        data = b"".join(self._pieces[i] for i in range(self.count))
        digest = hashlib.sha256 if len(self.info_hash) == 32 else hashlib.sha1
        if digest(data).digest() != self.info_hash:
            self.bad_sources = set(self._sources.values())
            self._pieces.clear()
            self._sources.clear()
            raise MetainfoError("metadata from peers does not match the info hash")
        return data
