"""The shared UDP socket (core/net/udp.py): datagrams told apart by their first byte, one
socket per address whatever order its users open it in, dual-stack addresses."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from udp_fakes import FakeUdpReactor

from btd.core.net.udp import DHT, UTP, UdpSockets, classify
from btd.plugins.dht import krpc
from btd.plugins.utp.packet import ST_DATA, ST_FIN, ST_RESET, ST_STATE, ST_SYN, Packet

PING = krpc.encode_query(krpc.Ping(b"tt", b"\x01" * 20))
SYN = Packet(ST_SYN, 7, seq_nr=1, ack_nr=0).encode()


class Recorder(DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[tuple[bytes, tuple[str, int]]] = []
        self.stopped = False

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.got.append((datagram, addr))

    def stopProtocol(self) -> None:
        self.stopped = True


def test_classify_by_the_first_byte() -> None:
    utp = {(t << 4) | 1 for t in range(5)}
    for first in range(256):
        kind = classify(bytes([first]) + b"rest")
        assert kind == (DHT if first == ord("d") else UTP if first in utp else None), first
    assert classify(b"") is None
    assert classify(PING) == DHT and classify(krpc.encode_response(b"tt", b"\x02" * 20)) == DHT
    for kind in (ST_DATA, ST_FIN, ST_STATE, ST_RESET, ST_SYN):
        assert classify(Packet(kind, 1, seq_nr=1, ack_nr=1).encode()) == UTP


@pytest.mark.parametrize("order", [(DHT, UTP), (UTP, DHT)])
def test_one_socket_two_kinds_in_any_order(order: tuple[str, str]) -> None:
    reactor = FakeUdpReactor()
    udp = UdpSockets(reactor)
    protocols = {kind: Recorder() for kind in order}
    endpoints = {kind: udp.open("127.0.0.1", 6881, kind, protocols[kind]) for kind in order}
    assert len(reactor.ports) == 1  # one bind
    port = reactor.ports[0]
    port.receive(PING, ("127.0.0.5", 1000))
    port.receive(SYN, ("127.0.0.6", 2000))
    port.receive(b"\x00garbage", ("127.0.0.7", 3000))
    port.receive(b"", ("127.0.0.7", 3000))
    assert protocols[DHT].got == [(PING, ("127.0.0.5", 1000))]
    assert protocols[UTP].got == [(SYN, ("127.0.0.6", 2000))]
    stats = endpoints[DHT].stats
    assert stats["dht_in"] == 1 and stats["utp_in"] == 1 and stats["unknown"] == 2
    endpoints[UTP].write(b"x", ("127.0.0.6", 2000))
    assert port.sent == [(b"x", ("127.0.0.6", 2000))]
    assert endpoints[UTP].getHost().port == 6881

    # the first to leave leaves the socket open for the other; the last closes it
    first, last = order
    assert endpoints[first].stopListening() is None and protocols[first].stopped
    assert port.listening
    port.receive(PING if first == DHT else SYN, ("127.0.0.5", 1000))
    assert endpoints[last].stats["unclaimed"] == 1  # nobody took it
    endpoints[last].stopListening()
    assert not port.listening and protocols[last].stopped and udp.sockets == {}
    udp.open("127.0.0.1", 6881, DHT, Recorder())  # a new start binds again
    assert len(reactor.ports) == 2


def test_each_address_its_own_socket_and_one_protocol_per_kind() -> None:
    reactor = FakeUdpReactor()
    udp = UdpSockets(reactor)
    udp.open("127.0.0.1", 6881, UTP, Recorder())
    udp.open("127.0.0.2", 6881, DHT, Recorder())
    udp.open("127.0.0.1", 6882, DHT, Recorder())
    assert len(reactor.ports) == 3
    with pytest.raises(ValueError, match="already carries utp"):
        udp.open("127.0.0.1", 6881, UTP, Recorder())
    with pytest.raises(ValueError, match="unknown UDP kind"):
        udp.open("127.0.0.1", 6881, "tracker", Recorder())
    a = udp.open("127.0.0.1", 0, DHT, Recorder())  # port 0: a free port of its own
    b = udp.open("127.0.0.1", a.getHost().port, UTP, Recorder())  # ... then shared by number
    assert a.sock is b.sock


def test_a_taken_port_raises_and_leaves_nothing() -> None:
    reactor = FakeUdpReactor()
    reactor.taken.add(6881)
    udp = UdpSockets(reactor)
    with pytest.raises(CannotListenError):
        udp.open("127.0.0.1", 6881, DHT, Recorder())
    assert udp.sockets == {}


def test_dual_stack_addresses_and_an_ipv4_only_kind() -> None:
    reactor = FakeUdpReactor()
    udp = UdpSockets(reactor)
    dht, utp = Recorder(), Recorder()
    dht_end = udp.open("::", 6881, DHT, dht, ipv4_only=True)
    utp_end = udp.open("::", 6881, UTP, utp)
    port = reactor.ports[0]
    port.receive(PING, ("::ffff:127.0.0.5", 1000))
    port.receive(PING, ("::1", 1001))  # the DHT is IPv4 only
    port.receive(SYN, ("::ffff:127.0.0.6", 2000))
    port.receive(SYN, ("::1", 2001))
    port.receive(SYN, ("::ffff:0:1.2.3.4", 2002))  # IPv4-translated, not mapped: kept
    assert dht.got == [(PING, ("127.0.0.5", 1000))]
    assert utp.got == [
        (SYN, ("127.0.0.6", 2000)),
        (SYN, ("::1", 2001)),
        (SYN, ("::ffff:0:1.2.3.4", 2002)),
    ]
    assert dht_end.stats["ipv6_dropped"] == 1
    dht_end.write(b"a", ("127.0.0.5", 1000))  # an IPv4 address goes out mapped
    utp_end.write(b"b", ("::1", 2001))
    assert port.sent == [(b"a", ("::ffff:127.0.0.5", 1000)), (b"b", ("::1", 2001))]
