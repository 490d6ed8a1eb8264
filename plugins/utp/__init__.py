"""uTP (BEP 29), the UDP transport of libtorrent and uTorrent, as the ``utp`` plugin.

One UDP socket on the peer port (``session.listen_host``, the port the TCP listener got)
carries uTP, shared with the DHT when that runs on the peer port too: ``session.udp``
(core/net/udp.py) binds it for whichever plugin starts first and hands each its datagrams
by their first byte. Inbound uTP connections go to the connector's inbound
factory, as TCP ones do, so they run the same PeerProtocol (MSE included) and count against
the same limit. Outgoing peers are dialled through the connector's ``dialer``:

- ``prefer: tcp`` (default): TCP first; uTP when the TCP dial fails.
- ``prefer: utp``: uTP first; TCP when the uTP dial fails (no answer to 3 SYNs, 7 s, or a
  RESET).

Either way an address remembers what worked (``TransportHints``, at most
``UTP_TRANSPORT_HINTS`` addresses): a peer that came to us over uTP, or whose last TCP
connection ended before its handshake (libtorrent with TCP off accepts and closes), is
dialled over uTP first next time; one whose uTP connection ended so, over TCP.

Modules: ``packet`` (datagrams, pure), ``ledbat`` (congestion window and timeout, pure),
``connection`` (one connection's state machine, pure), ``socket`` (the UDP port and the
transport PeerProtocol runs on). docs/PLUGINS.md "utp" says what works and what not yet.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.error import CannotListenError
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger

from btd.core.errors import ConfigError
from btd.core.limits import CONNECT_TIMEOUT, UTP_TRANSPORT_HINTS
from btd.core.net.udp import UTP
from btd.core.plugin import hookimpl
from btd.core.plugin_config import check_keys, plugin_settings

if TYPE_CHECKING:
    from btd.core.config_schema import Config
    from btd.core.hookspecs import SessionView

    from .socket import UtpSocket

__version__ = "0.1.0"

PLUGIN = "utp"
DEFAULTS: dict[str, Any] = {"prefer": "tcp"}

log = Logger()


def validate(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The plugin's settings with defaults filled in; ConfigError names the bad key."""
    check_keys(raw, DEFAULTS, f"plugins.{PLUGIN}")
    settings = dict(DEFAULTS)
    prefer = raw.get("prefer", DEFAULTS["prefer"])
    if prefer not in ("tcp", "utp"):
        raise ConfigError(f"must be tcp or utp, got {prefer!r}", key=f"plugins.{PLUGIN}.prefer")
    settings["prefer"] = prefer
    return settings


class TransportHints:
    """Which transport to try first per address, learnt from how attempts ended; bounded
    (least recently noted forgotten first)."""

    def __init__(self, size: int = UTP_TRANSPORT_HINTS) -> None:
        self.size = size
        self._first: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._last: dict[tuple[str, int], tuple[str, Any]] = {}  # kind, protocol built

    def note(self, address: tuple[str, int], kind: str) -> None:
        self._first[address] = kind
        self._first.move_to_end(address)
        while len(self._first) > self.size:
            old, _ = self._first.popitem(last=False)
            self._last.pop(old, None)

    def attempt(self, address: tuple[str, int], kind: str, protocol: Any) -> None:
        """A dial over ``kind`` connected and built ``protocol``: judged at the next dial."""
        if address not in self._first:
            self.note(address, kind)
        if address in self._first:
            self._last[address] = (kind, protocol)

    def first(self, address: tuple[str, int], default: str) -> str:
        last = self._last.pop(address, None)
        if last is not None:
            kind, protocol = last
            if getattr(protocol, "closed", False) and getattr(protocol, "peer", 1) is None:
                self.note(address, "utp" if kind == "tcp" else "tcp")  # no handshake over it
        return self._first.get(address, default)


class _Fallback(ClientFactory):
    """A dial tried one way, then the other: the connector's factory hears of the
    connection from whichever works, of a failure only when both failed."""

    noisy = False

    def __init__(
        self,
        factory: ClientFactory,
        dials: list[tuple[str, Callable[[ClientFactory], None]]],
        built: Callable[[str, Any], None],
    ) -> None:
        self.factory = factory
        self._dials = dials
        self._built = built
        self.kind = ""

    def next(self) -> None:
        self.kind, dial = self._dials.pop(0)
        dial(self)

    def buildProtocol(self, addr: Any) -> Protocol | None:
        protocol = self.factory.buildProtocol(addr)
        self._built(self.kind, protocol)
        return protocol

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        torrent = getattr(self.factory, "torrent", None)
        if self._dials and (torrent is None or torrent.active):
            self.next()
        else:
            self.factory.clientConnectionFailed(connector, reason)


class UtpPlugin:
    """The plugin: settings, the socket while the session runs, the connector's dialer."""

    def __init__(self) -> None:
        self.settings: dict[str, Any] = dict(DEFAULTS)
        self.sock: UtpSocket | None = None
        self._port: Any = None
        self._session: Any = None
        self.hints = TransportHints()

    @hookimpl
    def btd_configure(self, config: Config) -> None:
        self.settings = validate(plugin_settings(config, PLUGIN))

    @hookimpl
    def btd_session_started(self, session: SessionView) -> None:
        """Listen on the peer port over UDP and take over the connector's dialling."""
        from .socket import UtpSocket

        connector = session.connector
        inbound = connector.inbound_factory()

        def accept(addr: Any) -> Protocol | None:
            protocol = inbound.buildProtocol(addr)
            if protocol is not None:
                self.hints.note((addr.host, addr.port), "utp")  # its uTP port is its listen port
            return protocol

        sock = UtpSocket(session.reactor, accept)
        host = session.config.session.listen_host
        try:  # shared with the DHT when it runs on the peer port too (core/net/udp.py)
            self._port = session.udp.open(host, session.listen_port, UTP, sock)
        except CannotListenError as exc:  # the UDP port is taken: TCP goes on alone
            log.error(
                "utp: cannot listen on udp {host}:{port} ({exc}); uTP is off",
                host=host,
                port=session.listen_port,
                exc=exc.socketError,
            )
            return
        self.sock = sock
        self._session = session
        connector.dialer = self.dial
        log.info(
            "utp: listening on udp {host}:{port}, prefer {prefer}",
            host=host,
            port=session.listen_port,
            prefer=self.settings["prefer"],
        )

    def dial(self, host: str, port: int, factory: ClientFactory) -> None:
        """The connector's dialer: by ``prefer``, one transport then the other."""
        reactor = self._session.reactor

        def tcp(f: ClientFactory) -> None:
            reactor.connectTCP(host, port, f, timeout=CONNECT_TIMEOUT)

        def utp(f: ClientFactory) -> None:
            if self.sock is None:
                tcp(f)
            else:
                self.sock.connect(host, port, f)

        address = (host, port)
        first = self.hints.first(address, self.settings["prefer"])
        dials = [("utp", utp), ("tcp", tcp)]
        if first == "tcp":
            dials.reverse()
        _Fallback(factory, dials, lambda kind, p: self.hints.attempt(address, kind, p)).next()

    @hookimpl
    def btd_rpc_methods(self, session: SessionView) -> Mapping[str, Callable[..., Any]]:
        return {"utp.status": self.status}

    @hookimpl
    def btd_session_stopped(self, session: SessionView) -> Any:
        """The torrents have stopped (their peers closed): drop what is left, close the port."""
        if session.connector.dialer == self.dial:
            session.connector.dialer = None
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close_all()
        port, self._port = self._port, None
        return None if port is None else port.stopListening()

    def status(self) -> dict[str, Any]:
        sock = self.sock
        base = {"running": sock is not None, "prefer": self.settings["prefer"]}
        if sock is not None:
            base.update(sock.stats, connections=len(sock.streams))
            base["udp"] = self._port.stats  # the shared socket's counters (DHT's too)
            base["last_malformed"] = getattr(sock, "last_malformed", None)
            base["streams"] = [
                {
                    "address": f"{s.addr[0]}:{s.addr[1]}",
                    "state": s.conn.state.value,
                    "cwnd": s.conn.cc.cwnd,
                    "in_flight": s.conn.in_flight,
                    "peer_window": s.conn.peer_wnd,
                    "rtt_ms": None if s.conn.rtt.rtt is None else round(s.conn.rtt.rtt * 1000, 1),
                    "resent": s.conn.resent,
                    "timeouts": s.conn.timeouts,
                }
                for s in list(sock.streams.values())
            ]
        return base
