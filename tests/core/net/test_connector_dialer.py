"""The connector's ``dialer`` hook (a transport plugin dials instead of connectTCP)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from twisted.internet.error import ConnectError
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from btd.core.net.connector import PeerConnector


def connector(reactor: Any) -> PeerConnector:
    return PeerConnector(
        reactor,
        b"-BT0100-abcdefghijkl",
        swarm=lambda h: None,
        swarms=lambda: [],
        max_connections=lambda: 10,
        stopping=lambda: False,
        dht_port=lambda: None,
        dht_node_seen=lambda h, p: None,
    )


def swarm() -> Any:
    failed: list[tuple[Any, str]] = []
    return SimpleNamespace(
        info_hash=b"\x11" * 20,
        encryption=None,
        active=True,
        failed=failed,
        connection_failed=lambda addr, reason: failed.append((addr, reason)),
    )


def test_without_a_dialer_tcp() -> None:
    reactor = MemoryReactorClock()
    c = connector(reactor)
    c.connect(swarm(), ("127.0.0.1", 6881))
    assert [(h, p) for h, p, *_ in reactor.tcpClients] == [("127.0.0.1", 6881)]


def test_a_dialer_takes_the_dial_and_its_failure_gives_the_slot_back() -> None:
    reactor = MemoryReactorClock()
    c = connector(reactor)
    dials: list[tuple[str, int, Any]] = []
    c.dialer = lambda host, port, factory: dials.append((host, port, factory))
    s = swarm()
    c.connect(s, ("127.0.0.1", 6881))
    assert not reactor.tcpClients and [(h, p) for h, p, _ in dials] == [("127.0.0.1", 6881)]
    assert c.connections == 1
    dials[0][2].clientConnectionFailed(None, Failure(ConnectError(string="nobody")))
    assert c.connections == 0
    assert s.failed and s.failed[0][0] == ("127.0.0.1", 6881)
