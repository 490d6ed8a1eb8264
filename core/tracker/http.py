"""HTTP(S) tracker client: treq over a twisted.web Agent, with a timeout and a body cap.

A thin adapter: URLs and answers are built and parsed by the pure codec; this module
only moves bytes and turns every network failure into a TrackerError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import treq
from twisted.internet import defer, error
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IResponse

from btd.core.errors import TrackerError
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


class _CappedBody(Protocol):
    """Collects a response body but stops reading (and closes) past ``limit`` bytes.

    Unlike treq.collect, its Deferred can be cancelled (on timeout), which closes the
    connection instead of leaving it open.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
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
            self.finished.errback(
                TrackerError(f"tracker answer is larger than {self._limit} bytes")
            )
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
        self._headers = {"User-Agent": [user_agent]}
        pool = HTTPConnectionPool(reactor, persistent=False)
        agent = Agent(reactor, connectTimeout=timeout, pool=pool)
        self._http = treq.client.HTTPClient(agent)

    def announce(self, url: str, req: AnnounceRequest) -> defer.Deferred[AnnounceResponse]:
        """GET the announce URL; fires with the parsed answer or errbacks TrackerError."""
        try:
            full = build_announce_url(url, req)
        except Exception as exc:
            return defer.fail(TrackerError(f"bad tracker URL {url!r}: {exc}"))
        return self._get(full, parse_announce_response)

    def scrape(self, url: str, info_hash: bytes) -> defer.Deferred[tuple[int, int, int]]:
        """Scrape one torrent; ``url`` is the announce URL (or already a scrape URL)."""
        scrape_url = build_scrape_url(url)
        if scrape_url is None:
            return defer.fail(TrackerError(f"tracker {url!r} has no scrape URL"))
        full = build_scrape_request_url(scrape_url, info_hash)
        return self._get(full, lambda body: parse_scrape_response(body, info_hash))

    def _get(self, url: str, parse: Callable[[bytes], T]) -> defer.Deferred[T]:
        try:
            d = self._http.get(url, headers=self._headers, unbuffered=True)
        except Exception as exc:  # a URL treq/hyperlink cannot even parse
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
        body = _CappedBody(self._max_body)
        response.deliverBody(body)
        return body.finished

    @staticmethod
    def _discard(response: IResponse) -> None:
        """Stop reading a body we will not use: the connection closes."""
        body = _CappedBody(0)
        response.deliverBody(body)
        body.finished.addErrback(lambda _: None)
        body.finished.cancel()

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
