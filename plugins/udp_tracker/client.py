"""BEP 15 UDP tracker client: one UDP socket for every tracker, a thin Twisted adapter.

Datagrams are built and parsed by the pure codec. This module keeps the transactions:
each is matched by its transaction id AND the tracker's address (a datagram from anyone
else is ignored), connection ids are cached per tracker address for 60 s, and a request
that gets no answer is sent again after ``retry_base * 2**n`` seconds, n = 0..max_retries
(BEP 15: 15 s doubling up to 3840 s). Bad datagrams are counted, never fatal.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.errors import TrackerError
from btd.core.outbound import check_url, refused_address
from btd.core.tracker.codec import AnnounceRequest, AnnounceResponse
from btd.plugins.udp_tracker import codec

log = Logger()

CONNECTION_TTL = 60.0
"""BEP 15: a client may use a connection id for one minute after receiving it."""

Address = tuple[str, int]

_STAT_KEYS = (
    "sent",
    "received",
    "retransmits",
    "connects",
    "answers",
    "tracker_errors",
    "timeouts",
    "ignored_malformed",
    "ignored_unknown_transaction",
    "ignored_wrong_source",
)


def _normalise(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IP literal; an IPv4-mapped IPv6 address (dual-stack socket) becomes IPv4."""
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class _Protocol(DatagramProtocol):
    def __init__(self, client: UdpTrackerClient) -> None:
        self._client = client

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self._client.datagram_received(datagram, addr)


@dataclass(eq=False)
class _Operation:
    """One announce or scrape: connect if needed, then the request, with retries."""

    url: str
    build: Callable[[int, int], bytes]  # (connection id, transaction id) -> request
    parse: Callable[[bytes, bool], Any]  # (answer, ipv6) -> result; raises UdpTrackerError
    result: defer.Deferred[Any]
    address: Address | None = None
    ipv6: bool = False
    attempt: int = 0
    kind: str = ""  # "connect" or "request": what the pending transaction waits for
    tid: int | None = None
    timer: IDelayedCall | None = None
    done: bool = False
    local_ok: bool = False  # the outbound policy: may the address be a local one?


class UdpTrackerClient:
    """Announces to (and scrapes) udp:// trackers over one shared UDP socket."""

    def __init__(
        self,
        reactor: Any,
        *,
        retry_base: float = 15.0,
        max_retries: int = 8,
        bind: str = "0.0.0.0",
        rng: random.Random | None = None,
    ) -> None:
        self._reactor = reactor
        self._retry_base = float(retry_base)
        self._max_retries = int(max_retries)
        self._bind = bind
        self._socket_v6 = ipaddress.ip_address(bind).version == 6
        self._rng = rng if rng is not None else random.SystemRandom()
        self.protocol = _Protocol(self)
        self._port: IListeningPort | None = None
        self._pending: dict[int, _Operation] = {}  # by transaction id
        self._live: set[_Operation] = set()  # also those still resolving their host
        self._connections: dict[Address, tuple[int, float]] = {}
        self._stats = dict.fromkeys(_STAT_KEYS, 0)

    # -- lifecycle ---------------------------------------------------------------------

    def listen(self) -> IListeningPort:
        """Open the one UDP socket (an ephemeral port on ``bind``)."""
        if self._port is None:
            self._port = self._reactor.listenUDP(0, self.protocol, interface=self._bind)
        return self._port

    def close(self) -> defer.Deferred[None]:
        """Fail what is pending and close the socket; fires once it is closed."""
        for op in list(self._live):
            self._fail(op, TrackerError("udp tracker client closed"))
        port, self._port = self._port, None
        if port is None:
            return defer.succeed(None)
        return defer.maybeDeferred(port.stopListening)

    def stats(self) -> dict[str, int]:
        """Counters since start (sent/received datagrams, retries, ignored datagrams)."""
        return {**self._stats, "pending": len(self._live)}

    # -- public requests ---------------------------------------------------------------

    def announce(self, url: str, req: AnnounceRequest) -> defer.Deferred[AnnounceResponse]:
        """Announce; fires with the answer or errbacks TrackerError (tracker error, timeout)."""

        def parse(data: bytes, ipv6: bool) -> AnnounceResponse:
            return codec.parse_announce(data, ipv6=ipv6).to_response()

        build = lambda cid, tid: codec.build_announce(cid, tid, req)  # noqa: E731
        return self._start(url, build, parse, req.allow_local)

    def scrape(
        self, url: str, info_hash: bytes, *, allow_local: bool = False
    ) -> defer.Deferred[tuple[int, int, int]]:
        """(complete, incomplete, downloaded) of one torrent."""

        def parse(data: bytes, ipv6: bool) -> tuple[int, int, int]:
            reply = codec.parse_scrape(data)
            if not reply.entries:
                raise codec.UdpTrackerError("scrape answer lists no torrent")
            e = reply.entries[0]
            return (e.seeders, e.leechers, e.completed)

        build = lambda cid, tid: codec.build_scrape(cid, tid, [info_hash])  # noqa: E731
        return self._start(url, build, parse, allow_local)

    # -- the transaction machine -------------------------------------------------------

    def _start(
        self,
        url: str,
        build: Callable[[int, int], bytes],
        parse: Callable[[bytes, bool], Any],
        allow_local: bool,
    ) -> defer.Deferred[Any]:
        """One operation; the outbound policy (core/outbound.py) is applied to the URL as
        written, then to the address its host resolves to."""
        op: _Operation | None = None

        def cancel(_: defer.Deferred[Any]) -> None:
            if op is not None:
                self._forget(op)  # the Deferred then errbacks with CancelledError

        result: defer.Deferred[Any] = defer.Deferred(cancel)
        op = _Operation(url=url, build=build, parse=parse, result=result)
        self._live.add(op)
        if self._port is None:
            self._fail(op, TrackerError("udp tracker client is not listening"))
            return result
        try:
            host, port = codec.parse_udp_url(url)
        except TrackerError as exc:
            self._fail(op, exc)
            return result
        verdict = check_url(url, allow_local=allow_local)
        if verdict.refused is not None:
            self._fail(op, TrackerError(verdict.refused))
            return result
        op.local_ok = verdict.local_ok
        try:
            ipaddress.ip_address(host)
        except ValueError:
            resolving = defer.maybeDeferred(self._reactor.resolve, host)
            resolving.addCallbacks(
                lambda ip: self._resolved(op, ip, port),
                lambda f: self._fail(op, TrackerError(f"cannot resolve {host}: {f.value}")),
            )
            resolving.addErrback(self._bug)
        else:
            self._resolved(op, host, port)
        return result

    def _resolved(self, op: _Operation, host: str, port: int) -> None:
        if op.done:
            return  # cancelled or closed while resolving
        try:
            ip = _normalise(host)
        except ValueError:
            self._fail(op, TrackerError(f"resolver gave a bad address {host!r}"))
            return
        refused = refused_address(ip.compressed, op.local_ok)
        if refused is not None:
            self._fail(op, TrackerError(refused))
            return
        if ip.version == 6 and not self._socket_v6:
            msg = f"udp tracker {ip} is IPv6 but the socket is bound to {self._bind}"
            self._fail(op, TrackerError(msg + " (set plugins.udp_tracker.bind to ::)"))
            return
        op.address = (ip.compressed, port)
        op.ipv6 = ip.version == 6
        self._send(op)

    def _new_tid(self) -> int:
        while True:
            tid = self._rng.getrandbits(32)
            if tid not in self._pending:
                return tid

    def _send(self, op: _Operation) -> None:
        """(Re)send what the operation needs now: a connect, or the request itself."""
        assert op.address is not None
        cached = self._connections.get(op.address)
        now = self._reactor.seconds()
        valid = cached is not None and now - cached[1] < CONNECTION_TTL
        kind = "request" if valid else "connect"
        if op.tid is None or kind != op.kind:
            if op.tid is not None:
                self._pending.pop(op.tid, None)
            op.tid, op.kind = self._new_tid(), kind
            self._pending[op.tid] = op
        host, port = op.address
        if self._socket_v6 and not op.ipv6:
            host = f"::ffff:{host}"
        try:
            if cached is not None and valid:
                data = op.build(cached[0], op.tid)
            else:
                data = codec.build_connect(op.tid)
            assert self._port is not None
            self._port.write(data, (host, port))
        except Exception as exc:  # unreachable network, message too long, closed socket
            self._fail(op, TrackerError(f"udp send to {op.address[0]}:{port} failed: {exc}"))
            return
        self._stats["sent"] += 1
        delay = self._retry_base * 2**op.attempt
        op.timer = self._reactor.callLater(delay, self._timed_out, op)

    def _timed_out(self, op: _Operation) -> None:
        op.timer = None
        if op.done:
            return
        if op.attempt >= self._max_retries:
            self._stats["timeouts"] += 1
            self._fail(op, TrackerError("udp tracker timed out"))
            return
        op.attempt += 1
        self._stats["retransmits"] += 1
        self._send(op)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """Match an answer to its transaction; anything that does not fit is ignored."""
        self._stats["received"] += 1
        try:
            self._dispatch(data, addr)
        except Exception:  # never let a datagram break the socket
            self._stats["ignored_malformed"] += 1
            log.failure("udp tracker: unexpected error handling a datagram")

    def _dispatch(self, data: bytes, addr: Any) -> None:
        try:
            action, tid = codec.parse_header(data)
        except codec.UdpTrackerError:
            self._stats["ignored_malformed"] += 1
            return
        op = self._pending.get(tid)
        if op is None:
            self._stats["ignored_unknown_transaction"] += 1
            return
        try:
            source: Address = (_normalise(addr[0]).compressed, int(addr[1]))
        except (ValueError, TypeError, IndexError):
            source = ("", 0)
        if source != op.address:
            self._stats["ignored_wrong_source"] += 1
            return
        try:
            if action == codec.ACTION_ERROR:
                message = codec.parse_error(data).message
            elif op.kind == "connect":
                reply = codec.parse_connect(data)
            else:
                answer = op.parse(data, op.ipv6)
        except codec.UdpTrackerError as exc:
            self._stats["ignored_malformed"] += 1
            log.debug("udp tracker {url}: ignored answer: {error}", url=op.url, error=exc)
            return
        if action == codec.ACTION_ERROR:
            self._stats["tracker_errors"] += 1
            self._connections.pop(op.address, None)  # maybe our connection id: get a new one
            self._fail(op, TrackerError(message))
        elif op.kind == "connect":
            self._stats["connects"] += 1
            self._connections[op.address] = (reply.connection_id, self._reactor.seconds())
            self._cancel_timer(op)
            self._send(op)  # the request itself, with the same retry count
        else:
            self._stats["answers"] += 1
            self._forget(op)
            op.result.callback(answer)

    # -- bookkeeping -------------------------------------------------------------------

    @staticmethod
    def _cancel_timer(op: _Operation) -> None:
        if op.timer is not None and op.timer.active():
            op.timer.cancel()
        op.timer = None

    def _forget(self, op: _Operation) -> None:
        op.done = True
        self._live.discard(op)
        self._cancel_timer(op)
        if op.tid is not None and self._pending.get(op.tid) is op:
            del self._pending[op.tid]

    def _fail(self, op: _Operation, error: Exception) -> None:
        if op.result.called:
            return
        self._forget(op)
        op.result.errback(Failure(error))

    @staticmethod
    def _bug(failure: Failure) -> None:
        log.failure("udp tracker client bug", failure)
