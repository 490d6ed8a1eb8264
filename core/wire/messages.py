"""Peer wire messages as values (BEP 3, BEP 5 port, BEP 6 fast, BEP 10 extended, BEP 52
hash request/hashes/hash reject).

Every message is a frozen, slotted dataclass (``Piece`` a NamedTuple, see there) so the
codec can build them cheaply and the connection logic can pattern-match on them
(``match msg: case Have(index): ...``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

PROTOCOL_NAME = b"BitTorrent protocol"
HANDSHAKE_LENGTH = 1 + len(PROTOCOL_NAME) + 8 + 20 + 20  # 68
V2_BIT = 0x10  # BEP 52: of reserved[7], the 4th most significant bit of the last byte

# Message ids (the byte after the length prefix).
CHOKE = 0
UNCHOKE = 1
INTERESTED = 2
NOT_INTERESTED = 3
HAVE = 4
BITFIELD = 5
REQUEST = 6
PIECE = 7
CANCEL = 8
PORT = 9  # BEP 5
SUGGEST_PIECE = 13  # BEP 6
HAVE_ALL = 14  # BEP 6
HAVE_NONE = 15  # BEP 6
REJECT_REQUEST = 16  # BEP 6
ALLOWED_FAST = 17  # BEP 6
EXTENDED = 20  # BEP 10
HASH_REQUEST = 21  # BEP 52
HASHES = 22  # BEP 52
HASH_REJECT = 23  # BEP 52

EXTENDED_HANDSHAKE_ID = 0
"""The extended-message id of the BEP 10 handshake itself."""


def make_reserved(
    extensions: bool = True, fast: bool = True, dht: bool = False, v2: bool = False
) -> bytes:
    """The 8 reserved handshake bytes advertising the given features (``v2``: BEP 52's bit,
    0x10 of the last byte, which libtorrent sets for torrents with v2 hashes)."""
    r = bytearray(8)
    if v2:
        r[7] |= V2_BIT
    if extensions:
        r[5] |= 0x10
    if fast:
        r[7] |= 0x04
    if dht:
        r[7] |= 0x01
    return bytes(r)


DEFAULT_RESERVED = make_reserved()


@dataclass(frozen=True, slots=True)
class Handshake:
    """The 68-byte opening message; ``reserved`` carries feature bits."""

    info_hash: bytes
    peer_id: bytes
    reserved: bytes = DEFAULT_RESERVED

    def __post_init__(self) -> None:
        if len(self.info_hash) != 20:
            raise ValueError(f"info_hash must be 20 bytes, got {len(self.info_hash)}")
        if len(self.peer_id) != 20:
            raise ValueError(f"peer_id must be 20 bytes, got {len(self.peer_id)}")
        if len(self.reserved) != 8:
            raise ValueError(f"reserved must be 8 bytes, got {len(self.reserved)}")

    @property
    def supports_extensions(self) -> bool:
        """BEP 10 extension protocol."""
        return bool(self.reserved[5] & 0x10)

    @property
    def supports_fast(self) -> bool:
        """BEP 6 fast extension."""
        return bool(self.reserved[7] & 0x04)

    @property
    def supports_v2(self) -> bool:
        """BEP 52: the peer speaks v2 (hash request/hashes/hash reject)."""
        return bool(self.reserved[7] & V2_BIT)

    @property
    def supports_dht(self) -> bool:
        """BEP 5 DHT (the peer may send a ``port`` message)."""
        return bool(self.reserved[7] & 0x01)


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """A zero-length message; only resets the idle timer."""


@dataclass(frozen=True, slots=True)
class Choke:
    pass


@dataclass(frozen=True, slots=True)
class Unchoke:
    pass


@dataclass(frozen=True, slots=True)
class Interested:
    pass


@dataclass(frozen=True, slots=True)
class NotInterested:
    pass


@dataclass(frozen=True, slots=True)
class Have:
    index: int


@dataclass(frozen=True, slots=True)
class Bitfield:
    """Raw bitfield bytes, high bit of byte 0 = piece 0 (checked against the piece count)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Request:
    index: int
    begin: int
    length: int


class Piece(NamedTuple):
    """A block of data.

    A NamedTuple, unlike the other messages: the decoder builds one per block received
    (65536 per GiB) and a NamedTuple is about twice as quick to build as a frozen dataclass;
    it is as immutable, compares by value and pattern-matches the same way.

    ``block``, when produced by the decoder, is a read-only view of the ``bytes`` fed to it,
    or a copy when that was another buffer (so it never changes if the caller reuses it). Senders may put a
    memoryview here; equality compares the content either way (bytes == memoryview works),
    but hashing a Piece whose block is a view of a writable buffer raises ValueError.
    """

    index: int
    begin: int
    block: bytes | memoryview


@dataclass(frozen=True, slots=True)
class Cancel:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class Port:
    """BEP 5: the peer's DHT UDP port."""

    port: int


@dataclass(frozen=True, slots=True)
class SuggestPiece:
    index: int


@dataclass(frozen=True, slots=True)
class HaveAll:
    pass


@dataclass(frozen=True, slots=True)
class HaveNone:
    pass


@dataclass(frozen=True, slots=True)
class RejectRequest:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class AllowedFast:
    index: int


@dataclass(frozen=True, slots=True)
class Extended:
    """BEP 10 message: ``ext_id`` 0 is the extension handshake, others per the peer's ``m``."""

    ext_id: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class HashRequest:
    """BEP 52: ``length`` hashes of the tree whose root is ``pieces_root``, from ``index`` of
    layer ``base_layer`` (0 = the 16 KiB blocks), plus uncle hashes up ``proof_layers``."""

    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int

    def __post_init__(self) -> None:
        if len(self.pieces_root) != 32:
            raise ValueError(f"pieces_root must be 32 bytes, got {len(self.pieces_root)}")


@dataclass(frozen=True, slots=True)
class Hashes:
    """BEP 52: the answer to a HashRequest (its fields echoed): the ``length`` requested
    hashes then the uncle hashes, 32 bytes each, concatenated."""

    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int
    hashes: bytes

    def __post_init__(self) -> None:
        if len(self.pieces_root) != 32:
            raise ValueError(f"pieces_root must be 32 bytes, got {len(self.pieces_root)}")
        if len(self.hashes) % 32:
            raise ValueError(f"hashes must be a multiple of 32 bytes, got {len(self.hashes)}")

    def request(self) -> HashRequest:
        return HashRequest(
            self.pieces_root, self.base_layer, self.index, self.length, self.proof_layers
        )


@dataclass(frozen=True, slots=True)
class HashReject:
    """BEP 52: a HashRequest (its fields echoed) that will not be answered."""

    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int

    def __post_init__(self) -> None:
        if len(self.pieces_root) != 32:
            raise ValueError(f"pieces_root must be 32 bytes, got {len(self.pieces_root)}")

    def request(self) -> HashRequest:
        return HashRequest(
            self.pieces_root, self.base_layer, self.index, self.length, self.proof_layers
        )


Message: TypeAlias = (
    KeepAlive
    | Choke
    | Unchoke
    | Interested
    | NotInterested
    | Have
    | Bitfield
    | Request
    | Piece
    | Cancel
    | Port
    | SuggestPiece
    | HaveAll
    | HaveNone
    | RejectRequest
    | AllowedFast
    | Extended
    | HashRequest
    | Hashes
    | HashReject
)

# Shared instances of the field-less messages (the decoder hands these out).
KEEP_ALIVE = KeepAlive()
CHOKE_MSG = Choke()
UNCHOKE_MSG = Unchoke()
INTERESTED_MSG = Interested()
NOT_INTERESTED_MSG = NotInterested()
HAVE_ALL_MSG = HaveAll()
HAVE_NONE_MSG = HaveNone()
