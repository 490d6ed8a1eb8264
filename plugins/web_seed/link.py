"""A web seed as a peer: the link a ``Peer`` writes to, turning requests into HTTP.

``WebSeedLink`` has the link API that core/peer.py's ``Peer`` and the Torrent use of a
connection (``write``, ``close``, ``pause_reading``, ``address``, ``closed``, ``heard``...),
so a web seed is attached to its torrent like a connection after a handshake (fast
extension set, no extension protocol) and then announces HAVE_ALL and UNCHOKE. From there
the picker, the request pipeline, rates, hash checks, ``torrent.peers`` and the ban for
corrupt data apply unchanged: the REQUEST messages the Peer writes are decoded and queued
(ranges.BlockQueue), merged into jobs of contiguous bytes, each fetched as one Range
request per file it crosses (fetch.RangeFetcher), and the bytes come back to the Peer as
PIECE messages. A CANCEL takes a queued request back, or drops that block when it arrives.

A 404/410 for one file takes the pieces touching it out of what the web seed offers (a new
BITFIELD; libtorrent does the same) and does not count as a failure. Other failures: a
permanent one (a 4xx, a server that ignores Range further into a file, a refused URL)
gives the web seed up at once; others count, and the web seed CHOKEs (BEP 6:
the torrent drops its requests and asks others) for a back-off (doubling, or a 503's
``Retry-After``, capped), then UNCHOKEs; ``WEB_SEED_MAX_FAILURES`` in a row give it up.
Its ``client`` in ``torrent.peers`` says ``web seed`` and, while it waits, why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.bitfield import Bitfield
from btd.core.errors import ProtocolError
from btd.core.limits import (
    WEB_SEED_IN_FLIGHT,
    WEB_SEED_MAX_FAILURES,
    WEB_SEED_MAX_RANGE,
    WEB_SEED_QUEUE,
    WEB_SEED_RETRY_BASE,
    WEB_SEED_RETRY_MAX,
)
from btd.core.types import BlockRef
from btd.core.wire import messages as m
from btd.core.wire.codec import WireDecoder
from btd.plugins.web_seed.fetch import WebSeedError
from btd.plugins.web_seed.ranges import (
    MISSING_STATUSES,
    BlockQueue,
    Span,
    backoff,
    file_spans,
    file_url,
    pieces_of_file,
)

GIVEN_UP = "web seed given up"  # the close reason's prefix for a web seed not to retry
CLIENT = "web seed"
ZEROS = bytes(64 * 1024)

_log = Logger(namespace="btd.plugins.web_seed")


def web_seed_peer_id(url: str) -> bytes:
    """A stable 20-byte peer id per URL (a ban by peer id names the URL too)."""
    return b"-WS0001-" + hashlib.sha1(url.encode("utf-8", "replace")).digest()[:12]


class _Job:
    """Contiguous blocks fetched together: their spans in order, the bytes not yet given."""

    __slots__ = ("refs", "spans", "next", "buffer", "cancelled", "request", "span", "ended")

    def __init__(self, refs: list[BlockRef], spans: list[Span]) -> None:
        self.refs = refs
        self.spans = spans
        self.next = 0  # index in refs of the next block to give
        self.buffer = bytearray()
        self.cancelled: set[BlockRef] = set()
        self.request: Any = None
        self.span: Span | None = None  # the one being fetched
        self.ended = False


class WebSeedLink:
    """One web seed of one torrent, as the link of a Peer (see the module docstring)."""

    def __init__(
        self,
        url: str,
        swarm: Any,
        clock: IReactorTime,
        fetcher: Any,
        on_closed: Callable[[WebSeedLink, str], None],
    ) -> None:
        meta = swarm.meta
        self.url = url
        self.swarm = swarm
        self.clock = clock
        self.fetcher = fetcher
        self.on_closed = on_closed
        self.address: tuple[str, int] = (url, 0)
        self.closed = False
        self.close_reason = ""
        self.write_paused = False  # we never upload to it
        self.outgoing = False  # never a PEX address, never a dial candidate
        self.over_limit = False
        self.encrypted = False
        self.read_limit: Any = None  # the download Channel (core/bandwidth.py) once attached
        self.last_heard = clock.seconds()
        self._heard = False
        self.peer: Any = None
        self.decoder = WireDecoder(expect_handshake=False, num_pieces=meta.num_pieces)
        self.queue = BlockQueue(meta.piece_length, WEB_SEED_QUEUE)
        self.jobs: list[_Job] = []
        self.failures = 0
        self.missing_files: set[int] = set()  # answered 404/410: not on this server
        self.reading_paused = False
        self._multi = meta.multi_file
        self._files = meta.files
        self._offsets = [f.offset for f in meta.files]
        self._lengths = [f.length for f in meta.files]
        self._pads = [f.pad for f in meta.files]
        self._rejects: list[BlockRef] = []  # requests refused (queue full, backing off)
        self._pump_call: Any = None
        self._retry_call: Any = None

    # -- what the torrent's tick reads -------------------------------------------------------
    @property
    def heard(self) -> bool:
        """Data came since the last tick, or it waits out a back-off (alive, not idle)."""
        return self._heard or self._retry_call is not None

    @heard.setter
    def heard(self, value: bool) -> None:
        self._heard = value

    # -- attaching ---------------------------------------------------------------------------
    def handshake(self) -> m.Handshake:
        reserved = m.make_reserved(extensions=False, fast=True)
        return m.Handshake(self.swarm.info_hash, web_seed_peer_id(self.url), reserved)

    def attach(self) -> bool:
        """Join the torrent as a peer that has everything and unchokes us; False if the
        torrent refused it (full, banned, stopped)."""
        peer = self.swarm.attach(self, self.handshake())
        if peer is None:
            self.closed = True
            return False
        self.peer = peer
        peer.client = CLIENT
        self._give(m.HAVE_ALL_MSG)
        self._give(m.UNCHOKE_MSG)
        return True

    def _give(self, msg: Any) -> None:
        """A message from the web seed to its Peer (a ProtocolError closes the link)."""
        if self.closed or self.peer is None:
            return
        try:
            self.peer.on_message(msg)
        except ProtocolError as exc:
            self.close(f"protocol error: {exc}", error=True)

    # -- the link API (what the Peer writes) ------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            messages = self.decoder.feed(data)
        except ProtocolError as exc:  # our own bytes: a bug, but only this link pays
            self.close(f"protocol error: {exc}", error=True)
            return
        for msg in messages:
            if isinstance(msg, m.Request):
                ref = BlockRef(msg.index, msg.begin, msg.length)
                if self._retry_call is not None or not self.queue.add(ref):
                    self._rejects.append(ref)
            elif isinstance(msg, m.Cancel):
                ref = BlockRef(msg.index, msg.begin, msg.length)
                if not self.queue.cancel(ref):
                    self._cancel_in_flight(ref)
            # HAVE, INTERESTED, bitfields, keep-alives, choking: nothing to do
        if (self.queue or self._rejects) and self._pump_call is None:
            # Not from inside the Peer's call: jobs start (and rejects go) next turn.
            self._pump_call = self.clock.callLater(0, self._pump)

    def _cancel_in_flight(self, ref: BlockRef) -> None:
        """A block being fetched is not wanted any more (endgame, a snub): it is dropped
        when it comes, and a job left with nothing wanted stops its request."""
        for job in self.jobs:
            if ref in job.refs[job.next :]:
                job.cancelled.add(ref)
                if all(r in job.cancelled for r in job.refs[job.next :]):
                    job.ended = True
                    self._forget(job)
                    if job.request is not None:
                        job.request.done.addErrback(lambda _: None)
                        job.request.cancel()
                    if self.queue and self._pump_call is None:
                        self._pump_call = self.clock.callLater(0, self._pump)
                return

    def write_sequence(self, parts: list[bytes]) -> None:
        for part in parts:
            self.write(part)

    def pause_reading(self) -> None:
        """The download limit is spent: stop reading the HTTP bodies."""
        self.reading_paused = True
        for job in self.jobs:
            if job.request is not None:
                job.request.pause()

    def resume_reading(self) -> None:
        self.reading_paused = False
        for job in list(self.jobs):
            if job.request is not None:
                job.request.resume()

    def close(self, reason: str, *, error: bool = False) -> None:
        """Stop: requests aborted, the pool closed; the torrent hears of it next turn (as
        of a TCP connection's end) and then the plugin (``on_closed``)."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        for call in (self._pump_call, self._retry_call):
            if call is not None and call.active():
                call.cancel()
        self._pump_call = self._retry_call = None
        self._abort_jobs()
        self.queue.clear()
        self.fetcher.close()
        self.clock.callLater(0, self._gone, reason)

    def _gone(self, reason: str) -> None:
        if self.peer is not None:
            self.swarm.peer_gone(self.peer, reason)
        self.on_closed(self, reason)

    # -- jobs -------------------------------------------------------------------------------------
    def _pump(self) -> None:
        self._pump_call = None
        rejects, self._rejects = self._rejects, []
        for ref in rejects:
            self._give(m.RejectRequest(ref.piece, ref.begin, ref.length))
        while (
            not self.closed
            and self._retry_call is None
            and self.queue
            and len(self.jobs) < WEB_SEED_IN_FLIGHT
        ):
            refs = self.queue.take_run(WEB_SEED_MAX_RANGE)
            start = self.queue.offset(refs[0])
            size = sum(ref.length for ref in refs)
            try:
                spans = file_spans(self._offsets, self._lengths, self._pads, start, size)
            except ValueError:  # a request past the end: the Peer checked it, so a bug
                for ref in refs:
                    self._give(m.RejectRequest(ref.piece, ref.begin, ref.length))
                continue
            job = _Job(refs, spans)
            self.jobs.append(job)
            self._next_span(job)

    def _next_span(self, job: _Job) -> None:
        while job.spans and not job.ended and not self.closed:
            span = job.spans.pop(0)
            if span.pad:  # BEP 47: zeros, never asked for
                left = span.length
                while left and not job.ended:
                    take = min(left, len(ZEROS))
                    self._data(job, ZEROS[:take])
                    left -= take
                continue
            path = self._files[span.index].path
            url = file_url(self.url, path, multi_file=self._multi)
            request = self.fetcher.get(url, span.offset, span.length, lambda b: self._data(job, b))
            job.request = request
            job.span = span
            if self.reading_paused:
                request.pause()
            request.done.addCallbacks(
                lambda _: self._next_span(job), lambda f: self._job_failed(job, f)
            )
            return
        if not job.ended and not self.closed:
            self._job_done(job)

    def _data(self, job: _Job, chunk: bytes) -> None:
        """Body bytes of ``job``: every block now complete goes to the Peer."""
        if job.ended or self.closed:
            return
        self._heard = True
        buf = job.buffer
        buf += chunk
        refs = job.refs
        while job.next < len(refs) and len(buf) >= refs[job.next].length:
            ref = refs[job.next]
            job.next += 1
            with memoryview(buf) as view:
                block = bytes(view[: ref.length])
            del buf[: ref.length]
            if ref in job.cancelled:
                continue
            limit = self.read_limit
            if limit is not None and limit.limiter.on:
                limit.spend(ref.length)  # may pause reading (core/bandwidth.py)
            self._give(m.Piece(ref.piece, ref.begin, block))
            if job.ended or self.closed:
                return

    def _job_done(self, job: _Job) -> None:
        job.ended = True
        self._forget(job)
        self.failures = 0
        if self.queue and self._pump_call is None:
            self._pump_call = self.clock.callLater(0, self._pump)

    def _forget(self, job: _Job) -> None:
        if job in self.jobs:
            self.jobs.remove(job)

    def _abort_jobs(self) -> None:
        jobs, self.jobs = self.jobs, []
        for job in jobs:
            job.ended = True
            if job.request is not None:
                job.request.done.addErrback(lambda _: None)
                job.request.cancel()

    def _job_failed(self, job: _Job, failure: Failure) -> None:
        if job.ended or self.closed:
            return None
        job.ended = True
        self._forget(job)
        exc = failure.value
        if not isinstance(exc, WebSeedError):
            _log.failure("web seed {url} failed", failure, url=self.url)
            exc = WebSeedError(failure.getErrorMessage() or type(exc).__name__)
        where = job.request.url if job.request is not None else self.url
        if exc.status in MISSING_STATUSES and job.span is not None:
            self._file_missing(job.span.index, f"HTTP {exc.status} for {where}")
            return None
        self.failures += 1
        if exc.permanent or self.failures >= WEB_SEED_MAX_FAILURES:
            count = "" if exc.permanent else f" ({self.failures} failures in a row)"
            self.give_up(f"{exc} from {where}{count}")
            return None
        wait = exc.retry_after if exc.retry_after is not None else None
        if wait is None:
            wait = backoff(self.failures, WEB_SEED_RETRY_BASE, WEB_SEED_RETRY_MAX)
        self._back_off(wait, f"{exc} from {where}")
        return None

    def _file_missing(self, index: int, why: str) -> None:
        """A file this server does not have: its pieces are no longer offered (a new
        BITFIELD replaces HAVE_ALL, bracketed by CHOKE/UNCHOKE so the torrent drops the
        requests it made and asks again); no file left: given up."""
        self.missing_files.add(index)
        piece_length = self.queue.piece_length
        has = Bitfield.full(self.swarm.num_pieces)
        for i in self.missing_files:
            for piece in pieces_of_file(self._offsets[i], self._lengths[i], piece_length):
                has.discard(piece)
        if not has.count:
            self.give_up(f"{why}: no piece left to fetch from it")
            return
        _log.info(
            "web seed {url} lacks a file ({why}); {n} pieces left to fetch from it",
            url=self.url,
            why=why,
            n=has.count,
        )
        self._abort_jobs()
        self.queue.clear()
        self._give(m.CHOKE_MSG)
        self._give(m.Bitfield(has.to_bytes()))
        self._give(m.UNCHOKE_MSG)

    def give_up(self, why: str) -> None:
        _log.warn("web seed {url} given up: {why}", url=self.url, why=why)
        self.close(f"{GIVEN_UP}: {why}")

    def _back_off(self, wait: float, why: str) -> None:
        """CHOKE for ``wait`` seconds: the torrent drops its requests (BEP 6 semantics of
        btd's Downloader) and asks other peers; then UNCHOKE."""
        _log.info("web seed {url}: {why}; retrying in {wait:g} s", url=self.url, why=why, wait=wait)
        self._abort_jobs()
        self.queue.clear()
        self._retry_call = self.clock.callLater(wait, self._retry)
        if self.peer is not None:
            self.peer.client = f"{CLIENT} (retry in {wait:g} s: {why})"[:200]
        self._give(m.CHOKE_MSG)

    def _retry(self) -> None:
        self._retry_call = None
        if self.closed:
            return
        if self.peer is not None:
            self.peer.client = CLIENT
        self._give(m.UNCHOKE_MSG)
