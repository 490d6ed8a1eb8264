"""UDP tracker client (BEP 15): pure codec + DatagramProtocol adapter.

Answers ``btd_tracker_client`` for ``udp://`` URLs once the session has started. All
udp trackers share one UDP socket, opened in ``btd_session_started``.

Settings (``plugins: {udp_tracker: {...}}``):

- ``retry_base`` (number > 0, default 15): seconds before the first retransmission;
  it doubles after each one (BEP 15).
- ``max_retries`` (integer 0..8, default 8): retransmissions before the request fails
  with "udp tracker timed out". The BEP defaults wait 15 * (2**9 - 1) s in all.
- ``bind`` (IP address, default 0.0.0.0): where the socket is bound; ``::`` reaches
  IPv6 trackers too (dual-stack), ``127.0.0.1`` keeps tests on loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from btd.core.errors import ConfigError
from btd.core.plugin import hookimpl

__version__ = "0.1.0"

PLUGIN = "udp_tracker"
DEFAULTS: dict[str, Any] = {"retry_base": 15.0, "max_retries": 8, "bind": "0.0.0.0"}

_settings: dict[str, Any] = dict(DEFAULTS)
_client: Any = None  # the UdpTrackerClient, from session start to session stop

log = Logger()


def _error(key: str, message: str) -> ConfigError:
    return ConfigError(message, key=f"plugins.{PLUGIN}.{key}")


def validate(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The plugin's settings with defaults filled in; ConfigError names the bad key."""
    settings = dict(DEFAULTS)
    for key, value in raw.items():
        if key == "retry_base":
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise _error(key, f"must be a number of seconds > 0, got {value!r}")
            if value != value or value == float("inf"):
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
        else:
            known = ", ".join(DEFAULTS)
            raise _error(str(key), f"unknown setting (known: {known})")
        settings[key] = value
    return settings


@hookimpl
def btd_configure(config: Any) -> None:
    raw = (getattr(config, "plugins", None) or {}).get(PLUGIN) or {}
    _settings.clear()
    _settings.update(validate(raw))


@hookimpl
def btd_session_started(session: Any) -> None:
    """Open the shared UDP socket; a failure is logged and udp trackers stay disabled."""
    global _client
    from btd.plugins.udp_tracker.client import UdpTrackerClient

    client = UdpTrackerClient(session.reactor, **_settings)
    host = client.listen().getHost()
    _client = client
    log.info("udp trackers: socket on {host}:{port}", host=host.host, port=host.port)


@hookimpl
def btd_tracker_client(url: str) -> Any | None:
    if _client is None or not url.lower().startswith("udp://"):
        return None
    return _client


@hookimpl
def btd_session_stopping(session: Any) -> Deferred[None] | None:
    """Close the socket once the torrents had their chance to announce ``stopped``.

    This hook fires before torrents stop, and their ``stopped`` announces go through
    this socket: closing it now would keep every udp tracker from hearing them. So
    the socket closes at the reactor's shutdown ("during" phase, after the service
    stopped) or ``daemon.shutdown_timeout`` + 1 s from now, whichever comes first.
    Nothing to wait for here: returns None.
    """
    global _client
    client, _client = _client, None  # no new torrent gets this client
    if client is None:
        return None
    reactor = session.reactor
    daemon = getattr(getattr(session, "config", None), "daemon", None)
    grace = float(getattr(daemon, "shutdown_timeout", 10)) + 1.0
    close_later(client, reactor, grace)
    return None


def close_later(client: Any, reactor: Any, grace: float) -> Deferred[None]:
    """Close ``client`` at reactor shutdown or after ``grace`` seconds; fires when closed."""
    closed: Deferred[None] = Deferred()
    trigger: list[Any] = []

    def close() -> Deferred[None] | None:
        if closed.called:
            return None
        if timer.active():
            timer.cancel()
        if trigger:
            try:
                reactor.removeSystemEventTrigger(trigger.pop())
            except (ValueError, KeyError):
                pass  # it is the trigger firing now
        d = client.close()
        d.addBoth(lambda _: closed.callback(None) if not closed.called else None)
        return d

    timer = reactor.callLater(grace, close)
    add_trigger = getattr(reactor, "addSystemEventTrigger", None)
    if add_trigger is not None:
        trigger.append(add_trigger("during", "shutdown", close))
    return closed
