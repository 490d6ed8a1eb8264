"""uTP datagrams (BEP 29): the 20-byte header, the extension chain, selective acks. Pure.

Every datagram is untrusted: anything malformed (a short header, version other than 1, an
unknown type, an extension that runs past the end, a chain longer than
``UTP_MAX_EXTENSIONS``, two selective acks) raises ProtocolError and nothing else.
BEP 29 says a selective-ack bitmask is a multiple of 4 bytes, but libtorrent sends any
length (23 bytes seen on loopback): any length is taken (0 is none); ours are multiples of
4. Unknown extension kinds are skipped (libtorrent sends kind 2, a close reason).
Sequence numbers are 16 bits and wrap; the helpers here compare them the way BEP 29 does
(a is before b if b is less than half the space ahead).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from btd.core.errors import ProtocolError
from btd.core.limits import UTP_MAX_EXTENSIONS

ST_DATA = 0
ST_FIN = 1
ST_STATE = 2
ST_RESET = 3
ST_SYN = 4
TYPE_NAMES = {ST_DATA: "DATA", ST_FIN: "FIN", ST_STATE: "STATE", ST_RESET: "RESET", ST_SYN: "SYN"}

VERSION = 1
EXT_NONE = 0
EXT_SACK = 1

HEADER = struct.Struct(">BBHIIIHH")
"""type<<4 | version, first extension, connection id, timestamp (us), timestamp difference
(us), window (bytes), seq_nr, ack_nr: 20 bytes, network order."""
HEADER_SIZE = HEADER.size

SEQ_MASK = 0xFFFF
U32 = 0xFFFFFFFF


class Packet(NamedTuple):
    """One uTP datagram. ``sack`` is the selective-ack bitmask (bytes), or None. A tuple,
    not a dataclass: one is made per datagram received, and a tuple is the cheapest."""

    type: int
    connection_id: int
    seq_nr: int
    ack_nr: int
    timestamp: int = 0
    timestamp_diff: int = 0
    wnd_size: int = 0
    sack: bytes | None = None
    payload: bytes | memoryview = b""
    """Decoded: a read-only view into the datagram (no copy); the receiver copies it once,
    into its reader's buffer."""

    def encode(self) -> bytes:
        """The datagram; raises ValueError for a packet we would never send."""
        if self.type not in TYPE_NAMES:
            raise ValueError(f"unknown uTP packet type {self.type}")
        if self.sack is not None and (not self.sack or len(self.sack) > 255):
            raise ValueError(f"selective-ack bitmask of {len(self.sack)} bytes")
        return (
            header(
                self.type,
                self.connection_id,
                self.timestamp,
                self.timestamp_diff,
                self.wnd_size,
                self.seq_nr,
                self.ack_nr,
                self.sack,
            )
            + self.payload
        )


def header(
    kind: int, conn_id: int, ts: int, ts_diff: int, wnd: int, seq_nr: int, ack_nr: int,
    sack: bytes | None = None,
) -> bytes:  # fmt: skip
    """A datagram's header and extension chain, its payload to follow."""
    before, after = header_parts(kind, conn_id, ts, ts_diff, wnd, ack_nr, sack)
    return before + pack_seq(seq_nr & SEQ_MASK) + after


def header_parts(
    kind: int, conn_id: int, ts: int, ts_diff: int, wnd: int, ack_nr: int, sack: bytes | None
) -> tuple[bytes, bytes]:
    """The header without its seq_nr: the bytes before it and after it (the ack_nr and the
    extension chain). A burst of packets differs only in the seq_nr: the send path packs
    these once and each packet's two bytes between. ``sack``: 1 to 255 bytes, or None."""
    before = _pack_before(
        kind << 4 | VERSION, EXT_NONE if sack is None else EXT_SACK, conn_id & 0xFFFF,
        ts & U32, ts_diff & U32, wnd & U32,
    )  # fmt: skip
    after = pack_seq(ack_nr & SEQ_MASK)
    if sack is not None:
        after += bytes((EXT_NONE, len(sack))) + sack
    return before, after


_pack_before = struct.Struct(">BBHIII").pack
pack_seq = struct.Struct(">H").pack
_unpack_from = HEADER.unpack_from
_TYPES = frozenset(TYPE_NAMES)
_new = tuple.__new__  # Packet(...) without its keyword handling: one per datagram received
_view = memoryview


def decode(data: bytes) -> Packet:
    """Parse one datagram; ProtocolError says what is wrong with it."""
    if type(data) is not bytes:  # the payload is a view: of something that cannot change
        data = bytes(data)
    if len(data) < HEADER_SIZE:
        raise ProtocolError(f"uTP datagram of {len(data)} bytes, the header alone is 20")
    type_ver, ext, conn_id, ts, ts_diff, wnd, seq_nr, ack_nr = _unpack_from(data)
    kind = type_ver >> 4
    if type_ver & 0x0F != VERSION or kind not in _TYPES:
        if type_ver & 0x0F != VERSION:
            raise ProtocolError(f"uTP version {type_ver & 0x0F}, only 1 is spoken")
        raise ProtocolError(f"unknown uTP packet type {kind}")
    if ext == EXT_NONE:  # the common case: no extension; a view, not a copy, of the payload
        return _new(
            Packet, (kind, conn_id, seq_nr, ack_nr, ts, ts_diff, wnd, None, _view(data)[20:])
        )
    offset = HEADER_SIZE
    sack = None
    count = 0
    while ext != EXT_NONE:
        count += 1
        if count > UTP_MAX_EXTENSIONS:
            raise ProtocolError(f"uTP extension chain longer than {UTP_MAX_EXTENSIONS}")
        if offset + 2 > len(data):
            raise ProtocolError("uTP extension header cut off")
        next_ext, length = data[offset], data[offset + 1]
        body = data[offset + 2 : offset + 2 + length]
        if len(body) != length:
            raise ProtocolError("uTP extension cut off")
        if ext == EXT_SACK:
            if sack is not None:
                raise ProtocolError("two selective-ack extensions in one datagram")
            sack = bytes(body) or None
        offset += 2 + length
        ext = next_ext
    return _new(
        Packet, (kind, conn_id, seq_nr, ack_nr, ts, ts_diff, wnd, sack, _view(data)[offset:])
    )


def seq_less(a: int, b: int) -> bool:
    """True if sequence number ``a`` comes before ``b`` (16-bit, wrapping)."""
    return 0 < ((b - a) & SEQ_MASK) < 0x8000


def seq_add(a: int, n: int) -> int:
    return (a + n) & SEQ_MASK


def sack_seqs(ack_nr: int, mask: bytes) -> Iterator[int]:
    """The sequence numbers a bitmask says arrived: bit j of byte i is ack_nr + 2 + 8i + j
    (ack_nr + 1 is the hole that makes the bitmask worth sending)."""
    for i, byte in enumerate(mask):
        if byte:
            for j in range(8):
                if byte >> j & 1:
                    yield (ack_nr + 2 + i * 8 + j) & SEQ_MASK


def sack_mask(ack_nr: int, received: Iterable[int], max_bytes: int) -> bytes | None:
    """The bitmask for the out-of-order packets ``received`` beyond ``ack_nr`` + 1, at most
    ``max_bytes`` (rounded down to a multiple of 4) long; None when there is nothing to say."""
    limit = max_bytes // 4 * 4 * 8
    bits = []
    for seq in received:
        bit = (seq - ack_nr - 2) & SEQ_MASK
        if bit < limit:
            bits.append(bit)
    if not bits:
        return None
    size = (max(bits) // 32 + 1) * 4
    mask = bytearray(size)
    for bit in bits:
        mask[bit >> 3] |= 1 << (bit & 7)
    return bytes(mask)
