"""PeerProtocol: the handshake, routing, timeouts and the factories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torrent_harness import NUM_PIECES, OUR_PEER_ID, FakeRouter, Swarm
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from btd.core.net.peer import (
    FAST_READ_SIZE,
    HANDSHAKE_TIMEOUT,
    READ_SIZE,
    InboundFactory,
    OutboundFactory,
    PeerProtocol,
)
from btd.core.wire import messages as m
from btd.core.wire.codec import encode, encode_handshake

ADDR = ("127.0.0.1", 6999)


def test_inbound_handshake_is_routed_by_info_hash_and_answered(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    c = s.open()
    assert c.transport.value() == b""  # inbound: we wait for theirs
    c.handshake()
    hs = c.new()[0]
    assert hs == m.Handshake(s.meta.info_hash, OUR_PEER_ID, s.router.reserved)
    assert c.peer is not None and c.peer in s.torrent.peers
    assert c.proto.torrent is s.torrent and not c.proto.outgoing


def test_handshake_in_one_byte_feeds(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    c = s.open()
    raw = encode_handshake(m.Handshake(s.meta.info_hash, b"-XX0001-abcdefghijkl")) + encode(
        m.HAVE_ALL_MSG
    )
    for b in raw:
        c.send_raw(bytes([b]))
    assert c.peer is not None and c.peer.has.complete


def test_unknown_info_hash_is_closed_without_a_word(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    c = s.open()
    c.handshake(info_hash=b"\x42" * 20)
    assert c.closing and c.peer is None
    assert c.transport.value() == b""  # we did not even tell it who we are
    assert not s.torrent.peers
    assert c.lost and c.proto.closed  # connections are counted per swarm: nothing to release


def test_not_a_bittorrent_handshake_is_aborted(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    c = s.open()
    # Not a plain handshake: taken for an encrypted one, whose sync window runs out.
    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\0" * 60)
    assert not c.aborted
    c.send_raw(b"\0" * (96 + 512 + 20))
    assert c.aborted and c.peer is None
    assert "req1" in c.proto.close_reason


def test_outgoing_sends_its_handshake_first_and_drops_a_wrong_info_hash(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    s.torrent.add_peers([ADDR])
    assert s.connects == [ADDR] and s.torrent.candidates.connecting == 1
    c = s.open(outgoing=True, address=ADDR)
    assert c.new() == [m.Handshake(s.meta.info_hash, OUR_PEER_ID, s.router.reserved)]
    c.handshake(info_hash=b"\x42" * 20)
    assert c.aborted and c.peer is None and c.lost
    assert s.torrent.candidates.connecting == 0  # a failed attempt: backoff, then again
    s.advance(31)
    assert s.connects == [ADDR, ADDR]


def test_connecting_to_ourselves_bans_the_address(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    s.torrent.add_peers([ADDR])
    c = s.open(outgoing=True, address=ADDR)
    c.handshake(peer_id=OUR_PEER_ID)
    assert c.closing and c.peer is None and not s.torrent.peers
    assert ADDR in s.torrent.candidates.banned
    assert s.torrent.add_peers([ADDR]) == 0
    s.advance(600)
    assert s.connects == [ADDR]  # never tried again


def test_handshake_timeout(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    slow, fine = s.open(), s.open()
    slow.send_raw(encode_handshake(m.Handshake(s.meta.info_hash, b"-XX0001-abcdefghijkl"))[:30])
    fine.handshake()
    s.clock.advance(HANDSHAKE_TIMEOUT - 0.5)
    assert not slow.closing
    s.clock.advance(1)
    s.settle()
    assert slow.closing and slow.peer is None
    assert not fine.closing  # the timer stops once the handshake is done


def test_handshake_timer_is_cancelled_when_the_connection_drops(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    c = s.open()
    assert any(d.func == c.proto.close for d in s.clock.getDelayedCalls())
    c.proto.connectionLost(Failure(ConnectionDone()))
    assert all(d.func != c.proto.close for d in s.clock.getDelayedCalls())


def test_duplicate_peer_id_is_refused(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    first = s.peer(peer_id=b"-XX0001-samesamesame")
    second = s.open()
    second.handshake(peer_id=b"-XX0001-samesamesame")
    assert second.closing and second.peer is None
    assert not first.closing and list(s.torrent.peers) == [first.peer]


def test_peer_limit(tmp_path: Path) -> None:
    s = Swarm(tmp_path, max_peers=2).start()
    s.peer(), s.peer()
    third = s.open()
    third.handshake()
    assert third.closing and third.peer is None and len(s.torrent.peers) == 2


def test_handshake_and_bad_bitfield_in_one_read(tmp_path: Path) -> None:
    """The bitfield is checked even when it arrives in the handshake's own read."""
    s = Swarm(tmp_path).start()
    c = s.open()
    hs = encode_handshake(m.Handshake(s.meta.info_hash, b"-XX0001-abcdefghijkl"))
    c.send_raw(hs + encode(m.Bitfield(b"\xff" * ((NUM_PIECES + 7) // 8))))
    assert c.aborted and not s.torrent.peers


# -- without a torrent: the protocol on its own ------------------------------------------------
class FakeTorrent:
    info_hash = b"\x11" * 20
    num_pieces = 4
    v2 = False

    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.calls: list[tuple[str, Any]] = []

    def attach(self, link: Any, hs: m.Handshake) -> Any:
        self.calls.append(("attach", hs.peer_id))
        return FakePeer() if self.accept else None

    def peer_gone(self, peer: Any, reason: str) -> None:
        self.calls.append(("peer_gone", reason))

    def connection_failed(self, address: Any, reason: str) -> None:
        self.calls.append(("connection_failed", address))

    def found_self(self, address: Any) -> None:
        self.calls.append(("found_self", address))

    def peer_writable(self, peer: Any) -> None:
        self.calls.append(("peer_writable", peer))


class FakePeer:
    def __init__(self) -> None:
        self.got: list[Any] = []

    def on_messages(self, msgs: list[Any]) -> None:
        self.got.extend(msgs)


def connect(proto: PeerProtocol) -> StringTransport:
    t = StringTransport(peerAddress=IPv4Address("TCP", *ADDR))
    proto.makeConnection(t)
    return t


def test_inbound_refused_after_routing_is_not_a_connect_failure() -> None:
    torrent = FakeTorrent(accept=False)
    router = FakeRouter()
    router.torrents[torrent.info_hash] = torrent
    proto = PeerProtocol(router, Clock())
    t = connect(proto)
    proto.dataReceived(encode_handshake(m.Handshake(torrent.info_hash, b"p" * 20)))
    assert t.disconnecting
    proto.connectionLost(Failure(ConnectionDone()))
    assert [c for c, _ in torrent.calls] == ["attach"]
    assert proto.closed  # the router is not told: connections are counted per swarm


def test_outgoing_lost_before_the_handshake_is_a_connect_failure() -> None:
    torrent = FakeTorrent()
    proto = PeerProtocol(FakeRouter(), Clock(), torrent=torrent, address=ADDR)
    connect(proto)
    proto.connectionLost(Failure(ConnectionDone()))
    assert torrent.calls == [("connection_failed", ADDR)]


def test_messages_after_the_handshake_go_to_the_peer_and_loss_to_the_torrent() -> None:
    torrent = FakeTorrent()
    proto = PeerProtocol(FakeRouter(), Clock(), torrent=torrent, address=ADDR)
    connect(proto)
    proto.dataReceived(
        encode_handshake(m.Handshake(torrent.info_hash, b"p" * 20)) + encode(m.Have(2))
    )
    assert proto.peer.got == [m.Have(2)]
    proto.connectionLost(Failure(ConnectionDone()))
    assert torrent.calls == [("attach", b"p" * 20), ("peer_gone", "Connection was closed cleanly.")]


def test_a_full_send_buffer_pauses_serving_until_it_drains() -> None:
    torrent = FakeTorrent()
    proto = PeerProtocol(FakeRouter(), Clock(), torrent=torrent, address=ADDR)
    t = connect(proto)
    assert t.producer is proto and t.streaming
    proto.dataReceived(encode_handshake(m.Handshake(torrent.info_hash, b"p" * 20)))
    proto.pauseProducing()
    assert proto.write_paused
    proto.resumeProducing()
    assert not proto.write_paused and torrent.calls[-1] == ("peer_writable", proto.peer)
    proto.pauseProducing()
    proto.close("bye")  # a registered producer would keep a real transport open forever
    assert t.producer is None and t.disconnecting


def test_factories() -> None:
    router, clock = FakeRouter(), Clock()
    allow = [False]
    inbound = InboundFactory(router, clock, lambda: allow[0])
    assert inbound.buildProtocol(IPv4Address("TCP", *ADDR)) is None  # global limit
    allow[0] = True
    p = inbound.buildProtocol(IPv4Address("TCP", *ADDR))
    assert isinstance(p, PeerProtocol) and not p.outgoing
    torrent = FakeTorrent()
    outbound = OutboundFactory(router, clock, torrent, ADDR)
    q = outbound.buildProtocol(IPv4Address("TCP", *ADDR))
    assert isinstance(q, PeerProtocol) and q.outgoing and q.torrent is torrent
    outbound.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
    assert torrent.calls == [("connection_failed", ADDR)]


def test_a_read_that_fills_the_buffer_makes_the_next_one_bigger(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A fast peer (a read that filled READ_SIZE) is read FAST_READ_SIZE at a time; a
    shorter read, or a download speed limit, brings it back to READ_SIZE."""
    import torrent_harness

    class SizedTransport(StringTransport):
        bufferSize = 65536  # Twisted's default, as on a real TCP transport

    monkeypatch.setattr(torrent_harness, "StringTransport", SizedTransport)
    s = Swarm(tmp_path).start()
    c = s.open()
    assert c.transport.bufferSize == READ_SIZE
    c.handshake()
    keep_alives = encode(m.KEEP_ALIVE)
    c.send_raw(keep_alives * (READ_SIZE // len(keep_alives)))  # a full read
    assert c.transport.bufferSize == FAST_READ_SIZE == 4 * READ_SIZE
    c.send_raw(keep_alives * 1000)  # a short one
    assert c.transport.bufferSize == READ_SIZE
    c.send_raw(keep_alives * (READ_SIZE // len(keep_alives)))
    assert c.transport.bufferSize == FAST_READ_SIZE

    class Limiter:
        on = True

    class Channel:
        limiter = Limiter()
        spent = 0

        def spend(self, n: int) -> None:
            self.spent += n

    c.proto.read_limit = Channel()
    c.send_raw(keep_alives * (READ_SIZE // len(keep_alives)))
    assert c.transport.bufferSize == READ_SIZE and c.proto.read_limit.spent == READ_SIZE
    assert c.peer is not None and not c.proto.closed
