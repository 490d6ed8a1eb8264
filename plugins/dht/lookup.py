"""An iterative Kademlia lookup (find_node / get_peers) as a pure state machine.

The caller seeds it with nodes, asks ``next_queries()`` whom to query, and reports each
answer (``answered``, with the nodes, token and peers it carried) or timeout (``failed``).
At most ``alpha`` (3) queries are in flight; only not-yet-asked nodes among the ``k``
closest live candidates (by XOR distance to the target) are asked, closest first. The
lookup is done when those ``k`` closest have all answered (or failed and been replaced by
the next ones), or nothing is left to ask. Hostile answers are bounded: candidates beyond
``max_candidates`` are forgotten farthest first, one address counts once, our own id
and port-0 nodes are ignored, at most ``max_queries`` queries are sent in all and at
most 1000 peers kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from btd.plugins.dht.krpc import NodeInfo, usable

ALPHA = 3
K = 8
MAX_CANDIDATES = 128
MAX_QUERIES = 200
MAX_PEERS = 1000  # peers kept per lookup; more are ignored

NEW, PENDING, ANSWERED, FAILED = "new", "pending", "answered", "failed"

Address = tuple[str, int]


@dataclass(eq=False)
class Candidate:
    node: NodeInfo
    distance: int
    state: str = NEW
    token: bytes | None = None


class Lookup:
    """Where we are in one lookup for ``target``."""

    def __init__(
        self,
        target: bytes,
        own_id: bytes,
        seeds: Iterable[NodeInfo] = (),
        *,
        alpha: int = ALPHA,
        k: int = K,
        max_candidates: int = MAX_CANDIDATES,
        max_queries: int = MAX_QUERIES,
    ) -> None:
        self.target = target
        self._t = int.from_bytes(target, "big")
        self.own_id = own_id
        self.alpha, self.k = alpha, k
        self.max_candidates, self.max_queries = max_candidates, max_queries
        self._candidates: dict[bytes, Candidate] = {}
        self._addresses: set[Address] = set()
        self.peers: dict[Address, None] = {}  # every peer any node gave, in arrival order
        self.queried = 0
        self.add(seeds)

    # -- feeding ----------------------------------------------------------------------------
    def add(self, nodes: Iterable[NodeInfo]) -> int:
        """New candidates; returns how many were taken."""
        taken = 0
        for node in nodes:
            if (
                len(node.node_id) != 20
                or node.node_id == self.own_id
                or node.node_id in self._candidates
                or node.address in self._addresses
                or not usable(node.host, node.port)
            ):
                continue
            d = int.from_bytes(node.node_id, "big") ^ self._t
            self._candidates[node.node_id] = Candidate(node, d)
            self._addresses.add(node.address)
            taken += 1
        if len(self._candidates) > self.max_candidates:
            self._trim()
        return taken

    def _trim(self) -> None:
        spare = sorted(
            (c for c in self._candidates.values() if c.state == NEW),
            key=lambda c: c.distance,
            reverse=True,
        )
        for c in spare[: len(self._candidates) - self.max_candidates]:
            del self._candidates[c.node.node_id]
            self._addresses.discard(c.node.address)

    def _window(self) -> list[Candidate]:
        live = [c for c in self._candidates.values() if c.state != FAILED]
        live.sort(key=lambda c: c.distance)
        return live[: self.k]

    # -- driving --------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return sum(1 for c in self._candidates.values() if c.state == PENDING)

    def next_queries(self) -> list[NodeInfo]:
        """Nodes to query now (marked pending); empty if we must wait or are done."""
        room = self.alpha - self.in_flight
        out: list[NodeInfo] = []
        for c in self._window():
            if room <= 0 or self.queried >= self.max_queries:
                break
            if c.state == NEW:
                c.state = PENDING
                out.append(c.node)
                self.queried += 1
                room -= 1
        return out

    def answered(
        self,
        node_id: bytes,
        nodes: Iterable[NodeInfo] = (),
        token: bytes | None = None,
        values: Iterable[Address] = (),
    ) -> list[Address]:
        """A queried node answered; returns the peers in the answer we had not seen."""
        c = self._candidates.get(node_id)
        if c is None or c.state != PENDING:
            return []
        c.state, c.token = ANSWERED, token
        fresh = []
        for peer in values:
            if len(self.peers) >= MAX_PEERS:
                break
            if peer not in self.peers and usable(*peer):
                self.peers[peer] = None
                fresh.append(peer)
        self.add(nodes)
        return fresh

    def failed(self, node_id: bytes) -> None:
        c = self._candidates.get(node_id)
        if c is not None and c.state == PENDING:
            c.state = FAILED

    @property
    def done(self) -> bool:
        if self.in_flight:
            return False
        if self.queried >= self.max_queries:
            return True
        return all(c.state == ANSWERED for c in self._window())

    # -- results --------------------------------------------------------------------------
    def closest_answered(self, count: int | None = None) -> list[tuple[NodeInfo, bytes | None]]:
        """The nearest nodes that answered, with the token each gave (None if none)."""
        answered = sorted(
            (c for c in self._candidates.values() if c.state == ANSWERED),
            key=lambda c: c.distance,
        )
        return [(c.node, c.token) for c in answered[: count or self.k]]

    def announce_targets(self) -> list[tuple[NodeInfo, bytes]]:
        """The ``k`` nearest answering nodes that gave a token: where to announce."""
        answered = sorted(
            (c for c in self._candidates.values() if c.state == ANSWERED and c.token),
            key=lambda c: c.distance,
        )
        return [(c.node, c.token) for c in answered[: self.k] if c.token is not None]
