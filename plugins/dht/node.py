"""The DHT node: one UDP socket speaking KRPC, a thin Twisted adapter over the pure parts.

Outgoing queries get a random 4-byte transaction id; an answer is taken only if its id
AND source address match a pending query, otherwise it is dropped and counted. A query
unanswered after ``query_timeout`` seconds fails with KrpcTimeout and counts against the
node in the routing table. Outgoing queries share a global budget (``send_rate`` a
second): over it they wait in a bounded queue, and fail at once when the queue is full.

Incoming queries pass a per-IP token bucket and a global one before they are answered;
a malformed datagram is counted and ignored (never answered). Answers hold at most ``k``
nodes and 100 peers. announce_peer needs a token we issued to the same IP
(see tokens.py); accepted announces go to the bounded PeerStore and ``on_announce``.
"""

from __future__ import annotations

import os
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.error import MessageLengthError
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from btd.core.net.udp import DHT, UdpSockets
from btd.plugins.dht import krpc
from btd.plugins.dht.krpc import KrpcError, NodeInfo
from btd.plugins.dht.limits import IpRateLimiter, TokenBucket
from btd.plugins.dht.peerstore import PeerStore
from btd.plugins.dht.routing import RoutingTable
from btd.plugins.dht.tokens import TokenManager

log = Logger()

Address = tuple[str, int]
QUERY_TIMEOUT = 5.0
MAX_QUEUED = 1000
MAX_PEERS_REPLY = 100

STAT_KEYS = (
    "queries_in",
    "queries_out",
    "responses_in",
    "errors_in",
    "timeouts",
    "rate_limited",
    "malformed",
    "unmatched",
    "own_id",
    "budget_drops",
    "send_errors",
    "announces_in",
    "bad_tokens",
)


class KrpcTimeout(KrpcError):
    """The queried node did not answer in time."""


class KrpcRemoteError(KrpcError):
    """The queried node answered with a KRPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"KRPC error {code}: {message}")
        self.code = code


@dataclass(eq=False)
class _Pending:
    address: Address
    node_id: bytes | None
    data: bytes
    result: defer.Deferred[krpc.Response]
    timer: IDelayedCall | None = None


class _Protocol(DatagramProtocol):
    noisy = False  # no "Starting protocol" lines in the log

    def __init__(self, node: DhtNode) -> None:
        self._node = node

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self._node.datagram_received(datagram, (addr[0], addr[1]))


class DhtNode:
    """Sends our queries, answers others', and keeps the routing table current."""

    def __init__(
        self,
        reactor: Any,
        node_id: bytes,
        *,
        bind: str = "0.0.0.0",
        port: int = 0,
        ip_rate: float = 5.0,
        ip_burst: float = 20.0,
        global_rate: float = 250.0,
        send_rate: float = 50.0,
        query_timeout: float = QUERY_TIMEOUT,
        max_queued: int = MAX_QUEUED,
        rng: random.Random | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
        on_announce: Callable[[bytes, Address], None] | None = None,
    ) -> None:
        self.reactor = reactor
        self.node_id = node_id
        self.bind, self.port = bind, port
        now = reactor.seconds()
        self.routing = RoutingTable(node_id)
        self.tokens = TokenManager(now, random_bytes=random_bytes)
        self.peers = PeerStore()
        self.on_announce = on_announce
        self.query_timeout = query_timeout
        self.max_queued = max_queued
        self._rng = rng if rng is not None else random.SystemRandom()
        self._ip_limit = IpRateLimiter(ip_rate, ip_burst)
        self._in_budget = TokenBucket(global_rate, max(1.0, global_rate), now)
        self._out_budget = TokenBucket(send_rate, max(1.0, send_rate), now)
        self._queue: deque[tuple[bytes, _Pending]] = deque()
        self._pump_call: IDelayedCall | None = None
        self._pending: dict[bytes, _Pending] = {}
        self._verifying: set[Address] = set()
        self.stats = dict.fromkeys(STAT_KEYS, 0)
        self.protocol = _Protocol(self)
        self._port: Any = None
        self.closed = False

    # -- lifecycle ------------------------------------------------------------------------
    def listen(self, udp: UdpSockets | None = None) -> Any:
        """Bind the UDP socket (CannotListenError if the port is taken); given ``udp``
        (``session.udp``), take our share of its socket at that address instead (uTP's
        too, on the peer port), hearing only IPv4 senders."""
        if udp is not None:
            self._port = udp.open(self.bind, self.port, DHT, self.protocol, ipv4_only=True)
        else:
            self._port = self.reactor.listenUDP(self.port, self.protocol, interface=self.bind)
        self.port = self._port.getHost().port
        return self._port

    def close(self) -> defer.Deferred[None]:
        self.closed = True
        if self._pump_call is not None and self._pump_call.active():
            self._pump_call.cancel()
        queued = [p for _, p in self._queue]
        self._queue.clear()
        for pending in [*self._pending.values(), *queued]:
            self._finish(pending, KrpcError("DHT node closed"))
        self._pending.clear()
        port, self._port = self._port, None
        if port is None:
            return defer.succeed(None)
        return defer.maybeDeferred(port.stopListening)

    @property
    def pending(self) -> int:
        return len(self._pending) + len(self._queue)

    def _write(self, data: bytes, address: Address) -> None:
        if self._port is None:
            return
        try:
            self._port.write(data, address)
        except (OSError, MessageLengthError) as exc:  # unreachable, too long, closed
            self.stats["send_errors"] += 1
            log.debug("dht: send to {a} failed: {e}", a=address, e=str(exc))

    # -- queries we send ------------------------------------------------------------------
    def ping(self, address: Address, node_id: bytes | None = None) -> defer.Deferred[krpc.Response]:
        return self._query(address, node_id, lambda t: krpc.Ping(t, self.node_id))

    def find_node(
        self, address: Address, target: bytes, node_id: bytes | None = None
    ) -> defer.Deferred[krpc.Response]:
        return self._query(address, node_id, lambda t: krpc.FindNode(t, self.node_id, target))

    def get_peers(
        self, address: Address, info_hash: bytes, node_id: bytes | None = None
    ) -> defer.Deferred[krpc.Response]:
        return self._query(address, node_id, lambda t: krpc.GetPeers(t, self.node_id, info_hash))

    def announce_peer(
        self,
        address: Address,
        info_hash: bytes,
        port: int,
        token: bytes,
        node_id: bytes | None = None,
    ) -> defer.Deferred[krpc.Response]:
        return self._query(
            address,
            node_id,
            lambda t: krpc.AnnouncePeer(t, self.node_id, info_hash, port, token, False),
        )

    def _new_tid(self) -> bytes:
        while True:
            tid = self._rng.getrandbits(32).to_bytes(4, "big")
            if tid not in self._pending and all(tid != t for t, _ in self._queue):
                return tid

    def _query(
        self, address: Address, node_id: bytes | None, build: Callable[[bytes], krpc.Query]
    ) -> defer.Deferred[krpc.Response]:
        if self.closed:
            return defer.fail(KrpcError("DHT node closed"))
        tid = self._new_tid()
        pending = _Pending(address, node_id, krpc.encode_query(build(tid)), defer.Deferred())
        if not self._queue and self._out_budget.take(self.reactor.seconds()):
            self._transmit(tid, pending)
        elif len(self._queue) >= self.max_queued:
            self.stats["budget_drops"] += 1
            return defer.fail(KrpcError("DHT query budget exhausted"))
        else:
            self._queue.append((tid, pending))
            self._schedule_pump()
        return pending.result

    def _schedule_pump(self) -> None:
        if self._queue and (self._pump_call is None or not self._pump_call.active()):
            wait = self._out_budget.wait_time(self.reactor.seconds())
            self._pump_call = self.reactor.callLater(max(wait, 0.001), self._pump)

    def _pump(self) -> None:
        while self._queue and self._out_budget.take(self.reactor.seconds()):
            tid, pending = self._queue.popleft()
            self._transmit(tid, pending)
        self._schedule_pump()

    def _transmit(self, tid: bytes, pending: _Pending) -> None:
        self._pending[tid] = pending
        pending.timer = self.reactor.callLater(self.query_timeout, self._timed_out, tid)
        self.stats["queries_out"] += 1
        self._write(pending.data, pending.address)

    def _finish(self, pending: _Pending, outcome: Any) -> None:
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        if pending.result.called:
            return
        if isinstance(outcome, Exception):
            pending.result.errback(outcome)
        else:
            pending.result.callback(outcome)

    def _timed_out(self, tid: bytes) -> None:
        pending = self._pending.pop(tid, None)
        if pending is None:
            return
        self.stats["timeouts"] += 1
        node = self.routing.by_address(pending.address)
        if node is not None:
            self.routing.failed(node.node_id, self.reactor.seconds())
        self._finish(
            pending, KrpcTimeout(f"no answer from {pending.address[0]}:{pending.address[1]}")
        )

    # -- datagrams in ---------------------------------------------------------------------
    def datagram_received(self, data: bytes, address: Address) -> None:
        try:
            msg = krpc.decode_message(data)
        except KrpcError:
            self.stats["malformed"] += 1
            return
        if isinstance(msg, krpc.Response | krpc.Error):
            self._answer_received(msg, address)
        else:
            self._query_received(msg, address)

    def _answer_received(self, msg: krpc.Response | krpc.Error, address: Address) -> None:
        pending = self._pending.get(msg.tid)
        if pending is None or pending.address != address:
            self.stats["unmatched"] += 1
            return
        if isinstance(msg, krpc.Response) and msg.sender == self.node_id:
            self.stats["own_id"] += 1
            return  # a reflection of ourselves (or a forgery): keep waiting for the real one
        del self._pending[msg.tid]
        now = self.reactor.seconds()
        if isinstance(msg, krpc.Error):
            self.stats["errors_in"] += 1
            self._finish(pending, KrpcRemoteError(msg.code, msg.message))
            return
        self.stats["responses_in"] += 1
        to_ping = self.routing.responded(msg.sender, address, now)
        if to_ping is not None:
            self.verify(to_ping.address, to_ping.node_id, retry=True)
        self._finish(pending, msg)

    def verify(
        self, address: Address, node_id: bytes | None = None, *, retry: bool = False
    ) -> None:
        """Ping a node so that its answer puts it in (or keeps it in) the routing table."""
        if address in self._verifying or self.closed or not krpc.usable(*address):
            return
        self._verifying.add(address)
        d = self.ping(address, node_id)

        def done(result: Any) -> None:
            self._verifying.discard(address)
            if retry and isinstance(getattr(result, "value", None), KrpcTimeout):
                node = self.routing.by_address(address)
                if node is not None and node.state(self.reactor.seconds()) != "bad":
                    self.verify(address, node_id)  # BEP 5: try once more before discarding

        d.addBoth(done)

    def _query_received(self, q: krpc.Query, address: Address) -> None:
        if q.sender == self.node_id:
            self.stats["own_id"] += 1
            return
        now = self.reactor.seconds()
        ip = address[0]
        if not self._ip_limit.allow(ip, now) or not self._in_budget.take(now):
            self.stats["rate_limited"] += 1
            return
        self.stats["queries_in"] += 1
        self._write(self._reply(q, address, now), address)
        if not q.read_only and self.routing.queried_us(q.sender, address, now):
            self.verify(address, q.sender)

    def _reply(self, q: krpc.Query, address: Address, now: float) -> bytes:
        ip = address[0]
        if isinstance(q, krpc.Ping):
            return krpc.encode_response(q.tid, self.node_id)
        if isinstance(q, krpc.FindNode):
            return krpc.encode_response(q.tid, self.node_id, nodes=self._closest(q.target))
        if isinstance(q, krpc.GetPeers):
            token = self.tokens.issue(ip, now)
            values = self.peers.get(q.info_hash, now, MAX_PEERS_REPLY, self._rng)
            return krpc.encode_response(
                q.tid,
                self.node_id,
                nodes=self._closest(q.info_hash),
                values=values or None,
                token=token,
            )
        if isinstance(q, krpc.AnnouncePeer):
            if not self.tokens.check(q.token, ip, now):
                self.stats["bad_tokens"] += 1
                return krpc.encode_error(q.tid, krpc.ERROR_PROTOCOL, "bad token")
            port = address[1] if q.implied_port else q.port
            if not krpc.usable(ip, port):
                return krpc.encode_error(q.tid, krpc.ERROR_PROTOCOL, "bad port")
            self.stats["announces_in"] += 1
            self.peers.add(q.info_hash, (ip, port), now)
            if self.on_announce is not None:
                try:
                    self.on_announce(q.info_hash, (ip, port))
                except Exception:  # noqa: BLE001 - a failing handler must not stop the answer
                    log.failure("dht: announce handler failed")
            return krpc.encode_response(q.tid, self.node_id)
        return krpc.encode_error(q.tid, krpc.ERROR_METHOD_UNKNOWN, "method unknown")

    def _closest(self, target: bytes) -> list[NodeInfo]:
        return [
            NodeInfo(n.node_id, n.host, n.port)
            for n in self.routing.closest(target)
            if krpc.usable(n.host, n.port)
        ]
