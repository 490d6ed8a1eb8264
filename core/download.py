"""The download side of a Torrent: requests, incoming blocks, hash checks, bans, completion.

``DownloadSide`` is mixed into ``btd.core.torrent.Torrent`` and works on its state (the
PieceBook, the picker, the peers, the storage); it is split out only to keep each module to
one job. Per-block work here is the hot path: one PieceBook call and, now and then, a batch
of requests; the hash and the write of a complete piece happen in one thread-pool job.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.bitfield import Bitfield
from btd.core.errors import ProtocolError, StorageError
from btd.core.peer import Peer
from btd.core.pieces import BlockResult
from btd.core.types import BlockRef, format_address
from btd.core.wire import messages as m

_log = Logger(namespace="btd.core.torrent")

MAX_UNEXPECTED_BLOCKS = 4
HASH_STRIKES = 3
MAX_WRITE_BACKLOG = 32 * 1024 * 1024  # bytes waiting for hash+write before we stop requesting


class DownloadSide:
    """Requesting and receiving for a Torrent (see the module docstring)."""

    # Provided by Torrent.
    book: Any
    peers: dict[Peer, None]
    completed_while_inactive = False  # the last piece was verified while paused

    def _fill(self, peer: Peer) -> None:
        """Keep the peer's request pipeline full (in batches, not per block)."""
        if not peer.am_interested or peer.link.closed or not self.active:
            return
        allowed = None
        if peer.peer_choking:
            if not peer.allowed_fast:
                return
            allowed = Bitfield(self.num_pieces)
            for index in peer.allowed_fast:
                allowed.add(index)
        if self._write_backlog > MAX_WRITE_BACKLOG:
            return
        depth = peer.depth
        pending = self.book.pending_count(peer)
        if pending > depth * 3 // 4:
            return
        refs = self.book.next_requests(
            peer, peer.has, depth - pending, self.picker, self.view, allowed
        )
        if refs:
            if not pending:
                peer.last_block_at = self.clock.seconds()  # the request timeout starts now
            peer.request(refs)
        self._send_cancels()

    def _refill_all(self, skip: Peer | None = None) -> None:
        for peer in self.peers:
            if peer is not skip:
                self._fill(peer)

    def _send_cancels(self) -> None:
        for other, ref in self.book.pop_cancels():
            if other in self.peers:
                other.cancel(ref)

    def block_received(self, peer: Peer, index: int, begin: int, data: bytes) -> None:
        result = self.book.on_block(peer, index, begin, data)
        if result is BlockResult.ACCEPTED or result is BlockResult.COMPLETE:
            self.downloaded += len(data)
            peer.payload_in += len(data)
            if result is BlockResult.COMPLETE:
                self._verify_piece(index)
        elif result is BlockResult.DUPLICATE:
            self.wasted += len(data)
        else:
            peer.unexpected += 1
            self.wasted += len(data)
            if peer.unexpected > MAX_UNEXPECTED_BLOCKS:
                raise ProtocolError("sent blocks we did not request")
            return
        self._send_cancels()
        self._fill(peer)

    def block_rejected(self, peer: Peer, ref: BlockRef) -> None:
        self.book.on_reject(peer, ref)
        self._refill_all(skip=peer)

    def _verify_piece(self, index: int) -> None:
        book = self.book
        data = book.take_piece_data(index)
        size = len(data)
        self._write_backlog += size
        d = self.env.verifier.verify_and_write(
            self.storage, index, data, self.meta.piece_hash(index)
        )

        def done(ok: bool) -> None:
            self._write_backlog -= size
            book.recycle(data)
            if self.book is not book:
                return  # a recheck rebuilt the book from the disk meanwhile
            if self.state not in ("downloading", "seeding"):
                book.on_verified(index, ok)  # paused: keep the piece (it is on disk) or not
                self.have_changes += int(ok)
                if ok and book.have.complete:
                    self.completed_while_inactive = True  # announced on resume
                return
            self._piece_checked(index, ok)

        def failed(failure: Failure) -> None:
            self._write_backlog -= size
            if self.book is book:
                book.on_verified(index, False)  # not written: fetch it again after a resume
            if self.state not in ("downloading", "seeding"):
                return  # stopped meanwhile (storage closed): nothing to report
            if failure.check(StorageError):
                self._fail(failure.getErrorMessage())
            else:
                _log.failure("writing piece {index} failed", failure, index=index)
                self._fail(f"writing piece {index} failed: {failure.getErrorMessage()}")

        d.addCallbacks(done, failed)

    def _piece_checked(self, index: int, ok: bool) -> None:
        contributors = self.book.on_verified(index, ok)
        self.have_changes += int(ok)
        if not ok:
            self.wasted += self.meta.piece_size(index)
            self._punish(contributors, index)
            self._refill_all()
            return
        have_msg = m.Have(index)
        for peer in list(self.peers):
            if index not in peer.has:
                peer.write(have_msg)
            if peer.am_interested and not self.am_interested_in(peer):
                peer.set_interested(False)
        if self.complete:
            self._completed()
        else:
            self._refill_all()

    def _punish(self, contributors: set[Any], index: int) -> None:
        """A failed hash: ban a sole source at once; others after repeated failures."""
        for peer in contributors:
            if peer not in self.peers or peer.link.closed:
                continue
            peer.hash_failures += 1
            if len(contributors) == 1 or peer.hash_failures >= HASH_STRIKES:
                host = peer.link.address[0]
                _log.warn(
                    "banning {host}: sent data for piece {index} that failed its hash",
                    host=host,
                    index=index,
                )
                self.candidates.ban(peer.link.address, "corrupt data", peer_id=peer.peer_id)
                self.banned.append(format_address(peer.link.address))
                self.env.emit(
                    self,
                    "peer_banned",
                    {"address": format_address(peer.link.address), "reason": "corrupt data"},
                )
                peer.link.close("sent corrupt data", error=True)

    def _completed(self) -> None:
        self.completed_while_inactive = False
        self.state = "seeding"
        self.completed_at = self.clock.seconds()
        self.announcer.completed()
        self.env.emit(self, "completed", {"downloaded": self.downloaded, "uploaded": self.uploaded})
        for peer in list(self.peers):
            peer.set_interested(False)
            if peer.has.complete:
                peer.link.close("both seeding")
