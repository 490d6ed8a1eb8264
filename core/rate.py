"""Transfer rates over a sliding window, cheap enough to call once per block."""

from __future__ import annotations

from collections.abc import Callable


class RateMeter:
    """Bytes per second over the last ``window`` seconds, in whole-second buckets."""

    __slots__ = ("_now", "_window", "_buckets", "_second", "total")

    def __init__(self, now: Callable[[], float], window: int = 5) -> None:
        self._now = now
        self._window = window
        self._buckets = [0] * window
        self._second = int(now())
        self.total = 0

    def _advance(self, second: int) -> None:
        gap = second - self._second
        if gap <= 0:
            return
        if gap >= self._window:
            self._buckets = [0] * self._window
        else:
            for s in range(self._second + 1, second + 1):
                self._buckets[s % self._window] = 0
        self._second = second

    def add(self, n: int, now: float | None = None) -> None:
        """Count ``n`` bytes (``now``: the caller's clock reading, to save a second one)."""
        second = int(self._now() if now is None else now)
        if second != self._second:
            self._advance(second)
        self._buckets[second % self._window] += n
        self.total += n

    def rate(self) -> float:
        """Average over the full seconds of the window plus the current partial second."""
        now = self._now()
        self._advance(int(now))
        elapsed = (self._window - 1) + (now - int(now))
        return sum(self._buckets) / max(elapsed, 1.0)
