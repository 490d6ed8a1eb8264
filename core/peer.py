"""One connected peer of one torrent: the wire protocol's state after the handshake.

``Peer`` turns decoded messages into calls on its torrent (``PeerHost``) and keeps the
per-peer facts: choke/interest flags, the peer's pieces, its request queue, rates. It
does no I/O itself: it writes through its ``link`` (the Twisted protocol) and so is
unit-tested with a fake link. Protocol violations raise ProtocolError; the link closes
the connection and nothing else is harmed.

Size: about 460 lines, because every wire message has its handler here, next to the
per-peer state it changes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from btd.core.bandwidth import UNLIMITED
from btd.core.bitfield import Bitfield
from btd.core.errors import ProtocolError
from btd.core.limits import MAX_INCOMING_REQUESTS
from btd.core.rate import RateMeter
from btd.core.types import BLOCK_SIZE, BlockRef
from btd.core.wire import messages as m
from btd.core.wire.codec import encode, encode_requests, piece_header
from btd.core.wire.extension import decode_extension_handshake

DEFAULT_PEER_REQQ = 250  # what we assume a peer accepts before it says (libtorrent's default)
MAX_PIPELINE = 500
MIN_PIPELINE = 16
PIPELINE_SECONDS = 3.0  # keep this many seconds of the peer's rate in flight
SLOW_START_SECONDS = 2.0  # the pipeline grows per refill this long after the first refill


class PeerLink(Protocol):
    """What a Peer needs of its connection."""

    address: tuple[str, int]
    closed: bool
    write_paused: bool  # the transport's buffer is full: do not queue more blocks

    def write(self, data: bytes) -> None: ...

    def write_sequence(self, parts: list[bytes]) -> None: ...

    def close(self, reason: str, *, error: bool = False) -> None: ...


class PeerHost(Protocol):
    """What a Peer needs of its torrent (``btd.core.torrent.Torrent``)."""

    num_pieces: int

    def peer_has_changed(self, peer: Peer, index: int | None) -> None: ...

    def peer_pieces_reset(self, peer: Peer) -> None:
        """Forget the peer's current piece set (a new BITFIELD/HAVE_ALL/HAVE_NONE follows)."""
        ...

    def peer_interest_changed(self, peer: Peer) -> None: ...

    def peer_unchoked_us(self, peer: Peer) -> None: ...

    def peer_choked_us(self, peer: Peer) -> None: ...

    def blocks_received(self, peer: Peer, pieces: list[m.Piece]) -> None:
        """PIECE messages that arrived back to back (one read's worth, in order)."""
        ...

    def block_rejected(self, peer: Peer, ref: BlockRef) -> None: ...

    def serve_requests(self, peer: Peer, refs: list[BlockRef]) -> None:
        """Checked requests that arrived back to back (one read's worth, in order)."""
        ...

    extensions: Any  # btd.core.extensions.Extensions

    def extensions_ready(self, peer: Peer) -> None: ...

    def peer_dht_port(self, peer: Peer, port: int) -> None: ...

    def extension_message(self, peer: Peer, name: str, payload: bytes) -> None: ...


class Peer:
    """Per-peer state; the torrent drives requests and choking through it."""

    def __init__(
        self,
        host: PeerHost,
        link: PeerLink,
        handshake: m.Handshake,
        now: Callable[[], float],
        *,
        fast: bool,
        extensions: bool,
    ) -> None:
        self.host = host
        self.link = link
        self.peer_id = handshake.peer_id
        self.now = now
        self.fast = fast and handshake.supports_fast
        self.extensions = extensions and handshake.supports_extensions
        self.has = Bitfield(host.num_pieces)
        self.am_choking = True
        self.am_interested = False
        self.peer_choking = True
        self.peer_interested = False
        self.allowed_fast: set[int] = set()  # pieces the peer lets us fetch while choked
        self.got_bitfield = False
        self.reqq = DEFAULT_PEER_REQQ
        self.depth = MIN_PIPELINE  # request pipeline length, see pipeline_depth()
        self.slow_start = True  # the depth grows with blocks received (grow_depth)
        self.ramp_started: float | None = None
        self.client = _client_from_peer_id(handshake.peer_id)
        self.ext_ids: dict[str, int] = {}  # the peer's extension name -> its message id
        self.metadata_size: int | None = None  # BEP 9: the peer's info dictionary size
        self.listen_port: int | None = None
        self.download = RateMeter(now)
        self.upload = RateMeter(now)
        self.incoming: deque[BlockRef] = deque()  # their requests, in order
        self.serving = 0  # reads in flight for them
        self.connected_at = now()
        self.last_block_at = now()
        self.last_sent_at = now()
        # Piece data moved either way, or a request could be made (core/peer_slots.py);
        # keep-alives and other chatter do not move it.
        self.last_active_at = self.connected_at
        self.snubbed = False
        self.hash_failures = 0
        self.counted_as_seed = False  # the torrent counts it in Availability.seeds
        self.pumping = False  # the torrent is serving its queue (guards re-entry)
        self.unexpected = 0  # blocks we never asked for (strikes before a disconnect)
        self.payload_in = 0  # verified-or-pending payload bytes accepted from this peer
        # Speed-limit channels (core/bandwidth.py), given by the torrent when it attaches us.
        self.recv_limit = self.send_limit = UNLIMITED
        self._dispatch: dict[type, Callable[[Any], None]] = {
            m.Piece: self._on_piece,
            m.Have: self._on_have,
            m.Request: self._on_request,
            m.Unchoke: self._on_unchoke,
            m.Choke: self._on_choke,
            m.Interested: self._on_interested,
            m.NotInterested: self._on_not_interested,
            m.Bitfield: self._on_bitfield,
            m.Cancel: self._on_cancel,
            m.KeepAlive: _ignore,
            m.Port: self._on_port,
            m.HaveAll: self._on_have_all,
            m.HaveNone: self._on_have_none,
            m.RejectRequest: self._on_reject,
            m.AllowedFast: self._on_allowed_fast,
            m.SuggestPiece: _ignore,
            m.Extended: self._on_extended,
            m.HashRequest: self._on_hash_message,
            m.Hashes: self._on_hash_message,
            m.HashReject: self._on_hash_message,
        }

    # -- incoming ---------------------------------------------------------------------
    def on_message(self, msg: Any) -> None:
        handler = self._dispatch.get(type(msg))
        if handler is None:
            raise ProtocolError(f"unexpected message {type(msg).__name__}")
        handler(msg)

    def on_messages(self, msgs: list[Any]) -> None:
        """Everything one read decoded, in order; stops once the link is closed.

        Back-to-back PIECEs (8-16 per read at full speed) go to the torrent as one run: one
        clock reading, rate update and pipeline check per run. REQUESTs likewise: the
        uploader queues the run and serves it in one pass."""
        link = self.link
        run: list[Any] = []
        kind: type | None = None
        piece, request = m.Piece, m.Request
        for msg in msgs:
            t = type(msg)
            if t is kind:
                run.append(msg)
                continue
            if run:
                (self._on_pieces if kind is piece else self._on_requests)(run)
                run = []
                if link.closed:
                    return
            if t is piece or t is request:
                kind = t
                run = [msg]
                continue
            kind = None
            self.on_message(msg)
            if link.closed:
                return
        if run:
            (self._on_pieces if kind is piece else self._on_requests)(run)

    def _on_piece(self, msg: m.Piece) -> None:
        self._on_pieces([msg])

    def _on_pieces(self, run: list[m.Piece]) -> None:
        now = self.now()
        size = 0
        for msg in run:
            size += len(msg.block)
        self.download.add(size, now)
        self.last_block_at = now
        self.last_active_at = now
        self.snubbed = False
        self.host.blocks_received(self, run)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.host.num_pieces:
            raise ProtocolError(f"piece index {index} out of range")

    def _on_have(self, msg: m.Have) -> None:
        self._check_index(msg.index)
        if self.has.add(msg.index):
            self.host.peer_has_changed(self, msg.index)

    def _on_bitfield(self, msg: m.Bitfield) -> None:
        self._set_pieces(Bitfield.from_bytes(msg.data, self.host.num_pieces))

    def _on_have_all(self, msg: m.HaveAll) -> None:
        if not self.fast:
            raise ProtocolError("have-all without the fast extension")
        self._set_pieces(Bitfield.full(self.host.num_pieces))

    def _on_have_none(self, msg: m.HaveNone) -> None:
        if not self.fast:
            raise ProtocolError("have-none without the fast extension")
        self._set_pieces(Bitfield(self.host.num_pieces))

    def _set_pieces(self, got: Bitfield) -> None:
        """A BITFIELD, HAVE_ALL or HAVE_NONE: it replaces what we knew of the peer's pieces.

        A late or repeated one (aria2 sends a second bitfield; some clients send HAVEs
        first, or HAVE_NONE and then a bitfield) is accepted, as libtorrent does: the
        torrent forgets the old set (availability counts stay exact), then learns the new
        one and recomputes its interest.
        """
        if self.got_bitfield or self.has.count:
            self.host.peer_pieces_reset(self)
        self.got_bitfield = True
        self.has = got
        self.host.peer_has_changed(self, None)

    def _on_request(self, msg: m.Request) -> None:
        self._on_requests([msg])

    def _on_requests(self, run: list[m.Request]) -> None:
        """Checked here (index, size, the queue's bound), then handed over as one run."""
        if len(self.incoming) + len(run) > MAX_INCOMING_REQUESTS:
            raise ProtocolError(f"request flood (more than {MAX_INCOMING_REQUESTS} queued)")
        num_pieces = self.host.num_pieces
        refs = []
        for msg in run:
            index, length = msg.index, msg.length
            if not 0 <= index < num_pieces:
                raise ProtocolError(f"piece index {index} out of range")
            if not 0 < length <= BLOCK_SIZE:
                raise ProtocolError(f"request for {length} bytes (limit {BLOCK_SIZE})")
            refs.append(BlockRef(index, msg.begin, length))
        self.host.serve_requests(self, refs)

    def _on_cancel(self, msg: m.Cancel) -> None:
        ref = BlockRef(msg.index, msg.begin, msg.length)
        try:
            self.incoming.remove(ref)
        except ValueError:
            return  # already sent or never asked: a race, not an error
        if self.fast:
            self.write(m.RejectRequest(ref.piece, ref.begin, ref.length))

    def _on_port(self, msg: m.Port) -> None:
        self.host.peer_dht_port(self, msg.port)

    def _on_unchoke(self, msg: m.Unchoke) -> None:
        if self.peer_choking:
            self.peer_choking = False
            self.host.peer_unchoked_us(self)

    def _on_choke(self, msg: m.Choke) -> None:
        if not self.peer_choking:
            self.peer_choking = True
            self.host.peer_choked_us(self)

    def _on_interested(self, msg: m.Interested) -> None:
        if not self.peer_interested:
            self.peer_interested = True
            self.host.peer_interest_changed(self)

    def _on_not_interested(self, msg: m.NotInterested) -> None:
        if self.peer_interested:
            self.peer_interested = False
            self.host.peer_interest_changed(self)

    def _on_reject(self, msg: m.RejectRequest) -> None:
        if not self.fast:
            raise ProtocolError("reject-request without the fast extension")
        self.host.block_rejected(self, BlockRef(msg.index, msg.begin, msg.length))

    def _on_allowed_fast(self, msg: m.AllowedFast) -> None:
        if not self.fast:
            raise ProtocolError("allowed-fast without the fast extension")
        self._check_index(msg.index)
        if len(self.allowed_fast) < 64:
            self.allowed_fast.add(msg.index)
            if self.peer_choking:
                self.host.peer_unchoked_us(self)  # lets the torrent request those pieces

    def _on_extended(self, msg: m.Extended) -> None:
        if not self.extensions:
            raise ProtocolError("extended message without the extension protocol")
        if msg.ext_id == m.EXTENDED_HANDSHAKE_ID:
            hs = decode_extension_handshake(msg.payload)
            self.ext_ids.update({k: v for k, v in hs.m.items() if v})
            for name, ext_id in hs.m.items():
                if ext_id == 0:
                    self.ext_ids.pop(name, None)
            if hs.reqq:
                self.reqq = max(1, min(hs.reqq, MAX_PIPELINE))
            if hs.v:
                self.client = hs.v[:64]
            if hs.p:
                self.listen_port = hs.p
            if hs.metadata_size:
                self.metadata_size = hs.metadata_size
            self.host.extensions_ready(self)
            return
        name = self.host.extensions.names.get(msg.ext_id)
        if name is not None:  # an id we never gave out: ignored, as libtorrent does
            self.host.extension_message(self, name, msg.payload)

    def _on_hash_message(self, msg: Any) -> None:
        """BEP 52: to the torrent; a host without v2 support rejects every request."""
        handler = getattr(self.host, "hash_message", None)
        if handler is not None:
            handler(self, msg)
        elif type(msg) is m.HashRequest:
            fields = (msg.pieces_root, msg.base_layer, msg.index, msg.length, msg.proof_layers)
            self.write(m.HashReject(*fields))

    def supports(self, name: str) -> bool:
        """The peer advertised this extension in its handshake."""
        return name in self.ext_ids

    def send_extended(self, name: str, payload: bytes) -> bool:
        """Send an extension message by name; False if the peer does not speak it."""
        ext_id = self.ext_ids.get(name)
        if ext_id is None:
            return False
        self.write(m.Extended(ext_id, payload))
        return True

    # -- outgoing ---------------------------------------------------------------------
    def write(self, msg: Any) -> None:
        if not self.link.closed:
            self.link.write(encode(msg))
            self.last_sent_at = self.now()

    def send_block(self, ref: BlockRef, data: bytes) -> None:
        """Send a block we read for them (if they still want it)."""
        if self.link.closed:
            return
        self.link.write_sequence([piece_header(ref.piece, ref.begin, len(data)), data])
        self.upload.add(len(data))
        self.last_sent_at = self.last_active_at = self.now()

    def send_framed(self, parts: list[bytes | memoryview], size: int) -> None:
        """Piece messages framed by the uploader (header, block, ...; ``size`` payload
        bytes): joined into one write, the blocks' only copy before the kernel's."""
        if self.link.closed:
            return
        self.link.write(b"".join(parts))
        self.upload.add(size)
        self.last_sent_at = self.last_active_at = self.now()

    def request(self, refs: list[BlockRef]) -> None:
        if refs and not self.link.closed:
            self.link.write(encode_requests(refs))
            self.last_sent_at = self.now()

    def cancel(self, ref: BlockRef) -> None:
        self.write(m.Cancel(ref.piece, ref.begin, ref.length))

    def set_interested(self, interested: bool) -> None:
        if interested != self.am_interested:
            self.am_interested = interested
            self.write(m.INTERESTED_MSG if interested else m.NOT_INTERESTED_MSG)

    def set_choking(self, choking: bool) -> None:
        if choking == self.am_choking:
            return
        self.am_choking = choking
        self.write(m.CHOKE_MSG if choking else m.UNCHOKE_MSG)
        if choking:
            rejected = list(self.incoming)
            self.incoming.clear()
            if self.fast:
                for ref in rejected:
                    self.write(m.RejectRequest(ref.piece, ref.begin, ref.length))

    def pipeline_depth(self) -> int:
        """How many of our requests to keep outstanding: a few seconds of its rate.

        Recomputed once a second by the torrent's tick (``depth``), not per block.
        """
        want = int(self.download.rate() * PIPELINE_SECONDS / BLOCK_SIZE)
        return max(MIN_PIPELINE, min(want, self.reqq, MAX_PIPELINE))

    def grow_depth(self) -> None:
        """Slow start: a quarter of the pipeline came back, so it grows by half (about 2
        more in flight per block received, as TCP's). The rate needs a second of history;
        at 16 in flight a fast peer spends it at a fraction of its rate, a send per 4 blocks."""
        if self.ramp_started is None:
            self.ramp_started = self.now()
        self.depth = min(self.depth + self.depth // 2, self.reqq, MAX_PIPELINE)

    def update_depth(self) -> None:
        """Once a second (the torrent's tick): a few seconds of the peer's rate; during slow
        start (``SLOW_START_SECONDS`` from its first growth) the depth only grows."""
        want = self.pipeline_depth()
        if self.slow_start:
            started = self.ramp_started
            if started is None or self.now() - started < SLOW_START_SECONDS:
                self.depth = max(want, min(self.depth, self.reqq))
                return
            self.slow_start = False
        self.depth = want

    def info(self) -> dict[str, Any]:
        host, port = self.link.address
        n = self.host.num_pieces
        return {
            "address": host,
            "port": port,
            "client": self.client,
            "peer_id": self.peer_id.hex(),
            "progress": round(self.has.count / n, 4) if n else 0.0,
            "download_rate": round(self.download.rate()),
            "upload_rate": round(self.upload.rate()),
            "downloaded": self.download.total,
            "uploaded": self.upload.total,
            "am_choking": self.am_choking,
            "am_interested": self.am_interested,
            "peer_choking": self.peer_choking,
            "peer_interested": self.peer_interested,
            "snubbed": self.snubbed,
            "encrypted": bool(getattr(self.link, "encrypted", False)),  # MSE with RC4
        }


def _ignore(msg: Any) -> None:
    """Messages we accept and do not act on (keep-alive, port, suggest)."""


def _client_from_peer_id(peer_id: bytes) -> str:
    """Azureus-style ``-XX1234-`` peer ids name the client; otherwise show the prefix."""
    if len(peer_id) >= 8 and peer_id[0:1] == b"-" and peer_id[7:8] == b"-":
        return peer_id[1:7].decode("ascii", "replace")
    return peer_id[:8].decode("ascii", "replace")
