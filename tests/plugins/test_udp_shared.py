"""uTP and the DHT on one UDP socket (issue 14 part 3): both plugins started against one
session, in either order, alone or together; each answers its own datagrams."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.protocol import Protocol
from udp_fakes import FakeUdpReactor

from btd.core.net.udp import UdpSockets
from btd.plugins.dht import DhtPlugin, krpc
from btd.plugins.utp import UtpPlugin
from btd.plugins.utp.packet import ST_STATE, ST_SYN, Packet, decode

PORT = 6881
PING = krpc.encode_query(krpc.Ping(b"pg", b"\x01" * 20))
SYN = Packet(ST_SYN, 7, seq_nr=1, ack_nr=0).encode()


def _session(tmp_path: Path, listen_host: str, dht: dict[str, Any]) -> Any:
    reactor = FakeUdpReactor()
    inbound = SimpleNamespace(buildProtocol=lambda addr: Protocol())
    config = SimpleNamespace(
        session=SimpleNamespace(listen_host=listen_host), plugins={"dht": dht, "utp": {}}
    )
    return SimpleNamespace(
        reactor=reactor,
        config=config,
        listen_port=PORT,
        state_dir=tmp_path,
        connector=SimpleNamespace(dialer=None, inbound_factory=lambda: inbound),
        udp=UdpSockets(reactor),
        run_blocking=lambda fn, *args: defer.maybeDeferred(fn, *args),
        swarms=lambda: [],
    )


def _start(session: Any, names: tuple[str, ...]) -> dict[str, Any]:
    plugins = {"dht": DhtPlugin(), "utp": UtpPlugin()}
    for name in names:
        plugins[name].btd_configure(session.config)
        plugins[name].btd_session_started(session)
    return plugins


def _answered(port: Any, to: tuple[str, int]) -> list[bytes]:
    return [data for data, addr in port.sent if addr == to]


@pytest.mark.parametrize("order", [("dht", "utp"), ("utp", "dht")])
@pytest.mark.parametrize(("host", "peer"), [("127.0.0.1", "127.0.0.1"), ("::", "::ffff:127.0.0.1")])
def test_both_plugins_share_the_peer_port(
    tmp_path: Path, order: tuple[str, str], host: str, peer: str
) -> None:
    session = _session(tmp_path, host, {})
    plugins = _start(session, order)
    assert len(session.reactor.ports) == 1  # one socket: no "address in use" for either
    port = session.reactor.ports[0]
    assert (port.host, port.port) == (host, PORT)
    port.receive(PING, (peer, 5000))
    port.receive(SYN, (peer, 5001))
    pong = [krpc.decode_message(d) for d in _answered(port, (peer, 5000))]
    assert [m.tid for m in pong if isinstance(m, krpc.Response)] == [b"pg"]
    state = _answered(port, (peer, 5001))
    assert state and decode(state[0]).type == ST_STATE  # the uTP connection accepted
    dht, utp = plugins["dht"], plugins["utp"]
    assert dht.status()["shared_socket"] is True and dht.udp_port() == PORT
    assert utp.status()["udp"]["dht_in"] == 1 and utp.status()["accepted"] == 1

    # stopping one (either) leaves the other working on the same socket
    first, last = order
    stopping = {"dht": lambda: dht.btd_session_stopping(session),
                "utp": lambda: utp.btd_session_stopped(session)}  # fmt: skip
    stopping[first]()
    assert port.listening
    port.receive(PING, (peer, 5002))
    port.receive(SYN, (peer, 5003))
    assert bool(_answered(port, (peer, 5002))) == (last == "dht")
    assert bool(_answered(port, (peer, 5003))) == (last == "utp")
    stopping[last]()
    assert not port.listening


@pytest.mark.parametrize("name", ["dht", "utp"])
def test_each_works_alone(tmp_path: Path, name: str) -> None:
    session = _session(tmp_path, "127.0.0.1", {})
    _start(session, (name,))
    port = session.reactor.ports[0]
    port.receive(PING, ("127.0.0.1", 5000))
    port.receive(SYN, ("127.0.0.1", 5001))
    assert bool(_answered(port, ("127.0.0.1", 5000))) == (name == "dht")
    assert bool(_answered(port, ("127.0.0.1", 5001))) == (name == "utp")


def test_a_dht_on_another_port_has_its_own_socket(tmp_path: Path) -> None:
    session = _session(tmp_path, "::", {"port": 7000})
    plugins = _start(session, ("utp", "dht"))
    assert [(p.host, p.port) for p in session.reactor.ports] == [("::", PORT), ("0.0.0.0", 7000)]
    assert plugins["dht"].status()["shared_socket"] is False
