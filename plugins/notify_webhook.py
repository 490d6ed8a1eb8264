"""POST torrent events as JSON to HTTP(S) URLs (``notify_webhook`` plugin).

Each matching event is sent as ``{"event", "info_hash", "name", "save_path", "data",
"time"}`` with ``Content-Type: application/json``, through treq on the daemon's reactor.
Every attempt has a timeout; connection errors, timeouts and 5xx answers are retried
with exponential back-off (``backoff`` s, then twice that, ...) up to ``retries`` times;
a 4xx answer is not retried (the request itself is wrong). Failures are logged, never
raised: a dead endpoint must not disturb the daemon.

Settings (``plugins.notify_webhook``)::

    urls:
      - url: https://hooks.example.org/btd
        events: [completed, error]   # default: every event kind
        timeout: 10                  # seconds per attempt
        retries: 3                   # extra attempts after the first
        backoff: 1                   # seconds before the first retry, doubling after
        headers: {Authorization: "Bearer s3cret"}
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from twisted.internet import defer, error
from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.errors import ConfigError
from btd.core.events import EVENT_KINDS, TorrentEvent
from btd.core.plugin import hookimpl
from btd.core.plugin_config import check_keys, plugin_settings
from btd.core.tracker.http import root_cause
from btd.core.version import __version__
from btd.plugins.notify_command import (
    check_list,
    check_mapping,
    parse_count,
    parse_events,
    parse_seconds,
    stop_wait,
)

if TYPE_CHECKING:
    from btd.core.config_schema import Config
    from btd.core.hookspecs import SessionView

PLUGIN = "notify_webhook"
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 1.0
MAX_PENDING = 100  # deliveries in progress (posting or waiting to retry); more are dropped
URL_KEYS = ("url", "events", "timeout", "retries", "backoff", "headers")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP header name (RFC 9110)

# (url, headers, body, timeout) -> Deferred firing with the HTTP status code.
Poster = Callable[[str, Mapping[str, str], bytes, float], "defer.Deferred[int]"]


@dataclass(frozen=True)
class Target:
    """One configured URL and how to deliver to it."""

    url: str
    events: frozenset[str] = frozenset(EVENT_KINDS)
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF
    headers: tuple[tuple[str, str], ...] = ()

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based): backoff * 2**(retry-1)."""
        return self.backoff * 2 ** (retry - 1)


def _parse_url(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"must be an http:// or https:// URL, got {value!r}", key=key)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(f"is not a valid URL: {exc}", key=key) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"must be an http:// or https:// URL with a host, got {value!r}", key=key)
    if any(c in value for c in "\r\n\t\0 "):
        raise ConfigError("must not contain spaces or control characters", key=key)
    return value


def _parse_headers(value: Any, key: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for name, val in check_mapping(value, key).items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ConfigError("is not a valid HTTP header name", key=f"{key}.{name}")
        if isinstance(val, bool) or not isinstance(val, (str, int, float)):
            raise ConfigError(f"must be a string, got {val!r}", key=f"{key}.{name}")
        if any(c in str(val) for c in "\r\n\0"):
            raise ConfigError("must not contain line breaks or NUL", key=f"{key}.{name}")
        pairs.append((name, str(val)))
    return tuple(pairs)


def parse_settings(raw: Mapping[str, Any] | None) -> tuple[Target, ...]:
    """Validate ``plugins.notify_webhook``; ConfigError names the exact bad key."""
    base = f"plugins.{PLUGIN}"
    raw = check_mapping(raw if raw is not None else {}, base)
    check_keys(raw, ("urls",), base)
    targets = []
    for i, entry in enumerate(check_list(raw.get("urls", []), f"{base}.urls")):
        key = f"{base}.urls[{i}]"
        entry = check_mapping(entry, key)
        check_keys(entry, URL_KEYS, key)
        if "url" not in entry:
            raise ConfigError("is required (http:// or https://)", key=f"{key}.url")
        targets.append(
            Target(
                url=_parse_url(entry["url"], f"{key}.url"),
                events=(
                    parse_events(entry["events"], f"{key}.events")
                    if "events" in entry
                    else frozenset(EVENT_KINDS)
                ),
                timeout=parse_seconds(entry.get("timeout", DEFAULT_TIMEOUT), f"{key}.timeout"),
                retries=parse_count(entry.get("retries", DEFAULT_RETRIES), f"{key}.retries", 0),
                backoff=parse_seconds(entry.get("backoff", DEFAULT_BACKOFF), f"{key}.backoff"),
                headers=_parse_headers(entry.get("headers", {}), f"{key}.headers"),
            )
        )
    return tuple(targets)


def event_body(event: TorrentEvent, now: float) -> bytes:
    """The JSON document POSTed for ``event``."""
    doc = {
        "event": event.kind,
        "info_hash": event.info_hash,
        "name": event.name,
        "save_path": event.save_path,
        "data": event.data,
        "time": now,
    }
    return json.dumps(doc, ensure_ascii=False, default=str).encode("utf-8")


def _reason(cause: BaseException, timeout: float) -> str:
    if isinstance(cause, defer.TimeoutError | error.TimeoutError):
        return f"timed out after {timeout:g} s"
    return str(cause).strip() or type(cause).__name__


class TreqPoster:
    """POSTs with treq on an explicit reactor; fires with the status code, body discarded."""

    def __init__(self, reactor: Any) -> None:
        import treq
        from twisted.web.client import Agent, HTTPConnectionPool

        self._reactor = reactor
        pool = HTTPConnectionPool(reactor, persistent=False)
        self._http = treq.client.HTTPClient(Agent(reactor, pool=pool))

    def __call__(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> defer.Deferred[int]:
        d = self._http.post(
            url, data=body, headers={k: [v] for k, v in headers.items()}, unbuffered=True
        )
        d.addCallback(self._status)
        d.addTimeout(timeout, self._reactor, onTimeoutCancel=self._timed_out)
        return d

    @staticmethod
    def _timed_out(result: object, timeout: float) -> Failure:
        """The cancelled request fails in twisted.web's wrapping; report a timeout."""
        return Failure(defer.TimeoutError(f"timed out after {timeout:g} s"))

    @staticmethod
    def _status(response: Any) -> int:
        from twisted.internet.protocol import Protocol

        class Discard(Protocol):
            def connectionMade(self) -> None:
                self.transport.stopProducing()  # type: ignore[union-attr]

        response.deliverBody(Discard())  # we only need the status; the connection closes
        return int(response.code)


class WebhookSender:
    """Delivers events to the configured URLs with retries; never raises to the caller.

    ``reactor`` may be given later (``start``); events before that wait (bounded).
    ``post`` replaces the HTTP client (tests drive the back-off with a Clock).
    """

    def __init__(
        self,
        targets: tuple[Target, ...],
        reactor: Any = None,
        *,
        post: Poster | None = None,
        wall: Callable[[], float] = time.time,
        log: Logger | None = None,
    ) -> None:
        self.targets = targets
        self.reactor = reactor
        self._post = post
        self._wall = wall
        self.log = log or Logger(namespace=f"btd.plugins.{PLUGIN}")
        self.pending: set[defer.Deferred[None]] = set()  # one per delivery in progress
        self.waiting: list[tuple[Target, TorrentEvent, bytes]] = []  # before start()
        self.stopping = False

    def start(self, reactor: Any) -> None:
        self.reactor = reactor
        if self._post is None:
            self._post = TreqPoster(reactor)
        waiting, self.waiting = self.waiting, []
        for target, event, body in waiting:
            self._deliver(target, event, body)

    def notify(self, event: TorrentEvent) -> None:
        if self.stopping:
            return
        wanted = [t for t in self.targets if event.kind in t.events]
        if not wanted:
            return
        body = event_body(event, self._wall())
        for target in wanted:
            if len(self.pending) + len(self.waiting) >= MAX_PENDING:
                self.log.warn(
                    "{n} webhook deliveries in progress: {kind} for {url} dropped",
                    n=MAX_PENDING, kind=event.kind, url=target.url,
                )  # fmt: skip
            elif self.reactor is None:
                self.waiting.append((target, event, body))
            else:
                self._deliver(target, event, body)

    def _deliver(self, target: Target, event: TorrentEvent, body: bytes) -> None:
        d = self._attempts(target, event, body)
        self.pending.add(d)
        d.addErrback(self._unexpected, target)
        d.addBoth(lambda _: self.pending.discard(d))

    @defer.inlineCallbacks
    def _attempts(self, target: Target, event: TorrentEvent, body: bytes) -> Any:
        headers = {"User-Agent": f"btd/{__version__}", **dict(target.headers)}
        headers["Content-Type"] = "application/json"
        what = f"{event.kind} {event.info_hash[:8]} to {target.url}"
        assert self._post is not None
        for attempt in range(target.retries + 1):
            if attempt:
                yield _sleep(self.reactor, target.delay(attempt))
            try:
                status = yield self._post(target.url, headers, body, target.timeout)
            except Exception:  # noqa: BLE001 - every failure is logged, never raised
                cause = root_cause(Failure())
                if isinstance(cause, defer.CancelledError):
                    raise defer.CancelledError() from None  # stop() gave up: "abandoned"
                problem, retry = _reason(cause, target.timeout), True
            else:
                if 200 <= status < 300:
                    self.log.debug("webhook {what}: HTTP {status}", what=what, status=status)
                    return
                problem, retry = f"HTTP {status}", status >= 500
            left = target.retries - attempt
            if not retry or not left or self.stopping:
                why = "not retried" if not retry else "giving up"
                self.log.warn(
                    "webhook {what} failed: {problem} ({why} after {n} attempt(s))",
                    what=what, problem=problem, why=why, n=attempt + 1,
                )  # fmt: skip
                return
            self.log.info(
                "webhook {what} failed: {problem}; retry in {delay:g} s ({left} left)",
                what=what, problem=problem, delay=target.delay(attempt + 1), left=left,
            )  # fmt: skip

    def _unexpected(self, failure: Failure, target: Target) -> None:
        if failure.check(defer.CancelledError):
            self.log.warn("webhook to {url} abandoned: btd is stopping", url=target.url)
            return
        self.log.failure("webhook to {url} failed unexpectedly", failure, url=target.url)

    def stop(self, timeout: float) -> defer.Deferred[None]:
        """Send nothing new; wait up to ``timeout`` s for deliveries, then cancel them."""
        self.stopping = True
        if self.waiting:
            self.log.warn("shutting down: {n} webhook(s) never sent", n=len(self.waiting))
            self.waiting.clear()
        if not self.pending:
            return defer.succeed(None)
        result: defer.Deferred[None] = defer.Deferred()

        def all_done(_: object) -> None:
            if timer.active():
                timer.cancel()
            result.callback(None)

        def give_up() -> None:
            for d in list(self.pending):
                d.cancel()

        timer = self.reactor.callLater(timeout, give_up)
        defer.DeferredList(list(self.pending), consumeErrors=True).addCallback(all_done)
        return result


def _sleep(reactor: Any, seconds: float) -> defer.Deferred[None]:
    """A cancellable pause (cancelling it cancels the pending retry)."""
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


# -- hooks -------------------------------------------------------------------------------


class NotifyWebhookPlugin:
    """The plugin: one WebhookSender, built from the settings (one instance per manager)."""

    def __init__(self) -> None:
        self.sender: WebhookSender | None = None

    @hookimpl
    def btd_configure(self, config: Config) -> None:
        self.sender = WebhookSender(parse_settings(plugin_settings(config, PLUGIN)))

    @hookimpl
    def btd_session_started(self, session: SessionView) -> None:
        if self.sender is not None:
            self.sender.start(session.reactor)

    @hookimpl
    def btd_torrent_event(self, event: TorrentEvent) -> None:
        if self.sender is not None:
            self.sender.notify(event)

    @hookimpl
    def btd_session_stopping(self, session: SessionView) -> defer.Deferred[None] | None:
        sender = self.sender
        if sender is None or sender.reactor is None:
            return None
        return sender.stop(stop_wait(session))
