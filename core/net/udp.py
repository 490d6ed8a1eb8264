"""The daemon's UDP sockets, shared: one socket per (address, port), its datagrams handed to
the plugin whose protocol they belong to, told apart by their first byte.

libtorrent runs uTP and the DHT on one UDP socket on the peer port, so a peer that learns
our port from one reaches us on the other; two sockets on one port cannot both be bound.
Here the session owns ``UdpSockets`` (``session.udp``); a plugin calls
``open(host, port, kind, protocol)`` and gets a ``UdpEndpoint``, the transport of its
DatagramProtocol (``write``, ``getHost``, ``stopListening``). The first ``open`` of an
address binds the socket, the others join it, whatever order the plugins start in; the
last ``stopListening`` closes it. One protocol per kind per socket.

Demultiplexing (``classify``, pure): a KRPC message (BEP 5) is a bencoded dictionary, so
its first byte is ``d``; a uTP packet (BEP 29) starts with type (0..4) in the high nibble
and version 1 in the low one (0x01, 0x11, 0x21, 0x31, 0x41). Anything else, and a kind
nobody opened, is dropped and counted (``stats``).

Addresses: on a dual-stack ``::`` socket an IPv4 peer is ``::ffff:a.b.c.d``; receivers see
it as ``a.b.c.d`` and may write to ``a.b.c.d`` (mapped back here). An endpoint opened
``ipv4_only`` (the DHT, IPv4 only) hears no IPv6 sender (dropped and counted).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from btd.core.net.udp_burst import BurstSender

DHT = "dht"
UTP = "utp"
KINDS = (DHT, UTP)

_log = Logger()
_UTP_FIRST = frozenset((t << 4) | 1 for t in range(5))  # ST_DATA..ST_SYN, version 1


def classify(datagram: bytes) -> str | None:
    """The kind of a datagram by its first byte: ``DHT``, ``UTP`` or None (neither)."""
    if not datagram:
        return None
    first = datagram[0]
    if first == 0x64:  # "d": a bencoded dictionary
        return DHT
    if first in _UTP_FIRST:
        return UTP
    return None


def plain_host(host: str) -> str:
    """``::ffff:1.2.3.4`` (a dual-stack socket's view of an IPv4 peer) as ``1.2.3.4``."""
    if host.startswith("::ffff:"):
        try:
            mapped = ipaddress.IPv6Address(host).ipv4_mapped
        except ValueError:
            return host
        if mapped is not None:
            return str(mapped)
    return host


class SharedSocket(DatagramProtocol):
    """One bound UDP socket and the endpoints (one per kind) that share it."""

    noisy = False

    def __init__(self, owner: UdpSockets, key: tuple[str, int]) -> None:
        self.owner = owner
        self.key = key
        self.v6 = ":" in key[0]
        self.endpoints: dict[str, UdpEndpoint] = {}
        self.port: Any = None  # the reactor's listening port
        self.burst: BurstSender | None = None  # made at the first write_many
        self.stats = {"unknown": 0, "unclaimed": 0, "ipv6_dropped": 0}
        self.stats.update((f"{kind}_in", 0) for kind in KINDS)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        kind = classify(datagram)
        if kind is None:
            self.stats["unknown"] += 1
            return
        endpoint = self.endpoints.get(kind)
        if endpoint is None:
            self.stats["unclaimed"] += 1
            return
        host = addr[0]
        if self.v6 and host.startswith("::ffff:"):  # the kernel's form: "::ffff:a.b.c.d"
            rest = host[7:]
            host = rest if "." in rest and ":" not in rest else plain_host(host)
        if endpoint.ipv4_only and ":" in host:
            self.stats["ipv6_dropped"] += 1
            return
        self.stats[f"{kind}_in"] += 1
        endpoint.protocol.datagramReceived(datagram, (host, addr[1]))

    def write(self, datagram: bytes, addr: tuple[str, int]) -> None:
        host, port = addr
        if self.v6 and ":" not in host:
            host = "::ffff:" + host
        self.transport.write(datagram, (host, port))  # type: ignore[union-attr]

    def write_many(self, datagrams: list[bytes], addr: tuple[str, int]) -> None:
        """A burst to one address in few system calls (udp_burst: UDP GSO), on the OS
        socket itself; one ``write`` each where the transport has none."""
        if self.burst is None:
            raw = getattr(self.transport, "socket", None)
            if not isinstance(raw, socket.socket):
                for datagram in datagrams:
                    self.write(datagram, addr)
                return
            self.burst = BurstSender(raw)
        host, port = addr
        if self.v6 and ":" not in host:
            host = "::ffff:" + host
        self.burst.send(datagrams, (host, port))

    def detach(self, kind: str) -> defer.Deferred[None] | None:
        self.endpoints.pop(kind, None)
        if self.endpoints:
            return None
        self.owner.sockets.pop(self.key, None)
        port, self.port = self.port, None
        return None if port is None else port.stopListening()


class UdpEndpoint:
    """A plugin's share of a SharedSocket: the transport its DatagramProtocol writes on."""

    def __init__(
        self, sock: SharedSocket, kind: str, protocol: DatagramProtocol, ipv4_only: bool
    ) -> None:
        self.sock = sock
        self.kind = kind
        self.protocol = protocol
        self.ipv4_only = ipv4_only
        self.closed = False

    @property
    def stats(self) -> dict[str, int]:
        """The socket's counters (every kind's, and the drops)."""
        return dict(self.sock.stats)

    def write(self, datagram: bytes, addr: tuple[str, int]) -> None:
        """Send (OSError, or Twisted's MessageLengthError, as the socket raises them)."""
        self.sock.write(datagram, addr)

    def write_many(self, datagrams: list[bytes], addr: tuple[str, int]) -> None:
        """Send a burst to one address in few system calls (OSError as ``write``)."""
        self.sock.write_many(datagrams, addr)

    def getHost(self) -> IPv4Address | IPv6Address:
        return self.sock.transport.getHost()  # type: ignore[union-attr,no-any-return]

    def stopListening(self) -> defer.Deferred[None] | None:
        """Leave the socket (closed with its last endpoint); the protocol is stopped."""
        if self.closed:
            return None
        self.closed = True
        done = self.sock.detach(self.kind)
        self.protocol.doStop()
        return done


class UdpSockets:
    """Every shared UDP socket of one daemon, by (address, port); see the module docstring."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor  # IReactorUDP
        self.sockets: dict[tuple[str, int], SharedSocket] = {}

    def open(
        self,
        host: str,
        port: int,
        kind: str,
        protocol: DatagramProtocol,
        *,
        ipv4_only: bool = False,
    ) -> UdpEndpoint:
        """``protocol`` receives ``kind``'s datagrams to ``host:port`` (bound now if no
        other kind has it). CannotListenError if it cannot be bound; ValueError for an
        unknown kind or one already open there."""
        if kind not in KINDS:
            raise ValueError(f"unknown UDP kind {kind!r}; known: {', '.join(KINDS)}")
        sock = self.sockets.get((host, port)) if port else None
        if sock is None:
            sock = SharedSocket(self, (host, port))
            sock.port = self.reactor.listenUDP(port, sock, interface=host)
            sock.key = (host, sock.port.getHost().port)
            self.sockets[sock.key] = sock
        elif kind in sock.endpoints:
            raise ValueError(f"UDP {host}:{port} already carries {kind}")
        endpoint = UdpEndpoint(sock, kind, protocol, ipv4_only)
        sock.endpoints[kind] = endpoint
        protocol.makeConnection(endpoint)  # type: ignore[arg-type]
        _log.debug(
            "udp {host}:{port}: {kinds}", host=host, port=sock.key[1], kinds=sorted(sock.endpoints)
        )
        return endpoint
