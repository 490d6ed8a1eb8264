"""Which tracker URLs are down, shared by every torrent's Announcer (pure: no Twisted).

Kept apart from the Announcer because it is session-wide state, where an Announcer is one
torrent's: ten thousand torrents behind one dead tracker should cost one probe, not ten
thousand requests.
"""

from __future__ import annotations


class TrackerHealth:
    """What the session's announcers know about each tracker URL, shared between torrents.

    A URL that failed ``down_after`` times in a row (for any torrents) is down for a while
    (60 s, doubling up to an hour); meanwhile the other torrents do not ask it but wait
    until it is up again, so a dead tracker of ten thousand torrents costs one probe per
    back-off instead of ten thousand requests. Any answer from it resets it.
    """

    def __init__(self, *, down_after: int = 3, base: float = 60, cap: float = 3600) -> None:
        self._down_after = down_after
        self._base = base
        self._cap = cap
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}
        self.last_error: dict[str, str] = {}

    def down_until(self, url: str, now: float) -> float | None:
        """When ``url`` may be asked again (None: now). The first asker after a down period
        is its probe: the others wait for the probe's answer (at most ``base`` seconds)."""
        until = self._until.get(url)
        if until is None:
            return None
        if until > now:
            return until
        self._until[url] = now + self._base  # this caller probes; the rest wait for it
        return None

    def failed(self, url: str, now: float, error: str) -> None:
        failures = self._failures.get(url, 0) + 1
        self._failures[url] = failures
        self.last_error[url] = error
        if failures >= self._down_after:
            steps = failures - self._down_after
            self._until[url] = now + min(self._cap, self._base * 2 ** min(steps, 20))

    def ok(self, url: str) -> None:
        self._failures.pop(url, None)
        self._until.pop(url, None)
        self.last_error.pop(url, None)
