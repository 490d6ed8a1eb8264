"""The upload side of one torrent: serving requests and choking.

Requests are served from whole pieces read once off-thread (``PieceReadCache``), at most
``MAX_READS_PER_PEER`` reads in flight per peer, and never faster than the peer's socket
drains (the link pauses us). Choking follows BEP 3 and the reference clients: ``upload_slots``
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

MAX_READS_PER_PEER = 8
CACHED_PIECE_LIMIT = 4 * 1024 * 1024  # larger pieces are read per block, not cached whole
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
        self.cache = PieceReadCache(self._read_piece)
        self.rounds = 0

    # -- serving ------------------------------------------------------------------------------
    def serve_request(self, peer: Peer, ref: BlockRef) -> None:
        if not self.host.have_piece(ref.piece):
            raise ProtocolError(f"request for piece {ref.piece}, which we do not have")
        if ref.begin + ref.length > self.data.piece_size(ref.piece):
            raise ProtocolError(f"request beyond the end of piece {ref.piece}")
        if peer.am_choking:
            if peer.fast:
                peer.write(m.RejectRequest(ref.piece, ref.begin, ref.length))
            return
        peer.incoming.append(ref)
        self.pump(peer)

    def pump(self, peer: Peer) -> None:
        """Start reads for queued requests while the peer's socket takes data."""
        if peer.pumping:
            return  # called back from a cached read inside the loop below, which goes on
        peer.pumping = True
        link = peer.link
        try:
            while (
                peer.incoming
                and peer.serving < MAX_READS_PER_PEER
                and not link.closed
                and not link.write_paused
            ):
                ref = peer.incoming.popleft()
                peer.serving += 1
                d = self._read_for(ref)
                d.addCallbacks(
                    self._send_block,
                    self._read_failed,
                    callbackArgs=(peer, ref),
                    errbackArgs=(peer,),
                )
        finally:
            peer.pumping = False

    def _read_for(self, ref: BlockRef) -> defer.Deferred[tuple[bytes, int]]:
        """``(data, offset of the block in data)``: a cached whole piece, or the block alone.

        Pieces above ``CACHED_PIECE_LIMIT`` are read block by block: a 512 MiB piece read
        whole per request would cost memory and disk for nothing.
        """
        if self.data.piece_size(ref.piece) > CACHED_PIECE_LIMIT:
            d = self.data.read_block(ref.piece, ref.begin, ref.length)
            return d.addCallback(lambda block: (block, 0))
        return self.cache.get(ref.piece).addCallback(lambda piece: (piece, ref.begin))

    def _send_block(self, read: tuple[bytes, int], peer: Peer, ref: BlockRef) -> None:
        data, start = read
        peer.serving -= 1
        if peer.link.closed:
            return
        if peer.am_choking:  # choked while we read: BEP 6 wants an answer to each request
            if peer.fast:
                peer.write(m.RejectRequest(ref.piece, ref.begin, ref.length))
            return
        peer.send_block(ref, data[start : start + ref.length])
        self.host.count_upload(ref.length)
        self.pump(peer)

    def _read_failed(self, failure: Failure, peer: Peer) -> None:
        peer.serving -= 1
        if self.host.active:  # after a stop the storage is closed: not an error
            self.host.fail(f"reading for upload failed: {failure.getErrorMessage()}")

    def _read_piece(self, index: int) -> defer.Deferred[bytes]:
        return self.data.read_block(index, 0, self.data.piece_size(index))

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
