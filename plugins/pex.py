"""Peer exchange (BEP 11, ``ut_pex``): connected peers tell each other whom they know.

Each peer that speaks ``ut_pex`` gets at most one message per ``interval`` (60 s, the
clients' convention): the difference since our last message to it, i.e. the peers we are
connected to now and have a listen address for (outgoing connections' address; inbound
peers' IP with the port of their extension handshake), and the ones gone since. A message
lists at most 50 added and 50 dropped peers; the rest follows next time. A quiet swarm
sends nothing. Whoever may hear news is told at once, when a peer's extension handshake
arrives (its own first list, and the newcomer for the others); the rest waits for a 1 s tick.

Incoming messages feed ``torrent.add_peers``. A peer that sends again sooner than 3/4 of
the interval (45 s) is ignored for that message; more than ``FLOOD_MESSAGES`` messages
within one interval drop the connection, as libtorrent does. Private torrents (BEP 27)
never send PEX and ignore what they get. Magnets still fetching metadata do not take part
(the core calls extension handlers only for torrents).
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from btd.core.errors import ConfigError, ProtocolError
from btd.core.limits import PEX_EARLY_FRACTION, PEX_FLOOD_MESSAGES, PEX_INTERVAL
from btd.core.plugin import hookimpl
from btd.core.plugin_config import check_keys, plugin_settings
from btd.core.types import PeerAddress
from btd.plugins.pex_codec import (
    FLAG_REACHABLE,
    FLAG_SEED,
    MAX_ENTRIES,
    PexMessage,
    PexPeer,
    decode_pex,
    encode_pex,
    normalize_host,
)

if TYPE_CHECKING:
    from btd.core.config_schema import Config
    from btd.core.extensions import ExtensionHandler
    from btd.core.hookspecs import SessionView

__version__ = "0.1.0"

PLUGIN = "pex"
NAME = "ut_pex"
TICK = 1.0  # how often due peers are looked for
SLACK = 0.001  # a tick landing a hair before a peer's time still counts
FLOOD_MESSAGES = PEX_FLOOD_MESSAGES  # more in one interval (at most 60 s) drops the peer
EARLY_FRACTION = PEX_EARLY_FRACTION  # a message sooner than this much of the interval: ignored

_log = Logger(namespace="btd.plugins.pex")


@dataclass(frozen=True)
class Settings:
    interval: float = PEX_INTERVAL
    max_peers: int = MAX_ENTRIES


@dataclass
class _Told:
    """What we told one peer: the addresses it believes we are connected to."""

    told: set[PeerAddress] = field(default_factory=set)
    next_at: float = 0.0  # no message before this time


@dataclass
class _Heard:
    """When one peer's messages came."""

    last_accepted: float | None = None
    recent: deque[float] = field(default_factory=deque)


def pex_address(peer: Any) -> PeerAddress | None:
    """Where others can reach ``peer``: the address we dialled, or its IP and listen port."""
    host, port = peer.link.address
    if not peer.link.outgoing:
        if not peer.listen_port:
            return None
        port = peer.listen_port
    norm = normalize_host(host)
    return (norm[0], port) if norm is not None and 0 < port < 65536 else None


class PexHandler:
    """The ``ut_pex`` extension for every torrent (an ExtensionHandler, see core/extensions.py)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Any = None,
        listen_port: Callable[[], int] = lambda: 0,
    ) -> None:
        self.settings = settings or Settings()
        self.clock = clock
        self.listen_port = listen_port
        self._out: dict[Any, dict[Any, _Told]] = {}  # torrent -> peer -> what we told it
        self._in: dict[Any, _Heard] = {}
        self._loop: LoopingCall | None = None
        self.counts = dict.fromkeys(
            (
                "messages_in",
                "messages_out",
                "ignored_early",
                "ignored_private",
                "malformed",
                "floods",
                "peers_learned",
                "peers_sent",
            ),
            0,
        )

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, clock: Any, listen_port: Callable[[], int] | None = None) -> None:
        """Begin sending (the session is up)."""
        self.clock = clock
        if listen_port is not None:
            self.listen_port = listen_port
        if self._loop is None or not self._loop.running:
            self._loop = LoopingCall(self.tick)
            self._loop.clock = clock
            self._loop.start(min(TICK, self.settings.interval), now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    @property
    def running(self) -> bool:
        return self._loop is not None and self._loop.running

    # -- ExtensionHandler ------------------------------------------------------------------
    def peer_ready(self, torrent: Any, peer: Any) -> None:
        if torrent.private:
            return
        peers = self._out.setdefault(torrent, {})
        if peer.supports(NAME):
            peers.setdefault(peer, _Told())
        else:  # a later extension handshake may switch ut_pex off
            peers.pop(peer, None)
            if not peers:
                del self._out[torrent]
                return
        if self.running:  # news (this peer) for whoever may hear it; its own first list
            self._flush(torrent, peers, self.clock.seconds())

    def peer_gone(self, torrent: Any, peer: Any) -> None:
        self._in.pop(peer, None)
        peers = self._out.get(torrent)
        if peers is not None:
            peers.pop(peer, None)
            if not peers:
                del self._out[torrent]

    def message(self, torrent: Any, peer: Any, payload: bytes) -> None:
        counts = self.counts
        counts["messages_in"] += 1
        if torrent.private:
            counts["ignored_private"] += 1
            return
        now = (self.clock or torrent.clock).seconds()
        base = min(self.settings.interval, PEX_INTERVAL)
        heard = self._in.setdefault(peer, _Heard())
        heard.recent.append(now)
        while heard.recent and heard.recent[0] <= now - base:
            heard.recent.popleft()
        if len(heard.recent) > FLOOD_MESSAGES:
            counts["floods"] += 1
            raise ProtocolError(f"ut_pex flood: {len(heard.recent)} messages in {base:g} s")
        if heard.last_accepted is not None and now - heard.last_accepted < base * EARLY_FRACTION:
            counts["ignored_early"] += 1
            return
        try:
            msg = decode_pex(payload)
        except ProtocolError:
            counts["malformed"] += 1
            raise
        heard.last_accepted = now
        addresses = [
            p.address for p in msg.added if p.port and not self._is_us(peer, p.host, p.port)
        ][: self.settings.max_peers]
        if addresses:
            counts["peers_learned"] += torrent.add_peers(addresses)

    def _is_us(self, peer: Any, host: str, port: int) -> bool:
        """Our own listen address (on loopback, or the address this connection reached)."""
        if port != self.listen_port():
            return False
        ip = ipaddress.ip_address(host)
        if ip.is_loopback or ip.is_unspecified:
            return True
        try:
            local = peer.link.transport.getHost().host
        except AttributeError:
            return False
        return normalize_host(local) == normalize_host(host)

    # -- sending ---------------------------------------------------------------------------
    def tick(self) -> None:
        """Send each due peer what changed since our last message to it."""
        now = self.clock.seconds()
        for torrent, peers in list(self._out.items()):
            if torrent.private:
                del self._out[torrent]
                continue
            self._flush(torrent, peers, now)

    def _flush(self, torrent: Any, peers: dict[Any, _Told], now: float) -> None:
        due = [p for p, st in peers.items() if st.next_at <= now + SLACK]
        if not due:
            return
        current = self._connected(torrent)
        for peer in due:
            if peer not in torrent.peers or peer.link.closed:
                self.peer_gone(torrent, peer)
                continue
            self._send(peer, peers[peer], current, now)

    def _connected(self, torrent: Any) -> dict[PeerAddress, int]:
        """The torrent's peers others could connect to, with their BEP 11 flags."""
        out: dict[PeerAddress, int] = {}
        for peer in torrent.peers:
            address = pex_address(peer)
            if address is None or peer.link.closed:
                continue
            flags = FLAG_REACHABLE if peer.link.outgoing else 0
            has = getattr(peer, "has", None)
            if has is not None and has.complete:
                flags |= FLAG_SEED
            out[address] = flags
        return out

    def _send(self, peer: Any, st: _Told, current: dict[PeerAddress, int], now: float) -> None:
        own = pex_address(peer)
        added = [
            PexPeer(host, port, flags)
            for (host, port), flags in current.items()
            if (host, port) != own and (host, port) not in st.told
        ][: self.settings.max_peers]
        dropped = [a for a in st.told if a not in current][:MAX_ENTRIES]
        if not added and not dropped:
            return  # nothing new: the next change may go out at once
        if not peer.send_extended(NAME, encode_pex(PexMessage(tuple(added), tuple(dropped)))):
            return
        st.told.update(p.address for p in added)
        st.told.difference_update(dropped)
        st.next_at = now + self.settings.interval
        self.counts["messages_out"] += 1
        self.counts["peers_sent"] += len(added)

    # -- reporting -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What ``pex.status`` answers."""
        return {
            "running": self.running,
            "interval": self.settings.interval,
            "max_peers": self.settings.max_peers,
            "torrents": len(self._out),
            "peers": sum(len(p) for p in self._out.values()),
            **self.counts,
        }


# -- settings and hooks -----------------------------------------------------------------------
def validate(raw: Mapping[str, Any]) -> Settings:
    """``plugins.pex`` -> Settings; ConfigError naming ``plugins.pex.<key>``."""
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a mapping of settings", key=f"plugins.{PLUGIN}")
    check_keys(raw, ("interval", "max_peers"), f"plugins.{PLUGIN}")
    interval = raw.get("interval", 60)
    if (
        isinstance(interval, bool)
        or not isinstance(interval, (int, float))
        or not 1 <= interval <= 3600
    ):
        raise ConfigError(
            f"must be a number of seconds from 1 to 3600, got {interval!r}",
            key=f"plugins.{PLUGIN}.interval",
        )
    max_peers = raw.get("max_peers", MAX_ENTRIES)
    if isinstance(max_peers, bool) or not isinstance(max_peers, int) or not 1 <= max_peers <= 50:
        raise ConfigError(
            f"must be an integer from 1 to 50, got {max_peers!r}",
            key=f"plugins.{PLUGIN}.max_peers",
        )
    return Settings(float(interval), max_peers)


class PexPlugin:
    """The plugin: its settings and the session's one PexHandler (one instance per manager)."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.handler: PexHandler | None = None

    @hookimpl
    def btd_configure(self, config: Config) -> None:
        self.settings = validate(plugin_settings(config, PLUGIN))
        if self.settings.interval < 60:
            _log.warn(
                "pex interval {i:g} s: peers may drop us for sending more than once a minute",
                i=self.settings.interval,
            )

    @hookimpl
    def btd_extension_handlers(self) -> Mapping[str, ExtensionHandler]:
        """One handler per session (the session builds its Extensions from it)."""
        self.handler = PexHandler(self.settings)
        return {NAME: self.handler}

    @hookimpl
    def btd_session_started(self, session: SessionView) -> None:
        if self.handler is not None:
            self.handler.start(session.reactor, lambda: session.listen_port)

    @hookimpl
    def btd_session_stopping(self, session: SessionView) -> None:
        if self.handler is not None:
            self.handler.stop()

    @hookimpl
    def btd_rpc_methods(self, session: SessionView) -> Mapping[str, Callable[..., Any]]:
        def status() -> dict[str, Any]:
            """PEX counters: messages in/out, peers learned and sent, ignored and dropped."""
            handler = self.handler
            return handler.status() if handler is not None else {"running": False}

        return {"pex.status": status}
