"""A web seed as a peer of a real Torrent (tests/torrent_harness.py): requests become range
requests per file, bytes come back as blocks, corrupt data bans it by URL, failures back off
and give up. The HTTP side is a fake fetcher; the clock is a MemoryReactorClock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from torrent_harness import CONTENT, FILE_SIZES, NUM_PIECES, TORRENT_NAME, Swarm
from web_seed_fakes import BASE, FILE_START, FakeFetcher

from btd.core.wire import messages as m
from btd.core.wire.codec import encode
from btd.plugins.web_seed.fetch import WebSeedError
from btd.plugins.web_seed.link import CLIENT, GIVEN_UP, WebSeedLink, web_seed_peer_id


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.swarm = Swarm(tmp_path).start()
        self.torrent = self.swarm.torrent
        self.clock = self.swarm.clock
        self.fetcher = FakeFetcher()
        self.closed: list[str] = []
        self.link = WebSeedLink(
            BASE, self.torrent, self.clock, self.fetcher, lambda link, why: self.closed.append(why)
        )
        assert self.link.attach()
        self.peer = self.link.peer

    def turn(self) -> None:
        self.clock.advance(0)

    def serve_all(self, data: bytes = CONTENT) -> None:
        for _ in range(100):
            self.turn()
            open_ = self.fetcher.open()
            if not open_:
                return
            for request in open_:
                request.serve(data)
        raise AssertionError("never done")


@pytest.fixture()
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_it_joins_as_a_seed_that_unchokes_us(h: Harness) -> None:
    assert h.peer in h.torrent.peers and h.peer.has.complete
    assert not h.peer.peer_choking and h.peer.am_interested
    assert h.peer.client == CLIENT and h.peer.peer_id == web_seed_peer_id(BASE)
    assert h.peer.info()["address"] == BASE
    assert h.fetcher.requests == []  # nothing from inside the Peer's call
    h.turn()
    assert 1 <= len(h.fetcher.requests) <= 3  # at most 2 jobs, a job may cross a file edge


def test_it_downloads_the_whole_torrent(h: Harness) -> None:
    h.serve_all()
    assert h.torrent.complete and h.torrent.state == "seeding"
    assert sorted(h.swarm.verifier.verified) == [(i, True) for i in range(NUM_PIECES)]
    h.turn()
    assert h.closed == ["both seeding"] and h.peer not in h.torrent.peers
    assert h.fetcher.closed


def test_a_job_across_a_file_edge_is_one_range_per_file(h: Harness) -> None:
    h.serve_all()
    edge = FILE_SIZES[0][1]
    spans = sorted((FILE_START[r.url] + r.offset, r.length, r.url) for r in h.fetcher.requests)
    pos = 0
    for start, length, _ in spans:  # every byte asked once, in runs that never cross a file
        assert start == pos
        assert start >= edge or start + length <= edge
        pos += length
    assert pos == len(CONTENT)
    assert any(start + length == edge for start, length, _ in spans)


def test_corrupt_data_bans_it_by_url(h: Harness) -> None:
    bad = bytes(b ^ 0xFF for b in CONTENT)
    h.turn()
    h.fetcher.open()[0].serve(bad)
    h.turn()
    assert (BASE, 0) in h.torrent.candidates.banned
    assert web_seed_peer_id(BASE) in h.torrent.candidates.banned_peer_ids
    assert [k for k, _ in h.swarm.events if k == "peer_banned"]
    assert h.closed == ["sent corrupt data"] and h.peer not in h.torrent.peers
    assert all(not ok for _, ok in h.swarm.verifier.verified)
    again = WebSeedLink(BASE, h.torrent, h.clock, FakeFetcher(), lambda *_: None)
    assert not again.attach()  # the torrent refuses it now


def test_a_failure_backs_off_then_asks_again(h: Harness) -> None:
    h.turn()
    first = h.fetcher.open()[0]
    first.done.errback(WebSeedError("HTTP 503", retry_after=7.0))
    assert h.peer.peer_choking and "retry in 7 s: HTTP 503" in h.peer.client
    assert all(r.cancelled or r.done.called for r in h.fetcher.requests)
    assert h.torrent.book.pending_count(h.peer) == 0  # its requests went back to the book
    asked = len(h.fetcher.requests)
    h.clock.advance(6)
    assert len(h.fetcher.requests) == asked and h.link.heard  # waiting is not idle
    h.clock.advance(1)
    h.turn()
    assert not h.peer.peer_choking and h.peer.client == CLIENT
    assert len(h.fetcher.requests) > asked
    h.serve_all()
    assert h.torrent.complete and h.link.failures == 0


def test_failures_in_a_row_give_it_up(h: Harness) -> None:
    h.turn()
    for wait in (5, 10, 20, 40, None):
        h.fetcher.open()[0].done.errback(WebSeedError("connection refused"))
        if wait is not None:
            h.clock.advance(wait)
            h.turn()
    h.turn()
    assert h.closed and h.closed[0].startswith(GIVEN_UP)
    assert "5 failures in a row" in h.closed[0] and "connection refused" in h.closed[0]
    assert h.peer not in h.torrent.peers
    assert (BASE, 0) not in h.torrent.candidates.banned  # given up, not banned


def test_a_permanent_error_gives_it_up_at_once(h: Harness) -> None:
    h.turn()
    request = h.fetcher.open()[0]
    request.done.errback(WebSeedError("HTTP 404", permanent=True))
    h.turn()
    assert h.closed == [f"{GIVEN_UP}: HTTP 404 from {request.url}"]


def test_an_answer_cut_short_keeps_the_blocks_it_gave(h: Harness) -> None:
    h.turn()
    request = h.fetcher.open()[0]
    request.serve(upto=16 * 1024 + 5)  # one whole block and a bit
    assert h.peer.download.total == 16 * 1024
    request.done.errback(WebSeedError("the answer ended after 16389 of 32768 bytes"))
    assert h.peer.peer_choking and h.link.failures == 1


def test_a_cancelled_block_in_flight_is_not_given(h: Harness) -> None:
    given: list[tuple[int, int]] = []
    receive = h.torrent.downloader.blocks_received

    def spy(peer: Any, pieces: list[Any]) -> None:
        given.extend((p.index, p.begin) for p in pieces)
        receive(peer, pieces)

    h.torrent.downloader.blocks_received = spy  # type: ignore[method-assign]
    h.turn()
    request = h.fetcher.open()[0]
    piece, begin = divmod(FILE_START[request.url] + request.offset, 32 * 1024)
    h.link.write(encode(m.Cancel(piece, begin, 16 * 1024)))
    request.serve()
    assert (piece, begin) not in given and (piece, begin + 16 * 1024) in given


def test_a_job_whose_blocks_are_all_cancelled_stops_its_request(h: Harness) -> None:
    h.turn()
    request = h.fetcher.open()[0]
    job = next(j for j in h.link.jobs if j.request is request)
    h.link.write(b"".join(encode(m.Cancel(*ref)) for ref in job.refs))
    assert request.cancelled and job not in h.link.jobs
    assert h.link.failures == 0 and not h.peer.peer_choking


def test_the_download_limit_pauses_the_bodies(h: Harness) -> None:
    h.turn()
    h.link.pause_reading()
    assert all(r.paused for r in h.fetcher.open())
    h.link.resume_reading()
    assert not any(r.paused for r in h.fetcher.open())


def test_requests_while_backing_off_are_rejected_next_turn(h: Harness) -> None:
    h.turn()
    h.fetcher.open()[0].done.errback(WebSeedError("HTTP 500"))
    asked = len(h.fetcher.requests)
    h.link.write(encode(m.Request(0, 0, 16 * 1024)))
    h.turn()
    assert len(h.fetcher.requests) == asked


def test_a_file_the_server_lacks_is_asked_of_others(h: Harness) -> None:
    a_url = f"{BASE}{TORRENT_NAME}/a.bin"
    for _ in range(100):
        h.turn()
        open_ = h.fetcher.open()
        if not open_:
            break
        for request in open_:
            if request.done.called:  # aborted by a 404 before it
                continue
            if request.url == a_url:
                request.done.errback(WebSeedError("HTTP 404", permanent=True, status=404))
            else:
                request.serve()
    # a.bin (100,000 bytes) is in pieces 0..3; piece 3 is shared with b.bin
    assert sorted(i for i in range(NUM_PIECES) if i not in h.peer.has) == [0, 1, 2, 3]
    assert sorted(i for i, ok in h.swarm.verifier.verified if ok) == list(range(4, NUM_PIECES))
    assert h.link.failures == 0 and not h.closed and not h.peer.peer_choking
    assert h.torrent.availability.count(0) == 0 and h.torrent.availability.count(5) == 1
    seeder = h.swarm.seed_peer()  # a peer that has them completes the torrent
    for _ in range(20):
        requests = [x for x in seeder.new() if isinstance(x, m.Request)]
        if not requests:
            break
        seeder.answer(requests)
    assert h.torrent.complete


def test_no_file_left_gives_it_up(h: Harness) -> None:
    for _ in range(10):
        h.turn()
        for request in h.fetcher.open():
            if not request.done.called:  # the first may abort the others
                request.done.errback(WebSeedError("HTTP 410", permanent=True, status=410))
        if h.closed:
            break
    assert h.closed and h.closed[0].startswith(GIVEN_UP)
    assert "no piece left" in h.closed[0] and "HTTP 410" in h.closed[0]
