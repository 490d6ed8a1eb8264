"""``PeerConnector``: the session's peer connections, for every swarm at once.

It is the ``PeerRouter`` inbound connections use (route a handshake to its swarm by info
hash; our peer id and handshake bits), dials outgoing connections for the swarms, and
keeps the daemon-wide connection limit. It knows the swarms only through callables, so
it imports nothing above the connection layer.

The limit is checked against a counter kept up to date by the connections themselves
(+1 when a dial starts or an inbound connection is accepted, -1 when it fails or ends),
never by summing over the swarms: ``can_connect`` is called on every dial and accept.

A hybrid torrent (BEP 52) is in two swarms, its v1 info hash and its truncated v2 hash: the
session finds it by either (``route``), and each connection keeps the one its handshake
named (``PeerProtocol.swarm_id``); ``connect`` dials with the id given (the swarm the
address was heard in), else the torrent's ``info_hash``.

Encryption (MSE/PE, core/wire/mse.py): each connection follows its swarm's policy, else the
session's. A responder finds the torrent from ``HASH('req2', info_hash)`` in an index kept
as torrents come and go (``know``/``forget``), one dict probe per encrypted newcomer. An
encrypted dial that fails before its handshake is over is tried again in the clear when
the policy is ``prefer``.

When the limit is reached, an inbound connection is still accepted (up to
``INBOUND_OVERFLOW`` beyond it) while some swarm has a spare peer (core/peer_slots.py): it is
marked ``over_limit`` and its swarm admits it only by closing a spare peer, so idle peers
cannot keep a useful newcomer out (libtorrent's ``connections_slack``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Any

from twisted.python.failure import Failure

from btd.core.limits import CONNECT_TIMEOUT, INBOUND_OVERFLOW
from btd.core.net.peer import InboundFactory, OutboundFactory, PeerProtocol
from btd.core.swarm import Swarm
from btd.core.types import PeerAddress
from btd.core.wire.messages import make_reserved
from btd.core.wire.mse import req2_key


def make_peer_id(prefix: str) -> bytes:
    """Azureus style: ``-BT0100-`` and 12 random bytes (printable, as most clients do)."""
    tail = secrets.token_urlsafe(12)[:12]
    return (prefix.encode("ascii") + tail.encode("ascii"))[:20]


class PeerConnector:
    """Routes, dials and counts the peer connections of every swarm."""

    def __init__(
        self,
        reactor: Any,
        peer_id: bytes,
        *,
        swarm: Callable[[bytes], Swarm | None],
        swarms: Callable[[], Iterable[Swarm]],
        max_connections: Callable[[], int],
        stopping: Callable[[], bool],
        dht_port: Callable[[], int | None],
        dht_node_seen: Callable[[str, int], None],
        has_spare: Callable[[], bool] = lambda: False,
        encryption: Callable[[], str] = lambda: "prefer",
    ) -> None:
        self.reactor = reactor  # IReactorTCP and IReactorTime
        self.peer_id = peer_id
        self._swarm = swarm
        self._swarms = swarms
        self._max_connections = max_connections
        self._stopping = stopping
        self._has_spare = has_spare
        self.dht_port = dht_port
        """Our DHT node's UDP port, None while no DHT runs."""
        self.dht_node_seen = dht_node_seen
        """A peer told us (BEP 5 ``port``) where its DHT node listens."""
        self.connections = 0
        """Open peer connections (both ways) plus dials under way; kept up to date."""
        self._encryption = encryption
        self._req2: dict[bytes, bytes] = {}  # HASH('req2', info hash) -> info hash
        self.dialer: Callable[[str, int, Any], None] | None = None
        """Another way to dial, set by a transport plugin (``utp``): called with host, port
        and the factory instead of ``connectTCP``; the factory hears of the connection, or
        of its failure, as from ``connectTCP``. None: TCP."""

    @property
    def reserved(self) -> bytes:
        """Our handshake's feature bits (the DHT bit only while a DHT node runs)."""
        return make_reserved(extensions=True, fast=True, dht=self.dht_port() is not None)

    def total_connections(self) -> int:
        """Open connections plus dials under way, over every swarm (a counter, O(1))."""
        return self.connections

    def can_connect(self) -> bool:
        """Room for one more connection (and the daemon is not stopping)."""
        return not self._stopping() and self.connections < self._max_connections()

    def can_accept_over_limit(self) -> bool:
        """Full, but an inbound newcomer may take a spare peer's slot after its handshake."""
        return (
            not self._stopping()
            and self.connections < self._max_connections() + INBOUND_OVERFLOW
            and self._has_spare()
        )

    def inbound_factory(self) -> InboundFactory:
        """The listener's factory; its connections count against the limit."""
        return _CountedInbound(self, self.reactor, self.can_connect)

    def _closed(self) -> None:
        self.connections = max(0, self.connections - 1)

    def route(self, info_hash: bytes) -> Swarm | None:
        """The swarm an inbound handshake names, if it takes peers now."""
        swarm = self._swarm(info_hash)
        return swarm if swarm is not None and swarm.active else None

    def connect(
        self,
        swarm: Swarm,
        address: PeerAddress,
        *,
        plain: bool = False,
        swarm_id: bytes | None = None,
    ) -> None:
        """Dial ``address`` for ``swarm`` (its ``attach`` or ``connection_failed`` follows);
        encrypted first unless ``plain`` or the policy says so. ``swarm_id``: the info hash
        the handshake names (a hybrid's v2 swarm: its truncated v2 hash); default the
        swarm's ``info_hash``."""
        host, port = address
        encrypt = not plain and self.policy_for(swarm) != "plain"
        factory = _CountedOutbound(self, self.reactor, swarm, address, encrypt, swarm_id)
        self.connections += 1  # until the dial fails or the connection ends
        if self.dialer is not None:
            self.dialer(host, port, factory)
        else:
            self.reactor.connectTCP(host, port, factory, timeout=CONNECT_TIMEOUT)

    # -- encryption ---------------------------------------------------------------------------
    @property
    def encryption(self) -> str:
        """The session's policy, for newcomers not yet routed to a torrent."""
        return self._encryption()

    def policy_for(self, swarm: Swarm) -> str:
        return swarm.encryption or self._encryption()

    def know(self, info_hash: bytes) -> None:
        """``info_hash`` may be asked for by an encrypted newcomer."""
        self._req2[req2_key(info_hash)] = info_hash

    def forget(self, info_hash: bytes) -> None:
        self._req2.pop(req2_key(info_hash), None)

    def mse_lookup(self, req2: bytes) -> bytes | None:
        """The info hash behind a responder's ``HASH('req2', SKEY)``, if we have it."""
        return self._req2.get(req2)

    def retry_plain(
        self, swarm: Swarm, address: PeerAddress, swarm_id: bytes | None = None
    ) -> bool:
        """An encrypted dial failed during its handshake: dial again in the clear (naming
        the same ``swarm_id``) when ``swarm``'s policy allows (True: dialled; the swarm
        hears of the new attempt)."""
        if self.policy_for(swarm) == "require" or not self.can_connect() or not swarm.active:
            return False
        self.connect(swarm, address, plain=True, swarm_id=swarm_id)
        return True


class _CountedProtocol(PeerProtocol):
    """A PeerProtocol that gives its place back to the connector when it ends."""

    def __init__(self, connector: PeerConnector, *args: Any, **kwargs: Any) -> None:
        super().__init__(connector, *args, **kwargs)
        self._connector = connector

    def connectionLost(self, reason: Failure | None = None) -> None:
        connector, self._connector = self._connector, None  # type: ignore[assignment]
        if connector is not None:
            connector._closed()  # first: the swarm's peer_gone may dial again
        super().connectionLost(reason)


class _CountedInbound(InboundFactory):
    def __init__(self, connector: PeerConnector, clock: Any, can_accept: Any) -> None:
        super().__init__(connector, clock, can_accept)
        self._connector = connector

    def buildProtocol(self, addr: Any) -> PeerProtocol | None:  # type: ignore[override]
        over_limit = False
        if not self.can_accept():
            if not self._connector.can_accept_over_limit():
                return None
            over_limit = True
        self._connector.connections += 1
        proto = _CountedProtocol(self._connector, self.clock)
        proto.over_limit = over_limit
        return proto


class _CountedOutbound(OutboundFactory):
    def __init__(
        self,
        connector: PeerConnector,
        clock: Any,
        torrent: Swarm,
        address: PeerAddress,
        encrypt: bool = False,
        swarm_id: bytes | None = None,
    ) -> None:
        super().__init__(connector, clock, torrent, address, encrypt, swarm_id)
        self._connector = connector

    def buildProtocol(self, addr: Any) -> PeerProtocol:  # type: ignore[override]
        return _CountedProtocol(
            self._connector,
            self.clock,
            torrent=self.torrent,
            address=self.address,
            encrypt=self.encrypt,
            swarm_id=self.swarm_id,
        )

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self._connector._closed()
        super().clientConnectionFailed(connector, reason)
