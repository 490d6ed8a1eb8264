"""The Twisted side of uTP: one UDP port for every connection, and a transport per
connection that PeerProtocol runs on as it runs on TCP. Thin: the protocol is in
``connection`` (pure).

The port (``UtpSocket``, a DatagramProtocol) gets the uTP datagrams of the peer port's
UDP socket, which it may share with the DHT (``session.udp``, core/net/udp.py: it hands on
datagrams by their first byte, addresses as plain IPv4 on a dual-stack socket). Each is
parsed as uTP (``packet.decode``; garbage is counted and dropped) and goes to the
connection keyed by (address, connection id); a SYN nobody has opens an inbound connection
through ``accept`` (the connector's inbound factory, so the connection limit counts it);
any other stray packet is answered with a RESET, as libtorrent does. Acks and sends are
deferred to the end of a batch of datagrams: one ``callLater(0)`` flushes every connection
touched, each sending what the batch let out as one burst (the endpoint's ``write_many``:
UDP GSO on Linux, core/net/udp_burst.py).

Timers: ONE reactor ``DelayedCall`` for all connections, at the earliest of a heap of
(deadline, connection) entries. A connection's entry is pushed only when its deadline comes
earlier than the one it has (a later deadline is found when the entry pops, and pushed
again), so an ack that moves a deadline costs no heap work and idle connections cost none.

``UtpTransport`` is what PeerProtocol uses of an ITCPTransport: ``write``,
``writeSequence``, ``loseConnection``, ``abortConnection``, ``getPeer``/``getHost``,
``registerProducer``/``unregisterProducer`` (the producer is paused past
``UTP_SEND_BUFFER`` bytes unacked, resumed at half), and ``pauseProducing``/
``resumeProducing`` for reading (our advertised window closes). It delivers
``dataReceived`` and ``connectionLost``.
"""

from __future__ import annotations

import heapq
import secrets
from collections.abc import Callable
from typing import Any

from twisted.internet import error
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IConsumer, IPushProducer, ITransport
from twisted.internet.protocol import ClientFactory, DatagramProtocol, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from btd.core.errors import ProtocolError
from btd.core.net.udp import plain_host

from .connection import PACKET_SIZE, Connection, State
from .packet import ST_RESET, ST_SYN, Packet, decode

_log = Logger()

Address = tuple[str, int]


def _address(host: str, port: int) -> IPv4Address | IPv6Address:
    if ":" in host:
        return IPv6Address("UDP", host, port)
    return IPv4Address("UDP", host, port)


class UtpSocket(DatagramProtocol):
    """Every uTP connection of the daemon, on one UDP port; see the module docstring."""

    noisy = False

    def __init__(
        self,
        reactor: Any,
        accept: Callable[[IPv4Address | IPv6Address], Protocol | None],
        *,
        packet_size: int = PACKET_SIZE,
        new_id: Callable[[], int] = lambda: secrets.randbelow(1 << 16),
    ) -> None:
        self.reactor = reactor  # IReactorTime (and IReactorUDP for ``listen``)
        self.accept = accept
        self.packet_size = packet_size
        self._new_id = new_id
        self.streams: dict[tuple[Address, int], UtpTransport] = {}  # (address, recv_id)
        self._touched: dict[UtpTransport, None] = {}
        self._flush_call: Any = None
        self._timers: list[tuple[float, int, UtpTransport]] = []
        self._timer_order = 0
        self._timer_call: Any = None
        self.stats = {"malformed": 0, "resets_sent": 0, "refused": 0, "accepted": 0, "dialled": 0}

    # -- the port (a UdpEndpoint of core/net/udp.py: it maps IPv4 on a dual-stack socket) ---
    def _sendto(self, datagram: bytes, addr: Address) -> None:
        self._send_many([datagram], addr)

    def _send_many(self, datagrams: list[bytes], addr: Address) -> None:
        """In as few system calls as the endpoint can (``write_many``); one ``write`` each
        on a transport without it (the tests' fakes)."""
        try:
            write_many = getattr(self.transport, "write_many", None)
            if write_many is not None:
                write_many(datagrams, addr)
            else:
                for datagram in datagrams:
                    self.transport.write(datagram, addr)  # type: ignore[union-attr]
        except OSError as exc:  # EMSGSIZE, ENETUNREACH...: the packets are lost, resends follow
            _log.debug("utp: sendto {addr} failed: {exc}", addr=addr, exc=exc)

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        try:
            packet = decode(data)
        except ProtocolError as exc:
            self.stats["malformed"] += 1
            self.last_malformed = f"{exc}: {data[:32].hex()}"
            return
        recv_id = packet.connection_id
        if packet.type == ST_SYN:  # an acceptor receives on the SYN's id + 1
            recv_id = (recv_id + 1) & 0xFFFF
        stream = self.streams.get((addr, recv_id))
        if stream is None:
            if packet.type == ST_SYN:
                self._accept(packet, addr)
            elif packet.type == ST_RESET:
                stream = self._reset_target(packet, addr)
                if stream is not None:
                    stream.conn.receive(packet)
            else:
                self._reset(packet, addr)
            return
        stream.conn.receive(packet)
        if stream.conn.state is not State.CLOSED:
            self._touched[stream] = None
            if self._flush_call is None:
                self._flush_call = self.reactor.callLater(0, self._flush)

    def _reset_target(self, packet: Packet, addr: Address) -> UtpTransport | None:
        """A RESET may carry the connection's send id (libtorrent answers on it)."""
        for recv_id in (packet.connection_id - 1, packet.connection_id + 1):
            stream = self.streams.get((addr, recv_id & 0xFFFF))
            if stream is not None and stream.conn.send_id == packet.connection_id:
                return stream
        return None

    def _reset(self, packet: Packet, addr: Address) -> None:
        self.stats["resets_sent"] += 1
        reply = Packet(ST_RESET, packet.connection_id, seq_nr=0, ack_nr=packet.seq_nr)
        self._sendto(reply.encode(), addr)

    def _flush(self) -> None:
        self._flush_call = None
        touched, self._touched = self._touched, {}
        for stream in touched:
            stream.conn.flush()
            self.changed(stream)

    def _accept(self, syn: Packet, addr: Address) -> None:
        key = (addr, (syn.connection_id + 1) & 0xFFFF)
        protocol = self.accept(_address(*addr))
        if protocol is None:  # the connection limit
            self.stats["refused"] += 1
            self._reset(syn, addr)
            return
        self.stats["accepted"] += 1
        stream = UtpTransport(self, addr, protocol=protocol)
        stream.conn = Connection.accept(
            self.reactor.seconds,
            lambda d: self._sendto(d, addr),
            stream,
            syn,
            seq_nr=self._new_id(),
            packet_size=self.packet_size,
            send_many=lambda ds: self._send_many(ds, addr),
        )
        self.streams[key] = stream
        protocol.makeConnection(stream)
        self.changed(stream)

    # -- dialling ------------------------------------------------------------------------
    def connect(self, host: str, port: int, factory: ClientFactory) -> UtpTransport:
        """Dial ``host:port`` over uTP: ``factory.buildProtocol`` once connected, else
        ``factory.clientConnectionFailed`` (a ConnectError saying why)."""
        addr = (plain_host(host), port)
        for _ in range(64):
            conn_id = self._new_id()
            if (addr, conn_id) not in self.streams:
                break
        else:
            raise error.ConnectError(string="no free uTP connection id")
        self.stats["dialled"] += 1
        stream = UtpTransport(self, addr, factory=factory)
        self.streams[(addr, conn_id)] = stream
        stream.conn = Connection.connect(
            self.reactor.seconds,
            lambda d: self._sendto(d, addr),
            stream,
            conn_id=conn_id,
            packet_size=self.packet_size,
            send_many=lambda ds: self._send_many(ds, addr),
        )
        self.changed(stream)
        return stream

    def forget(self, stream: UtpTransport) -> None:
        key = (stream.addr, stream.conn.recv_id)
        if self.streams.get(key) is stream:
            del self.streams[key]
        self._touched.pop(stream, None)

    def close_all(self) -> None:
        """Abort every connection (the daemon is stopping)."""
        for stream in list(self.streams.values()):
            stream.abortConnection()
        if self._timer_call is not None and self._timer_call.active():
            self._timer_call.cancel()
        self._timer_call = None
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None

    # -- the one timer ---------------------------------------------------------------------
    def changed(self, stream: UtpTransport) -> None:
        """Called after anything that may move ``stream``'s deadline earlier."""
        deadline = stream.conn.deadline
        if deadline is None:
            return
        if stream.timer_at is not None and stream.timer_at <= deadline:
            return  # its entry pops first and finds the later deadline
        stream.timer_at = deadline
        self._timer_order += 1
        heapq.heappush(self._timers, (deadline, self._timer_order, stream))
        self._arm()

    def _arm(self) -> None:
        if not self._timers:
            return
        at = self._timers[0][0]
        call = self._timer_call
        if call is not None and call.active():
            if call.getTime() <= at:
                return
            call.cancel()
        self._timer_call = self.reactor.callLater(max(0.0, at - self.reactor.seconds()), self._fire)

    def _fire(self) -> None:
        self._timer_call = None
        now = self.reactor.seconds()
        while self._timers and self._timers[0][0] <= now:
            at, _, stream = heapq.heappop(self._timers)
            if stream.timer_at == at:
                stream.timer_at = None
            deadline = stream.conn.deadline
            if deadline is not None and deadline <= now:
                stream.conn.on_timer()
            self.changed(stream)
        self._arm()


@implementer(ITransport, IConsumer, IPushProducer)
class UtpTransport:
    """One uTP connection as a stream transport, and the Events of its machine."""

    disconnecting = False

    def __init__(
        self,
        sock: UtpSocket,
        addr: Address,
        *,
        protocol: Protocol | None = None,
        factory: ClientFactory | None = None,
    ) -> None:
        self.sock = sock
        self.addr = addr
        self.protocol = protocol
        self.factory = factory
        self.conn: Connection = None  # type: ignore[assignment]  # set right after
        self.producer: Any = None
        self.timer_at: float | None = None

    # -- Events (from the machine) -----------------------------------------------------------
    def connected(self) -> None:
        assert self.factory is not None
        protocol = self.factory.buildProtocol(_address(*self.addr))
        if protocol is None:
            self.conn.abort()
            return
        self.protocol = protocol
        protocol.makeConnection(self)

    def data_received(self, data: bytes) -> None:
        if self.protocol is not None:
            self.protocol.dataReceived(data)

    def pause_writing(self) -> None:
        if self.producer is not None:
            self.producer.pauseProducing()

    def resume_writing(self) -> None:
        if self.producer is not None:
            self.producer.resumeProducing()

    def closed(self, reason: str | None) -> None:
        self.sock.forget(self)
        if self.protocol is not None:
            if reason is None or reason == "aborted" and self.disconnecting:
                why: Exception = error.ConnectionDone("uTP connection closed")
            else:
                why = error.ConnectionLost(f"uTP: {reason}")
            protocol, self.protocol = self.protocol, None
            protocol.connectionLost(Failure(why))
        elif self.factory is not None:
            factory, self.factory = self.factory, None
            factory.clientConnectionFailed(
                self, Failure(error.ConnectError(string=f"uTP: {reason}"))
            )

    # -- ITransport ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        self.conn.write(data)
        self.sock.changed(self)

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self.disconnecting = True
        self.conn.close()
        self.sock.changed(self)

    def abortConnection(self) -> None:
        self.disconnecting = True
        self.conn.abort()

    def getPeer(self) -> IPv4Address | IPv6Address:
        return _address(*self.addr)

    def getHost(self) -> IPv4Address | IPv6Address:
        host = self.sock.transport.getHost()  # type: ignore[union-attr]
        return _address(plain_host(host.host), host.port)

    # -- IConsumer: the writer (PeerProtocol) as a push producer ---------------------------------
    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    # -- IPushProducer: reading ---------------------------------------------------------------------
    def pauseProducing(self) -> None:
        self.conn.pause_reading()

    def resumeProducing(self) -> None:
        self.conn.resume_reading()
        self.sock.changed(self)

    def stopProducing(self) -> None:
        self.abortConnection()
