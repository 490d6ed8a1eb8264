"""Peers other nodes announced to us (announce_peer), bounded and expiring.

Pure: time comes in as arguments. At most ``per_hash`` (100) peers per info hash and
``total`` (2000) in all; a peer is forgotten ``ttl`` (30 min) after its last announce.
A full info hash drops its oldest peer for a new one; a full store drops the oldest peer
of any info hash. Peers are keyed by (IP, port); announcing again refreshes the time.
"""

from __future__ import annotations

import random
from collections import OrderedDict

PER_HASH = 100
TOTAL = 2000
TTL = 30 * 60.0

Address = tuple[str, int]


class PeerStore:
    def __init__(self, *, per_hash: int = PER_HASH, total: int = TOTAL, ttl: float = TTL) -> None:
        self.per_hash, self.total, self.ttl = per_hash, total, ttl
        # every entry, oldest announce first: (info_hash, address) -> time
        self._all: OrderedDict[tuple[bytes, Address], float] = OrderedDict()
        self._by_hash: dict[bytes, OrderedDict[Address, float]] = {}

    def __len__(self) -> int:
        return len(self._all)

    @property
    def info_hashes(self) -> int:
        return len(self._by_hash)

    def _drop(self, info_hash: bytes, address: Address) -> None:
        self._all.pop((info_hash, address), None)
        peers = self._by_hash.get(info_hash)
        if peers is not None:
            peers.pop(address, None)
            if not peers:
                del self._by_hash[info_hash]

    def add(self, info_hash: bytes, address: Address, now: float) -> None:
        self.expire(now)
        peers = self._by_hash.setdefault(info_hash, OrderedDict())
        if address in peers:
            self._drop(info_hash, address)
            peers = self._by_hash.setdefault(info_hash, OrderedDict())
        elif len(peers) >= self.per_hash:
            self._drop(info_hash, next(iter(peers)))
        if len(self._all) >= self.total:
            (old_hash, old_addr), _ = next(iter(self._all.items()))
            self._drop(old_hash, old_addr)
            peers = self._by_hash.setdefault(info_hash, OrderedDict())
        peers[address] = now
        self._all[(info_hash, address)] = now

    def get(
        self, info_hash: bytes, now: float, limit: int = PER_HASH, rng: random.Random | None = None
    ) -> list[Address]:
        """Up to ``limit`` live peers of ``info_hash`` (a random sample if more)."""
        self.expire(now)
        peers = list(self._by_hash.get(info_hash, ()))
        if len(peers) > limit:
            peers = (rng or random).sample(peers, limit)
        return peers

    def expire(self, now: float) -> int:
        dropped = 0
        while self._all:
            (info_hash, address), when = next(iter(self._all.items()))
            if now - when < self.ttl:
                break
            self._drop(info_hash, address)
            dropped += 1
        return dropped
