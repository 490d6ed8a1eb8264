"""Mainline DHT (BEP 5): find peers for torrents without a tracker.

Pure parts: krpc.py (codec), routing.py (k-buckets), tokens.py, lookup.py (iterative
lookup), limits.py (rate limits), peerstore.py (announced peers), state.py (state file).
Twisted parts: node.py (the UDP node), service.py (joining, torrents, timers).

Settings (``plugins: {dht: {...}}``), each checked here (ConfigError ``plugins.dht.<key>``):

- ``port`` (0..65535 or null, default null = the peer port; 0 = any free port): the UDP
  port. On the peer port the DHT shares one UDP socket with uTP (``session.udp``,
  core/net/udp.py, which tells their datagrams apart by the first byte), as libtorrent
  does; on another port it has a socket of its own.
- ``bind`` (IPv4 address, default: ``session.listen_host``): where the socket is bound.
  Unset, the shared socket is the one at ``session.listen_host`` (a dual-stack ``::``
  socket too: the DHT hears only its IPv4 senders), an own socket binds the IPv4 view of
  it (``0.0.0.0`` for ``::``). A ``listen_host`` that is one IPv6 address cannot be
  followed (the DHT is IPv4 only): the start is refused until ``bind`` is set.
- ``bootstrap`` (list of ``"host:port"``, default none): nodes to join through. There are
  NO built-in bootstrap nodes: with none configured and no saved nodes, the node only
  learns of others when they contact it.
- ``state_file`` (absolute path, default ``<state_dir>/dht.dat``): node id and known nodes.
- ``announce_interval`` (seconds, 1..86400, default 900): how often each torrent looks
  for peers and announces itself.
- ``ip_rate``/``ip_burst`` (default 5/s, 20): incoming queries answered per source IP.
- ``global_rate`` (default 250/s): incoming queries answered in all.
- ``send_rate`` (default 50/s): queries we send; more wait in a queue.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from btd.core.errors import ConfigError
from btd.core.plugin import hookimpl
from btd.core.plugin_config import check_keys, plugin_settings

if TYPE_CHECKING:
    from btd.core.config_schema import Config
    from btd.core.events import TorrentEvent
    from btd.core.hookspecs import SessionView
    from btd.plugins.dht.service import DhtService, Settings

__version__ = "0.1.0"

PLUGIN = "dht"
KEYS = (
    "port",
    "bind",
    "bootstrap",
    "state_file",
    "announce_interval",
    "ip_rate",
    "ip_burst",
    "global_rate",
    "send_rate",
)

log = Logger(namespace="btd.plugins.dht")


def _error(key: str, message: str) -> ConfigError:
    return ConfigError(message, key=f"plugins.{PLUGIN}.{key}")


def _number(key: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _error(key, f"must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise _error(key, f"must be between {lo:g} and {hi:g}, got {value!r}")
    return float(value)


def _host_port(key: str, value: Any) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise _error(key, f'must be "host:port", got {value!r}')
    host, _, port_text = value.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise _error(key, f'must be "host:port" with a port 1..65535, got {value!r}')
    if any(c.isspace() for c in host) or "[" in host:
        raise _error(key, f"must be an IPv4 address or a host name, got {value!r}")
    return host, int(port_text)


def validate(raw: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Any:
    """The plugin's Settings; ConfigError names the bad key."""
    from btd.core.config_schema import Invalid, expand_path
    from btd.plugins.dht.service import Settings

    if not isinstance(raw, Mapping):
        raise ConfigError(f"must be a mapping of settings, got {raw!r}", key=f"plugins.{PLUGIN}")
    check_keys(raw, KEYS, f"plugins.{PLUGIN}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "port":
            if value is None:  # the peer port
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
                raise _error(key, f"must be an integer 0..65535 or null, got {value!r}")
            values[key] = value
        elif key == "bind":
            try:
                ipaddress.IPv4Address(value if isinstance(value, str) else None)  # type: ignore[arg-type]
            except ValueError:
                raise _error(key, f"must be an IPv4 address, got {value!r}") from None
            values[key] = value
        elif key == "bootstrap":
            if value is None:
                value = []
            if not isinstance(value, list):
                raise _error(key, f'must be a list of "host:port", got {value!r}')
            values[key] = tuple(_host_port(f"{key}[{i}]", v) for i, v in enumerate(value))
        elif key == "state_file":
            if value is not None:
                try:
                    values[key] = expand_path(value, os.environ if env is None else env)
                except Invalid as exc:
                    raise _error(key, f"{exc.message}, got {value!r}") from None
        elif key == "announce_interval":
            values[key] = _number(key, value, 1, 86400)
        elif key in ("ip_rate", "global_rate", "send_rate"):
            values[key] = _number(key, value, 0.1, 100_000)
        elif key == "ip_burst":
            values[key] = _number(key, value, 1, 100_000)
    return Settings(**values)


def follow(listen_host: str) -> str:
    """The IPv4 address the DHT binds when ``bind`` is not set: the one the daemon listens
    on for peers (its UDP socket must not answer on every interface when that names one)."""
    address = ipaddress.ip_address(listen_host)
    if address.version == 4:
        return str(address)
    if address.is_unspecified:  # "::": every interface, IPv4 included
        return "0.0.0.0"
    raise _error(
        "bind",
        f"session.listen_host is the IPv6 address {listen_host} and the DHT is IPv4 only: "
        "set plugins.dht.bind to the IPv4 address it may use",
    )


def resolve(settings: Settings, session: SessionView) -> Settings:
    """``settings`` with the socket's address and port filled in: on the peer port (the
    default) the socket is shared through ``session.udp``; elsewhere it is the DHT's own."""
    port = session.listen_port if settings.port is None else settings.port
    shared = bool(port) and port == session.listen_port
    bind = settings.bind
    if bind is None:
        listen_host = session.config.session.listen_host
        bind = listen_host if shared else follow(listen_host)
    return dataclasses.replace(settings, bind=bind, port=port, shared=shared)


class DhtPlugin:
    """The plugin: settings, and the DhtService from session start to session stop.

    One instance per plugin manager, so two daemons in one process run two nodes.
    """

    def __init__(self) -> None:
        self.settings: Settings | None = None
        self.service: DhtService | None = None

    @hookimpl
    def btd_configure(self, config: Config) -> None:
        raw = plugin_settings(config, PLUGIN)
        settings = validate(raw)
        if settings.bind is None:
            follow(config.session.listen_host)  # refuses one IPv6 address now, not at start
        self.settings = settings

    @hookimpl
    def btd_session_started(self, session: SessionView) -> None:
        """Start the node (reading the state file off the reactor thread first)."""
        from btd.plugins.dht.service import DhtService, Settings

        self.service = DhtService(session, resolve(self.settings or Settings(), session))
        self.service.start()

    @hookimpl
    def btd_session_stopping(self, session: SessionView) -> Deferred[None] | None:
        """Save the routing table and close the socket."""
        service, self.service = self.service, None
        return service.stop() if service is not None else None

    @hookimpl
    def btd_torrent_event(self, event: TorrentEvent) -> None:
        if self.service is not None:
            self.service.torrent_event(event.kind, event.info_hash)

    def status(self) -> dict[str, Any]:
        """DHT node state: nodes and buckets in the table, lookups, queries in/out, drops."""
        if self.service is None:
            return {"running": False, "error": None}
        return self.service.status()

    @hookimpl
    def btd_dht_port(self) -> int | None:
        """Lets the core set the DHT bit in handshakes and send PORT messages."""
        return self.udp_port()

    @hookimpl
    def btd_dht_node_seen(self, host: str, port: int) -> None:
        """A peer's PORT message: ping its node; it joins the table if it answers."""
        self.add_node(host, port)

    def udp_port(self) -> int | None:
        """Our DHT node's UDP port while it runs (what a BEP 5 PORT message would carry)."""
        node = self.service.node if self.service is not None else None
        return node.port if node is not None else None

    def add_node(self, host: str, port: int) -> bool:
        """A peer told us its DHT port (PORT message): ping it; it joins the table if it
        answers. Returns False when the DHT is not running or the address is unusable.
        """
        from btd.plugins.dht.krpc import usable

        node = self.service.node if self.service is not None else None
        if node is None or not usable(host, port):
            return False
        node.verify((host, port))
        return True

    @hookimpl
    def btd_rpc_methods(self, session: SessionView) -> Mapping[str, Callable[..., Any]] | None:
        return {"dht.status": self.status}
