"""UDP tracker client (BEP 15): pure codec + DatagramProtocol adapter.

Answers ``btd_tracker_client`` for ``udp://`` URLs. All udp trackers of a session share one
UDP socket, opened in ``btd_session_started`` and closed in ``btd_session_stopped``, once
the torrents' ``stopped`` announces went out (or timed out).

Settings (``plugins: {udp_tracker: {...}}``):

- ``retry_base`` (number > 0, default 15): seconds before the first retransmission;
  it doubles after each one (BEP 15).
- ``max_retries`` (integer 0..8, default 3; BEP 15 allows 8): retransmissions before the request fails
  with "udp tracker timed out". The BEP defaults wait 15 * (2**9 - 1) s in all.
- ``bind`` (IP address, default ``session.listen_host``): where the socket is bound; ``::``
  reaches IPv6 trackers too (dual-stack), ``127.0.0.1`` keeps tests on loopback. Without it
  the socket follows the address the daemon listens on for peers, never every interface
  when that names one (issue 13 class 8).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.errors import ConfigError, TrackerError
from btd.core.plugin import hookimpl
from btd.core.plugin_config import check_keys, plugin_settings
from btd.core.tracker.codec import AnnounceRequest, AnnounceResponse

if TYPE_CHECKING:
    from btd.core.config_schema import Config
    from btd.core.hookspecs import SessionView

__version__ = "0.1.0"

PLUGIN = "udp_tracker"
DEFAULTS: dict[str, Any] = {"retry_base": 15.0, "max_retries": 3, "bind": "0.0.0.0"}

log = Logger()


def _error(key: str, message: str) -> ConfigError:
    return ConfigError(message, key=f"plugins.{PLUGIN}.{key}")


def validate(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The plugin's settings with defaults filled in; ConfigError names the bad key."""
    settings = dict(DEFAULTS)
    check_keys(raw, DEFAULTS, f"plugins.{PLUGIN}")
    for key, value in raw.items():
        if key == "retry_base":
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise _error(key, f"must be a number of seconds > 0, got {value!r}")
            if not math.isfinite(value):
                raise _error(key, f"must be a finite number, got {value!r}")
        elif key == "max_retries":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 8:
                raise _error(key, f"must be an integer 0..8, got {value!r}")
        elif key == "bind":
            try:
                if not isinstance(value, str):
                    raise TypeError
                ipaddress.ip_address(value)
            except (TypeError, ValueError):
                raise _error(key, f"must be an IP address, got {value!r}") from None
        settings[key] = value
    return settings


class UdpTrackers:
    """What ``btd_tracker_client`` hands out: the session's UdpTrackerClient, when open.

    Torrents restored at start ask for their tracker client, and announce, before
    ``btd_session_started`` opens the socket: they get this stable handle, which holds
    such early requests until the socket opens (instead of a None that would disable
    the tracker, or a failure that would back the tracker off for a minute). Once the
    socket is closed again, requests fail with a TrackerError.
    """

    def __init__(self) -> None:
        self.client: Any = None
        self._waiting: list[tuple[Deferred[Any], Callable[[Any], Deferred[Any]]]] | None = []

    def expect_start(self) -> None:
        """Hold requests from now until ``open`` (a session is about to start)."""
        if self.client is None and self._waiting is None:
            self._waiting = []

    def open(self, client: Any) -> None:
        self.client = client
        waiting, self._waiting = self._waiting or [], None
        for result, call in waiting:
            if not result.called:  # not cancelled meanwhile
                self._forward(call(client), result)

    def closed(self, reason: str) -> None:
        """No socket any more (or it could not open): fail what waits, and what comes."""
        self.client = None
        waiting, self._waiting = self._waiting or [], None
        for result, _ in waiting:
            if not result.called:
                result.errback(Failure(TrackerError(reason)))

    @staticmethod
    def _forward(inner: Deferred[Any], outer: Deferred[Any]) -> None:
        def give(value: Any) -> None:
            if not outer.called:
                (outer.errback if isinstance(value, Failure) else outer.callback)(value)

        inner.addBoth(give)

    def _call(self, call: Callable[[Any], Deferred[Any]]) -> Deferred[Any]:
        if self.client is not None:
            return call(self.client)
        if self._waiting is None:
            return fail(TrackerError("the udp tracker socket is not open"))
        entry: tuple[Deferred[Any], Callable[[Any], Deferred[Any]]]

        def cancel(_: Deferred[Any]) -> None:
            if self._waiting is not None and entry in self._waiting:
                self._waiting.remove(entry)

        entry = (Deferred(cancel), call)
        self._waiting.append(entry)
        return entry[0]

    def announce(self, url: str, req: AnnounceRequest) -> Deferred[AnnounceResponse]:
        return self._call(lambda client: client.announce(url, req))

    def scrape(self, url: str, info_hash: bytes) -> Deferred[tuple[int, int, int]]:
        return self._call(lambda client: client.scrape(url, info_hash))

    def stats(self) -> dict[str, int]:
        return {} if self.client is None else self.client.stats()


class UdpTrackerPlugin:
    """The plugin: its settings and the session's handle (one instance per plugin manager)."""

    def __init__(self) -> None:
        self.settings: dict[str, Any] = dict(DEFAULTS)
        self.trackers = UdpTrackers()

    @hookimpl
    def btd_configure(self, config: Config) -> None:
        raw = plugin_settings(config, PLUGIN)
        self.settings = validate(raw)
        if "bind" not in raw:  # follow the address the daemon listens on for peers
            self.settings["bind"] = config.session.listen_host
        self.trackers.expect_start()

    @hookimpl
    def btd_session_started(self, session: SessionView) -> None:
        """Open the shared UDP socket; if that fails (logged), udp announces fail with why."""
        from btd.plugins.udp_tracker.client import UdpTrackerClient

        client = UdpTrackerClient(session.reactor, **self.settings)
        try:
            host = client.listen().getHost()
        except Exception as exc:
            bind = self.settings["bind"]
            self.trackers.closed(f"cannot open the udp tracker socket on {bind}: {exc}")
            raise
        self.trackers.open(client)
        log.info("udp trackers: socket on {host}:{port}", host=host.host, port=host.port)

    @hookimpl
    def btd_tracker_client(self, url: str) -> UdpTrackers | None:
        """The udp handle for ``udp://`` URLs (also before the session started), else None."""
        return self.trackers if url.lower().startswith("udp://") else None

    @hookimpl
    def btd_session_stopped(self, session: SessionView) -> Deferred[None] | None:
        """Close the socket: the torrents have stopped and their ``stopped`` announces,
        which go through it, were answered or timed out. Fires when it is closed."""
        client = self.trackers.client
        if client is None:
            return None
        self.trackers.closed("the udp tracker socket is closed")
        return client.close()
