"""Scheduler: the session's timers as one heap of deadlines behind ONE clock call.

Ten thousand torrents with a timer each would wake the reactor ten thousand times for
nothing; here every timed duty (a torrent's tick, a tracker's next announce, a back-off)
is an entry in one heap, and the reactor holds a single ``callLater`` armed for the
earliest deadline. Adding, cancelling and moving an entry cost O(log n); a cancelled
entry stays in the heap until it surfaces or until dead entries outnumber live ones,
when the heap is rebuilt.

No Twisted import: the clock (``seconds()`` and ``callLater()``, a reactor or a
``task.Clock``) is given, so tests drive it by hand.
"""

from __future__ import annotations

import heapq
import itertools
import sys
import traceback
from collections.abc import Callable
from typing import Any


def _print_error(exc: BaseException) -> None:
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


class Timer:
    """One scheduled call; ``cancel()`` and ``reschedule()`` it through its handle."""

    __slots__ = ("_scheduler", "when", "fn", "args", "_seq")

    def __init__(
        self, scheduler: Scheduler, when: float, fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        self._scheduler = scheduler
        self.when = when
        self.fn = fn
        self.args = args
        self._seq = -1  # the heap entry that is current; -1: not scheduled

    @property
    def active(self) -> bool:
        """Scheduled and not yet run or cancelled."""
        return self._seq >= 0

    def cancel(self) -> None:
        """Drop it (nothing happens if it already ran or was cancelled)."""
        self._scheduler._drop(self)

    def reschedule(self, when: float) -> None:
        """Move it to ``when`` (absolute, clock seconds); schedules it again if it ran."""
        self._scheduler._push(self, when)

    def delay(self, seconds: float) -> None:
        """Move it to ``seconds`` from now."""
        self._scheduler._push(self, self._scheduler.now() + seconds)


class Ticker:
    """A periodic duty armed only while its owner has work: ``wake()`` schedules the next run
    ``period`` from now unless one is pending. Its Timer is made when first needed, so an owner
    that never has work (an idle torrent among thousands) holds no Timer at all."""

    __slots__ = ("_scheduler", "_fn", "_period", "_timer")

    def __init__(self, scheduler: Scheduler, fn: Callable[[], Any], period: float) -> None:
        self._scheduler = scheduler
        self._fn = fn
        self._period = period
        self._timer: Timer | None = None

    def wake(self) -> None:
        if self._timer is None:
            self._timer = self._scheduler.timer(self._fn)
        if not self._timer.active:
            self._timer.delay(self._period)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    @property
    def active(self) -> bool:
        """A run is scheduled."""
        return self._timer is not None and self._timer.active


class Scheduler:
    """A heap of deadlines driven by one ``clock.callLater`` re-armed to the earliest.

    ``on_error`` receives the exception of a call that raised (the others still run).
    """

    def __init__(
        self, clock: Any, *, on_error: Callable[[BaseException], None] = _print_error
    ) -> None:
        self._clock = clock
        self._on_error = on_error
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._live = 0
        self._armed: Any = None  # the clock's IDelayedCall
        self._armed_at: float | None = None
        self.fired = 0  # calls run so far (for tests and measurements)

    def now(self) -> float:
        return float(self._clock.seconds())

    def __len__(self) -> int:
        """Live (scheduled, not cancelled) entries."""
        return self._live

    @property
    def next_deadline(self) -> float | None:
        self._skip_dead()
        return self._heap[0][0] if self._heap else None

    def call_at(self, when: float, fn: Callable[..., Any], *args: Any) -> Timer:
        timer = Timer(self, when, fn, args)
        self._push(timer, when)
        return timer

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        return self.call_at(self.now() + max(0.0, delay), fn, *args)

    def timer(self, fn: Callable[..., Any], *args: Any) -> Timer:
        """A handle that is not scheduled yet (``reschedule``/``delay`` arms it)."""
        return Timer(self, 0.0, fn, args)

    def stop(self) -> None:
        """Cancel everything (shutdown)."""
        for _, _, timer in self._heap:
            timer._seq = -1
        self._heap.clear()
        self._live = 0
        self._disarm()

    # -- the heap --------------------------------------------------------------------------
    def _push(self, timer: Timer, when: float) -> None:
        if timer._seq < 0:
            self._live += 1
        seq = next(self._seq)
        timer._seq, timer.when = seq, when
        heapq.heappush(self._heap, (when, seq, timer))
        self._compact()
        if self._armed_at is None or when < self._armed_at:
            self._arm(when)

    def _drop(self, timer: Timer) -> None:
        if timer._seq < 0:
            return
        timer._seq = -1
        self._live -= 1
        self._compact()
        if self._live == 0:
            self._heap.clear()
            self._disarm()

    def _compact(self) -> None:
        if len(self._heap) > 64 and len(self._heap) > 2 * self._live:
            self._heap = [e for e in self._heap if e[2]._seq == e[1]]
            heapq.heapify(self._heap)

    def _skip_dead(self) -> None:
        heap = self._heap
        while heap and heap[0][2]._seq != heap[0][1]:
            heapq.heappop(heap)

    # -- the one clock call ------------------------------------------------------------------
    def _disarm(self) -> None:
        if self._armed is not None and self._armed.active():
            self._armed.cancel()
        self._armed = self._armed_at = None

    def _arm(self, when: float) -> None:
        self._disarm()
        self._armed_at = when
        self._armed = self._clock.callLater(max(0.0, when - self.now()), self._fire)

    def _fire(self) -> None:
        self._armed = self._armed_at = None
        now = self.now()
        heap = self._heap
        due: list[Timer] = []
        while heap and heap[0][0] <= now:
            _, seq, timer = heapq.heappop(heap)
            if timer._seq == seq:
                timer._seq = -1
                self._live -= 1
                due.append(timer)
        for timer in due:  # entries added meanwhile, even for "now", wait for the next round
            self.fired += 1
            try:
                timer.fn(*timer.args)
            except Exception as exc:
                self._on_error(exc)
        self._skip_dead()  # the calls may have rebuilt the heap: read it again
        # A call above may have armed the clock for its own, later, deadline (the clock was
        # unarmed while they ran): re-arm for the earliest entry, or it waits for that one.
        if self._heap and (self._armed_at is None or self._heap[0][0] < self._armed_at):
            self._arm(self._heap[0][0])


class Pacer:
    """Spaces out a kind of work (first announces): ``delay()`` is how long the next one
    should wait so that at most ``rate`` start per second after a burst of ``burst``.

    A few torrents added by hand start at once; ten thousand loaded at start-up (or added
    in a batch) announce over ``N / rate`` seconds instead of all in the first second.
    """

    def __init__(self, now: Callable[[], float], rate: float, burst: int) -> None:
        self._now = now
        self._gap = 1.0 / rate
        self._slack = max(0, burst - 1) * self._gap
        self._next = -1e18  # when the next slot is free (clock seconds)

    def delay(self) -> float:
        now = self._now()
        start = max(now - self._slack, self._next)
        self._next = start + self._gap
        return max(0.0, start - now)
