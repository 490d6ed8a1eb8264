"""The download side of a Torrent: requests, incoming blocks, hash checks, bans.

``Downloader`` works for one torrent through a narrow ``DownloadHost`` (the Torrent): it
reads the host's current PieceBook, picker and view (a recheck rebuilds them) and reports
back through host calls (bytes counted, pieces changed, a peer to ban, the download
complete, a disk failure); hashes and writes go to the torrent's ``TorrentData``. Per-block work here is the hot path: one PieceBook call and,
now and then, a batch of requests; the hash and the write of a complete piece happen in
one thread-pool job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.bitfield import Bitfield
from btd.core.errors import ProtocolError, StorageError
from btd.core.peer import Peer
from btd.core.picking import PiecePicker, SwarmView
from btd.core.pieces import BlockResult, PieceBook
from btd.core.torrent_data import TorrentData
from btd.core.types import BlockRef
from btd.core.wire import messages as m

_log = Logger(namespace="btd.core.torrent")

MAX_UNEXPECTED_BLOCKS = 4
HASH_STRIKES = 3
_ACCEPTED, _COMPLETE, _DUPLICATE = BlockResult.ACCEPTED, BlockResult.COMPLETE, BlockResult.DUPLICATE
MAX_WRITE_BACKLOG = 16 * 1024 * 1024  # bytes waiting for hash+write before we stop requesting


class DownloadHost(Protocol):
    """What the Downloader needs of its torrent (``btd.core.torrent.Torrent``)."""

    @property
    def book(self) -> PieceBook:
        """The current piece bookkeeping (a recheck replaces it)."""
        ...

    @property
    def picker(self) -> PiecePicker: ...

    @property
    def view(self) -> SwarmView: ...

    @property
    def peers(self) -> Mapping[Peer, None]: ...

    @property
    def active(self) -> bool:
        """Downloading or seeding: requests go out and verified pieces are announced."""
        ...

    def count_download(self, size: int) -> None:
        """``size`` payload bytes were accepted."""
        ...

    def pieces_changed(self) -> None:
        """A piece was verified (resume data is worth saving)."""
        ...

    def ban(self, peer: Peer, reason: str) -> None:
        """Never connect to this peer again, and close it."""
        ...

    def download_complete(self) -> None:
        """The last piece was verified (while active or not)."""
        ...

    def fail(self, message: str) -> None:
        """A disk error: the torrent goes to ``error``."""
        ...


class Downloader:
    """Requesting and receiving for one torrent (see the module docstring)."""

    def __init__(self, host: DownloadHost, data: TorrentData, clock: IReactorTime) -> None:
        self.host = host
        self.data = data
        self.clock = clock
        self.num_pieces = data.meta.num_pieces
        self.wasted = 0  # bytes received and thrown away (duplicates, failed hashes)
        self.write_backlog = 0  # bytes of complete pieces waiting for hash+write

    # -- interest and requests -----------------------------------------------------------
    def am_interested_in(self, peer: Peer) -> bool:
        """The peer has a wanted piece we lack (pieces of skipped files do not count)."""
        book = self.host.book
        if book.wanted_done or not peer.has.count:
            return False
        if peer.has.complete:
            return True
        have, wanted = book.have, book.is_wanted
        return any(i not in have and wanted(i) for i in peer.has)

    def update_interest(self, peer: Peer, index: int | None) -> None:
        """The peer's pieces changed (``index``: one HAVE; None: a bitfield or HAVE_ALL)."""
        if index is not None:  # a HAVE only adds: no scan of the peer's pieces
            book = self.host.book
            interested = peer.am_interested or (index not in book.have and book.is_wanted(index))
        else:
            interested = self.am_interested_in(peer)
        peer.set_interested(interested)
        if interested:
            self.fill(peer)

    def fill(self, peer: Peer) -> None:
        """Keep the peer's request pipeline full (in batches, not per block)."""
        host = self.host
        book = host.book
        pending = book.pending_count(peer)
        # First the check that ends most calls (one per block received): the pipeline is
        # refilled in batches once a quarter of it came in.
        if pending > peer.depth * 3 // 4:
            return
        if not peer.am_interested or peer.link.closed or not host.active:
            return
        allowed = None
        if peer.peer_choking:
            if not peer.allowed_fast:
                return
            allowed = Bitfield(self.num_pieces)
            for index in peer.allowed_fast:
                allowed.add(index)
        if self.write_backlog > MAX_WRITE_BACKLOG:
            return
        refs = book.next_requests(
            peer, peer.has, peer.depth - pending, host.picker, host.view, allowed
        )
        if refs:
            if not pending:
                peer.last_block_at = self.clock.seconds()  # the request timeout starts now
            peer.request(refs)
        self._send_cancels()

    def refill_all(self, skip: Peer | None = None) -> None:
        for peer in self.host.peers:
            if peer is not skip:
                self.fill(peer)

    def _send_cancels(self) -> None:
        peers = self.host.peers
        for other, ref in self.host.book.pop_cancels():
            if other in peers:
                other.cancel(ref)

    def peer_choked_us(self, peer: Peer) -> None:
        if peer.fast:  # BEP 6: it rejects each request; blocks it still sends are welcome
            self.host.book.drop_requests(peer)
        else:
            self.host.book.peer_choked(peer)
        self.refill_all(skip=peer)

    def check_timeout(self, peer: Peer, now: float, timeout: float) -> None:
        """A peer that sent nothing we asked for within ``timeout`` is snubbed, its requests
        go to the others."""
        book = self.host.book
        if book.pending_count(peer) and now - peer.last_block_at > timeout:
            peer.snubbed = True
            for ref in book.drop_requests(peer):
                peer.cancel(ref)
            peer.last_block_at = now
            self.refill_all(skip=peer)

    # -- blocks in ---------------------------------------------------------------------------
    def blocks_received(self, peer: Peer, pieces: list[m.Piece]) -> None:
        """PIECE messages that came back to back (``Peer.on_messages``: one read's worth).

        The hot path (65,536 blocks per GiB): per block one PieceBook call, the rest per
        run: the bytes counted, cancels sent and the pipeline checked once for the run."""
        host = self.host
        book = host.book
        on_block = book.on_block
        accepted = 0
        try:
            for index, begin, data in pieces:
                result = on_block(peer, index, begin, data)
                if result is _ACCEPTED:
                    accepted += len(data)
                elif result is _COMPLETE:
                    accepted += len(data)
                    self._verify_piece(index)
                    if host.book is not book or peer.link.closed:
                        return  # the piece's check ended the download, or dropped the peer
                elif result is _DUPLICATE:
                    self.wasted += len(data)
                else:
                    peer.unexpected += 1
                    self.wasted += len(data)
                    if peer.unexpected > MAX_UNEXPECTED_BLOCKS:
                        raise ProtocolError("sent blocks we did not request")
        finally:
            if accepted:
                host.count_download(accepted)
                peer.payload_in += accepted
        if book.has_cancels:
            self._send_cancels()
        if book.pending_count(peer) <= peer.depth * 3 // 4:
            if peer.slow_start:
                peer.grow_depth()
            self.fill(peer)

    def block_rejected(self, peer: Peer, ref: BlockRef) -> None:
        self.host.book.on_reject(peer, ref)
        self.refill_all(skip=peer)

    # -- hash checks -------------------------------------------------------------------------
    def _verify_piece(self, index: int) -> None:
        host = self.host
        book = host.book
        data = book.take_piece_data(index)
        size = len(data)
        self.write_backlog += size
        d = self.data.verify_and_write(index, data)

        def done(ok: bool) -> None:
            self.write_backlog -= size
            book.recycle(data)
            if host.book is not book:
                return  # a recheck rebuilt the book from the disk meanwhile
            if not host.active:
                book.on_verified(index, ok)  # paused: keep the piece (it is on disk) or not
                if ok:
                    host.pieces_changed()
                    if book.wanted_done:
                        host.download_complete()  # announced on resume
                return
            self._piece_checked(index, ok)

        def failed(failure: Failure) -> None:
            self.write_backlog -= size
            if host.book is book:
                book.on_verified(index, False)  # not written: fetch it again after a resume
            if not host.active:
                return  # stopped meanwhile (storage closed): nothing to report
            if failure.check(StorageError):
                host.fail(failure.getErrorMessage())
            else:
                _log.failure("writing piece {index} failed", failure, index=index)
                host.fail(f"writing piece {index} failed: {failure.getErrorMessage()}")

        d.addCallbacks(done, failed)

    def _piece_checked(self, index: int, ok: bool) -> None:
        host = self.host
        book = host.book
        contributors = book.on_verified(index, ok)
        if not ok:
            self.wasted += self.data.piece_size(index)
            self._punish(contributors, index)
            self.refill_all()
            return
        host.pieces_changed()
        have_msg = m.Have(index)
        for peer in list(host.peers):
            if index not in peer.has:
                peer.write(have_msg)
            if peer.am_interested and not self.am_interested_in(peer):
                peer.set_interested(False)
        if book.wanted_done:
            host.download_complete()
        else:
            self.refill_all()

    def _punish(self, contributors: set[Any], index: int) -> None:
        """A failed hash: ban a sole source at once; others after repeated failures."""
        peers = self.host.peers
        for peer in contributors:
            if peer not in peers or peer.link.closed:
                continue
            peer.hash_failures += 1
            if len(contributors) == 1 or peer.hash_failures >= HASH_STRIKES:
                _log.warn(
                    "banning {host}: sent data for piece {index} that failed its hash",
                    host=peer.link.address[0],
                    index=index,
                )
                self.host.ban(peer, "corrupt data")
