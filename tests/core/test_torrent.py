"""Torrent (the coordinator) against fake peers on StringTransports, on a fake clock.

The swarm harness (tests/torrent_harness.py) runs a real Torrent, real PeerProtocols,
the real PieceBook and RarestFirst; only time, threads and sockets are faked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any  # noqa: E402 - used by the review tests

import pytest
from torrent_harness import (
    CONTENT,
    FILE_SIZES,
    NUM_PIECES,
    OUR_PEER_ID,
    PARTIAL_HAVE,
    PIECE_LENGTH,
    TORRENT_NAME,
    Conn,
    Swarm,
    blocks_of,
    piece_data,
    requests_in,
)
from twisted.internet import defer
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure

from btd.core.bitfield import Bitfield
from btd.core.download import MAX_UNEXPECTED_BLOCKS
from btd.core.errors import StorageError
from btd.core.pieces import PieceState
from btd.core.torrent import IDLE_TIMEOUT, KEEPALIVE_AFTER, REQUEST_TIMEOUT
from btd.core.types import BLOCK_SIZE
from btd.core.wire import messages as m

HAVE = PieceState.HAVE
MISSING = PieceState.MISSING


def download_all(seed: Conn, reqs: list[m.Request]) -> None:
    """Answer our requests until we stop asking."""
    while reqs:
        seed.answer(reqs)
        reqs = requests_in(seed.new())


def files_on_disk(save_path: Path) -> bytes:
    root = save_path / TORRENT_NAME
    return b"".join((root / name).read_bytes() for name, _ in FILE_SIZES)


def bitfield_of(indexes: list[int] | tuple[int, ...]) -> m.Bitfield:
    bf = Bitfield(NUM_PIECES)
    for i in indexes:
        bf.add(i)
    return m.Bitfield(bf.to_bytes())


# -- downloading ------------------------------------------------------------------------------
@pytest.mark.parametrize("fast", [True, False])
def test_download_from_one_seed_completes_and_tells_other_peers(tmp_path: Path, fast: bool) -> None:
    s = Swarm(tmp_path).start()
    assert s.torrent.state == "downloading"
    watcher = s.peer()  # a leecher with nothing: it must hear a HAVE per piece
    watcher.send(m.HAVE_NONE_MSG)
    seed = s.peer(fast=fast)
    hello = seed.new()
    assert hello[0] == m.Handshake(s.meta.info_hash, OUR_PEER_ID, s.router.reserved)
    if fast:
        assert m.HAVE_NONE_MSG in hello  # we have nothing
    assert not any(isinstance(x, (m.Interested, m.Bitfield)) for x in hello)

    seed.send(m.HAVE_ALL_MSG if fast else bitfield_of(range(NUM_PIECES)))
    assert seed.new() == [m.INTERESTED_MSG]  # interested, but no requests while choked
    seed.send(m.UNCHOKE_MSG)
    reqs = requests_in(seed.new())
    assert len(reqs) >= 8 and len(set(reqs)) == len(reqs)  # pipelined in one go
    assert all(r.length == BLOCK_SIZE or r.index == NUM_PIECES - 1 for r in reqs)

    download_all(seed, reqs)

    t = s.torrent
    assert t.complete and t.state == "seeding"
    assert s.kinds.count("completed") == 1
    assert files_on_disk(s.save_path) == CONTENT
    assert sorted(i for i, ok in s.verifier.verified if ok) == list(range(NUM_PIECES))
    assert t.downloaded == len(CONTENT) and t.wasted == 0
    haves = sorted(h.index for h in watcher.new_of(m.Have))
    assert haves == list(range(NUM_PIECES))
    assert not seed.new_of(m.Have)  # a seed needs no HAVE
    assert seed.closing and not seed.aborted  # both seeding: closed politely
    assert not watcher.closing
    s.check()


def test_pieces_from_two_seeds_are_never_requested_twice_before_endgame(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    a, b = s.seed_peer(), s.seed_peer()
    ra, rb = requests_in(a.new()), requests_in(b.new())
    assert ra and rb and not set(ra) & set(rb)
    assert len(ra) + len(rb) == sum(len(blocks_of(i)) for i in range(NUM_PIECES))
    a.answer(ra)
    b.answer(rb)
    assert s.torrent.complete
    s.check()


def test_seed_accounting_survives_a_peer_that_completes_through_haves(tmp_path: Path) -> None:
    """A peer that gets every piece by HAVEs is not a HAVE_ALL seed when it leaves."""
    s = Swarm(tmp_path).start()
    other = s.seed_peer()
    leecher = s.peer()
    leecher.send(m.HAVE_NONE_MSG, *[m.Have(i) for i in range(NUM_PIECES)])
    assert leecher.peer.has.complete
    s.check()
    leecher.proto.connectionLost(Failure(ConnectionLost()))
    s.settle()
    assert leecher.peer not in s.torrent.peers
    assert s.torrent.availability.seeds == 1  # ``other`` only
    s.check()
    other.answer(requests_in(other.new()))  # the torrent carries on
    s.check()


def test_have_before_bitfield_is_counted_once(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    p = s.peer(fast=False)
    p.send(m.Have(4), bitfield_of([1, 4]))
    assert set(p.peer.has) == {1, 4}
    assert s.torrent.availability.count(4) == 1
    s.check()
    p.proto.connectionLost(Failure(ConnectionLost()))
    assert s.torrent.availability.count(4) == 0
    s.check()


# -- serving ---------------------------------------------------------------------------------
def test_interested_peer_is_unchoked_and_served_the_right_bytes(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True).start()
    assert s.torrent.state == "seeding" and s.verifier.rechecks == 1
    leecher = s.peer()
    assert m.HAVE_ALL_MSG in leecher.new()
    leecher.send(m.HAVE_NONE_MSG, m.INTERESTED_MSG)
    assert leecher.new() == [m.UNCHOKE_MSG]  # a free slot: at once, not at the next round
    wanted = [*blocks_of(3), *blocks_of(NUM_PIECES - 1)]
    leecher.send(*wanted)
    got = leecher.new_of(m.Piece)
    assert [(p.index, p.begin) for p in got] == [(r.index, r.begin) for r in wanted]
    for p in got:
        off = p.index * PIECE_LENGTH + p.begin
        assert p.block == CONTENT[off : off + len(p.block)]
    assert len(got[-1].block) == len(CONTENT) - (NUM_PIECES - 1) * PIECE_LENGTH - BLOCK_SIZE
    # whole pieces are read once through the cache, not once per block
    assert s.verifier.reads == [(3, 0, PIECE_LENGTH), (NUM_PIECES - 1, 0, len(piece_data(9)))]
    assert s.torrent.uploaded == sum(r.length for r in wanted)
    leecher.send(*blocks_of(3))
    assert len(leecher.new_of(m.Piece)) == 2 and len(s.verifier.reads) == 2


def test_requests_of_one_read_are_answered_in_one_write(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True).start()
    leecher = s.peer()
    leecher.send(m.HAVE_NONE_MSG, m.INTERESTED_MSG)
    leecher.send(*blocks_of(3), *blocks_of(4))  # pieces 3 and 4 now cached
    assert len(leecher.new_of(m.Piece)) == 4
    writes: list[bytes] = []
    write = leecher.transport.write

    def counted(data: bytes) -> None:
        writes.append(data)
        write(data)

    leecher.transport.write = counted  # type: ignore[method-assign]
    wanted = [*blocks_of(4), *blocks_of(3)]
    leecher.send(*wanted)  # one read
    got = leecher.new_of(m.Piece)
    assert [(p.index, p.begin) for p in got] == [(r.index, r.begin) for r in wanted]
    assert len(writes) == 1  # not a pump pass and a write per request


def test_an_idle_seeder_drops_its_read_cache_at_the_next_choking_round(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True).start()
    leecher = s.peer()
    leecher.send(m.HAVE_NONE_MSG, m.INTERESTED_MSG)
    leecher.send(*blocks_of(3))
    assert len(leecher.new_of(m.Piece)) == 2 and s.torrent.uploader.cache.peek(3) is not None
    s.advance(10)  # a choking round with no request queued
    assert s.torrent.uploader.cache.peek(3) is None
    leecher.send(*blocks_of(3))
    assert len(leecher.new_of(m.Piece)) == 2 and s.verifier.reads == [(3, 0, PIECE_LENGTH)] * 2


def test_large_pieces_are_served_block_by_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import btd.core.upload

    monkeypatch.setattr(btd.core.upload, "CACHED_PIECE_LIMIT", 0)  # every piece is "large"
    s = Swarm(tmp_path, seeding=True).start()
    leecher = s.peer()
    leecher.send(m.HAVE_NONE_MSG, m.INTERESTED_MSG)
    wanted = blocks_of(3)
    leecher.send(*wanted)
    got = leecher.new_of(m.Piece)
    for p in got:
        off = p.index * PIECE_LENGTH + p.begin
        assert p.block == CONTENT[off : off + len(p.block)]
    assert s.verifier.reads == [(r.index, r.begin, r.length) for r in wanted]


def test_requests_while_choked_are_rejected_or_ignored(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True, upload_slots=1).start()
    first = s.peer()
    first.send(m.HAVE_NONE_MSG, m.INTERESTED_MSG)
    assert m.UNCHOKE_MSG in first.new()
    fast, slow = s.peer(), s.peer(fast=False)
    fast.send(m.HAVE_NONE_MSG, m.INTERESTED_MSG)
    slow.send(bitfield_of([]), m.INTERESTED_MSG)
    fast.new(), slow.new()
    req = m.Request(0, 0, BLOCK_SIZE)
    fast.send(req)
    slow.send(req)
    assert fast.new() == [m.RejectRequest(0, 0, BLOCK_SIZE)]
    assert slow.new() == []
    assert not fast.closing and not slow.closing
    assert s.verifier.reads == []


def test_cancel_removes_a_queued_request(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True).start()
    s.verifier.hold_reads = True  # reads in flight: later requests wait in the queue
    fast, slow = s.peer(), s.peer(fast=False)
    reqs = [r for i in range(5) for r in blocks_of(i)]  # 10 requests of 5 pieces
    for p in (fast, slow):
        p.send(m.HAVE_NONE_MSG if p is fast else bitfield_of([]), m.INTERESTED_MSG, *reqs)
        p.new()
        assert len(p.peer.incoming) == 10  # they wait in order for piece 0 (read ahead)
    cancelled = reqs[-1]
    for p in (fast, slow):
        p.send(m.Cancel(cancelled.index, cancelled.begin, cancelled.length))
        assert [(r.piece, r.begin) for r in p.peer.incoming] == [
            (r.index, r.begin) for r in reqs[:-1]
        ]
    assert fast.new() == [m.RejectRequest(cancelled.index, cancelled.begin, cancelled.length)]
    assert slow.new() == []
    s.verifier.hold_reads = False
    s.verifier.release()
    for p in (fast, slow):
        sent = sorted((x.index, x.begin) for x in p.new_of(m.Piece))
        assert sent == sorted((r.index, r.begin) for r in reqs[:-1])


def test_a_deep_queue_on_a_slow_read_is_served_without_recursion(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True).start()
    s.verifier.hold_reads = True
    p = s.peer()
    reqs = [blocks_of(0)[k % 2] for k in range(1500)]
    p.send(m.HAVE_NONE_MSG, m.INTERESTED_MSG, *reqs)
    assert len(p.peer.incoming) > 1000
    s.verifier.release()
    assert len(p.new_of(m.Piece)) == 1500
    assert not p.closing and p.peer.serving == 0 and not p.peer.incoming


def test_blocks_read_for_a_peer_choked_meanwhile_are_rejected(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True).start()
    s.verifier.hold_reads = True
    p = s.peer()
    p.send(m.HAVE_NONE_MSG, m.INTERESTED_MSG, *blocks_of(0))
    p.new()
    p.peer.set_choking(True)
    s.verifier.release()
    assert p.new() == [
        m.CHOKE_MSG,
        *[m.RejectRequest(r.index, r.begin, r.length) for r in blocks_of(0)],
    ]


def test_read_failure_fails_the_torrent(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True).start()
    p = s.peer()
    s.verifier.read_block = lambda *a: defer.fail(StorageError("disk gone"))  # type: ignore
    s.verifier.read_blocks = lambda *a: defer.fail(StorageError("disk gone"))  # type: ignore
    p.send(m.HAVE_NONE_MSG, m.INTERESTED_MSG, *blocks_of(0))
    assert s.torrent.state == "error" and "error" in s.kinds
    assert p.closing


# -- writing ---------------------------------------------------------------------------------
def test_pause_while_a_piece_is_verified_keeps_the_piece(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    seed = s.seed_peer()
    s.verifier.hold_verify = True
    reqs = requests_in(seed.new())
    done = [r for r in reqs if r.index == reqs[0].index]
    seed.answer(done)
    assert s.torrent.book.piece_state(reqs[0].index) == PieceState.VERIFYING
    s.torrent.pause()
    s.settle()
    s.verifier.hold_verify = False
    s.verifier.release()  # the hash and the write finish while paused
    assert s.torrent.book.piece_state(reqs[0].index) == HAVE
    s.torrent.resume()
    again = s.seed_peer()
    download_all(again, requests_in(again.new()))
    assert s.torrent.complete and s.torrent.state == "seeding"
    assert files_on_disk(s.save_path) == CONTENT
    s.check()


def test_last_piece_verified_while_paused_completes_on_resume(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    seed = s.seed_peer()
    s.verifier.hold_verify = True
    download_all(seed, requests_in(seed.new()))  # every piece waits for its hash check
    s.torrent.pause()
    s.settle()
    s.verifier.hold_verify = False
    s.verifier.release()  # all verified while paused
    assert s.torrent.complete and "completed" not in s.kinds
    s.torrent.resume()
    assert s.torrent.state == "seeding"
    assert s.kinds.count("completed") == 1 and s.torrent.completed_at is not None


def test_write_failure_sets_error_and_the_piece_is_fetched_again_after_resume(
    tmp_path: Path,
) -> None:
    s = Swarm(tmp_path).start()
    seed = s.seed_peer()
    reqs = requests_in(seed.new())
    first = reqs[0].index

    def broken(*args: object) -> defer.Deferred[bool]:
        return defer.fail(StorageError("disk full"))

    s.verifier.verify_and_write = broken  # type: ignore[method-assign]
    seed.answer([r for r in reqs if r.index == first])
    assert s.torrent.state == "error" and s.torrent.error == "disk full"
    assert ("error", {"error": "disk full"}) in s.events
    assert s.torrent.book.piece_state(first) == MISSING
    assert seed.closing
    del s.verifier.verify_and_write  # the disk works again
    s.torrent.resume()
    assert s.torrent.state == "downloading"
    again = s.seed_peer()
    download_all(again, requests_in(again.new()))
    assert s.torrent.complete
    s.check()


# -- timers ------------------------------------------------------------------------------------
def test_silent_peer_loses_its_requests_to_another_and_is_snubbed(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    slow = s.seed_peer()
    slow_reqs = set(requests_in(slow.new()))
    s.advance(30)
    other = s.seed_peer()
    first = set(requests_in(other.new()))
    assert first and not first & slow_reqs  # the rest of the torrent
    s.advance(REQUEST_TIMEOUT - 30 - 1)
    assert not slow.peer.snubbed and s.torrent.book.pending_count(slow.peer) == len(slow_reqs)
    s.advance(3)
    assert slow.peer.snubbed and not slow.closing
    assert s.torrent.book.pending_count(slow.peer) == 0
    cancels = {(c.index, c.begin) for c in slow.new_of(m.Cancel)}
    assert cancels == {(r.index, r.begin) for r in slow_reqs}
    moved = set(requests_in(other.new()))
    assert moved and moved <= slow_reqs
    download_all(other, sorted(first | moved, key=lambda r: (r.index, r.begin)))
    assert s.torrent.complete
    s.check()


def test_request_timer_starts_when_we_request_not_when_the_peer_connected(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    seed = s.peer()
    seed.send(m.HAVE_ALL_MSG)
    s.advance(REQUEST_TIMEOUT + 20)  # it keeps us choked for a while (but talks)
    seed.send(m.KEEP_ALIVE, m.UNCHOKE_MSG)
    reqs = requests_in(seed.new())
    s.advance(5)
    assert not seed.peer.snubbed and s.torrent.book.pending_count(seed.peer) == len(reqs)
    assert not seed.new_of(m.Cancel)


def test_silent_peer_is_dropped_after_the_idle_timeout(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    silent, chatty = s.peer(), s.peer()
    for _ in range(int(IDLE_TIMEOUT // 60) + 2):
        s.advance(60)
        chatty.send(m.KEEP_ALIVE)
    assert silent.aborted and silent.peer not in s.torrent.peers  # no flush: it may not read
    assert not chatty.closing and chatty.peer in s.torrent.peers


def test_idle_timeout_is_not_early(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    silent = s.peer()
    s.advance(IDLE_TIMEOUT - 2)
    assert not silent.closing
    s.advance(5)
    assert silent.closing


def test_keepalive_after_90_s_of_our_silence(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    p = s.peer()
    p.new()
    s.advance(KEEPALIVE_AFTER - 1)
    assert p.new() == []
    s.advance(2)
    assert p.new() == [m.KEEP_ALIVE]
    s.advance(KEEPALIVE_AFTER - 1)
    assert p.new() == []


# -- choking -------------------------------------------------------------------------------------
def unchoked(s: Swarm) -> set[object]:
    return {p for p in s.torrent.peers if not p.am_choking}


def test_rechoke_every_10_s_with_at_most_upload_slots_unchoked(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True, upload_slots=3).start()
    conns = [s.peer() for _ in range(6)]
    for c in conns:
        c.send(m.HAVE_NONE_MSG, m.INTERESTED_MSG)
    assert len(unchoked(s)) == 3  # free slots at once
    before = unchoked(s)
    s.advance(9)
    assert unchoked(s) == before  # nothing changes between rounds
    seen = set()
    for _ in range(12):
        s.advance(10)
        for c in conns:
            c.send(m.KEEP_ALIVE)
        now = unchoked(s)
        assert len(now) == 3
        seen |= now
    assert len(seen) == 6  # everyone gets a turn
    for c in conns:  # each peer was told: every UNCHOKE/CHOKE alternates
        flags = [x for x in c.all() if isinstance(x, (m.Choke, m.Unchoke))]
        assert all(type(a) is not type(b) for a, b in zip(flags, flags[1:]))


def test_uninterested_peers_are_not_unchoked(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True).start()
    idle = s.peer()
    idle.send(m.HAVE_NONE_MSG)
    s.advance(30)
    assert not any(isinstance(x, m.Unchoke) for x in idle.all())


def test_optimistic_unchoke_rotates_every_third_round(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True, upload_slots=2).start()
    conns = [s.peer() for _ in range(6)]
    for c in conns:
        c.send(m.HAVE_NONE_MSG, m.INTERESTED_MSG)
    picks = []
    for _ in range(12):
        s.advance(10)
        for c in conns:
            c.send(m.KEEP_ALIVE)
        opt = s.torrent.uploader.choker.optimistic
        assert opt is not None and not opt.am_choking
        picks.append(opt)
    for k in range(0, 12, 3):  # kept for three rounds
        assert picks[k] is picks[k + 1] is picks[k + 2]
    assert len({id(p) for p in picks}) > 1  # and then rotated


# -- lifecycle ----------------------------------------------------------------------------------
def test_pause_closes_peers_refuses_new_ones_and_resume_skips_the_check(tmp_path: Path) -> None:
    s = Swarm(tmp_path, partial=True).start()
    assert [i for i in range(NUM_PIECES) if i in s.torrent.book.have] == list(PARTIAL_HAVE)
    seed = s.seed_peer()
    s.torrent.pause()
    s.settle()
    assert s.torrent.state == "paused" and "paused" in s.kinds
    assert seed.closing and not s.torrent.peers
    late = s.open()
    late.handshake()
    assert late.peer is None and late.closing
    s.advance(20)
    assert not seed.new_of(m.KeepAlive)  # no ticks while paused
    checks = s.verifier.rechecks
    s.torrent.resume()
    assert s.torrent.state == "downloading" and s.verifier.rechecks == checks
    assert [i for i in range(NUM_PIECES) if i in s.torrent.book.have] == list(PARTIAL_HAVE)
    again = s.seed_peer()
    download_all(again, requests_in(again.new()))
    assert s.torrent.complete
    s.check()


def test_stop_closes_peers_and_late_disk_results_are_harmless(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    seed = s.seed_peer()
    s.verifier.hold_verify = True
    reqs = requests_in(seed.new())
    seed.answer([r for r in reqs if r.index == reqs[0].index])
    s.torrent.stop(close_storage=False)
    s.settle()
    assert s.torrent.state == "stopped" and seed.closing and not s.torrent.peers
    s.verifier.release()
    assert "error" not in s.kinds
    s.check()


def test_add_peers_connects_up_to_the_limit(tmp_path: Path) -> None:
    s = Swarm(tmp_path, max_peers=3).start()
    s.peer()
    added = s.torrent.add_peers([("127.0.0.1", 50000 + k) for k in range(5)])
    assert added == 5 and len(s.connects) == 2


# -- BEP 5 port messages ----------------------------------------------------------------------
def test_dht_port_is_sent_to_dht_peers_and_theirs_is_passed_on(tmp_path: Path) -> None:
    s = Swarm(tmp_path)
    seen: list[tuple[str, int]] = []
    s.torrent.env.dht_port = lambda: 6999
    s.torrent.env.dht_node_seen = lambda host, port: seen.append((host, port))
    s.start()
    conn = s.open(address=("127.0.0.9", 5000))
    conn.handshake(reserved=m.make_reserved(extensions=True, fast=True, dht=True))
    assert m.Port(6999) in conn.new()
    conn.send(m.Port(7001))
    assert seen == [("127.0.0.9", 7001)]
    plain = s.peer()  # no DHT bit: no port message
    assert not plain.new_of(m.Port)


def test_no_dht_port_without_a_dht_node(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()  # the env's default: no DHT
    conn = s.open()
    conn.handshake(reserved=m.make_reserved(extensions=True, fast=True, dht=True))
    assert not any(isinstance(x, m.Port) for x in conn.new())


# -- found in review: stops and rechecks racing with peers and disk jobs ------------------------
def test_verify_forgets_peers_at_once_and_refuses_new_ones(tmp_path: Path) -> None:
    s = Swarm(tmp_path, partial=True).start()
    s.seed_peer()  # counted as a seed in the availability
    leech = s.peer()
    leech.send(m.HAVE_NONE_MSG)
    s.torrent.verify()
    assert s.torrent.peers == {} and s.torrent.availability.seeds == 0
    s.settle()  # the closed links' connectionLost arrives late: nothing left to undo
    s.check()


def test_a_polite_close_that_never_flushes_is_aborted(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True).start()
    p = s.peer()
    p.send(m.HAVE_NONE_MSG)
    s.torrent.pause()  # loseConnection: waits for a send buffer the peer never drains
    assert not p.transport.disconnected
    s.clock.advance(31)
    assert p.transport.disconnected  # aborted: its slot is free again


def test_stop_while_checking_is_not_an_error(tmp_path: Path) -> None:
    from btd.core.verify import Verifier

    class Reactor:
        def callFromThread(self, f: Any, *a: Any, **k: Any) -> None:
            f(*a, **k)

    class Pool:  # runs the disk jobs when the test says
        def __init__(self) -> None:
            self.jobs: list[Any] = []

        def callInThreadWithCallback(self, on_result: Any, f: Any, *a: Any, **k: Any) -> None:
            self.jobs.append((on_result, f, a, k))

        def run(self) -> None:
            while self.jobs:
                on_result, f, a, k = self.jobs.pop(0)
                try:
                    on_result(True, f(*a, **k))
                except BaseException:
                    on_result(False, Failure())

    s = Swarm(tmp_path, seeding=True)
    pool = Pool()
    s.torrent.env.verifier = Verifier(Reactor(), pool)
    s.torrent.start()
    assert s.torrent.state == "checking" and pool.jobs
    s.torrent.stop()  # shutdown or remove while the check reads: storage closed
    pool.run()  # the batches fail with "storage closed"
    assert s.torrent.state == "stopped" and s.torrent.error is None
    assert "error" not in s.kinds


def test_metadata_requests_get_no_answers_while_the_peer_does_not_read(tmp_path: Path) -> None:
    from btd.core.wire import metadata as ut
    from btd.core.wire.codec import encode
    from btd.core.wire.extension import ExtensionHandshake, encode_extension_handshake

    s = Swarm(tmp_path, seeding=True).start()
    p = s.peer()
    p.send(m.HAVE_NONE_MSG)
    p.send(encode_extension_handshake(ExtensionHandshake(m={"ut_metadata": 3})))
    request = encode(m.Extended(s.torrent.extensions.ids["ut_metadata"], ut.encode_request(0)))
    before = len(p.transport.value())
    p.proto.dataReceived(request)
    assert len(p.transport.value()) > before  # answered while it reads
    p.proto.pauseProducing()  # its socket is full: it does not read
    before = len(p.transport.value())
    p.proto.dataReceived(request * 1000)
    assert len(p.transport.value()) == before and not p.proto.closed


# -- timers: cost follows activity ------------------------------------------------------------
def test_a_seeding_torrent_without_peers_has_no_tick(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True).start()
    t = s.torrent
    assert t.state == "seeding" and not t.ticking
    s.clock.advance(5)
    assert not t.ticking and len(t.scheduler) == 0  # no tracker either: nothing at all
    conn = s.peer()
    assert t.ticking  # a peer: keep-alives, idle checks and choking rounds again
    s.clock.advance(KEEPALIVE_AFTER + 1)
    assert t.ticking and conn.proto.peer is not None  # still there: the tick sent keep-alives
    conn.proto.connectionLost(Failure(ConnectionLost("gone")))
    s.clock.advance(2)
    assert not t.peers and not t.ticking and len(t.scheduler) == 0


def test_candidates_keep_the_tick_until_dialled(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    t = s.torrent
    assert not t.ticking
    t.add_peers([("127.0.0.9", 6881)])
    assert s.connects == [("127.0.0.9", 6881)] and t.ticking
    t.connection_failed(("127.0.0.9", 6881), "refused")
    s.clock.advance(31)  # its back-off ended: dialled again by the tick
    assert s.connects == [("127.0.0.9", 6881)] * 2


def test_blocks_accepted_before_a_protocol_error_in_the_same_read_are_counted(
    tmp_path: Path,
) -> None:
    s = Swarm(tmp_path).start()
    seed = s.peer()
    seed.send(bitfield_of(range(NUM_PIECES)))
    seed.send(m.UNCHOKE_MSG)
    first = requests_in(seed.new())[0]
    off = first.index * PIECE_LENGTH + first.begin
    good = m.Piece(first.index, first.begin, CONTENT[off : off + first.length])
    stray = m.Piece(NUM_PIECES - 1, 0, CONTENT[:16])  # never asked for
    seed.send(good, *[stray] * (MAX_UNEXPECTED_BLOCKS + 1))  # one read
    assert seed.closing  # dropped for the unrequested blocks
    assert s.torrent.downloaded == first.length  # the good block of that read still counts
