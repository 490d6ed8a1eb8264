"""Peer wire encoding and incremental decoding (BEP 3 framing, BEP 6, BEP 10 envelope, BEP 52).

This is the download hot path, so the decoder works on memoryviews of whatever
``dataReceived`` hands it, copies a piece's block at most once (not at all when the feed is
immutable ``bytes``: the ``Piece`` then holds a view of it), and only buffers the one message
that straddles two feeds. It checks
structure (lengths, fixed sizes, bitfield shape); value checks that need torrent knowledge
(index range, request size) are in :func:`validate` so the connection decides what to do.

Size: about 560 lines, because each message type needs an encoder, a size check and a
decoder; they stay side by side so a new message is added in one place.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

from btd.core.errors import ProtocolError
from btd.core.limits import HASH_PROOF_MAX, HASH_REQUEST_MAX_LENGTH
from btd.core.types import BLOCK_SIZE
from btd.core.wire.messages import (
    ALLOWED_FAST,
    BITFIELD,
    CANCEL,
    CHOKE,
    CHOKE_MSG,
    EXTENDED,
    HANDSHAKE_LENGTH,
    HASH_REJECT,
    HASH_REQUEST,
    HASHES,
    HAVE,
    HAVE_ALL,
    HAVE_ALL_MSG,
    HAVE_NONE,
    HAVE_NONE_MSG,
    INTERESTED,
    INTERESTED_MSG,
    KEEP_ALIVE,
    NOT_INTERESTED,
    NOT_INTERESTED_MSG,
    PIECE,
    PORT,
    PROTOCOL_NAME,
    REJECT_REQUEST,
    REQUEST,
    SUGGEST_PIECE,
    UNCHOKE,
    UNCHOKE_MSG,
    AllowedFast,
    Bitfield,
    Cancel,
    Choke,
    Extended,
    Handshake,
    Hashes,
    HashReject,
    HashRequest,
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
)

DEFAULT_MAX_MESSAGE_LENGTH = 1 << 20
"""Largest accepted length-prefix value (id + payload), checked before buffering."""

_HDR = struct.Struct(">IB")  # length prefix + id
_I = struct.Struct(">I")
_II = struct.Struct(">II")
_III = struct.Struct(">III")
_H = struct.Struct(">H")
_LEN_ID_I = struct.Struct(">IBI")
_LEN_ID_II = struct.Struct(">IBII")
_LEN_ID_III = struct.Struct(">IBIII")
_LEN_ID_H = struct.Struct(">IBH")
_LEN_ID_B = struct.Struct(">IBB")
_HASH_FIELDS = struct.Struct(">32sIIII")  # pieces root, base layer, index, length, proof layers
_LEN_ID_HASH = struct.Struct(">IB32sIIII")
HASH_FIELDS_SIZE = _HASH_FIELDS.size  # 48

_PSTR_PREFIX = bytes([len(PROTOCOL_NAME)]) + PROTOCOL_NAME  # the first 20 handshake bytes

# --------------------------------------------------------------------------- encoding

_FIXED: dict[type, bytes] = {
    KeepAlive: b"\x00\x00\x00\x00",
    Choke: _HDR.pack(1, CHOKE),
    Unchoke: _HDR.pack(1, UNCHOKE),
    Interested: _HDR.pack(1, INTERESTED),
    NotInterested: _HDR.pack(1, NOT_INTERESTED),
    HaveAll: _HDR.pack(1, HAVE_ALL),
    HaveNone: _HDR.pack(1, HAVE_NONE),
}


def encode_handshake(hs: Handshake) -> bytes:
    """The 68-byte handshake: pstrlen, "BitTorrent protocol", reserved, info hash, peer id."""
    return b"".join((_PSTR_PREFIX, hs.reserved, hs.info_hash, hs.peer_id))


def piece_header(index: int, begin: int, length: int) -> bytes:
    """The 13-byte prefix of a piece message, to send as ``writeSequence([header, block])``."""
    try:
        return _LEN_ID_II.pack(9 + length, PIECE, index, begin)
    except struct.error as e:
        raise ValueError(f"piece header out of range: {index}, {begin}, {length}") from e


def _enc_have(m: Have) -> bytes:
    return _LEN_ID_I.pack(5, HAVE, m.index)


def _enc_bitfield(m: Bitfield) -> bytes:
    return b"".join((_HDR.pack(1 + len(m.data), BITFIELD), m.data))


def _enc_request(m: Request) -> bytes:
    return _LEN_ID_III.pack(13, REQUEST, m.index, m.begin, m.length)


def _enc_piece(m: Piece) -> bytes:
    return b"".join((_LEN_ID_II.pack(9 + len(m.block), PIECE, m.index, m.begin), m.block))


def encode_requests(refs: Iterable[Any]) -> bytes:
    """REQUEST messages for ``refs`` (anything with piece/begin/length), in one bytes: the
    pipeline sends them in batches, and packing directly skips a Request object each."""
    pack = _LEN_ID_III.pack
    return b"".join([pack(13, REQUEST, r.piece, r.begin, r.length) for r in refs])


def _enc_cancel(m: Cancel) -> bytes:
    return _LEN_ID_III.pack(13, CANCEL, m.index, m.begin, m.length)


def _enc_port(m: Port) -> bytes:
    return _LEN_ID_H.pack(3, PORT, m.port)


def _enc_suggest(m: SuggestPiece) -> bytes:
    return _LEN_ID_I.pack(5, SUGGEST_PIECE, m.index)


def _enc_reject(m: RejectRequest) -> bytes:
    return _LEN_ID_III.pack(13, REJECT_REQUEST, m.index, m.begin, m.length)


def _enc_allowed_fast(m: AllowedFast) -> bytes:
    return _LEN_ID_I.pack(5, ALLOWED_FAST, m.index)


def _enc_extended(m: Extended) -> bytes:
    return b"".join((_LEN_ID_B.pack(2 + len(m.payload), EXTENDED, m.ext_id), m.payload))


def _enc_hash_request(m: HashRequest | HashReject) -> bytes:
    mid = HASH_REQUEST if type(m) is HashRequest else HASH_REJECT
    return _LEN_ID_HASH.pack(
        1 + HASH_FIELDS_SIZE, mid, m.pieces_root, m.base_layer, m.index, m.length, m.proof_layers
    )


def _enc_hashes(m: Hashes) -> bytes:
    head = _LEN_ID_HASH.pack(
        1 + HASH_FIELDS_SIZE + len(m.hashes),
        HASHES,
        m.pieces_root,
        m.base_layer,
        m.index,
        m.length,
        m.proof_layers,
    )
    return head + m.hashes


_ENCODERS: dict[type, Callable[..., bytes]] = {
    Have: _enc_have,
    Bitfield: _enc_bitfield,
    Request: _enc_request,
    Piece: _enc_piece,
    Cancel: _enc_cancel,
    Port: _enc_port,
    SuggestPiece: _enc_suggest,
    RejectRequest: _enc_reject,
    AllowedFast: _enc_allowed_fast,
    Extended: _enc_extended,
    HashRequest: _enc_hash_request,
    HashReject: _enc_hash_request,
    Hashes: _enc_hashes,
    Handshake: encode_handshake,
}


def encode(msg: Message | Handshake) -> bytes:
    """Serialize one message (length prefix included); a Handshake gives its 68 bytes."""
    t = type(msg)
    fixed = _FIXED.get(t)
    if fixed is not None:
        return fixed
    enc = _ENCODERS.get(t)
    if enc is None:
        raise TypeError(f"not a wire message: {msg!r}")
    try:
        return enc(msg)
    except struct.error as e:
        raise ValueError(f"field out of range in {msg!r}: {e}") from e


# --------------------------------------------------------------------------- checks


def bitfield_length(num_pieces: int) -> int:
    """Bytes in a bitfield for ``num_pieces`` pieces."""
    return (num_pieces + 7) >> 3


def check_bitfield(data: bytes, num_pieces: int) -> None:
    """Raise ProtocolError unless ``data`` is exactly ceil(n/8) bytes with zero spare bits."""
    want = (num_pieces + 7) >> 3
    if len(data) != want:
        raise ProtocolError(
            f"bitfield is {len(data)} bytes, expected {want} for {num_pieces} pieces"
        )
    spare = (-num_pieces) & 7
    if spare and data[-1] & ((1 << spare) - 1):
        raise ProtocolError("bitfield has spare bits set past the last piece")


def validate(
    msg: Message,
    num_pieces: int,
    piece_length_of: Callable[[int], int] | None = None,
    *,
    max_request: int = BLOCK_SIZE,
) -> None:
    """Value checks that need torrent knowledge; raise ProtocolError on a violation.

    Indexes must be < ``num_pieces``; request/cancel/reject lengths 1..``max_request``;
    when ``piece_length_of(index)`` is given, a block must lie inside its piece. A bitfield
    must match ``num_pieces``. Messages without such values always pass.
    """
    t = type(msg)
    if t is Have or t is SuggestPiece or t is AllowedFast:
        index = msg.index  # type: ignore[union-attr]
        if not 0 <= index < num_pieces:
            raise ProtocolError(f"{t.__name__} index {index} out of range ({num_pieces} pieces)")
    elif t is Request or t is Cancel or t is RejectRequest:
        index, begin, length = msg.index, msg.begin, msg.length  # type: ignore[union-attr]
        if not 0 <= index < num_pieces:
            raise ProtocolError(f"{t.__name__} index {index} out of range ({num_pieces} pieces)")
        if length <= 0 or length > max_request:
            raise ProtocolError(f"{t.__name__} length {length} not in 1..{max_request}")
        if piece_length_of is not None and begin + length > piece_length_of(index):
            raise ProtocolError(f"{t.__name__} {index}:{begin}+{length} past end of piece")
    elif t is Piece:
        index, begin, size = msg.index, msg.begin, len(msg.block)  # type: ignore[union-attr]
        if not 0 <= index < num_pieces:
            raise ProtocolError(f"piece index {index} out of range ({num_pieces} pieces)")
        if size == 0:
            raise ProtocolError(f"empty piece message for {index}:{begin}")
        if piece_length_of is not None and begin + size > piece_length_of(index):
            raise ProtocolError(f"piece {index}:{begin}+{size} past end of piece")
    elif t is Bitfield:
        check_bitfield(msg.data, num_pieces)  # type: ignore[union-attr]


# --------------------------------------------------------------------------- decoding

_NO_PAYLOAD = {
    CHOKE: CHOKE_MSG,
    UNCHOKE: UNCHOKE_MSG,
    INTERESTED: INTERESTED_MSG,
    NOT_INTERESTED: NOT_INTERESTED_MSG,
    HAVE_ALL: HAVE_ALL_MSG,
    HAVE_NONE: HAVE_NONE_MSG,
}

# Message ids the decoder understands; anything else is skipped (as libtorrent does).
_KNOWN_IDS = frozenset(_NO_PAYLOAD) | {
    HAVE, BITFIELD, REQUEST, PIECE, CANCEL, PORT, SUGGEST_PIECE, REJECT_REQUEST, ALLOWED_FAST,
    EXTENDED, HASH_REQUEST, HASHES, HASH_REJECT,
}  # fmt: skip

_NAMES = {
    mid: cls.__name__
    for mid, cls in [
        (CHOKE, Choke), (UNCHOKE, Unchoke), (INTERESTED, Interested),
        (NOT_INTERESTED, NotInterested), (HAVE, Have), (REQUEST, Request), (CANCEL, Cancel),
        (PORT, Port), (SUGGEST_PIECE, SuggestPiece), (HAVE_ALL, HaveAll),
        (HAVE_NONE, HaveNone), (REJECT_REQUEST, RejectRequest), (ALLOWED_FAST, AllowedFast),
        (HASH_REQUEST, HashRequest), (HASH_REJECT, HashReject),
    ]
}  # fmt: skip


def _bad_size(mid: int, length: int, want: int) -> ProtocolError:
    return ProtocolError(f"{_NAMES[mid]} message has length {length}, expected {want}")


class WireDecoder:
    """Incremental decoder: ``feed`` bytes as they arrive, get complete messages back.

    Messages split across feeds and many messages in one feed both work. Only the single
    message that straddles a feed boundary is buffered, so large coalesced input costs
    O(n). After a ProtocolError the decoder is dead (further feeds raise again).
    """

    __slots__ = ("_buf", "_need_handshake", "_skip", "_max", "_num_pieces", "_failed", "_views")

    def __init__(
        self,
        *,
        expect_handshake: bool = True,
        max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
        num_pieces: int | None = None,
    ) -> None:
        self._buf = bytearray()  # handshake bytes, or the one partial message
        self._need_handshake = expect_handshake
        self._skip = 0  # bytes still to drop of an unknown message
        self._max = max_message_length
        self._num_pieces = num_pieces
        self._failed: ProtocolError | None = None
        self._views = False  # blocks may be views of the current feed (it is bytes)

    def set_num_pieces(self, num_pieces: int) -> None:
        """Enable bitfield shape checks once the torrent is known (after routing)."""
        self._num_pieces = num_pieces

    @property
    def num_pieces(self) -> int | None:
        return self._num_pieces

    @property
    def handshake_done(self) -> bool:
        return not self._need_handshake

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a message (or of the handshake)."""
        return len(self._buf)

    @property
    def pending_info_hash(self) -> bytes | None:
        """The peer's info hash once 48 handshake bytes arrived but before the peer id.

        Lets an accepting side route (and answer) a peer that waits for our handshake
        before sending its peer id.
        """
        if self._need_handshake and len(self._buf) >= 48:
            return bytes(self._buf[28:48])
        return None

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message | Handshake]:
        """Decode everything complete in the stream so far; raise ProtocolError on abuse."""
        if self._failed is not None:
            raise self._failed
        out: list[Message | Handshake] = []
        # Blocks of an immutable ``bytes`` feed (what Twisted's dataReceived gives) are
        # views of it: nobody can change it under them, and the piece buffer's copy is then
        # the only one. Any other buffer may be reused by the caller: blocks are copied.
        self._views = type(data) is bytes
        try:
            with memoryview(data) as mv:
                if mv.itemsize != 1 or mv.ndim != 1:
                    mv = mv.cast("B")
                self._feed(mv, out)
        except ProtocolError as e:
            self._failed = e
            raise
        return out

    def _feed(self, mv: memoryview, out: list[Message | Handshake]) -> None:
        end = len(mv)
        pos = 0
        if self._skip:
            pos = min(self._skip, end)
            self._skip -= pos
            if self._skip:
                return
        if self._need_handshake:
            pos = self._feed_handshake(mv, pos, end, out)
            if self._need_handshake:
                return
        if self._buf:
            pos = self._complete_pending(mv, pos, end, out)
            if self._buf or self._skip:
                return
        pos = self._parse(mv, pos, end, out)
        if pos < end:
            self._buf += mv[pos:end]

    def _feed_handshake(
        self, mv: memoryview, pos: int, end: int, out: list[Message | Handshake]
    ) -> int:
        buf = self._buf
        have = len(buf)
        take = min(HANDSHAKE_LENGTH - have, end - pos)
        buf += mv[pos : pos + take]
        pos += take
        checked = min(len(buf), 20)
        if have < checked and buf[have:checked] != _PSTR_PREFIX[have:checked]:
            if buf[0] != _PSTR_PREFIX[0]:
                raise ProtocolError(f"bad handshake: protocol name length {buf[0]}, expected 19")
            name = bytes(buf[1:checked])
            raise ProtocolError(f"bad handshake: protocol name {name!r}, not 'BitTorrent protocol'")
        if len(buf) < HANDSHAKE_LENGTH:
            return pos
        hs = Handshake(
            info_hash=bytes(buf[28:48]), peer_id=bytes(buf[48:68]), reserved=bytes(buf[20:28])
        )
        buf.clear()
        self._need_handshake = False
        out.append(hs)
        return pos

    def _complete_pending(
        self, mv: memoryview, pos: int, end: int, out: list[Message | Handshake]
    ) -> int:
        """Top up the buffered partial message; decode it once complete."""
        buf = self._buf
        if len(buf) < 5:
            take = min(5 - len(buf), end - pos)
            buf += mv[pos : pos + take]
            pos += take
            if len(buf) < 4:
                return pos
            length = _I.unpack_from(buf)[0]
            if length > self._max:
                raise ProtocolError(f"message length {length} exceeds limit {self._max}")
            if length == 0:  # keep-alive; a 5th byte taken belongs to the next message
                out.append(KEEP_ALIVE)
                del buf[:4]
                if buf:
                    pos -= len(buf)
                    buf.clear()
                return pos
            if len(buf) < 5:
                return pos
        length, mid = _HDR.unpack_from(buf)
        total = 4 + length
        if mid not in _KNOWN_IDS:
            self._skip = total - len(buf)
            buf.clear()
            skip = min(self._skip, end - pos)
            self._skip -= skip
            return pos + skip
        take = min(total - len(buf), end - pos)
        buf += mv[pos : pos + take]
        pos += take
        if len(buf) < total:
            return pos
        views, self._views = self._views, False  # the buffer is cleared and reused
        with memoryview(buf) as view:
            self._parse(view, 0, total, out)
        self._views = views
        buf.clear()
        return pos

    def _parse(self, mv: memoryview, pos: int, end: int, out: list[Message | Handshake]) -> int:
        """Decode whole messages from ``mv[pos:end]``; return where the first partial starts."""
        unpack_hdr = _HDR.unpack_from
        unpack_ii = _II.unpack_from
        append = out.append
        limit = self._max
        while True:
            avail = end - pos
            if avail < 5:
                if avail == 4:
                    length = _I.unpack_from(mv, pos)[0]
                    if length == 0:
                        append(KEEP_ALIVE)
                        pos += 4
                        continue
                    if length > limit:
                        raise ProtocolError(f"message length {length} exceeds limit {limit}")
                return pos
            length, mid = unpack_hdr(mv, pos)
            if length > limit:
                raise ProtocolError(f"message length {length} exceeds limit {limit}")
            if length == 0:
                append(KEEP_ALIVE)
                pos += 4
                continue
            stop = pos + 4 + length
            if stop > end:
                if mid not in _KNOWN_IDS:
                    self._skip = stop - end
                    return end
                return pos
            if mid == PIECE:
                if length < 9:
                    raise ProtocolError(f"piece message has length {length}, expected >= 9")
                index, begin = unpack_ii(mv, pos + 5)
                block = mv[pos + 13 : stop]
                append(Piece(index, begin, block if self._views else block.tobytes()))
            elif mid == HAVE:
                if length != 5:
                    raise _bad_size(mid, length, 5)
                append(Have(_I.unpack_from(mv, pos + 5)[0]))
            elif mid == REQUEST or mid == CANCEL or mid == REJECT_REQUEST:
                if length != 13:
                    raise _bad_size(mid, length, 13)
                i, b, n = _III.unpack_from(mv, pos + 5)
                cls = Request if mid == REQUEST else Cancel if mid == CANCEL else RejectRequest
                append(cls(i, b, n))
            elif mid in _NO_PAYLOAD:
                if length != 1:
                    raise _bad_size(mid, length, 1)
                append(_NO_PAYLOAD[mid])
            elif mid == EXTENDED:
                if length < 2:
                    raise ProtocolError("extended message without an extension id")
                append(Extended(mv[pos + 5], mv[pos + 6 : stop].tobytes()))
            elif mid == BITFIELD:
                data = mv[pos + 5 : stop].tobytes()
                if self._num_pieces is not None:
                    check_bitfield(data, self._num_pieces)
                append(Bitfield(data))
            elif mid == SUGGEST_PIECE or mid == ALLOWED_FAST:
                if length != 5:
                    raise _bad_size(mid, length, 5)
                index = _I.unpack_from(mv, pos + 5)[0]
                append(SuggestPiece(index) if mid == SUGGEST_PIECE else AllowedFast(index))
            elif mid == PORT:
                if length != 3:
                    raise _bad_size(mid, length, 3)
                append(Port(_H.unpack_from(mv, pos + 5)[0]))
            elif mid == HASH_REQUEST or mid == HASH_REJECT or mid == HASHES:
                append(_decode_hash_message(mid, length, mv, pos))
            # else: unknown id, skipped whole
            pos = stop


def _decode_hash_message(
    mid: int, length: int, mv: memoryview, pos: int
) -> HashRequest | HashReject | Hashes:
    """BEP 52 hash request/reject (48 bytes) or hashes (48 + 32 per hash); sizes strict, a
    reply's counts bounded (HASH_REQUEST_MAX_LENGTH hashes, HASH_PROOF_MAX uncles)."""
    if mid != HASHES and length != 1 + HASH_FIELDS_SIZE:
        raise _bad_size(mid, length, 1 + HASH_FIELDS_SIZE)
    if length < 1 + HASH_FIELDS_SIZE:
        raise ProtocolError(f"Hashes message has length {length}, expected >= 49")
    root, base, index, count, proof = _HASH_FIELDS.unpack_from(mv, pos + 5)
    if mid == HASH_REQUEST:  # any values: the answerer rejects what it will not serve
        return HashRequest(root, base, index, count, proof)
    if mid == HASH_REJECT:
        return HashReject(root, base, index, count, proof)
    if not 0 < count <= HASH_REQUEST_MAX_LENGTH:
        raise ProtocolError(f"Hashes length {count} not in 1..{HASH_REQUEST_MAX_LENGTH}")
    data = mv[pos + 5 + HASH_FIELDS_SIZE : pos + 4 + length]
    if len(data) % 32:
        raise ProtocolError(f"Hashes message carries {len(data)} bytes, not a multiple of 32")
    if not count <= len(data) // 32 <= count + HASH_PROOF_MAX:
        raise ProtocolError(f"Hashes message carries {len(data) // 32} hashes for {count} asked")
    return Hashes(root, base, index, count, proof, data.tobytes())
