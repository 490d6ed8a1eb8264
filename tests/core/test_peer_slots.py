"""Idle peers (issue 13, class 1): the inactivity policy and the slot a newcomer may take.

A real Torrent on a fake clock (tests/torrent_harness.py); "idle" peers send keep-alives
only, so the silence timeout (120 s, anything heard) never fires for them.
"""

from __future__ import annotations

from pathlib import Path

from torrent_harness import Conn, Swarm, requests_in
from twisted.internet.testing import MemoryReactorClock

from btd.core.limits import INBOUND_OVERFLOW, PEER_INACTIVITY_TIMEOUT, PEER_REPLACE_GRACE
from btd.core.net.connector import PeerConnector
from btd.core.peer_slots import SpareSlots, spare_key
from btd.core.wire import messages as m


def chatter(s: Swarm, conns: list[Conn], seconds: float) -> None:
    """Let time pass while each peer sends a keep-alive every 30 s (and nothing else)."""
    for _ in range(round(seconds // 30)):
        s.advance(30)
        for c in conns:
            if not c.closing:
                c.send(m.KEEP_ALIVE)
    s.advance(seconds % 30)


def disconnects(s: Swarm) -> dict[str, int]:
    return s.torrent.candidates.disconnects.as_dict()


# -- the inactivity policy -------------------------------------------------------------------
def test_keepalive_only_peer_of_a_full_torrent_is_dropped_as_inactive(tmp_path: Path) -> None:
    s = Swarm(tmp_path, max_peers=2).start()
    idle = [s.peer(), s.peer()]
    chatter(s, idle, PEER_INACTIVITY_TIMEOUT - 30)
    assert not any(c.closing for c in idle)  # not early
    chatter(s, idle, 60)
    assert all(c.aborted for c in idle)
    assert s.torrent.peers == {}
    assert disconnects(s)["inactive"] == 2
    assert disconnects(s)["timeout"] == 0


def test_idle_peer_keeps_its_slot_while_nobody_wants_it(tmp_path: Path) -> None:
    s = Swarm(tmp_path, max_peers=50).start()
    idle = s.peer()
    chatter(s, [idle], 2 * PEER_INACTIVITY_TIMEOUT)
    assert not idle.closing and idle.peer in s.torrent.peers


def test_idle_peer_goes_when_the_session_is_full(tmp_path: Path) -> None:
    s = Swarm(tmp_path, max_peers=50).start()
    s.torrent.env.can_connect = lambda: False  # the daemon-wide limit is reached
    idle = s.peer()
    chatter(s, [idle], PEER_INACTIVITY_TIMEOUT + 30)
    assert idle.aborted and disconnects(s)["inactive"] == 1


def test_peer_we_serve_stays_and_the_idle_one_goes(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True, max_peers=2).start()
    busy, idle = s.peer(), s.peer()
    busy.send(m.HAVE_NONE_MSG, m.INTERESTED_MSG)
    for _ in range(round((PEER_INACTIVITY_TIMEOUT + 60) // 30)):
        busy.send(m.Request(1, 0, 16384))  # a block every 30 s
        chatter(s, [busy, idle], 30)
    assert any(isinstance(x, m.Piece) for x in busy.all())
    assert idle.aborted and not busy.closing and busy.peer in s.torrent.peers


def test_fake_seed_that_never_delivers_is_dropped(tmp_path: Path) -> None:
    """Claims every piece and unchokes us: we are interested, but no block ever comes."""
    s = Swarm(tmp_path, max_peers=1).start()
    fake = s.seed_peer()
    assert requests_in(fake.new())
    chatter(s, [fake], PEER_INACTIVITY_TIMEOUT + 30)  # snubbed at 60 s: from then on idle
    assert fake.peer.snubbed and not fake.closing
    chatter(s, [fake], 60)
    assert fake.aborted and disconnects(s)["inactive"] == 1


def test_keepalives_do_not_count_as_activity(tmp_path: Path) -> None:
    s = Swarm(tmp_path, max_peers=1).start()
    idle = s.peer()
    idle.send(m.HAVE_NONE_MSG)
    chatter(s, [idle], PEER_INACTIVITY_TIMEOUT / 2)
    assert idle.peer.last_active_at == idle.peer.connected_at


# -- slot reclaiming -----------------------------------------------------------------------------
def test_newcomer_takes_the_slot_of_an_idle_peer(tmp_path: Path) -> None:
    s = Swarm(tmp_path, max_peers=3).start()
    idle = [s.peer() for _ in range(3)]
    early = s.open().handshake()  # within the grace: the idle peers keep their slots
    assert early.peer is None and "no room" in early.proto.close_reason
    chatter(s, idle, PEER_REPLACE_GRACE + 2)
    seeder = s.open().handshake()
    assert seeder.peer is not None and seeder.peer in s.torrent.peers
    assert len(s.torrent.peers) == 3
    assert sum(c.aborted for c in idle) == 1
    assert disconnects(s)["replaced"] == 1
    # the seeder is useful at once: bytes flow
    seeder.send(m.HAVE_ALL_MSG, m.UNCHOKE_MSG)
    reqs = requests_in(seeder.new())
    seeder.answer(reqs)
    assert s.torrent.downloaded > 0


def test_least_useful_goes_first(tmp_path: Path) -> None:
    s = Swarm(tmp_path, max_peers=3).start()
    keen = s.peer()  # has every piece, keeps us choked: we are interested in it
    keen.send(m.HAVE_ALL_MSG)
    s.advance(5)
    late, early = s.peer(), s.peer()  # no interest either way
    chatter(s, [keen, late, early], PEER_REPLACE_GRACE + 2)
    assert spare_key(keen.peer) > spare_key(late.peer)
    s.open().handshake()
    assert not keen.closing  # idle longest, but we want its pieces
    assert [c.aborted for c in (late, early)] == [True, False]  # tie by age: the first one
    s.open().handshake()
    assert early.aborted and not keen.closing
    s.open().handshake()
    assert keen.aborted  # the last spare one


def test_active_peers_are_never_replaced(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True, max_peers=2).start()
    leechers = [s.peer(), s.peer()]
    for c in leechers:
        c.send(m.HAVE_NONE_MSG, m.INTERESTED_MSG)
    for i in range(int(PEER_REPLACE_GRACE) + 5):
        for c in leechers:
            c.send(m.Request(i % 10, 0, 16384))  # blocks keep going to them
        s.advance(1)
    newcomer = s.open().handshake()
    assert newcomer.peer is None and not any(c.closing for c in leechers)
    assert all(c.new_of(m.Piece) for c in leechers)


def test_newcomer_over_the_session_limit_takes_another_torrents_idle_slot(
    tmp_path: Path,
) -> None:
    a = Swarm(tmp_path / "a", max_peers=5).start()
    b = Swarm(tmp_path / "b", max_peers=5).start()
    shared = SpareSlots()
    a.torrent.env.spare_slots = b.torrent.env.spare_slots = shared
    idle = a.peer()
    refused = b.open()
    refused.proto.over_limit = True  # accepted by the connector beyond the session limit
    refused.handshake()
    assert refused.peer is None and "no room" in refused.proto.close_reason
    chatter(a, [idle], PEER_REPLACE_GRACE + 2)
    assert len(shared) == 1
    newcomer = b.open()
    newcomer.proto.over_limit = True
    newcomer.handshake()
    assert newcomer.peer is not None and not newcomer.proto.over_limit
    assert idle.aborted and a.torrent.peers == {}
    assert a.torrent.candidates.disconnects.as_dict()["replaced"] == 1


def test_connector_accepts_over_its_limit_only_when_a_slot_can_be_taken_back() -> None:
    spare = [False]
    connector = PeerConnector(
        MemoryReactorClock(),
        b"-BT0100-" + b"x" * 12,
        swarm=lambda info_hash: None,
        swarms=lambda: [],
        max_connections=lambda: 2,
        stopping=lambda: False,
        dht_port=lambda: None,
        dht_node_seen=lambda host, port: None,
        has_spare=lambda: spare[0],
    )
    factory = connector.inbound_factory()
    first, second = factory.buildProtocol(None), factory.buildProtocol(None)
    assert first is not None and second is not None and not first.over_limit
    assert factory.buildProtocol(None) is None  # full, nothing to take back
    spare[0] = True
    extra = [factory.buildProtocol(None) for _ in range(INBOUND_OVERFLOW + 1)]
    assert all(p is not None and p.over_limit for p in extra[:-1])
    assert extra[-1] is None  # the slack is bounded
    assert connector.connections == 2 + INBOUND_OVERFLOW
