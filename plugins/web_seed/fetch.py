"""HTTP range requests for one web seed: a twisted.web Agent behind the SSRF guard.

Every connection goes through core/tracker/http.py's ``GuardedEndpoints`` with the web seed
policy of core/outbound.py (local addresses only with the torrent's ``allow_local_trackers``,
never a local URL with a query string, never link-local): the URL as written, every
redirect's target and the address each connection reached are judged. Redirects are
followed here, at most ``WEB_SEED_REDIRECTS``. A request reads exactly the bytes it asked
for: a 206 must name that range (Content-Range, Content-Length); a 200 (the server ignores
Range) is used only for a range at the start of the file, its first bytes taken and the
connection closed; anything longer is cut. No byte for ``WEB_SEED_TIMEOUT`` seconds
(connecting, headers, body) fails the request. Failures are ``WebSeedError``: ``permanent``
says whether asking again is pointless, ``retry_after`` what a 503/429 asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

from twisted.internet import defer, error
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH

from btd.core.errors import BtdError
from btd.core.limits import (
    WEB_SEED_IN_FLIGHT,
    WEB_SEED_REDIRECTS,
    WEB_SEED_RETRY_MAX,
    WEB_SEED_TIMEOUT,
)
from btd.core.outbound import Verdict, check_web_seed_url, refused_web_seed_address
from btd.core.tracker.http import GuardedEndpoints, discard_body, root_cause, url_bytes
from btd.core.version import __version__
from btd.plugins.web_seed.ranges import gives_up, parse_content_range, range_header, retry_after

REDIRECTS = (301, 302, 303, 307, 308)


class WebSeedError(BtdError):
    """A range request that gave no data; ``permanent``: do not ask this web seed again."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.status = status  # the HTTP status that ended it, if one did


class WebSeedRefused(WebSeedError):
    """The outbound policy refused a URL or the address it reached."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class WebSeedPolicy:
    """The web seed outbound policy, for ``GuardedEndpoints`` (one per web seed)."""

    error = WebSeedRefused

    def __init__(self, allow_local: bool) -> None:
        self.allow_local = allow_local

    def check_url(self, url: str) -> Verdict:
        return check_web_seed_url(url, allow_local=self.allow_local)

    def refused_address(self, address: str, local_ok: bool) -> str | None:
        return refused_web_seed_address(address, local_ok)


class RangeRequest:
    """One GET of ``length`` bytes at ``offset`` of the file at ``url``; the body goes to
    ``sink`` as it arrives. ``done`` fires with None once every byte was given, or fails
    with a WebSeedError. ``pause``/``resume`` follow the download limit; ``cancel`` ends it
    (``done`` then fails with a WebSeedError ``cancelled``)."""

    def __init__(
        self,
        agent: Any,
        clock: IReactorTime,
        url: str,
        offset: int,
        length: int,
        sink: Callable[[bytes], None],
        *,
        timeout: float = WEB_SEED_TIMEOUT,
        redirects: int = WEB_SEED_REDIRECTS,
    ) -> None:
        self.agent = agent
        self.clock = clock
        self.url = url
        self.offset = offset
        self.length = length
        self.sink = sink
        self.timeout = timeout
        self.redirects_left = redirects
        self.got = 0
        self.done: defer.Deferred[None] = defer.Deferred()
        self.paused = False
        self._pending: defer.Deferred[Any] | None = None  # waiting for headers
        self._body: Any = None  # the body's transport once it flows
        self._timer: Any = None
        self._cut = False  # a 200 answer: close the connection once our bytes came
        self._headers = Headers(
            {
                "User-Agent": [f"btd/{__version__}"],
                "Range": [range_header(offset, length)],
                "Accept-Encoding": ["identity"],
            }
        )

    # -- control ----------------------------------------------------------------------
    def start(self) -> RangeRequest:
        self._arm()
        self._get(self.url)
        return self

    def pause(self) -> None:
        self.paused = True
        self._disarm()
        if self._body is not None:
            self._body.pauseProducing()

    def resume(self) -> None:
        if not self.paused or self.done.called:
            return
        self.paused = False
        self._arm()
        if self._body is not None:
            self._body.resumeProducing()

    def cancel(self, reason: str = "cancelled") -> None:
        self._fail(WebSeedError(reason))

    # -- the exchange -----------------------------------------------------------------
    def _get(self, url: str) -> None:
        try:
            d = defer.maybeDeferred(self.agent.request, b"GET", url_bytes(url), self._headers)
        except Exception as exc:  # url_bytes on a URL that is not one
            self._fail(WebSeedError(f"bad URL {url[:80]!r}: {exc}", permanent=True))
            return
        self._pending = d
        d.addCallbacks(lambda response: self._answered(url, response), self._failed)

    def _answered(self, url: str, response: Any) -> None:
        self._pending = None
        if self.done.called:
            discard_body(response)
            return
        self._arm()
        code = response.code
        header = _header_reader(response)
        if code in REDIRECTS:
            discard_body(response)
            location = header(b"location")
            if not location:
                self._fail(WebSeedError(f"HTTP {code} without a Location", permanent=True))
            elif self.redirects_left <= 0:
                self._fail(WebSeedError("too many redirects", permanent=True))
            else:
                self.redirects_left -= 1
                self._get(urljoin(url, location.strip()))
            return
        length = response.length
        if code == 206:
            answered = parse_content_range(header(b"content-range") or "")
            asked = (self.offset, self.offset + self.length - 1)
            if answered != asked or (length is not UNKNOWN_LENGTH and length != self.length):
                discard_body(response)
                self._fail(
                    WebSeedError(
                        f"answered {header(b'content-range') or 'no Content-Range'} "
                        f"(length {length}) for bytes {asked[0]}-{asked[1]}",
                        permanent=True,
                    )
                )
                return
        elif code == 200:
            if self.offset != 0:  # the whole file for a range further in: refused unread
                discard_body(response)
                self._fail(
                    WebSeedError(
                        "the server ignores Range requests (HTTP 200 with the whole file)",
                        permanent=True,
                    )
                )
                return
        else:
            discard_body(response)
            wait = retry_after(header(b"retry-after"), self.clock.seconds(), WEB_SEED_RETRY_MAX)
            self._fail(
                WebSeedError(
                    f"HTTP {code}", permanent=gives_up(code), retry_after=wait, status=code
                )
            )
            return
        response.deliverBody(_Body(self, cut=code == 200))

    def _failed(self, failure: Failure) -> None:
        self._pending = None
        if self.done.called:
            return
        if failure.check(WebSeedError):
            self._fail(failure.value)
            return
        cause = root_cause(failure)
        if isinstance(cause, WebSeedError):
            self._fail(cause)
        elif isinstance(cause, error.TimeoutError | defer.TimeoutError):
            self._fail(WebSeedError(f"no answer within {self.timeout:g} s"))
        else:
            text = str(cause).strip() or type(cause).__name__
            self._fail(WebSeedError(f"unreachable: {text}"))

    # -- the body (``_Body`` calls these) ----------------------------------------------------
    def body_started(self, transport: Any, *, cut: bool) -> None:
        self._body = transport
        self._cut = cut
        if self.paused:
            transport.pauseProducing()

    def body_data(self, data: bytes) -> bool:
        """Take body bytes; True: stop reading (done and the rest is not wanted, bytes
        beyond the range, or the request ended meanwhile)."""
        if self.done.called:
            return True
        self._arm()
        want = self.length - self.got
        extra = len(data) > want
        if extra:
            data = data[:want]
        self.got += len(data)
        self.sink(data)  # may pause, cancel, close the web seed
        if self.done.called:
            return True
        if self.got >= self.length:
            self._finish()
            return extra or self._cut
        return False

    def body_ended(self, reason: Failure) -> None:
        if self.done.called:
            return
        if self.got >= self.length:
            self._finish()
        elif reason.check(ResponseDone, PotentialDataLoss):
            self._fail(WebSeedError(f"the answer ended after {self.got} of {self.length} bytes"))
        else:
            cause = root_cause(reason)
            text = str(cause).strip() or type(cause).__name__
            self._fail(
                WebSeedError(f"connection lost after {self.got} of {self.length} bytes: {text}")
            )

    # -- ending ---------------------------------------------------------------------------
    def _arm(self) -> None:
        if self.paused:
            return
        if self._timer is not None and self._timer.active():
            self._timer.reset(self.timeout)
        else:
            self._timer = self.clock.callLater(self.timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(WebSeedError(f"no data for {self.timeout:g} s"))

    def _finish(self) -> None:
        self._disarm()
        self.done.callback(None)

    def _fail(self, exc: WebSeedError) -> None:
        if self.done.called:
            return
        self._disarm()
        pending, self._pending = self._pending, None
        body, self._body = self._body, None
        self.done.errback(Failure(exc))
        if pending is not None:
            pending.addErrback(lambda _: None)
            pending.cancel()
        if body is not None:
            body.stopProducing()  # the connection closes: it is not reused


def _header_reader(response: Any) -> Callable[[bytes], str | None]:
    def header(name: bytes) -> str | None:
        values = response.headers.getRawHeaders(name)
        return values[0].decode("latin-1") if values else None

    return header


class _Body(Protocol):
    """A response body into its RangeRequest; stops reading once told (``cut``: a 200
    answer whose rest is not wanted, so its connection is closed, not reused)."""

    def __init__(self, request: RangeRequest, *, cut: bool) -> None:
        self.request = request
        self.cut = cut
        self.stopped = False

    def makeConnection(self, transport: Any) -> None:  # noqa: N802 (twisted's name)
        super().makeConnection(transport)
        self.request.body_started(transport, cut=self.cut)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self.stopped:
            return
        if self.request.body_data(data):
            self.stopped = True
            self.transport.stopProducing()

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        self.request.body_ended(reason)


class RangeFetcher:
    """The HTTP side of one web seed: a kept-alive connection pool (``WEB_SEED_IN_FLIGHT``
    connections) and the guarded Agent; ``get`` starts a RangeRequest."""

    def __init__(self, reactor: Any, *, allow_local: bool, timeout: float = WEB_SEED_TIMEOUT):
        self.reactor = reactor
        self.timeout = timeout
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = WEB_SEED_IN_FLIGHT
        # retryAutomatically stays on: a GET that meets a kept-alive connection the server
        # (or a cancelled request) closed meanwhile is sent once more on a fresh one.
        endpoints = GuardedEndpoints(reactor, timeout, WebSeedPolicy(allow_local))
        self.agent = Agent.usingEndpointFactory(reactor, endpoints, self.pool)

    def get(
        self, url: str, offset: int, length: int, sink: Callable[[bytes], None]
    ) -> RangeRequest:
        return RangeRequest(
            self.agent, self.reactor, url, offset, length, sink, timeout=self.timeout
        ).start()

    def close(self) -> defer.Deferred[None]:
        return self.pool.closeCachedConnections()
