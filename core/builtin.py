"""The core's own hook implementations, registered as the plugin named ``core``.

They answer what the core provides itself (HTTP and HTTPS trackers). The service builds and
registers them, because only it knows the reactor; ``trylast`` makes every enabled plugin
that answers the same hook win over them, whatever the registration order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from btd.core.hookspecs import hookimpl
from btd.core.version import __version__

if TYPE_CHECKING:
    from btd.core.tracker.announcer import TrackerClient


class CorePlugin:
    """Default answers that are part of the core, not of any optional plugin."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self._http: TrackerClient | None = None

    @hookimpl(trylast=True)
    def btd_tracker_client(self, url: str) -> TrackerClient | None:
        if not url.startswith(("http://", "https://")):
            return None
        if self._http is None:
            from btd.core.tracker.http import HttpTrackerClient

            self._http = HttpTrackerClient(self.reactor, user_agent=f"btd/{__version__}")
        return self._http
