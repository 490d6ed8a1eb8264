"""The core's own hook implementations, registered as the plugin named ``core``.

They answer what the core provides itself (HTTP and HTTPS trackers) and are registered
before every plugin, so an enabled plugin that answers the same hook wins over them.
"""

from __future__ import annotations

from typing import Any

from btd.core.plugin import hookimpl
from btd.core.version import __version__


class CorePlugin:
    """Default answers that are part of the core, not of any optional plugin."""

    def __init__(self) -> None:
        self.reactor: Any = None  # set by the service: only the daemon picks the reactor
        self._http: Any = None

    @hookimpl
    def btd_tracker_client(self, url: str) -> Any | None:
        if not url.startswith(("http://", "https://")) or self.reactor is None:
            return None
        if self._http is None:
            from btd.core.tracker.http import HttpTrackerClient

            self._http = HttpTrackerClient(self.reactor, user_agent=f"btd/{__version__}")
        return self._http
