"""Swarm behaviour that never stalls (issue 10): late piece sets, reconnects, disconnect counts.

Bytes in through the real PeerProtocol (tests/torrent_harness.py), state checked on the
real Torrent: availability counts, interest, whom it dials and when.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from torrent_harness import NUM_PIECES, Swarm, requests_in
from twisted.internet import defer

from btd.core.bitfield import Bitfield
from btd.core.swarm_peers import DisconnectCounts
from btd.core.wire import messages as m

SEEDER = ("127.0.0.1", 7001)


def bits(indices: Iterable[int]) -> bytes:
    bf = Bitfield(NUM_PIECES)
    for i in indices:
        bf.add(i)
    return bf.to_bytes()


def counts(s: Swarm) -> list[int]:
    return [s.torrent.availability.count(i) for i in range(NUM_PIECES)]


# -- late and repeated piece sets --------------------------------------------------------------
def test_a_second_bitfield_replaces_the_first_and_counts_stay_exact(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    other = s.peer()
    other.send(m.Bitfield(bits([0, 1])))
    aria = s.peer()
    aria.send(m.Bitfield(bits([1, 2])))
    assert counts(s)[:4] == [1, 2, 1, 0]
    aria.send(m.Bitfield(bits([2, 3, 4])))  # aria2 does this: no protocol error
    assert not aria.closing and aria.peer in s.torrent.peers
    assert counts(s)[:6] == [1, 1, 1, 1, 1, 0]
    s.check()


def test_have_all_then_bitfield_then_have_none(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    conn = s.peer()
    conn.send(m.HAVE_ALL_MSG)
    assert s.torrent.availability.seeds == 1 and conn.peer.counted_as_seed
    conn.send(m.Bitfield(bits([5])))
    assert s.torrent.availability.seeds == 0 and not conn.peer.counted_as_seed
    assert counts(s) == [1 if i == 5 else 0 for i in range(NUM_PIECES)]
    s.check()
    conn.send(m.HAVE_NONE_MSG)
    assert counts(s) == [0] * NUM_PIECES
    s.check()
    conn.send(m.HAVE_NONE_MSG, m.Bitfield(bits(range(NUM_PIECES))))  # full: counted as a seed
    assert s.torrent.availability.seeds == 1 and counts(s) == [1] * NUM_PIECES
    s.check()


def test_haves_then_a_bitfield(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    conn = s.peer()
    conn.send(m.Have(1), m.Have(2))
    conn.send(m.Bitfield(bits([2, 3])))
    assert set(conn.peer.has) == {2, 3}
    s.check()
    s.torrent.peer_gone(conn.peer, "test")  # removing it leaves nothing behind
    assert counts(s) == [0] * NUM_PIECES


def test_interest_follows_the_latest_piece_set(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    conn = s.peer()
    conn.send(m.HAVE_NONE_MSG)
    assert not conn.peer.am_interested
    conn.send(m.Bitfield(bits([4])), m.UNCHOKE_MSG)
    assert conn.peer.am_interested
    assert {r.index for r in requests_in(conn.new())} == {4}
    conn.send(m.HAVE_NONE_MSG)
    assert not conn.peer.am_interested
    assert m.NotInterested() in conn.new()


# -- reconnects -------------------------------------------------------------------------------
def connected_seeder(s: Swarm) -> None:
    s.torrent.add_peers([SEEDER])
    assert s.connects == [SEEDER]
    s.seed_peer(outgoing=True, address=SEEDER)


def test_pause_and_resume_redial_at_once(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    connected_seeder(s)
    s.torrent.pause()
    s.settle()
    assert not s.torrent.peers
    s.torrent.resume()
    assert s.torrent.state == "downloading"
    assert s.connects == [SEEDER, SEEDER]  # no 60 s wait for a peer we left on purpose


def test_verify_redials_at_once(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    connected_seeder(s)
    s.torrent.verify()
    s.settle()
    assert s.torrent.state == "downloading"
    assert s.connects == [SEEDER, SEEDER]


def test_inbound_peer_is_dialled_back_on_its_listen_port_after_resume(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    conn = s.peer(address=("127.0.0.1", 50123))
    conn.send(m.Extended(0, b"d1:md11:ut_metadatai3ee1:pi7002ee"))
    s.torrent.pause()
    s.settle()
    s.torrent.resume()
    assert s.connects == [("127.0.0.1", 7002)]


def test_a_dial_in_flight_during_pause_is_not_a_failure(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    s.torrent.add_peers([SEEDER])
    conn = s.open(outgoing=True, address=SEEDER)
    s.torrent.pause()
    conn.handshake()  # arrives while paused: refused, not held against the peer
    assert conn.closing and conn.peer is None
    s.settle()
    s.torrent.resume()
    assert s.connects == [SEEDER, SEEDER]
    assert s.torrent.candidates.disconnects.as_dict()["connect_failed"] == 0


def test_peer_that_closed_on_us_waits_but_add_peer_and_trackers_dial_it_now(
    tmp_path: Path,
) -> None:
    s = Swarm(tmp_path).start()
    connected_seeder(s)
    conn = s.conns[-1]
    conn.proto.connectionLost(None)  # the peer hung up
    s.advance(5)
    assert s.connects == [SEEDER]  # not at once: it may have hung up for a reason
    assert s.torrent.add_peers([SEEDER]) == 1  # a tracker names it again: dial now
    assert s.connects == [SEEDER, SEEDER]


def test_failed_peer_backs_off_for_trackers_not_for_the_user(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    s.torrent.add_peers([SEEDER])
    s.torrent.connection_failed(SEEDER, "Connection refused")
    assert s.torrent.add_peers([SEEDER]) == 0  # a tracker's list: the back-off holds
    s.advance(5)
    assert s.connects == [SEEDER]
    assert s.torrent.add_peers([SEEDER], retry=True) == 1  # torrent.add_peer: now
    assert s.connects == [SEEDER, SEEDER]


def test_a_protocol_error_backs_off(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    s.torrent.add_peers([SEEDER])
    conn = s.peer(outgoing=True, address=SEEDER)
    conn.send(m.Have(NUM_PIECES))  # out of range
    assert conn.aborted
    s.advance(29)
    assert s.connects == [SEEDER]
    assert s.torrent.add_peers([SEEDER]) == 0
    s.advance(2)
    assert s.connects == [SEEDER, SEEDER]


# -- disconnect counts --------------------------------------------------------------------------
def test_disconnects_are_counted_by_reason_per_torrent_and_in_the_totals(tmp_path: Path) -> None:
    s = Swarm(tmp_path)
    totals = DisconnectCounts()
    s.torrent.candidates.disconnects.parent = totals
    s.start()
    bad = s.peer()
    bad.send(m.Have(NUM_PIECES))
    gone = s.peer()
    gone.proto.connectionLost(None)
    s.torrent.connection_failed(("127.0.0.1", 9), "Connection refused")
    s.peer()
    s.torrent.pause()
    s.settle()
    got = s.torrent.candidates.disconnects.as_dict()
    assert got["protocol_error"] == 1 and got["closed_by_peer"] == 1 and got["left"] == 1
    assert got["connect_failed"] == 1 and sum(got.values()) == 4
    assert totals.as_dict() == got


def test_resume_during_the_check_of_a_torrent_added_paused(tmp_path: Path) -> None:
    """``btd add --paused`` then ``btctl resume`` while it is still checking: it used to
    stay paused for good once the check ended."""
    s = Swarm(tmp_path, seeding=True)
    held: defer.Deferred[Bitfield] = defer.Deferred()
    s.verifier.recheck = lambda *args, **kwargs: held  # type: ignore[method-assign]
    s.torrent.options = replace(s.torrent.options, paused=True)
    s.torrent.start()
    assert s.torrent.state == "checking"
    s.torrent.resume()
    held.callback(Bitfield.full(NUM_PIECES))
    assert s.torrent.state == "seeding"


def test_a_torrent_added_paused_ends_its_check_paused(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True)
    held: defer.Deferred[Any] = defer.Deferred()
    s.verifier.recheck = lambda *args, **kwargs: held  # type: ignore[method-assign]
    s.torrent.options = replace(s.torrent.options, paused=True)
    s.torrent.start()
    assert s.torrent.state == "checking"
    held.callback(Bitfield.full(NUM_PIECES))
    assert s.torrent.state == "paused"


def test_a_failed_encrypted_handshake_is_dropped_cleanly_and_the_plain_retry_works(
    tmp_path: Path,
) -> None:
    """A newcomer whose first bytes are no plain handshake is taken for MSE; one whose
    encrypted handshake never syncs (no req1 within the window) is dropped, and its plain
    retry, a new connection, joins as if nothing happened."""
    import random

    s = Swarm(tmp_path).start()
    mse = s.open(address=("127.0.0.1", 40000))
    mse.send_raw(bytes([62]) + random.Random(5).randbytes(95 + 200))
    assert not mse.aborted  # still inside the sync window
    mse.send_raw(random.Random(6).randbytes(400))
    assert mse.aborted and mse.lost and mse.peer is None
    assert "req1" in mse.proto.close_reason
    plain = s.peer(address=("127.0.0.1", 40001))  # the retry: a new connection
    plain.send(m.HAVE_ALL_MSG)
    assert plain.peer in s.torrent.peers and s.torrent.availability.seeds == 1
    assert sum(s.torrent.candidates.disconnects.as_dict().values()) == 0  # no torrent's loss
