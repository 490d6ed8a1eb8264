"""The upload side of one torrent: serving requests and choking.

Requests are served from whole pieces read once off-thread (``PieceReadCache``), the next
pieces a peer asked for read ahead, and never faster than the peer's socket drains (the link
pauses us). Choking follows BEP 3 and the reference clients: ``upload_slots``
unchoked peers chosen every 10 s by rate, one of them an optimistic unchoke rotated every 30 s,
and a free slot given at once to a peer that becomes interested.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Protocol

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from btd.core.choker import ChokeCandidate, Choker
from btd.core.errors import ProtocolError
from btd.core.peer import Peer
from btd.core.piece_cache import PieceReadCache
from btd.core.torrent_data import TorrentData
from btd.core.types import BlockRef
from btd.core.wire import messages as m
from btd.core.wire.codec import piece_header

MAX_READS_PER_PEER = 8  # block reads in flight per peer, for pieces too large to cache
CACHED_PIECE_LIMIT = 4 * 1024 * 1024  # larger pieces are read per block, not cached whole
SEND_BATCH = 256 * 1024  # bytes of blocks framed into one transport write
READ_AHEAD = 4  # pieces of one peer's queue read ahead (in groups of 2 or more)
READ_AHEAD_SCAN = 512  # queued requests looked at to find them (a bound per pump)
OPTIMISTIC_EVERY = 3  # rechoke rounds (of 10 s)
NEW_PEER_SECONDS = 30  # newly connected peers are likelier optimistic picks


class UploadHost(Protocol):
    """What the Uploader needs of its torrent (``btd.core.torrent.Torrent``)."""

    @property
    def peers(self) -> Mapping[Peer, None]: ...

    @property
    def active(self) -> bool: ...

    @property
    def complete(self) -> bool:
        """We have every piece (choking then favours upload rates)."""
        ...

    def have_piece(self, index: int) -> bool:
        """We have the piece, verified."""
        ...

    def count_upload(self, size: int) -> None:
        """``size`` payload bytes were sent."""
        ...

    def fail(self, message: str) -> None:
        """A disk error: the torrent goes to ``error``."""
        ...


class Uploader:
    """Serves one torrent's peers and decides whom to unchoke."""

    def __init__(
        self,
        host: UploadHost,
        data: TorrentData,
        clock: IReactorTime,
        upload_slots: Callable[[], int],
        rng: random.Random | None = None,
    ) -> None:
        self.host = host
        self.data = data
        self.clock = clock
        self.upload_slots = upload_slots
        self.choker = Choker(slots=upload_slots(), rng=rng or random.Random())
        self._cache: PieceReadCache | None = None  # made at the first block served
        self._waiters: dict[int, set[Peer]] = {}  # piece being read -> peers waiting for it
        self.rounds = 0

    @property
    def cache(self) -> PieceReadCache:
        """The read cache, made when first needed: a paused torrent, or a seed nobody asks
        anything, holds none (~450 bytes per torrent)."""
        if self._cache is None:
            self._cache = PieceReadCache(self._read_piece, read_many=self._read_pieces)
        return self._cache

    def clear_cache(self) -> None:
        if self._cache is not None:
            self._cache.clear()

    # -- serving ------------------------------------------------------------------------------
    def serve_requests(self, peer: Peer, refs: list[BlockRef]) -> None:
        """Requests that came in one read: checked, queued, then one pass of the pump (not
        a pass, and a write, per request)."""
        have, piece_size = self.host.have_piece, self.data.piece_size
        for ref in refs:
            if not have(ref.piece):
                raise ProtocolError(f"request for piece {ref.piece}, which we do not have")
            if ref.begin + ref.length > piece_size(ref.piece):
                raise ProtocolError(f"request beyond the end of piece {ref.piece}")
        if peer.am_choking:
            if peer.fast:
                for ref in refs:
                    peer.write(m.RejectRequest(ref.piece, ref.begin, ref.length))
            return
        peer.incoming.extend(refs)
        self.pump(peer)

    def pump(self, peer: Peer) -> None:
        """Send queued requests while the peer's socket takes data."""
        if peer.pumping:
            return  # called back from a read that fired inside the loop below, which goes on
        peer.pumping = True
        try:
            while self._pump(peer):
                pass  # a read finished at once (a cache hit): serve what it brought
        finally:
            peer.pumping = False

    def _pump(self, peer: Peer) -> bool:
        """Serve the queue in order: blocks of cached pieces are framed straight from the
        cache into one write of up to ``SEND_BATCH`` bytes (no Deferred, no slice copy, one
        transport call per batch instead of per block); the first request whose piece is not
        cached starts its read and waits for it, and the next pieces queued are read ahead,
        so the socket does not idle while a piece comes off the disk."""
        link = peer.link
        queue = peer.incoming
        if not queue or link.closed:
            return False
        cache = self.cache
        piece_size = self.data.piece_size
        head = queue[0].piece
        # A speed limit (core/bandwidth.py) holds sends like a full socket; its channel
        # calls back (``peer_writable``) when tokens came.
        limit = peer.send_limit
        # Paused (the link calls again when it drains): still start the head piece's read.
        missed = (
            (link.write_paused or limit.held)
            and cache.peek(head) is None
            and not cache.loading(head)
        )
        while queue and not link.closed and not link.write_paused and not limit.held:
            parts: list[bytes | memoryview] = []
            size = 0
            while queue and size < SEND_BATCH:
                ref = queue[0]
                if piece_size(ref.piece) > CACHED_PIECE_LIMIT:
                    if size or not self._read_large(peer):
                        break
                    continue
                piece = cache.peek(ref.piece)
                if piece is None:
                    missed = True
                    break
                queue.popleft()
                parts.append(piece_header(ref.piece, ref.begin, ref.length))
                parts.append(memoryview(piece)[ref.begin : ref.begin + ref.length])
                size += ref.length
            if not size:
                break
            peer.send_framed(parts, size)
            self.host.count_upload(size)
            if limit.limiter.on:
                limit.spend(size)
        # Look ahead only when the queue's head moved to another piece or waits for one:
        # not on every request that arrives.
        if queue and not link.closed and (missed or queue[0].piece != head):
            self._read_ahead(peer)
            paused = link.write_paused or limit.held
            return not paused and cache.peek(queue[0].piece) is not None
        return False

    def _read_ahead(self, peer: Peer) -> None:
        """Start reads of the first ``READ_AHEAD`` uncached pieces queued for ``peer``; the
        peers waiting for a piece are pumped when it arrives (at once if the read did)."""
        cache = self.cache
        wanted = 0
        seen = -1
        missing: list[int] = []  # neither cached nor being read
        head_missing = False
        for n, ref in enumerate(peer.incoming):
            if n >= READ_AHEAD_SCAN or wanted >= READ_AHEAD:
                break
            index = ref.piece
            if index == seen or self.data.piece_size(index) > CACHED_PIECE_LIMIT:
                continue
            head = seen == -1
            seen = index
            if cache.peek(index) is not None:
                continue
            wanted += 1
            waiters = self._waiters.get(index)
            if waiters is None:
                missing.append(index)
                head_missing = head_missing or head
            else:
                waiters.add(peer)
        # Reads go out in groups, one pool job each (``get_many``): a thread handoff costs
        # the reactor thread about as much as serving the piece (the GIL goes to the woken
        # worker and must come back). At once when the head of the queue is missing, else
        # once half the window is.
        if not missing or not (head_missing or len(missing) >= READ_AHEAD // 2):
            return
        for index in missing:
            self._waiters[index] = {peer}
        for index, d in zip(missing, cache.get_many(missing)):
            d.addCallbacks(self._piece_arrived, self._piece_failed, (index,), None, (index,))

    def _piece_arrived(self, piece: bytes, index: int) -> None:
        for peer in self._waiters.pop(index, ()):
            if not peer.link.closed:
                self.pump(peer)

    def _piece_failed(self, failure: Failure, index: int) -> None:
        self._waiters.pop(index, None)
        if self.host.active:  # after a stop the storage is closed: not an error
            self.host.fail(f"reading for upload failed: {failure.getErrorMessage()}")

    def _read_large(self, peer: Peer) -> bool:
        """Start the read of the head request, a block of a piece too large to cache whole
        (a 512 MiB piece read per request would cost memory and disk for nothing); False
        when ``MAX_READS_PER_PEER`` are in flight."""
        if peer.serving >= MAX_READS_PER_PEER:
            return False
        ref = peer.incoming.popleft()
        peer.serving += 1
        d = self.data.read_block(ref.piece, ref.begin, ref.length)
        d.addCallbacks(
            self._send_block, self._read_failed, callbackArgs=(peer, ref), errbackArgs=(peer,)
        )
        return True

    def _send_block(self, data: bytes, peer: Peer, ref: BlockRef) -> None:
        peer.serving -= 1
        if peer.link.closed:
            return
        if peer.am_choking:  # choked while we read: BEP 6 wants an answer to each request
            if peer.fast:
                peer.write(m.RejectRequest(ref.piece, ref.begin, ref.length))
            return
        peer.send_block(ref, data)
        self.host.count_upload(ref.length)
        if peer.send_limit.limiter.on:
            peer.send_limit.spend(ref.length)
        self.pump(peer)

    def _read_failed(self, failure: Failure, peer: Peer) -> None:
        peer.serving -= 1
        if self.host.active:  # after a stop the storage is closed: not an error
            self.host.fail(f"reading for upload failed: {failure.getErrorMessage()}")

    def _read_piece(self, index: int) -> defer.Deferred[bytes]:
        return self.data.read_block(index, 0, self.data.piece_size(index))

    def _read_pieces(self, indices: list[int]) -> defer.Deferred[list[bytes]]:
        return self.data.read_pieces(indices)

    # -- choking --------------------------------------------------------------------------------
    def maybe_unchoke(self, peer: Peer) -> None:
        """Interested peers get a free slot at once rather than at the next round."""
        if not (peer.peer_interested and peer.am_choking):
            return
        unchoked = sum(1 for p in self.host.peers if not p.am_choking)
        if unchoked < self.choker.slots:
            peer.set_choking(False)

    def rechoke(self) -> None:
        """One choking round (the torrent calls it every 10 s)."""
        host = self.host
        self.rounds += 1
        self.choker.slots = self.upload_slots()
        now = self.clock.seconds()
        candidates = [
            ChokeCandidate(
                key=peer,
                interested=peer.peer_interested,
                download_rate=peer.download.rate(),
                upload_rate=peer.upload.rate(),
                snubbed=peer.snubbed,
                new=now - peer.connected_at < NEW_PEER_SECONDS,
            )
            for peer in host.peers
        ]
        unchoke = self.choker.rechoke(
            candidates, seeding=host.complete, optimistic_due=self.rounds % OPTIMISTIC_EVERY == 1
        )
        for peer in host.peers:
            peer.set_choking(peer not in unchoke)
        if not any(peer.incoming for peer in host.peers):
            # Nobody waits for a block: an idle torrent holds no read cache (it is per
            # torrent, and a seeder may have many), the next request reads again.
            self.clear_cache()
