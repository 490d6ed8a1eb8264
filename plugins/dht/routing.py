"""The DHT routing table (BEP 5): k-buckets over the 160-bit id space.

Pure bookkeeping; time comes in as arguments. The table starts as one bucket covering the
whole space; a full bucket is split only if its range holds our own id, so the table is
detailed near us and sparse far away. Nodes are:

- good: answered one of our queries in the last 15 minutes, or answered once and queried us
  in the last 15 minutes;
- questionable: nothing heard for 15 minutes (nodes loaded from the state file start so);
- bad: failed to answer ``BAD_AFTER`` queries in a row.

Only nodes that answered us get in (``responded``); a node that merely queried us is worth
a ping first (``wants_ping``). When a full, unsplittable bucket meets a new good node, a bad
node is replaced; otherwise the newcomer waits in the bucket's replacement cache (newest
kept) and the least recently seen questionable node is offered for a ping. When a node
turns bad, the newest replacement takes its place.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

K = 8
ID_BITS = 160
GOOD_FOR = 15 * 60.0
BAD_AFTER = 2  # BEP 5: try once more before discarding a node
REFRESH_AFTER = 15 * 60.0

Address = tuple[str, int]


def id_int(node_id: bytes) -> int:
    return int.from_bytes(node_id, "big")


def distance(a: bytes, b: bytes) -> int:
    return id_int(a) ^ id_int(b)


@dataclass(eq=False)
class Node:
    """One routing-table entry (mutable: its timestamps change)."""

    node_id: bytes
    host: str
    port: int
    last_response: float = 0.0  # 0: never answered since we have it (loaded)
    last_query: float = 0.0
    failures: int = 0
    ever_responded: bool = False

    @property
    def address(self) -> Address:
        return (self.host, self.port)

    def state(self, now: float) -> str:
        if self.failures >= BAD_AFTER:
            return "bad"
        if self.ever_responded and now - self.last_response < GOOD_FOR:
            return "good"
        if self.ever_responded and now - self.last_query < GOOD_FOR:
            return "good"
        return "questionable"

    def last_seen(self) -> float:
        return max(self.last_response, self.last_query)


@dataclass(eq=False)
class Bucket:
    """Ids in [lo, hi): at most K nodes, plus up to K replacements (newest last)."""

    lo: int
    hi: int
    last_changed: float = 0.0
    nodes: list[Node] = field(default_factory=list)
    replacements: list[Node] = field(default_factory=list)

    def covers(self, n: int) -> bool:
        return self.lo <= n < self.hi

    def find(self, node_id: bytes) -> Node | None:
        return next((x for x in self.nodes if x.node_id == node_id), None)


class RoutingTable:
    """Our view of the DHT: whom to ask first, whom to give to others."""

    def __init__(self, own_id: bytes, *, k: int = K) -> None:
        if len(own_id) != 20:
            raise ValueError("node id must be 20 bytes")
        self.own_id = own_id
        self._own = id_int(own_id)
        self.k = k
        self.buckets: list[Bucket] = [Bucket(0, 1 << ID_BITS)]
        self._addresses: dict[Address, bytes] = {}

    # -- lookup helpers ---------------------------------------------------------------------
    def bucket_for(self, node_id: bytes) -> Bucket:
        n = id_int(node_id)
        for bucket in self.buckets:
            if bucket.covers(n):
                return bucket
        raise AssertionError("buckets do not cover the id space")

    def get(self, node_id: bytes) -> Node | None:
        return self.bucket_for(node_id).find(node_id)

    def by_address(self, address: Address) -> Node | None:
        node_id = self._addresses.get(address)
        return self.get(node_id) if node_id is not None else None

    def __len__(self) -> int:
        return sum(len(b.nodes) for b in self.buckets)

    def live_count(self) -> int:
        """Nodes not known to be bad."""
        return sum(1 for b in self.buckets for n in b.nodes if n.failures < BAD_AFTER)

    def nodes(self) -> list[Node]:
        return [n for b in self.buckets for n in b.nodes]

    def closest(self, target: bytes, count: int | None = None) -> list[Node]:
        """The ``count`` (K) nodes nearest ``target``, bad ones left out."""
        count = self.k if count is None else count
        t = id_int(target)
        pool = [n for n in self.nodes() if n.failures < BAD_AFTER]
        pool.sort(key=lambda n: id_int(n.node_id) ^ t)
        return pool[:count]

    def counts(self, now: float) -> dict[str, int]:
        out = {"good": 0, "questionable": 0, "bad": 0}
        for n in self.nodes():
            out[n.state(now)] += 1
        return out

    # -- changes ------------------------------------------------------------------------
    def _acceptable(self, node_id: bytes, address: Address) -> bool:
        if node_id == self.own_id or len(node_id) != 20 or not 0 < address[1] <= 0xFFFF:
            return False
        holder = self._addresses.get(address)
        return holder is None or holder == node_id

    def responded(self, node_id: bytes, address: Address, now: float) -> Node | None:
        """``node_id`` answered a query of ours from ``address``: it is good now.

        Returns a questionable node the caller should ping (the bucket is full of nodes
        not known to be bad), or None.
        """
        if not self._acceptable(node_id, address):
            return None
        bucket = self.bucket_for(node_id)
        node = bucket.find(node_id)
        if node is not None:
            if node.address != address:
                return None  # same id, other address: keep the one we know answers
            node.last_response, node.failures, node.ever_responded = now, 0, True
            bucket.last_changed = now
            return None
        new = Node(node_id, address[0], address[1], now, 0.0, 0, True)
        return self._insert(new, now)

    def add_loaded(self, node_id: bytes, address: Address) -> bool:
        """A node from the state file: questionable until it answers a ping."""
        if not self._acceptable(node_id, address) or self.get(node_id) is not None:
            return False
        node = Node(node_id, address[0], address[1], 0.0, 0.0, 0, False)
        bucket = self._bucket_with_room(node, 0.0)
        if bucket is None:
            return False
        self._place(bucket, node, 0.0)
        return True

    def queried_us(self, node_id: bytes, address: Address, now: float) -> bool:
        """``node_id`` sent us a query. Returns True if it is unknown and worth a ping."""
        if not self._acceptable(node_id, address):
            return False
        bucket = self.bucket_for(node_id)
        node = bucket.find(node_id)
        if node is not None:
            if node.address == address:
                node.last_query = now
            return False
        return self._bucket_with_room(Node(node_id, *address), now, dry=True) is not None

    def failed(self, node_id: bytes, now: float) -> None:
        """A query to ``node_id`` timed out; a node turning bad gives way to a replacement."""
        bucket = self.bucket_for(node_id)
        node = bucket.find(node_id)
        if node is None:
            bucket.replacements = [r for r in bucket.replacements if r.node_id != node_id]
            return
        node.failures += 1
        if node.failures >= BAD_AFTER and bucket.replacements:
            self._remove(bucket, node)
            self._place(bucket, bucket.replacements.pop(), now)

    def remove(self, node_id: bytes) -> None:
        bucket = self.bucket_for(node_id)
        node = bucket.find(node_id)
        if node is not None:
            self._remove(bucket, node)

    def _remove(self, bucket: Bucket, node: Node) -> None:
        bucket.nodes.remove(node)
        if self._addresses.get(node.address) == node.node_id:
            del self._addresses[node.address]

    def _place(self, bucket: Bucket, node: Node, now: float) -> None:
        bucket.nodes.append(node)
        bucket.last_changed = max(bucket.last_changed, now)
        self._addresses[node.address] = node.node_id

    def _bucket_with_room(self, node: Node, now: float, *, dry: bool = False) -> Bucket | None:
        """The bucket ``node`` fits in, splitting our own bucket as needed."""
        n = id_int(node.node_id)
        while True:
            bucket = self.bucket_for(node.node_id)
            if len(bucket.nodes) < self.k:
                return bucket
            if not bucket.covers(self._own) or bucket.hi - bucket.lo <= 1:
                return None
            if dry:  # it would fit once split (it shares our half, or the split frees room)
                return bucket
            self._split(bucket)
            if not self.bucket_for(node.node_id).covers(n):  # pragma: no cover - invariant
                return None

    def _split(self, bucket: Bucket) -> None:
        mid = (bucket.lo + bucket.hi) // 2
        low = Bucket(bucket.lo, mid, bucket.last_changed)
        high = Bucket(mid, bucket.hi, bucket.last_changed)
        for node in bucket.nodes:
            (low if id_int(node.node_id) < mid else high).nodes.append(node)
        for node in bucket.replacements:
            (low if id_int(node.node_id) < mid else high).replacements.append(node)
        i = self.buckets.index(bucket)
        self.buckets[i : i + 1] = [low, high]

    def _insert(self, new: Node, now: float) -> Node | None:
        bucket = self._bucket_with_room(new, now)
        if bucket is not None:
            self._place(bucket, new, now)
            return None
        bucket = self.bucket_for(new.node_id)
        bad = next((x for x in bucket.nodes if x.state(now) == "bad"), None)
        if bad is not None:
            self._remove(bucket, bad)
            self._place(bucket, new, now)
            return None
        bucket.replacements = [r for r in bucket.replacements if r.node_id != new.node_id]
        bucket.replacements.append(new)
        del bucket.replacements[: -self.k]
        questionable = [x for x in bucket.nodes if x.state(now) == "questionable"]
        return min(questionable, key=Node.last_seen) if questionable else None

    # -- maintenance --------------------------------------------------------------------
    def stale_buckets(self, now: float, after: float = REFRESH_AFTER) -> list[Bucket]:
        return [b for b in self.buckets if now - b.last_changed >= after]

    def touch(self, bucket: Bucket, now: float) -> None:
        bucket.last_changed = now

    @staticmethod
    def random_id_in(bucket: Bucket, rng: random.Random) -> bytes:
        return (bucket.lo + rng.randrange(bucket.hi - bucket.lo)).to_bytes(20, "big")
