"""HTTP(S) tracker client: a twisted.web Agent with a timeout, a body cap and the outbound
policy (core/outbound.py) checked on every connection it makes.

A thin adapter: URLs and answers are built and parsed by the pure codec; this module
only moves bytes and turns every network failure into a TrackerError. Every connection,
redirects included, goes through ``GuardedEndpoints``: the URL's policy is judged again
for each URI, and the address a host name resolved to is checked once the TCP connection
is up and before the request is written (an https one has sent its TLS hello by then).
IPv6 literal URLs (``http://[::1]:6969/announce``) are passed to the Agent as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import hyperlink
from twisted.internet import defer, error
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    RedirectAgent,
    ResponseDone,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IResponse
from zope.interface import implementer

from btd.core.errors import TrackerError
from btd.core.limits import TRACKER_REDIRECTS
from btd.core.outbound import Verdict, check_url, refused_address
from btd.core.tracker.codec import (
    AnnounceRequest,
    AnnounceResponse,
    build_announce_url,
    build_scrape_request_url,
    build_scrape_url,
    parse_announce_response,
    parse_scrape_response,
)

T = TypeVar("T")


class CappedBody(Protocol):
    """Collects a response body but stops reading (and closes) past ``limit`` bytes.

    Unlike treq.collect, its Deferred can be cancelled (on timeout), which closes the
    connection instead of leaving it open. ``too_big(limit)`` is the error past the cap.
    """

    def __init__(self, limit: int, too_big: Callable[[int], Exception] | None = None) -> None:
        self._limit = limit
        self._too_big = too_big or (
            lambda n: TrackerError(f"tracker answer is larger than {n} bytes")
        )
        self._chunks: list[bytes] = []
        self._size = 0
        self.finished: defer.Deferred[bytes] = defer.Deferred(self._cancel)

    def _cancel(self, _: defer.Deferred[bytes]) -> None:
        if self.transport is not None:
            self.transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._chunks.clear()
            self.finished.errback(self._too_big(self._limit))
            self.transport.stopProducing()
            return
        self._chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self._chunks))
        else:
            self.finished.errback(reason)


class TrackerPolicy:
    """The outbound policy of tracker requests (core/outbound.py); ``GuardedEndpoints``
    takes any object with these two methods (plugins/http/url_fetch.py has another)."""

    error: type[Exception] = TrackerError

    def check_url(self, url: str) -> Verdict:
        return check_url(url, allow_local=False)

    def refused_address(self, address: str, local_ok: bool) -> str | None:
        return refused_address(address, local_ok)


@implementer(IStreamClientEndpoint)
class _CheckedEndpoint:
    """Connects, then refuses the connection if the peer's address is local and the URL may
    not reach one (nothing has been written on it by then, but for a TLS hello)."""

    def __init__(self, inner: Any, local_ok: bool, policy: Any) -> None:
        self._inner = inner
        self._local_ok = local_ok
        self._policy = policy

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        def check(protocol: Any) -> Any:
            transport = protocol.transport
            host = getattr(transport.getPeer(), "host", "")
            reason = self._policy.refused_address(host, self._local_ok)
            if reason is not None:
                transport.abortConnection()
                raise self._policy.error(reason)
            return protocol

        return self._inner.connect(factory).addCallback(check)


class GuardedEndpoints:
    """An Agent's endpoint factory that applies the outbound policy to every URI
    (``policy``: the trackers' unless told otherwise)."""

    def __init__(self, reactor: Any, connect_timeout: float, policy: Any = None) -> None:
        self._reactor = reactor
        self._timeout = connect_timeout
        self._tls = BrowserLikePolicyForHTTPS()
        self._policy = TrackerPolicy() if policy is None else policy

    def endpointForURI(self, uri: Any) -> Any:  # noqa: N802 (twisted's interface name)
        verdict = self._policy.check_url(uri.toBytes().decode("ascii", "replace"))
        if verdict.refused is not None:
            raise self._policy.error(verdict.refused)
        host = uri.host.decode("ascii")
        tcp = HostnameEndpoint(self._reactor, host, uri.port, timeout=self._timeout)
        endpoint: Any = _CheckedEndpoint(tcp, verdict.local_ok, self._policy)
        if uri.scheme == b"https":
            endpoint = wrapClientTLS(self._tls.creatorForNetloc(uri.host, uri.port), endpoint)
        return endpoint


def discard_body(response: IResponse) -> None:
    """Stop reading a body we will not use: the connection closes."""
    body = CappedBody(0)
    response.deliverBody(body)
    body.finished.addErrback(lambda _: None)
    body.finished.cancel()


def url_bytes(url: str) -> bytes:
    """The URL as the Agent wants it: ASCII (an IRI's host and path are encoded first)."""
    try:
        return url.encode("ascii")
    except UnicodeEncodeError:
        return hyperlink.URL.from_text(url).to_uri().to_text().encode("ascii")


def root_cause(failure: Failure) -> BaseException:
    """twisted.web wraps the real reason in ResponseFailed & co. (a list of Failures)."""
    value = failure.value
    reasons = getattr(value, "reasons", None)
    if reasons and isinstance(reasons[0], Failure):
        return reasons[0].value
    return value


class HttpTrackerClient:
    """Announces to and scrapes http:// and https:// trackers."""

    def __init__(
        self,
        reactor: Any,
        *,
        timeout: float = 30.0,
        max_body: int = 1 << 20,
        user_agent: str = "btd/0.1.0",
    ) -> None:
        self._reactor: IReactorTime = reactor
        self._timeout = timeout
        self._max_body = max_body
        self._headers = Headers({"User-Agent": [user_agent]})
        pool = HTTPConnectionPool(reactor, persistent=False)
        guarded = Agent.usingEndpointFactory(reactor, GuardedEndpoints(reactor, timeout), pool)
        open_agent = Agent(reactor, connectTimeout=timeout, pool=pool)
        # allow_local (the torrent's allow_local_trackers) -> the agent to use
        self._agents: dict[bool, IAgent] = {
            False: RedirectAgent(guarded, redirectLimit=TRACKER_REDIRECTS),
            True: RedirectAgent(open_agent, redirectLimit=TRACKER_REDIRECTS),
        }

    def announce(self, url: str, req: AnnounceRequest) -> defer.Deferred[AnnounceResponse]:
        """GET the announce URL; fires with the parsed answer or errbacks TrackerError."""
        try:
            full = build_announce_url(url, req)
        except Exception as exc:
            return defer.fail(TrackerError(f"bad tracker URL {url!r}: {exc}"))
        return self._get(full, parse_announce_response, req.allow_local)

    def scrape(
        self, url: str, info_hash: bytes, *, allow_local: bool = False
    ) -> defer.Deferred[tuple[int, int, int]]:
        """Scrape one torrent; ``url`` is the announce URL (or already a scrape URL)."""
        scrape_url = build_scrape_url(url)
        if scrape_url is None:
            return defer.fail(TrackerError(f"tracker {url!r} has no scrape URL"))
        full = build_scrape_request_url(scrape_url, info_hash)
        return self._get(full, lambda body: parse_scrape_response(body, info_hash), allow_local)

    def _get(self, url: str, parse: Callable[[bytes], T], allow_local: bool) -> defer.Deferred[T]:
        try:
            d = self._agents[allow_local].request(b"GET", url_bytes(url), self._headers)
        except TrackerError as exc:  # the outbound policy refused the URL as written
            return defer.fail(exc)
        except Exception as exc:  # a URL the Agent cannot even parse
            return defer.fail(TrackerError(f"bad tracker URL {url!r}: {exc}"))
        d.addCallback(self._read_body)
        d.addCallback(parse)
        d.addTimeout(self._timeout, self._reactor, onTimeoutCancel=self._timed_out)
        d.addErrback(self._as_tracker_error)
        return d

    def _read_body(self, response: IResponse) -> defer.Deferred[bytes]:
        if response.code != 200:
            self._discard(response)
            raise TrackerError(f"tracker answered HTTP {response.code}")
        length = response.length
        if isinstance(length, int) and length > self._max_body:
            self._discard(response)
            raise TrackerError(f"tracker answer is larger than {self._max_body} bytes")
        body = CappedBody(self._max_body)
        response.deliverBody(body)
        return body.finished

    @staticmethod
    def _discard(response: IResponse) -> None:
        discard_body(response)

    def _timed_out(self, result: object, timeout: float) -> Failure:
        """Whatever the cancelled request ended with, a timeout is reported as one."""
        return Failure(TrackerError(f"tracker timed out after {timeout:g} s"))

    def _as_tracker_error(self, failure: Failure) -> Failure:
        if failure.check(TrackerError):
            return failure
        cause = root_cause(failure)
        if isinstance(cause, defer.CancelledError):
            return Failure(TrackerError("tracker request cancelled"))
        if isinstance(cause, error.TimeoutError):
            return Failure(TrackerError(f"tracker timed out after {self._timeout:g} s"))
        text = str(cause).strip() or type(cause).__name__
        return Failure(TrackerError(f"tracker unreachable: {text}"))
