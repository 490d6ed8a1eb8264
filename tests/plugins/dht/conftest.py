"""Fakes for the DHT tests: a Clock that 'listens' on UDP and an in-memory network.

Tests get the classes through the ``dht_fakes`` fixture (test modules cannot import each
other: pytest runs with --import-mode=importlib).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet import defer, task


class FakePort:
    """What listenUDP returns: records writes, or hands them to a FakeNetwork."""

    def __init__(self, reactor: FakeReactor, protocol: Any, host: str, port: int) -> None:
        self.reactor, self.protocol, self.host, self.port = reactor, protocol, host, port
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.listening = True

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))
        if self.reactor.network is not None:
            self.reactor.network.deliver(data, (self.host, self.port), addr)

    def getHost(self) -> Any:
        return SimpleNamespace(host=self.host, port=self.port)

    def stopListening(self) -> defer.Deferred[None]:
        self.listening = False
        if self.reactor.network is not None:
            self.reactor.network.ports.pop((self.host, self.port), None)
        return defer.succeed(None)


class FakeNetwork:
    """Datagrams between FakePorts, delivered ``latency`` seconds later on the clock."""

    def __init__(self, clock: task.Clock, latency: float = 0.01) -> None:
        self.clock, self.latency = clock, latency
        self.ports: dict[tuple[str, int], FakePort] = {}
        self.next_port = 40000
        self.delivered = 0

    def deliver(self, data: bytes, src: tuple[str, int], dst: tuple[str, int]) -> None:
        def arrive() -> None:
            port = self.ports.get(dst)
            if port is not None and port.listening:
                self.delivered += 1
                port.protocol.datagramReceived(data, src)

        self.clock.callLater(self.latency, arrive)


class FakeReactor(task.Clock):
    """One daemon's reactor: shares the clock of the network it is attached to."""

    def __init__(self, network: FakeNetwork | None = None, clock: task.Clock | None = None):
        super().__init__()
        self.network = network
        self._clock = clock
        self.ports: list[FakePort] = []
        self.taken: set[int] = set()

    # share one clock between several fake reactors on a network
    def seconds(self) -> float:
        return self._clock.seconds() if self._clock is not None else super().seconds()

    def callLater(self, delay: float, f: Any, *a: Any, **kw: Any) -> Any:
        if self._clock is not None:
            return self._clock.callLater(delay, f, *a, **kw)
        return super().callLater(delay, f, *a, **kw)

    def listenUDP(self, port: int, protocol: Any, interface: str = "") -> FakePort:
        from twisted.internet.error import CannotListenError

        if port in self.taken:
            raise CannotListenError(interface, port, OSError("address in use"))
        if port == 0:
            port = self.network.next_port if self.network else 40000
            if self.network:
                self.network.next_port += 1
        p = FakePort(self, protocol, interface, port)
        self.ports.append(p)
        if self.network is not None:
            self.network.ports[(interface, port)] = p
        return p

    def resolve(self, name: str) -> defer.Deferred[str]:
        return defer.fail(OSError(f"no DNS in tests: {name}"))


@pytest.fixture()
def dht_fakes() -> SimpleNamespace:
    return SimpleNamespace(FakeReactor=FakeReactor, FakeNetwork=FakeNetwork, FakePort=FakePort)
