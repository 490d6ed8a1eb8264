"""PieceBook: the state of every piece and block of one torrent (pure; no I/O, no clock).

Invariant (checked by ``check()`` in the tests after every step):

- Each piece is in exactly one state: MISSING, DOWNLOADING (some block requested or
  received), VERIFYING (every block received, hash pending) or HAVE (verified; in
  ``have``). DOWNLOADING and VERIFYING pieces have a ``_Partial`` record (the buffer).
- Each block of a DOWNLOADING piece is OPEN (nobody asked), REQUESTED (by one peer, or
  by at most ``max_requesters`` in endgame) or RECEIVED (data copied into the buffer).
- ``_requests[peer]`` holds exactly the REQUESTED blocks that peer is a requester of,
  so a gone peer holds nothing once ``peer_gone`` returned.
- ``bytes_left`` is the total length of the pieces not in HAVE.

Endgame, per peer: when no block is OPEN anywhere and the picker has no new piece for
the peer, it is given blocks that others requested (``max_requesters`` per block at
most); the first copy to arrive wins and ``pop_cancels`` names the other requesters.

Blocks are named on the hot path by a global block number (piece * blocks_per_piece +
block), an int, so per-block bookkeeping hashes ints and allocates little; BlockRefs
are made at the API edge. Peers are opaque hashable keys.

Size: about 540 lines, because the invariants above hold only if every state change of a
piece or block happens in this one class; its hypothesis state machine tests it as a whole.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from enum import Enum, IntEnum
from typing import TYPE_CHECKING

from btd.core.bitfield import Bitfield, BitIndexError
from btd.core.types import BLOCK_SIZE, BlockRef

if TYPE_CHECKING:
    from btd.core.picking import PiecePicker, SwarmView

Peer = Hashable


class PieceState(IntEnum):
    MISSING = 0
    DOWNLOADING = 1
    VERIFYING = 2
    HAVE = 3


class BlockResult(Enum):
    ACCEPTED = "accepted"  # stored; the piece still lacks blocks
    COMPLETE = "complete"  # stored and the piece is now VERIFYING: take_piece_data + verify
    DUPLICATE = "duplicate"  # we did ask this peer, but another copy won (endgame, timeout)
    UNEXPECTED = "unexpected"  # never requested from this peer, or wrong length: penalise


_MISSING, _DOWNLOADING, _VERIFYING, _HAVE = 0, 1, 2, 3
MAX_SPARE_BUFFERS = 32
"""Recycled piece buffers kept: about the pieces in flight plus those queued for hash+write
(up to ~25 MiB at full speed). With 16, a 1 GiB download freed and re-made ~40 buffers, each
a zero-fill and 256 page faults of fresh memory; kept buffers never raise the peak (they were
all in use at once before). Dropped when the download completes."""
_NOBODY: tuple[Peer, ...] = ()


class _Partial:
    """A DOWNLOADING (or VERIFYING, until its data is taken) piece."""

    __slots__ = (
        "buf",
        "contributors",
        "fresh",
        "got",
        "length",
        "nblocks",
        "open",
        "received",
        "reopened",
        "req",
        "seq",
    )

    def __init__(self, length: int, nblocks: int, seq: int) -> None:
        self.seq = seq  # start order: older pieces are continued first
        self.length = length
        self.nblocks = nblocks
        self.buf: bytearray | None = None
        self.req: list[tuple[Peer, ...]] = [_NOBODY] * nblocks  # requesters per block
        self.got = bytearray(nblocks)  # 1 = RECEIVED
        self.open = nblocks  # OPEN blocks
        self.received = 0
        self.fresh = 0  # blocks >= fresh were never requested
        self.reopened: list[int] = []  # blocks < fresh that went back to OPEN (may be stale)
        self.contributors: set[Peer] = set()

    def next_open(self) -> int:
        """Pop an OPEN block (caller checked ``open > 0``)."""
        reopened = self.reopened
        while reopened:
            b = reopened.pop()
            if not self.req[b] and not self.got[b]:
                return b
        b = self.fresh
        # A late block (from a withdrawn request of an earlier attempt at this piece) may
        # have landed beyond ``fresh``: skip blocks already received or requested.
        while b < self.nblocks - 1 and (self.got[b] or self.req[b]):
            b += 1
        self.fresh = b + 1
        return b


class PieceBook:
    """Piece and block state of one torrent; the coordinator's single source of truth."""

    def __init__(
        self,
        num_pieces: int,
        piece_length: int,
        total_length: int,
        block_size: int = BLOCK_SIZE,
        *,
        max_requesters: int = 2,
    ) -> None:
        if piece_length <= 0 or block_size <= 0 or total_length <= 0:
            raise ValueError("lengths must be positive")
        if num_pieces != -(-total_length // piece_length):
            raise ValueError(f"{num_pieces} pieces cannot hold {total_length} bytes")
        self.num_pieces = num_pieces
        self.piece_length = piece_length
        self.total_length = total_length
        self.block_size = block_size
        self.max_requesters = max_requesters
        self.bpp = -(-piece_length // block_size)  # blocks in a full piece
        self.last_piece_length = total_length - piece_length * (num_pieces - 1)
        self.have = Bitfield(num_pieces)
        self._state = bytearray(num_pieces)
        self._partials: dict[int, _Partial] = {}  # DOWNLOADING + VERIFYING, oldest first
        self._open_pieces: dict[int, None] = {}  # DOWNLOADING with an OPEN block, by seq
        self._open_unsorted = False  # a piece re-entered _open_pieces out of order
        self._seq = 0
        self._open_total = 0
        self._requests: dict[Peer, set[int]] = {}
        self._withdrawn: dict[Peer, set[int]] = {}  # asked, then cancelled: may still come
        self._cancels: list[tuple[Peer, BlockRef]] = []
        self._unwanted = bytearray(num_pieces)
        self._missing_wanted = num_pieces
        self._lacking_wanted = num_pieces  # wanted pieces not HAVE (any other state)
        self.wanted_bytes = total_length  # bytes of the wanted pieces
        self.wanted_left = total_length  # bytes of the wanted pieces not HAVE
        self._have_bytes = 0
        self._have_listeners: list[Callable[[int], None]] = []
        self._spare_buffers: list[bytearray] = []

    # --- geometry -------------------------------------------------------------------

    def piece_size(self, index: int) -> int:
        return self.last_piece_length if index == self.num_pieces - 1 else self.piece_length

    def _block_length(self, piece: int, block: int) -> int:
        return min(self.block_size, self.piece_size(piece) - block * self.block_size)

    def _ref(self, g: int) -> BlockRef:
        piece, block = divmod(g, self.bpp)
        begin = block * self.block_size
        return BlockRef(piece, begin, min(self.block_size, self.piece_size(piece) - begin))

    # --- queries --------------------------------------------------------------------

    def piece_state(self, index: int) -> PieceState:
        self._check_index(index)
        return PieceState(self._state[index])

    def in_progress(self, index: int) -> bool:
        return self._state[index] in (_DOWNLOADING, _VERIFYING)

    @property
    def bytes_left(self) -> int:
        """Bytes of pieces we do not have (the tracker's ``left``)."""
        return self.total_length - self._have_bytes

    left = bytes_left

    @property
    def progress(self) -> float:
        return self._have_bytes / self.total_length

    @property
    def wanted_done(self) -> bool:
        """Every wanted piece is HAVE: the download is complete for the user."""
        return self._lacking_wanted == 0

    def is_wanted(self, index: int) -> bool:
        return not self._unwanted[index]

    @property
    def in_endgame(self) -> bool:
        """Every wanted piece is started and no block is OPEN (only duplicates remain)."""
        return self._open_total == 0 and self._missing_wanted == 0 and bool(self._partials)

    def requests_of(self, peer: Peer) -> set[BlockRef]:
        return {self._ref(g) for g in self._requests.get(peer, ())}

    def pending_count(self, peer: Peer) -> int:
        """How many blocks this peer was asked for and has not delivered (O(1))."""
        reqs = self._requests.get(peer)
        return len(reqs) if reqs else 0

    @property
    def has_cancels(self) -> bool:
        """CANCELs wait to be sent (checked per block; ``pop_cancels`` takes them)."""
        return bool(self._cancels)

    def pop_cancels(self) -> list[tuple[Peer, BlockRef]]:
        """CANCELs to send: other requesters of blocks that arrived (endgame)."""
        cancels = self._cancels
        if cancels:
            self._cancels = []
        return cancels

    # --- changes from outside the download ------------------------------------------

    def subscribe_have(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(index)`` whenever a piece becomes HAVE."""
        self._have_listeners.append(listener)

    def set_wanted(self, index: int, wanted: bool) -> None:
        """Priority 0 pieces are unwanted; they hold neither endgame nor completion back."""
        self._check_index(index)
        flag = 0 if wanted else 1
        if self._unwanted[index] != flag:
            self._unwanted[index] = flag
            step = -1 if flag else 1
            size = self.piece_size(index)
            self.wanted_bytes += step * size
            state = self._state[index]
            if state == _MISSING:
                self._missing_wanted += step
            if state != _HAVE:
                self._lacking_wanted += step
                self.wanted_left += step * size

    def mark_have(self, index: int) -> None:
        """A piece found good on disk (resume, recheck); it must not be in progress."""
        self._check_index(index)
        state = self._state[index]
        if state == _HAVE:
            return
        if state != _MISSING:
            raise ValueError(f"piece {index} is in progress")
        if not self._unwanted[index]:
            self._missing_wanted -= 1
        self._to_have(index)

    def _to_have(self, index: int) -> None:
        self._state[index] = _HAVE
        self.have.add(index)
        size = self.piece_size(index)
        self._have_bytes += size
        if not self._unwanted[index]:
            self._lacking_wanted -= 1
            self.wanted_left -= size
            if not self._lacking_wanted:
                self._spare_buffers.clear()  # the download is complete: no piece needs one
        for listener in self._have_listeners:
            listener(index)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.num_pieces:
            raise BitIndexError(f"piece index {index} out of range 0..{self.num_pieces - 1}")

    # --- requesting -----------------------------------------------------------------

    def next_requests(
        self,
        peer: Peer,
        peer_has: Bitfield,
        max_count: int,
        picker: PiecePicker,
        view: SwarmView,
        allowed: Bitfield | None = None,
    ) -> list[BlockRef]:
        """Blocks to request from ``peer`` now (at most ``max_count``), marked REQUESTED.

        Order: OPEN blocks of DOWNLOADING pieces the peer has (oldest piece first, to
        finish pieces and keep few in flight); then new pieces from ``picker``; then, if
        no block is OPEN anywhere and the picker has nothing new for this peer, endgame:
        blocks other peers requested and this one did not (at most ``max_requesters``
        per block). ``allowed`` (allowed-fast pieces, while choked) limits all three.
        """
        out: list[BlockRef] = []
        if max_count <= 0:
            return out
        mine = self._requests.get(peer)
        if mine is None:
            mine = self._requests[peer] = set()
        if self._open_pieces:
            if self._open_unsorted:
                partials = self._partials
                self._open_pieces = dict.fromkeys(
                    sorted(self._open_pieces, key=lambda i: partials[i].seq)
                )
                self._open_unsorted = False
            for index in list(self._open_pieces):
                if index in peer_has and (allowed is None or index in allowed):
                    self._take_open(peer, mine, index, max_count, out)
                    if len(out) >= max_count:
                        return out
        source = peer_has if allowed is None else peer_has & allowed
        while len(out) < max_count:
            need = -(-(max_count - len(out)) // self.bpp)
            started = False
            for index in picker.choose(source, view, need):
                if (
                    0 <= index < self.num_pieces
                    and self._state[index] == _MISSING
                    and index in source
                    and view.priority(index) > 0
                ):
                    self._start(index)
                    started = True
                    self._take_open(peer, mine, index, max_count, out)
                    if len(out) >= max_count:
                        return out
            if not started:
                break
        if not out and self._open_total == 0:
            self._endgame(peer, mine, source, max_count, out)
        return out

    def _start(self, index: int) -> None:
        size = self.piece_size(index)
        nblocks = -(-size // self.block_size)
        self._seq += 1
        self._partials[index] = _Partial(size, nblocks, self._seq)
        self._open_pieces[index] = None
        self._open_total += nblocks
        self._state[index] = _DOWNLOADING
        if not self._unwanted[index]:
            self._missing_wanted -= 1

    def _take_open(
        self, peer: Peer, mine: set[int], index: int, max_count: int, out: list[BlockRef]
    ) -> None:
        part = self._partials[index]
        base = index * self.bpp
        bs = self.block_size
        taken = 0
        while part.open and len(out) < max_count:
            b = part.next_open()
            part.req[b] = (peer,)
            part.open -= 1
            taken += 1
            mine.add(base + b)
            begin = b * bs
            out.append(BlockRef(index, begin, min(bs, part.length - begin)))
        self._open_total -= taken
        if not part.open:
            del self._open_pieces[index]

    def _endgame(
        self, peer: Peer, mine: set[int], source: Bitfield, max_count: int, out: list[BlockRef]
    ) -> None:
        bpp, cap = self.bpp, self.max_requesters
        for index, part in self._partials.items():
            if part.received == part.nblocks or index not in source:
                continue
            base = index * bpp
            for b, who in enumerate(part.req):
                if who and len(who) < cap and peer not in who:
                    part.req[b] = who + (peer,)
                    mine.add(base + b)
                    out.append(self._ref(base + b))
                    if len(out) >= max_count:
                        return

    # --- answers from peers ---------------------------------------------------------

    def on_block(self, peer: Peer, index: int, begin: int, data: bytes | memoryview) -> BlockResult:
        """Store a PIECE message's data (one copy into the piece buffer)."""
        if (
            not 0 <= index < self.num_pieces
            or begin % self.block_size
            or not 0 <= begin < self.piece_size(index)
        ):
            return BlockResult.UNEXPECTED
        b = begin // self.block_size
        g = index * self.bpp + b
        part = self._partials.get(index)
        mine = self._requests.get(peer)
        asked = mine is not None and g in mine
        if not asked:
            withdrawn = self._withdrawn.get(peer)
            if withdrawn is None or g not in withdrawn:
                return BlockResult.UNEXPECTED
            withdrawn.discard(g)
            if part is None or self._state[index] != _DOWNLOADING or part.got[b]:
                return BlockResult.DUPLICATE
        assert part is not None  # asked => the block's piece is DOWNLOADING
        if len(data) != min(self.block_size, part.length - begin):
            return BlockResult.UNEXPECTED
        who = part.req[b]
        if asked:
            mine.discard(g)  # type: ignore[union-attr]
        if who:
            part.req[b] = _NOBODY
            for other in who:
                if other != peer:
                    self._requests[other].discard(g)
                    self._withdrawn.setdefault(other, set()).add(g)
                    self._cancels.append((other, BlockRef(index, begin, len(data))))
        else:  # a withdrawn request whose block went back to OPEN: still welcome
            part.open -= 1
            self._open_total -= 1
            if not part.open:
                self._open_pieces.pop(index, None)
        buf = part.buf
        if buf is None:
            buf = part.buf = self._new_buffer(part.length)
        buf[begin : begin + len(data)] = data
        part.got[b] = 1
        part.received += 1
        part.contributors.add(peer)
        if part.received == part.nblocks:
            self._state[index] = _VERIFYING
            return BlockResult.COMPLETE
        return BlockResult.ACCEPTED

    def _new_buffer(self, length: int) -> bytearray:
        """A piece buffer, reused when one of full size was recycled.

        A fresh 1 MiB bytearray costs a zero-fill and page faults on every piece; reuse is
        safe because a piece reaches VERIFYING only once every block was written into it.
        """
        if length == self.piece_length and self._spare_buffers:
            return self._spare_buffers.pop()
        return bytearray(length)

    def recycle(self, buf: bytearray) -> None:
        """Give back a buffer from ``take_piece_data`` once its data was hashed and written
        (kept for the next piece until the download is complete)."""
        if (
            len(buf) == self.piece_length
            and len(self._spare_buffers) < MAX_SPARE_BUFFERS
            and self._lacking_wanted
        ):
            self._spare_buffers.append(buf)

    @property
    def spare_buffers(self) -> int:
        """Recycled piece buffers held for reuse (tests)."""
        return len(self._spare_buffers)

    def take_piece_data(self, index: int) -> bytearray:
        """Hand over a VERIFYING piece's buffer (once; the book keeps no reference)."""
        part = self._partials.get(index)
        if part is None or self._state[index] != _VERIFYING or part.buf is None:
            raise ValueError(f"piece {index} has no data to take")
        buf, part.buf = part.buf, None
        return buf

    def on_verified(self, index: int, ok: bool) -> set[Peer]:
        """The hash check's answer; returns the peers whose blocks made the piece.

        ok: HAVE. Failed: back to MISSING with every block reset; the caller bans a
        sole contributor at once and counts strikes against the others.
        """
        self._check_index(index)
        if self._state[index] != _VERIFYING:
            raise ValueError(f"piece {index} is not being verified")
        part = self._partials.pop(index)
        if ok:
            self._to_have(index)
        else:
            self._state[index] = _MISSING
            if not self._unwanted[index]:
                self._missing_wanted += 1
        return part.contributors

    def on_reject(self, peer: Peer, ref: BlockRef) -> bool:
        """REJECT_REQUEST (BEP 6); False if we had not asked this peer for the block."""
        if (
            not 0 <= ref.piece < self.num_pieces
            or ref.begin % self.block_size
            or not 0 <= ref.begin < self.piece_size(ref.piece)
        ):
            return False
        g = ref.piece * self.bpp + ref.begin // self.block_size
        mine = self._requests.get(peer)
        if mine is None or g not in mine:
            withdrawn = self._withdrawn.get(peer)
            if withdrawn is not None and g in withdrawn:
                withdrawn.discard(g)
                return True
            return False
        mine.discard(g)
        self._unrequest(peer, g)
        return True

    def _unrequest(self, peer: Peer, g: int) -> None:
        """Drop ``peer`` from the block's requesters; OPEN again if nobody is left."""
        index, b = divmod(g, self.bpp)
        part = self._partials[index]
        who = part.req[b]
        if len(who) == 1:
            part.req[b] = _NOBODY
            part.open += 1
            self._open_total += 1
            part.reopened.append(b)
            if index not in self._open_pieces:
                self._open_pieces[index] = None
                self._open_unsorted = True
        else:
            part.req[b] = tuple(p for p in who if p != peer)

    def _withdraw(self, peer: Peer, late_welcome: bool) -> list[BlockRef]:
        mine = self._requests.get(peer)
        if not late_welcome:
            self._withdrawn.pop(peer, None)
        if not mine:
            return []
        refs = [self._ref(g) for g in mine]
        for g in mine:
            self._unrequest(peer, g)
        if late_welcome:
            self._withdrawn.setdefault(peer, set()).update(mine)
        mine.clear()
        return refs

    def drop_requests(self, peer: Peer) -> list[BlockRef]:
        """Withdraw every request to ``peer`` (timeout, snub); its late blocks stay welcome.

        Returns the withdrawn blocks (the caller may send CANCELs).
        """
        return self._withdraw(peer, True)

    def peer_choked(self, peer: Peer) -> list[BlockRef]:
        """The peer choked us without the fast extension: it dropped our requests.

        (With BEP 6 a choke drops nothing; the peer REJECTs each request instead.)
        """
        return self._withdraw(peer, False)

    def peer_gone(self, peer: Peer) -> list[BlockRef]:
        """The connection closed: its requests go back to OPEN; the peer is forgotten."""
        refs = self._withdraw(peer, False)
        self._requests.pop(peer, None)
        if self._cancels:
            self._cancels = [c for c in self._cancels if c[0] != peer]
        return refs

    # --- tests ----------------------------------------------------------------------

    def check(self) -> None:
        """Assert the invariants in the module docstring (tests; O(size of torrent))."""
        assert set(self._partials) == {
            i for i in range(self.num_pieces) if self._state[i] in (_DOWNLOADING, _VERIFYING)
        }
        assert set(self.have) == {i for i in range(self.num_pieces) if self._state[i] == _HAVE}
        assert self._have_bytes == sum(self.piece_size(i) for i in self.have)
        held: dict[int, set[Peer]] = {}
        for peer, mine in self._requests.items():
            for g in mine:
                held.setdefault(g, set()).add(peer)
        open_total = 0
        for index, part in self._partials.items():
            verifying = self._state[index] == _VERIFYING
            assert (part.received == part.nblocks) == verifying
            n_open = 0
            for b in range(part.nblocks):
                who = part.req[b]
                g = index * self.bpp + b
                assert held.pop(g, set()) == set(who)
                assert len(who) <= max(1, self.max_requesters)
                if part.got[b]:
                    assert not who
                elif not who:
                    n_open += 1
                    assert b >= part.fresh or b in part.reopened
            assert n_open == part.open
            assert sum(part.got) == part.received
            assert (index in self._open_pieces) == (part.open > 0)
            open_total += n_open
        assert not held, f"requests for blocks of pieces not downloading: {held}"
        assert set(self._withdrawn) <= set(self._requests), "a gone peer is remembered"
        assert open_total == self._open_total
        wanted = [i for i in range(self.num_pieces) if not self._unwanted[i]]
        assert self.wanted_bytes == sum(self.piece_size(i) for i in wanted)
        lacking = [i for i in wanted if self._state[i] != _HAVE]
        assert self._lacking_wanted == len(lacking)
        assert self.wanted_left == sum(self.piece_size(i) for i in lacking)
        assert self._missing_wanted == sum(
            1
            for i in range(self.num_pieces)
            if self._state[i] == _MISSING and not self._unwanted[i]
        )
