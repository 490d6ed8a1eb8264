"""A Clock that 'listens' on UDP: what the shared-socket tests bind (core/net/udp.py)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import CannotListenError


class FakeUdpPort:
    """What listenUDP returns: records writes; ``receive`` plays a datagram in."""

    def __init__(self, protocol: Any, host: str, port: int) -> None:
        self.protocol, self.host, self.port = protocol, host, port
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.listening = True
        protocol.makeConnection(self)

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))

    def getHost(self) -> IPv4Address | IPv6Address:
        if ":" in self.host:
            return IPv6Address("UDP", self.host, self.port)
        return IPv4Address("UDP", self.host, self.port)

    def stopListening(self) -> defer.Deferred[None]:
        self.listening = False
        self.protocol.doStop()
        return defer.succeed(None)

    def receive(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.listening
        self.protocol.datagramReceived(data, addr)


class FakeUdpReactor(task.Clock):
    """A clock with ``listenUDP``: every port bound, and the taken ones refused."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[FakeUdpPort] = []
        self.taken: set[int] = set()

    def listenUDP(self, port: int, protocol: Any, interface: str = "") -> FakeUdpPort:
        if port in self.taken:
            raise CannotListenError(interface, port, OSError(98, "Address already in use"))
        p = FakeUdpPort(protocol, interface, port or 40000 + len(self.ports))
        self.ports.append(p)
        return p
