"""The ``utp`` plugin's own rules: its settings, the dial order by ``prefer`` and by what
an address taught us, and the fallback from one transport to the other."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.error import ConnectError
from twisted.internet.protocol import ClientFactory
from twisted.python.failure import Failure

from btd.core.errors import ConfigError
from btd.core.net.udp import UdpSockets
from btd.plugins.utp import TransportHints, UtpPlugin, validate

ADDR = ("127.0.0.1", 6881)


def test_settings() -> None:
    assert validate({}) == {"prefer": "tcp"}
    assert validate({"prefer": "utp"}) == {"prefer": "utp"}
    with pytest.raises(ConfigError, match="tcp or utp"):
        validate({"prefer": "udp"})
    with pytest.raises(ConfigError, match="unknown key"):
        validate({"prefr": "utp"})


class Factory(ClientFactory):
    def __init__(self, active: bool = True) -> None:
        self.torrent = SimpleNamespace(active=active)
        self.failed: list[Failure] = []
        self.built: list[Any] = []

    def buildProtocol(self, addr: Any) -> Any:
        proto = SimpleNamespace(closed=False, peer=None)
        self.built.append(proto)
        return proto

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.failed.append(reason)


class Plugin:
    """A UtpPlugin whose TCP and uTP dials are recorded, not made."""

    def __init__(self, prefer: str) -> None:
        self.plugin = UtpPlugin()
        self.plugin.settings = {"prefer": prefer}
        self.calls: list[tuple[str, Any]] = []
        reactor = SimpleNamespace(connectTCP=lambda h, p, f, timeout: self.calls.append(("tcp", f)))
        self.plugin._session = SimpleNamespace(reactor=reactor)  # noqa: SLF001
        self.plugin.sock = SimpleNamespace(connect=lambda h, p, f: self.calls.append(("utp", f)))  # type: ignore[assignment]

    def fail_last(self) -> None:
        self.calls[-1][1].clientConnectionFailed(None, Failure(ConnectError(string="no")))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls]


@pytest.mark.parametrize(("prefer", "order"), [("tcp", ["tcp", "utp"]), ("utp", ["utp", "tcp"])])
def test_dial_order_and_fallback(prefer: str, order: list[str]) -> None:
    p = Plugin(prefer)
    factory = Factory()
    p.plugin.dial(*ADDR, factory)
    assert p.kinds() == order[:1]
    p.fail_last()
    assert p.kinds() == order and not factory.failed
    p.fail_last()
    assert p.kinds() == order and len(factory.failed) == 1  # both failed: told once


def test_no_second_dial_for_a_stopped_torrent() -> None:
    p = Plugin("utp")
    factory = Factory(active=False)
    p.plugin.dial(*ADDR, factory)
    p.fail_last()
    assert p.kinds() == ["utp"] and len(factory.failed) == 1


def test_tcp_closed_before_the_handshake_makes_utp_first_next_time() -> None:
    p = Plugin("tcp")
    factory = Factory()
    p.plugin.dial(*ADDR, factory)
    proto = p.calls[-1][1].buildProtocol(None)  # TCP connected...
    proto.closed = True  # ...and ended with no handshake (libtorrent with TCP off)
    p.plugin.dial(*ADDR, Factory())
    assert p.kinds() == ["tcp", "utp"]


def test_a_working_connection_keeps_its_transport() -> None:
    p = Plugin("utp")
    p.plugin.dial(*ADDR, Factory())
    p.fail_last()  # uTP failed, TCP connects and works
    proto = p.calls[-1][1].buildProtocol(None)
    proto.peer = object()
    proto.closed = True  # a normal end after the handshake
    p.plugin.dial(*ADDR, Factory())
    assert p.kinds() == ["utp", "tcp", "tcp"]


def test_hints_are_bounded() -> None:
    hints = TransportHints(size=3)
    for port in range(5):
        hints.note(("h", port), "utp")
    assert hints.first(("h", 0), "tcp") == "tcp"  # forgotten
    assert hints.first(("h", 4), "tcp") == "utp"
    assert len(hints._first) == 3  # noqa: SLF001


def _session(listen_udp: Any) -> Any:
    inbound = SimpleNamespace(buildProtocol=lambda addr: None)
    connector = SimpleNamespace(dialer=None, inbound_factory=lambda: inbound)
    reactor = SimpleNamespace(listenUDP=listen_udp)
    config = SimpleNamespace(session=SimpleNamespace(listen_host="127.0.0.1"))
    return SimpleNamespace(
        connector=connector,
        reactor=reactor,
        config=config,
        listen_port=6881,
        udp=UdpSockets(reactor),
    )


def test_a_taken_udp_port_leaves_utp_off_and_tcp_alone() -> None:
    from twisted.internet.error import CannotListenError

    def taken(port: int, proto: Any, interface: str) -> Any:
        raise CannotListenError(interface, port, OSError(98, "Address already in use"))

    plugin = UtpPlugin()
    session = _session(taken)
    plugin.btd_session_started(session)
    assert session.connector.dialer is None and plugin.sock is None
    assert plugin.status()["running"] is False


def test_started_takes_the_dialer_and_stopped_gives_it_back() -> None:
    bound: list[tuple[int, str]] = []
    port = SimpleNamespace(stopListening=lambda: None, getHost=lambda: SimpleNamespace(port=6881))

    def listen(p: int, proto: Any, interface: str) -> Any:
        bound.append((p, interface))
        return port

    plugin = UtpPlugin()
    session = _session(listen)
    plugin.btd_session_started(session)
    assert bound == [(6881, "127.0.0.1")]  # the peer port number, over UDP
    assert session.connector.dialer == plugin.dial
    plugin.btd_session_stopped(session)
    assert session.connector.dialer is None and plugin.sock is None
