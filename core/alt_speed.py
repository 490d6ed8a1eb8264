"""The alternative ("turtle") speed limits: a weekly schedule and the manual toggle.

``AltSchedule`` is the ``session.alt_schedule`` value (pure): the days a window starts on
and its start and end in local wall-clock time (``end`` before ``start``: the window ends
the next day). ``AltSpeed`` keeps whether the alternative limits are on: a schedule turns
them on at each window's start and off at its end, with ONE scheduler timer armed for the
next edge (no polling); a manual toggle holds until the next edge, as in Transmission.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_GROUPS = {"all": DAYS, "weekdays": DAYS[:5], "weekends": DAYS[5:]}
SCHEDULE_KEYS = ("days", "start", "end")


def _minutes(value: Any, name: str) -> int:
    if not isinstance(value, str):
        raise ValueError(f'{name} must be a time such as "22:00"')
    hours, sep, minutes = value.strip().partition(":")
    ok = sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2
    if not ok or not (0 <= int(hours) <= 23 and 0 <= int(minutes) <= 59):
        raise ValueError(f"{name} must be a time HH:MM (00:00..23:59), got {value!r}")
    return int(hours) * 60 + int(minutes)


def _days(value: Any) -> frozenset[int]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("days must be a list of mon, tue, ... sun (or all, weekdays, weekends)")
    days: set[int] = set()
    for item in value:
        name = item.strip().lower()[:3] if isinstance(item, str) else None
        group = DAY_GROUPS.get(item.strip().lower()) if isinstance(item, str) else None
        if group is not None:
            days.update(DAYS.index(d) for d in group)
        elif name in DAYS:
            days.add(DAYS.index(name))
        else:
            raise ValueError(f"unknown day {item!r} (mon, tue, ... sun, all, weekdays, weekends)")
    return frozenset(days)


@dataclass(frozen=True)
class AltSchedule:
    """Windows starting on ``days`` (0 = Monday) at ``start``, ending at ``end`` (minutes
    after midnight, local time)."""

    days: frozenset[int]
    start: int
    end: int

    @classmethod
    def parse(cls, value: Any) -> AltSchedule | None:
        """From YAML or JSON: ``{days: [mon, ...], start: "22:00", end: "07:00"}``; null =
        no schedule. ValueError names what is wrong."""
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ValueError('must be a mapping {days: [...], start: "HH:MM", end: "HH:MM"}')
        unknown = [k for k in value if k not in SCHEDULE_KEYS]
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} (days, start, end)")
        for key in ("start", "end"):
            if key not in value:
                raise ValueError(f"{key} is missing")
        start, end = _minutes(value["start"], "start"), _minutes(value["end"], "end")
        if start == end:
            raise ValueError("start and end must differ")
        return cls(_days(value.get("days", "all")), start, end)

    def plain(self) -> dict[str, Any]:
        """As written in YAML and answered in JSON."""
        return {
            "days": [DAYS[d] for d in sorted(self.days)],
            "start": f"{self.start // 60:02d}:{self.start % 60:02d}",
            "end": f"{self.end // 60:02d}:{self.end % 60:02d}",
        }

    def windows(self, around: float, tz: dt.tzinfo | None) -> Iterable[tuple[float, float]]:
        """The windows (epoch seconds) that start from the day before ``around`` to a week
        after it: enough to know the state at ``around`` and its next edge."""
        today = dt.datetime.fromtimestamp(around, tz).date()
        for offset in range(-1, 8):
            day = today + dt.timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            end_day = day + dt.timedelta(days=1) if self.end < self.start else day
            yield _at(day, self.start, tz), _at(end_day, self.end, tz)

    def active_at(self, now: float, tz: dt.tzinfo | None = None) -> bool:
        return any(start <= now < end for start, end in self.windows(now, tz))

    def next_edge(self, now: float, tz: dt.tzinfo | None = None) -> float:
        """The first window start or end after ``now``."""
        return min(t for window in self.windows(now, tz) for t in window if t > now)


def _at(day: dt.date, minutes: int, tz: dt.tzinfo | None) -> float:
    """Epoch seconds of a local wall-clock time (``tz`` None: the system's zone)."""
    naive = dt.datetime.combine(day, dt.time(minutes // 60, minutes % 60))
    return (naive if tz is None else naive.replace(tzinfo=tz)).timestamp()


class AltSpeed:
    """Whether the alternative limits are on; ``changed(on)`` is told of every flip.

    ``scheduler`` is the session's (core/scheduler.py); its clock gives epoch seconds
    (the reactor's) that ``tz`` (None: the system's zone) turns into wall-clock time.
    """

    def __init__(
        self,
        scheduler: Any,
        changed: Callable[[bool], None],
        *,
        on: bool = False,
        tz: dt.tzinfo | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._changed = changed
        self._tz = tz
        self._timer = scheduler.timer(self._edge)
        self.schedule: AltSchedule | None = None
        self.on = on

    @property
    def next_edge(self) -> float | None:
        """When the schedule flips next (epoch seconds), None without a schedule."""
        return self._timer.when if self._timer.active else None

    def set_schedule(self, schedule: AltSchedule | None) -> None:
        """A new (or no) schedule: with one, the state follows it from now on."""
        self.schedule = schedule
        if schedule is None:
            self._timer.cancel()
            return
        self._edge()

    def toggle(self, on: bool) -> None:
        """The manual switch: holds until the schedule's next edge."""
        self._set(on)

    def _edge(self) -> None:
        schedule = self.schedule
        if schedule is None:
            return
        now = self._scheduler.now()
        self._timer.reschedule(schedule.next_edge(now, self._tz))
        self._set(schedule.active_at(now, self._tz))

    def _set(self, on: bool) -> None:
        if on != self.on:
            self.on = on
            self._changed(on)
