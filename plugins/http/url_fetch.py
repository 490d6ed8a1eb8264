"""Adding a torrent by URL: ``torrent.add_url`` and Transmission's ``torrent-add`` of an
http(s) ``filename`` (Sonarr and Radarr hand over a Prowlarr or Jackett download link).

The URL comes from an authenticated control client, not from torrent data, but the server
it names (and every redirect) is a stranger: each request goes through the SSRF-guarded
endpoints of core/tracker/http.py with the fetch policy of core/outbound.py (docs/SECURITY.md
section 4): http and https only, link-local and cloud metadata addresses never, local ones
only with ``fetch_local_urls`` and never after a redirect from a public address; judged on
the URL as written and again on the address each connection reached (DNS rebinding).
Redirects are followed here, at most ``FETCH_REDIRECTS``, so a ``magnet:`` Location (what
Prowlarr and Jackett answer for magnet-only results) is taken as the magnet. The body is
capped at ``TORRENT_FILE_MAX`` (a Content-Length over it is refused unread), the whole
fetch at ``FETCH_TIMEOUT`` seconds, and ``FETCH_MAX_RUNNING`` fetches run at once.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from twisted.internet import defer, error
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers

from btd.core.limits import FETCH_MAX_RUNNING, FETCH_REDIRECTS, FETCH_TIMEOUT, TORRENT_FILE_MAX
from btd.core.outbound import (
    Verdict,
    check_fetch_url,
    is_local,
    parse_ip,
    refused_fetch_address,
)
from btd.core.rpc.errors import INVALID_PARAMS, INVALID_TORRENT, PLUGIN_ERROR, RpcError
from btd.core.tracker.http import (
    CappedBody,
    GuardedEndpoints,
    discard_body,
    root_cause,
    url_bytes,
)
from btd.core.version import __version__

SETTING = "plugins.http.fetch_local_urls"
REDIRECTS = (301, 302, 303, 307, 308)
SOURCES = ("metainfo", "path", "magnet", "torrents")


class FetchError(RpcError):
    """A URL that gave no torrent; ``data.field`` is ``url``, the code says which kind."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message, {"field": "url"})


class Refused(FetchError):
    def __init__(self, message: str) -> None:
        super().__init__(INVALID_PARAMS, f"url: {message}")


class FetchPolicy:
    """The outbound policy of one fetch (``GuardedEndpoints`` asks it once per hop):
    local addresses only when allowed, and after a redirect only if the first server was
    local too (a public server cannot send btd to the LAN)."""

    error = Refused

    def __init__(self, allow_local: bool) -> None:
        self.allow_local = allow_local
        self.hops = 0
        self.origin_local = False

    def _local_now(self) -> bool:
        return self.allow_local and (self.hops <= 1 or self.origin_local)

    def _why(self, reason: str) -> str:
        if self.allow_local and not self._local_now():
            return reason.split(";")[0] + " reached by a redirect from a public address"
        return reason

    def check_url(self, url: str) -> Verdict:
        self.hops += 1
        verdict = check_fetch_url(url, allow_local=self._local_now(), setting=SETTING)
        if verdict.refused is not None:
            return Verdict(self._why(verdict.refused), False)
        return verdict

    def refused_address(self, address: str, local_ok: bool) -> str | None:
        reason = refused_fetch_address(address, local_ok, SETTING)
        if reason is not None:
            return self._why(reason)
        if self.hops == 1:
            ip = parse_ip(address)
            self.origin_local = ip is not None and is_local(ip)
        return None


@dataclass(frozen=True)
class Fetched:
    """What a URL gave: a .torrent's bytes or a magnet link."""

    metainfo: bytes | None = None
    magnet: str | None = None


class UrlFetcher:
    """Fetches .torrent URLs for one daemon (``allow_local``: ``fetch_local_urls``)."""

    def __init__(
        self,
        reactor: Any,
        *,
        allow_local: bool,
        timeout: float = FETCH_TIMEOUT,
        max_size: int = TORRENT_FILE_MAX,
        redirects: int = FETCH_REDIRECTS,
        max_running: int = FETCH_MAX_RUNNING,
    ) -> None:
        self.reactor = reactor
        self.allow_local = allow_local
        self.timeout = timeout
        self.max_size = max_size
        self.redirects = redirects
        self.max_running = max_running
        self.running = 0
        self.headers = Headers({"User-Agent": [f"btd/{__version__}"], "Accept": ["*/*"]})

    def fetch(self, url: Any) -> defer.Deferred[Fetched]:
        """Fires with ``Fetched`` or fails with a FetchError that says why."""
        if not isinstance(url, str) or not url.strip():
            return defer.fail(Refused("expected an http or https URL"))
        if self.running >= self.max_running:
            return defer.fail(
                FetchError(PLUGIN_ERROR, f"url: {self.max_running} URLs are being fetched; retry")
            )
        self.running += 1
        d = defer.Deferred.fromCoroutine(self._fetch(url.strip()))
        d.addTimeout(self.timeout, self.reactor, onTimeoutCancel=self._timed_out)
        d.addErrback(self._as_fetch_error)

        def done(result: Any) -> Any:
            self.running -= 1
            return result

        return d.addBoth(done)

    async def _fetch(self, url: str) -> Fetched:
        policy = FetchPolicy(self.allow_local)
        pool = HTTPConnectionPool(self.reactor, persistent=False)
        endpoints = GuardedEndpoints(self.reactor, self.timeout, policy)
        agent = Agent.usingEndpointFactory(self.reactor, endpoints, pool)
        for _ in range(self.redirects + 1):
            verdict = check_fetch_url(url, allow_local=True, setting=SETTING)
            if verdict.refused is not None:  # a bad scheme: before the Agent sees it
                raise Refused(verdict.refused)
            response = await agent.request(b"GET", url_bytes(url), self.headers)
            if response.code in REDIRECTS:
                location = (response.headers.getRawHeaders(b"location") or [b""])[0]
                discard_body(response)
                target = urljoin(url, location.decode("utf-8", "replace").strip())
                if target.lower().startswith("magnet:"):
                    return Fetched(magnet=target)
                if not location:
                    raise FetchError(PLUGIN_ERROR, f"url: HTTP {response.code} without a Location")
                url = target
                continue
            if response.code != 200:
                discard_body(response)
                raise FetchError(PLUGIN_ERROR, f"url: the server answered HTTP {response.code}")
            return Fetched(metainfo=await self._body(response))
        raise FetchError(PLUGIN_ERROR, f"url: more than {self.redirects} redirects")

    async def _body(self, response: Any) -> bytes:
        length = response.length
        if isinstance(length, int) and length > self.max_size:
            discard_body(response)
            raise self._too_big(self.max_size)
        body = CappedBody(self.max_size, self._too_big)
        response.deliverBody(body)
        data = await body.finished
        if not data.startswith(b"d"):
            kind = (response.headers.getRawHeaders(b"content-type") or [b"no type"])[0]
            raise FetchError(
                INVALID_TORRENT,
                "url: not a .torrent file (the server answered "
                f"{kind.decode('latin-1')[:60]}, {len(data)} bytes)",
            )
        return data

    @staticmethod
    def _too_big(limit: int) -> Exception:
        return FetchError(INVALID_TORRENT, f"url: larger than {limit} bytes (a .torrent's cap)")

    def _timed_out(self, result: object, timeout: float) -> Failure:
        return Failure(FetchError(PLUGIN_ERROR, f"url: no answer within {timeout:g} s"))

    def _as_fetch_error(self, failure: Failure) -> Failure:
        if failure.check(FetchError):
            return failure
        cause = root_cause(failure)
        if isinstance(cause, FetchError):
            return Failure(cause)
        if isinstance(cause, defer.CancelledError):
            return Failure(FetchError(PLUGIN_ERROR, "url: fetch cancelled"))
        if isinstance(cause, error.TimeoutError):
            return Failure(FetchError(PLUGIN_ERROR, f"url: no answer within {self.timeout:g} s"))
        text = str(cause).strip() or type(cause).__name__
        return Failure(FetchError(PLUGIN_ERROR, f"url: cannot fetch: {text}"))


def add_url_method(
    fetcher: Callable[[], UrlFetcher], methods: Callable[[], Mapping[str, Callable[..., Any]]]
) -> Callable[..., defer.Deferred[Any]]:
    """``torrent.add_url(url, **options)``: fetch, then ``torrent.add`` with the .torrent
    (or the magnet a redirect named) and the same options; its answer is the answer."""

    async def adding(url: Any, options: dict[str, Any]) -> Any:
        for name in SOURCES:
            if name in options:
                raise RpcError(
                    INVALID_PARAMS, f"{name}: not with url (use torrent.add)", {"field": name}
                )
        got = await fetcher().fetch(url)
        add = methods()["torrent.add"]
        if got.magnet is not None:
            return await defer.maybeDeferred(add, magnet=got.magnet, **options)
        assert got.metainfo is not None
        meta = base64.b64encode(got.metainfo).decode("ascii")
        return await defer.maybeDeferred(add, metainfo=meta, **options)

    def add_url(url: Any, **options: Any) -> defer.Deferred[Any]:
        return defer.Deferred.fromCoroutine(adding(url, options))

    return add_url
