"""The uTP port and transport on a fake reactor: two UtpSockets joined by an in-memory
UDP path (a datagram list pumped by hand), ordinary Twisted Protocols on top."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import error
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from btd.core.limits import UTP_SEND_BUFFER
from btd.plugins.utp.packet import ST_DATA, ST_RESET, ST_SYN, Packet, decode
from btd.plugins.utp.socket import UtpSocket

A = ("127.0.0.1", 6881)
B = ("127.0.0.1", 6882)


class Net:
    """Datagrams between sockets by address; ``pump`` delivers them (and runs ``callLater(0)``)."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.queue: list[tuple[tuple[str, int], tuple[str, int], bytes]] = []
        self.sockets: dict[tuple[str, int], UtpSocket] = {}
        self.up = True

    def add(self, addr: tuple[str, int], accept: Any = lambda addr: None) -> UtpSocket:
        sock = UtpSocket(self.clock, accept, new_id=iter(range(100, 70000, 7)).__next__)
        net = self

        class _Udp:
            def write(self, data: bytes, to: tuple[str, int]) -> None:
                if net.up:
                    net.queue.append((addr, to, data))

            def getHost(self) -> Any:
                from twisted.internet.address import IPv4Address

                return IPv4Address("UDP", *addr)

        sock.transport = _Udp()  # type: ignore[assignment]
        self.sockets[addr] = sock
        return sock

    def pump(self, rounds: int = 10_000) -> None:
        for _ in range(rounds):
            self.clock.advance(0)
            if not self.queue:
                return
            batch, self.queue = self.queue, []
            for src, dst, data in batch:
                if dst in self.sockets:
                    self.sockets[dst].datagramReceived(data, src)
        raise AssertionError("still pumping")

    def run(self, seconds: float, step: float = 0.05) -> None:
        for _ in range(int(seconds / step)):
            self.pump()
            self.clock.advance(step)
        self.pump()


class Peer(Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.lost: list[Failure] = []
        self.made = False
        self.paused = 0
        self.resumed = 0

    def connectionMade(self) -> None:
        self.made = True
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost.append(reason)

    def pauseProducing(self) -> None:
        self.paused += 1

    def resumeProducing(self) -> None:
        self.resumed += 1

    def stopProducing(self) -> None:
        pass


class Dial(ClientFactory):
    def __init__(self) -> None:
        self.proto: Peer | None = None
        self.failed: list[Failure] = []

    def buildProtocol(self, addr: Any) -> Peer:
        self.proto = Peer()
        return self.proto

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.failed.append(reason)


@pytest.fixture()
def pair() -> tuple[Net, UtpSocket, UtpSocket, list[Peer]]:
    net = Net()
    accepted: list[Peer] = []

    def accept(addr: Any) -> Peer:
        accepted.append(Peer())
        return accepted[-1]

    a = net.add(A)
    b = net.add(B, accept)
    return net, a, b, accepted


def test_dial_accept_both_ways_and_close(pair: Any) -> None:
    net, a, b, accepted = pair
    dial = Dial()
    a.connect(*B, dial)
    net.pump()
    assert dial.proto is not None and dial.proto.made and len(accepted) == 1
    theirs = accepted[0]
    assert theirs.transport.getPeer().port == A[1] and theirs.transport.getPeer().type == "UDP"
    big = bytes(range(256)) * 4000
    dial.proto.transport.write(big)
    theirs.transport.writeSequence([b"hello ", b"there"])
    net.run(2.0)
    assert bytes(theirs.data) == big and bytes(dial.proto.data) == b"hello there"
    dial.proto.transport.loseConnection()
    net.run(1.0)
    assert dial.proto.lost and dial.proto.lost[0].check(error.ConnectionDone)
    assert theirs.lost and theirs.lost[0].check(error.ConnectionDone)
    assert a.streams == {} and b.streams == {}


def test_one_reactor_timer_for_every_connection(pair: Any) -> None:
    net, a, _, accepted = pair
    dials = [Dial() for _ in range(20)]
    for d in dials:
        a.connect(*B, d)
    net.pump()
    for d in dials:
        assert d.proto is not None
        d.proto.transport.write(b"x" * 50_000)
    net.clock.advance(0.001)
    pending = [c for c in net.clock.getDelayedCalls() if c.active()]
    assert len(pending) <= 2  # the one timer, and at most the batch flush
    net.run(3.0)
    assert all(len(p.data) == 50_000 for p in accepted)
    # idle: nothing outstanding, no timer at all
    assert not [c for c in net.clock.getDelayedCalls() if c.active()]


def test_dial_to_nobody_fails_after_the_syn_resends() -> None:
    net = Net()
    a = net.add(A)
    dial = Dial()
    a.connect("127.0.0.1", 9, dial)
    net.up = False
    net.run(6.9)
    assert not dial.failed
    net.run(0.2)
    assert dial.failed and dial.failed[0].check(error.ConnectError)
    assert "connect timed out" in dial.failed[0].getErrorMessage()
    assert a.streams == {}


def test_refused_inbound_gets_a_reset_and_the_dial_fails_at_once() -> None:
    net = Net()
    a = net.add(A)
    net.add(B)  # accepts nothing (the connection limit)
    dial = Dial()
    a.connect(*B, dial)
    net.pump()
    assert dial.failed and "reset by peer" in dial.failed[0].getErrorMessage()
    assert net.sockets[B].stats["refused"] == 1


def test_strays_get_a_reset_and_garbage_is_counted(pair: Any) -> None:
    net, _, b, _ = pair
    sent: list[bytes] = []
    b.transport.write = lambda data, to: sent.append(data)  # type: ignore[union-attr]
    b.datagramReceived(b"\x01\x00garbage", A)
    b.datagramReceived(Packet(ST_DATA, 555, seq_nr=9, ack_nr=1, payload=b"?").encode(), A)
    b.datagramReceived(Packet(ST_RESET, 556, seq_nr=9, ack_nr=1).encode(), A)  # no answer
    assert b.stats["malformed"] == 1
    assert [decode(d).type for d in sent] == [ST_RESET]
    assert decode(sent[0]).connection_id == 555 and decode(sent[0]).ack_nr == 9


def test_duplicate_syn_is_one_connection(pair: Any) -> None:
    net, a, b, accepted = pair
    dial = Dial()
    a.connect(*B, dial)
    syn = net.queue[0][2]
    assert decode(syn).type == ST_SYN
    net.queue.append(net.queue[0])
    net.pump()
    assert len(accepted) == 1 and len(b.streams) == 1 and dial.proto is not None


def test_writer_is_paused_past_the_send_buffer_and_resumed(pair: Any) -> None:
    net, a, _, accepted = pair
    dial = Dial()
    a.connect(*B, dial)
    net.pump()
    assert dial.proto is not None
    dial.proto.transport.write(bytes(UTP_SEND_BUFFER + 1))
    assert dial.proto.paused == 1
    net.run(5.0)
    assert dial.proto.resumed == 1 and len(accepted[0].data) == UTP_SEND_BUFFER + 1


def test_reading_paused_holds_data_until_resumed(pair: Any) -> None:
    net, a, _, accepted = pair
    dial = Dial()
    a.connect(*B, dial)
    net.pump()
    theirs = accepted[0]
    theirs.transport.pauseProducing()
    dial.proto.transport.write(b"z" * 100_000)  # type: ignore[union-attr]
    net.run(1.0)
    assert len(theirs.data) == 0
    theirs.transport.resumeProducing()
    net.run(1.0)
    assert len(theirs.data) == 100_000


def test_abort_is_a_reset_and_connection_lost(pair: Any) -> None:
    net, a, _, accepted = pair
    dial = Dial()
    a.connect(*B, dial)
    net.pump()
    dial.proto.transport.abortConnection()  # type: ignore[union-attr]
    net.pump()
    assert accepted[0].lost and accepted[0].lost[0].check(error.ConnectionLost)
    assert dial.proto.lost  # type: ignore[union-attr]


def test_close_all_aborts_everything(pair: Any) -> None:
    net, a, b, accepted = pair
    dials = [Dial() for _ in range(3)]
    for d in dials:
        a.connect(*B, d)
    net.pump()
    a.close_all()
    net.pump()
    assert all(d.proto is not None and d.proto.lost for d in dials)
    assert all(p.lost for p in accepted) and b.streams == {}
