"""Seeding goals: stop seeding at a ratio, after a seeding time, or after an idle time.

Session keys ``ratio_limit``, ``seeding_time_limit`` and ``idle_seeding_limit`` (minutes;
-1 = unlimited) apply to every torrent whose own setting is null ("use the global
value"); a torrent's own -1 is unlimited, any other value its own goal. When one is
reached, ``seeding_goal_action`` (``pause``, ``remove``, ``remove_data``) is taken and a
``seeding_goal_reached`` event names the goal. The ratio is uploaded / downloaded, or
uploaded / size for a torrent that downloaded nothing (Transmission's rule).

Cheap: ONE timer on the session's scheduler. It looks only at seeding torrents that had
traffic since the last look (``touch``, from the ticks torrents with peers make anyway),
at most every CHECK_EVERY seconds (again until a look finds it quiet), and at a heap of deadlines for the time and idle goals
(a torrent with no peers has no other way to reach a goal). Seeding and idle time live in
a ``SeedClock`` per torrent: two numbers and two times, updated at state changes and
looks, never per block; they are stored with the torrent's options (resume data).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from btd.core.torrent_state import TorrentState

S = TorrentState
CHECK_EVERY = 5.0  # seconds between looks at the torrents that uploaded
GOALS = ("ratio", "seeding_time", "idle")
_OPTION = {
    "ratio": "ratio_limit",
    "seeding_time": "seeding_time_limit",
    "idle": "idle_seeding_limit",
}


class SeedClock:
    """How long a torrent has seeded, and been idle while seeding (seconds)."""

    __slots__ = ("seeded", "idle_before", "since", "active_at", "uploaded_seen")

    def __init__(self, seeded: float = 0.0, idle: float = 0.0) -> None:
        self.seeded = seeded  # before the current stint
        self.idle_before = idle  # idle seconds when the current stint began
        self.since: float | None = None  # the current stint began (clock seconds)
        self.active_at: float | None = None  # the last upload seen in this stint
        self.uploaded_seen = 0

    def seeding_time(self, now: float) -> float:
        return self.seeded + (now - self.since if self.since is not None else 0.0)

    def idle_time(self, now: float) -> float:
        if self.since is None:
            return self.idle_before
        if self.active_at is not None:
            return now - self.active_at
        return self.idle_before + now - self.since

    def start(self, now: float, uploaded: int) -> None:
        if self.since is None:
            self.since, self.active_at, self.uploaded_seen = now, None, uploaded

    def stop(self, now: float) -> None:
        if self.since is not None:
            self.seeded, self.idle_before = self.seeding_time(now), self.idle_time(now)
            self.since = self.active_at = None

    def saw(self, now: float, uploaded: int) -> None:
        """A look: an upload since the last one ends the idle time."""
        if uploaded != self.uploaded_seen:
            self.uploaded_seen = uploaded
            if self.since is not None:
                self.active_at = now

    def as_json(self, now: float) -> dict[str, float]:
        return {
            "seeding_time": round(self.seeding_time(now), 1),
            "idle_time": round(self.idle_time(now), 1),
        }

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> SeedClock:
        def seconds(name: str) -> float:
            value = stored.get(name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
            return float(value) if ok else 0.0

        return cls(seconds("seeding_time"), seconds("idle_time"))


def effective(own: float | None, session_value: float) -> float | None:
    """A goal's limit: the torrent's own (-1 = unlimited), else the session's; None = none."""
    value = session_value if own is None else own
    return None if value < 0 else value


def seed_ratio(torrent: Any) -> float:
    base = torrent.downloaded or torrent.meta.total_length
    return torrent.uploaded / base if base else 0.0


class SeedingGoals:
    """Watches seeding torrents for their goals; ``act(torrent, goal, limit, value, action)``
    is called once per reach (the session emits the event and acts)."""

    def __init__(
        self,
        scheduler: Any,
        cfg: Callable[[], Any],
        act: Callable[[Any, str, float, float, str], None],
    ) -> None:
        self._scheduler = scheduler
        self._cfg = cfg
        self._act = act
        self._seeding: dict[bytes, Any] = {}
        self._dirty: dict[bytes, None] = {}
        self._heap: list[tuple[float, int, bytes]] = []
        self._due: dict[bytes, int] = {}  # the current heap entry of each torrent
        self._seq = itertools.count()
        self._timer = scheduler.timer(self._fire)
        self.looks = 0  # torrents looked at (tests, measurements)
        self._stopped = False

    def __len__(self) -> int:
        return len(self._seeding)

    # -- what the session reports ---------------------------------------------------------------
    def state_changed(self, torrent: Any, old: str, new: str) -> None:
        now = self._scheduler.now()
        h = torrent.info_hash
        if new is S.SEEDING:
            torrent.seed_clock.start(now, torrent.uploaded)
            self._seeding[h] = torrent
            self._dirty[h] = None
            self._arm(now)  # a goal may be reached already
        elif old is S.SEEDING:
            torrent.seed_clock.stop(now)
            self.forget(torrent)

    def forget(self, torrent: Any) -> None:
        h = torrent.info_hash
        if self._seeding.get(h) is torrent:
            del self._seeding[h]
            self._dirty.pop(h, None)
            self._due.pop(h, None)

    def touch(self, torrent: Any) -> None:
        """The torrent had traffic (its tick): look at it within CHECK_EVERY seconds."""
        h = torrent.info_hash
        if h in self._seeding and h not in self._dirty:
            self._dirty[h] = None
            self._arm(self._scheduler.now() + CHECK_EVERY)

    def changed(self, torrent: Any = None) -> None:
        """Limits changed (the session's, or one torrent's): look again now."""
        targets = self._seeding if torrent is None else {torrent.info_hash: torrent}
        for h in targets:
            if h in self._seeding:
                self._dirty[h] = None
        if self._dirty:
            self._arm(self._scheduler.now())

    # -- the one timer ----------------------------------------------------------------------
    def _arm(self, when: float) -> None:
        if self._stopped:
            return
        if not self._timer.active or self._timer.when > when:
            self._timer.reschedule(when)

    def _fire(self) -> None:
        now = self._scheduler.now()
        dirty, self._dirty = self._dirty, {}
        look = list(dirty)
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, h = heapq.heappop(heap)
            if self._due.get(h) == seq:
                del self._due[h]
                look.append(h)
        for h in look:
            torrent = self._seeding.get(h)
            if torrent is not None and torrent.state is S.SEEDING:
                self._look(torrent, now)
        if len(heap) > 64 and len(heap) > 2 * len(self._due):
            self._heap = [e for e in heap if self._due.get(e[2]) == e[1]]
            heapq.heapify(self._heap)
        if self._dirty:
            self._arm(now + CHECK_EVERY)
        elif self._heap:
            self._arm(self._heap[0][0])

    def limits(self, torrent: Any) -> dict[str, float | None]:
        """Each goal's limit for this torrent (minutes for the times; None = none)."""
        cfg, options = self._cfg(), torrent.options
        return {goal: effective(getattr(options, _OPTION[goal]), getattr(cfg, _OPTION[goal]))
                for goal in GOALS}  # fmt: skip

    def _look(self, torrent: Any, now: float) -> None:
        self.looks += 1
        clock = torrent.seed_clock
        moved = torrent.uploaded != clock.uploaded_seen
        clock.saw(now, torrent.uploaded)
        limits = self.limits(torrent)
        values = {
            "ratio": seed_ratio(torrent),
            "seeding_time": clock.seeding_time(now) / 60,
            "idle": clock.idle_time(now) / 60,
        }
        for goal in GOALS:
            limit = limits[goal]
            if limit is not None and values[goal] >= limit:
                self.forget(torrent)
                self._act(torrent, goal, limit, values[goal], self._cfg().seeding_goal_action)
                return
        deadlines = []
        if limits["seeding_time"] is not None:
            deadlines.append(now + (limits["seeding_time"] - values["seeding_time"]) * 60)
        if limits["idle"] is not None:
            deadlines.append(now + (limits["idle"] - values["idle"]) * 60)
        h = torrent.info_hash
        if moved:  # still uploading: look again until a look sees it quiet
            self._dirty[h] = None
        if deadlines:
            seq = next(self._seq)
            self._due[h] = seq
            heapq.heappush(self._heap, (min(deadlines), seq, h))
        else:
            self._due.pop(h, None)

    def stop(self) -> None:
        self._stopped = True
        self._timer.cancel()
