"""The disk-space guard: downloads pause when their file system runs low, and go on when
there is room again (``session.min_free_space``, bytes; 0 = off).

Cheap by construction: the guard knows the downloading torrents from their state changes
(no scan over all torrents); ONE scheduler timer, every ``DISK_SPACE_INTERVAL`` seconds
while some torrent downloads or waits for room, statvfs's each distinct storage root of
theirs once (one pool job for all), and a torrent that starts downloading gets a round
at once. A torrent short of room goes to state ``paused`` with ``state_detail``
``disk full: N bytes free on PATH, below min_free_space (M)`` and the event ``disk_full``;
its own ``paused`` option stays false (a restart starts it, and the guard looks again).
When the free space is back at the minimum (or the guard is turned off) it is resumed,
with the event ``disk_space_ok``. Seeding torrents are never paused: they write nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.scheduler import Scheduler, Ticker
from btd.core.torrent_state import TorrentState

_log = Logger(namespace="btd.core.disk_space")
S = TorrentState

DISK_SPACE_INTERVAL = 10.0
DISK_FULL = "disk full"
"""How every guard pause's ``state_detail`` begins."""


def free_space(
    roots: Iterable[Path], statvfs: Callable[[Any], Any] = os.statvfs
) -> dict[Path, int]:
    """Blocking (the pool): bytes an unprivileged writer may still use under each root
    (the nearest existing folder above it when it is not made yet). A root that cannot
    be looked at is left out (the guard does not pause for what it cannot see)."""
    out: dict[Path, int] = {}
    for root in roots:
        path = Path(root)
        while not path.exists() and path.parent != path:
            path = path.parent
        try:
            st = statvfs(path)
        except OSError:
            continue
        out[root] = st.f_bavail * st.f_frsize
    return out


class DiskSpaceGuard:
    """Watches the downloading torrents' storage roots; pauses and resumes them.

    A torrent here has ``storage.save_path``, ``state``, ``options.paused``,
    ``hold(reason)`` (paused by the session, not the user) and ``resume()``.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        run_blocking: Callable[..., Any],
        min_free: Callable[[], int],
        emit: Callable[[Any, str, dict[str, Any]], None],
        *,
        statvfs: Callable[[Any], Any] = os.statvfs,
        interval: float = DISK_SPACE_INTERVAL,
    ) -> None:
        self._run = run_blocking
        self._min_free = min_free
        self._emit = emit
        self._statvfs = statvfs
        self._downloading: dict[Any, None] = {}
        self._held: dict[Any, None] = {}
        self._ticker = Ticker(scheduler, self._round, interval)
        self._soon = scheduler.timer(self._round)
        self._measuring = False
        self._again = False  # a round was asked for while one measured
        self.rounds = 0  # statvfs rounds run (tests, measurements)

    @property
    def held(self) -> list[Any]:
        """Torrents paused for want of room."""
        return list(self._held)

    def state_changed(self, torrent: Any, old: str, new: str) -> None:
        """The session's state hook: keeps the set of downloading torrents."""
        if new == S.DOWNLOADING:
            self._downloading[torrent] = None
            if self._min_free() > 0 and not self._soon.active:
                self._soon.delay(0)  # before it writes much: a round now
        elif old == S.DOWNLOADING:
            self._downloading.pop(torrent, None)
        if old == S.PAUSED and torrent in self._held:
            del self._held[torrent]  # resumed (by us or the user) or removed
        self.wake()

    def forget(self, torrent: Any) -> None:
        """A removed torrent."""
        self._downloading.pop(torrent, None)
        self._held.pop(torrent, None)

    def wake(self) -> None:
        """Keep the timer armed while there is something to watch (after a config change
        too: turning the guard off resumes the held torrents at the next round)."""
        if self._min_free() <= 0:  # off: no timer; the held ones go on now
            if self._held and not self._soon.active:
                self._soon.delay(0)
        elif self._downloading or self._held:
            self._ticker.wake()

    def _round(self) -> None:
        if self._measuring:
            self._again = True
            return
        minimum = self._min_free()
        if minimum <= 0:
            for torrent in list(self._held):
                self._release(torrent, None, 0)
            return
        roots = {t.storage.save_path for t in (*self._downloading, *self._held)}
        if not roots:
            return
        self.rounds += 1
        self._measuring = True
        d = self._run(free_space, sorted(roots), self._statvfs)
        d.addCallback(self._measured)
        d.addErrback(lambda f: _log.failure("measuring free space failed", f))
        d.addBoth(self._rearm)

    def _rearm(self, result: Any) -> None:
        self._measuring = False
        if self._again:
            self._again = False
            self._soon.delay(0)
        self.wake()
        if isinstance(result, Failure):
            return None
        return result

    def _measured(self, free: dict[Path, int]) -> None:
        minimum = self._min_free()
        if minimum <= 0:
            return self._round()
        for torrent in list(self._downloading):
            root = torrent.storage.save_path
            if root in free and free[root] < minimum and torrent.state == S.DOWNLOADING:
                self._hold(torrent, root, free[root], minimum)
        for torrent in list(self._held):
            root = torrent.storage.save_path
            if free.get(root, minimum) >= minimum:
                self._release(torrent, root, free.get(root, 0))
        return None

    def _hold(self, torrent: Any, root: Path, free: int, minimum: int) -> None:
        reason = f"{DISK_FULL}: {free} bytes free on {root}, below min_free_space ({minimum})"
        _log.warn("pausing {label}: {reason}", label=torrent.label, reason=reason)
        torrent.hold(reason)
        self._held[torrent] = None
        self._emit(
            torrent, "disk_full", {"path": str(root), "free": free, "min_free_space": minimum}
        )

    def _release(self, torrent: Any, root: Path | None, free: int) -> None:
        del self._held[torrent]
        if torrent.state != S.PAUSED or torrent.options.paused:
            return  # the user paused or removed it meanwhile: theirs now
        _log.info("resuming {label}: there is room again", label=torrent.label)
        torrent.resume()
        self._emit(torrent, "disk_space_ok", {"path": str(root or ""), "free": free})
