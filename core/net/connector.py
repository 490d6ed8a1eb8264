"""``PeerConnector``: the session's peer connections, for every swarm at once.

It is the ``PeerRouter`` inbound connections use (route a handshake to its swarm by info
hash; our peer id and handshake bits), dials outgoing connections for the swarms, and
keeps the daemon-wide connection limit. It knows the swarms only through callables, so
it imports nothing above the connection layer.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Any

from btd.core.net.peer import CONNECT_TIMEOUT, OutboundFactory
from btd.core.swarm import Swarm
from btd.core.types import PeerAddress
from btd.core.wire.messages import make_reserved


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
    ) -> None:
        self.reactor = reactor  # IReactorTCP and IReactorTime
        self.peer_id = peer_id
        self._swarm = swarm
        self._swarms = swarms
        self._max_connections = max_connections
        self._stopping = stopping
        self.dht_port = dht_port
        """Our DHT node's UDP port, None while no DHT runs."""
        self.dht_node_seen = dht_node_seen
        """A peer told us (BEP 5 ``port``) where its DHT node listens."""

    @property
    def reserved(self) -> bytes:
        """Our handshake's feature bits (the DHT bit only while a DHT node runs)."""
        return make_reserved(extensions=True, fast=True, dht=self.dht_port() is not None)

    def total_connections(self) -> int:
        """Connected peers plus connections being made, over every swarm."""
        return sum(len(s.peers) + s.candidates.connecting for s in self._swarms())

    def can_connect(self) -> bool:
        """Room for one more connection (and the daemon is not stopping)."""
        return not self._stopping() and self.total_connections() < self._max_connections()

    def route(self, info_hash: bytes) -> Swarm | None:
        """The swarm an inbound handshake names, if it takes peers now."""
        swarm = self._swarm(info_hash)
        return swarm if swarm is not None and swarm.active else None

    def connect(self, swarm: Swarm, address: PeerAddress) -> None:
        """Dial ``address`` for ``swarm`` (its ``attach`` or ``connection_failed`` follows)."""
        host, port = address
        factory = OutboundFactory(self, self.reactor, swarm, address)
        self.reactor.connectTCP(host, port, factory, timeout=CONNECT_TIMEOUT)
