"""Peer candidates of one torrent: whom to connect to next, whom never again.

Addresses come from trackers, ``torrent.add_peer`` and later PEX/DHT. Failed attempts back
off (30 s doubling, dropped after 5 failures); banned addresses and peer ids (corrupt
data, ourselves) are never tried again. Peers are named by address *and* port: on
loopback, and behind NAT, many peers share one IP.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from btd.core.types import PeerAddress

RETRY_BASE = 30.0
MAX_FAILURES = 5
RECONNECT_AFTER = 60.0
MAX_CANDIDATES = 2000


class PeerCandidates:
    """Known addresses and their next allowed connection time."""

    def __init__(self, now: Callable[[], float], rng: random.Random | None = None) -> None:
        self._now = now
        self._rng = rng or random.Random()
        self._next_try: dict[PeerAddress, float] = {}
        self._failures: dict[PeerAddress, int] = {}
        self._connecting: set[PeerAddress] = set()
        self.banned: dict[PeerAddress, str] = {}
        self.banned_peer_ids: set[bytes] = set()
        self.banned_hosts: set[str] = set()

    @property
    def connecting(self) -> int:
        return len(self._connecting)

    def __len__(self) -> int:
        return len(self._next_try)

    def addresses(self) -> list[PeerAddress]:
        """Every candidate address (for handing over to another swarm of the same torrent)."""
        return list(self._next_try)

    def add(self, addresses: Iterable[PeerAddress]) -> int:
        added = 0
        for host, port in addresses:
            address = (str(host), int(port))
            if (
                not 0 < address[1] < 65536
                or address in self.banned
                or address[0] in self.banned_hosts
                or address in self._next_try
                or len(self._next_try) >= MAX_CANDIDATES
            ):
                continue
            self._next_try[address] = 0.0
            added += 1
        return added

    def next(self, exclude: set[PeerAddress]) -> PeerAddress | None:
        """An address worth trying now (marked as connecting), or None."""
        now = self._now()
        ready = [
            a
            for a, t in self._next_try.items()
            if t <= now and a not in self._connecting and a not in exclude
        ]
        if not ready:
            return None
        address = self._rng.choice(ready)
        self._connecting.add(address)
        self._next_try[address] = now + RECONNECT_AFTER
        return address

    def connected(self, address: PeerAddress) -> None:
        self._connecting.discard(address)
        self._failures.pop(address, None)

    def failed(self, address: PeerAddress) -> None:
        self._connecting.discard(address)
        if address not in self._next_try:
            return  # not a candidate (banned, dropped): nothing to back off, nothing to keep
        failures = self._failures.get(address, 0) + 1
        if failures >= MAX_FAILURES:
            self._failures.pop(address, None)
            self._next_try.pop(address, None)
            return
        self._failures[address] = failures
        if address in self._next_try:
            self._next_try[address] = self._now() + RETRY_BASE * 2 ** (failures - 1)

    def disconnected(self, address: PeerAddress, listen_port: int | None) -> None:
        """A peer left; we may reconnect later (to its listen port if it told us)."""
        self._connecting.discard(address)
        if address in self.banned:  # its listen port is the same peer: banned as well
            if listen_port:
                self.ban((address[0], listen_port), self.banned[address])
            return
        back = (address[0], listen_port or 0)
        if listen_port and back not in self._next_try and self.add([back]):
            self._next_try[back] = self._now() + RECONNECT_AFTER

    def ban(self, address: PeerAddress, reason: str, *, peer_id: bytes | None = None) -> None:
        self.banned[address] = reason
        self._next_try.pop(address, None)
        self._connecting.discard(address)
        if peer_id is not None:
            self.banned_peer_ids.add(peer_id)
