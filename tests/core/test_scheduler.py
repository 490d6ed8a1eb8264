"""The session-wide Scheduler: one clock call for any number of deadlines."""

from __future__ import annotations

import random

import pytest
from twisted.internet.task import Clock

from btd.core.scheduler import Pacer, Scheduler, Ticker


def test_calls_run_in_deadline_order_with_one_clock_call() -> None:
    clock = Clock()
    s = Scheduler(clock)
    ran: list[str] = []
    s.call_later(3, ran.append, "c")
    s.call_later(1, ran.append, "a")
    s.call_later(2, ran.append, "b")
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(1)
    assert ran == ["a"]
    clock.advance(5)
    assert ran == ["a", "b", "c"]
    assert clock.getDelayedCalls() == [] and len(s) == 0


def test_cancel_and_reschedule() -> None:
    clock = Clock()
    s = Scheduler(clock)
    ran: list[int] = []
    t1 = s.call_later(1, ran.append, 1)
    t2 = s.call_later(2, ran.append, 2)
    t1.cancel()
    assert not t1.active and t2.active and len(s) == 1
    t2.reschedule(5)
    clock.advance(4)
    assert ran == []
    t1.delay(0.5)  # a cancelled timer can be armed again
    clock.advance(0.5)
    assert ran == [1]
    clock.advance(0.5)
    assert ran == [1, 2]
    t2.cancel()  # after it ran: nothing happens
    assert len(s) == 0


def test_earlier_entry_rearms_the_clock_call() -> None:
    clock = Clock()
    s = Scheduler(clock)
    ran: list[int] = []
    s.call_later(10, ran.append, 10)
    s.call_later(1, ran.append, 1)
    (call,) = clock.getDelayedCalls()
    assert call.getTime() == 1
    clock.advance(1)
    (call,) = clock.getDelayedCalls()
    assert call.getTime() == 10 and ran == [1]


def test_nothing_armed_when_everything_is_cancelled() -> None:
    clock = Clock()
    s = Scheduler(clock)
    timers = [s.call_later(i + 1, lambda: None) for i in range(100)]
    for t in timers:
        t.cancel()
    assert clock.getDelayedCalls() == [] and s.next_deadline is None


def test_a_call_that_schedules_for_now_runs_in_the_next_round() -> None:
    clock = Clock()
    s = Scheduler(clock)
    ran: list[int] = []

    def again() -> None:
        ran.append(len(ran))
        if len(ran) < 3:
            s.call_later(0, again)

    rounds = []
    real_fire = s._fire
    s._fire = lambda: (rounds.append(len(ran)), real_fire())  # type: ignore[method-assign]
    s.call_later(0, again)
    clock.advance(0)
    assert ran == [0, 1, 2] and len(rounds) == 3  # one clock call per round, no recursion


def test_a_raising_call_does_not_stop_the_others() -> None:
    clock = Clock()
    errors: list[BaseException] = []
    s = Scheduler(clock, on_error=errors.append)
    ran: list[int] = []
    s.call_later(1, lambda: 1 / 0)
    s.call_later(1, ran.append, 1)
    clock.advance(1)
    assert ran == [1] and isinstance(errors[0], ZeroDivisionError)


def test_periodic_timer_through_its_handle() -> None:
    clock = Clock()
    s = Scheduler(clock)
    count = [0]

    def tick() -> None:
        count[0] += 1
        timer.delay(1)

    timer = s.timer(tick)
    assert not timer.active and clock.getDelayedCalls() == []
    timer.delay(1)
    clock.pump([1] * 10)
    assert count[0] == 10
    timer.cancel()
    clock.pump([1] * 10)
    assert count[0] == 10 and clock.getDelayedCalls() == []


def test_many_thousands_of_entries_fire_in_order_and_stay_compact() -> None:
    clock = Clock()
    s = Scheduler(clock)
    rng = random.Random(7)
    fired: list[float] = []
    timers = []
    for i in range(20_000):
        timers.append(s.call_at(rng.uniform(0, 1000), lambda i=i: fired.append(timers[i].when)))
    # move half of them, cancel a quarter: the heap does not keep every dead entry
    for t in timers[:10_000]:
        t.reschedule(t.when + 500)
    for t in timers[10_000:15_000]:
        t.cancel()
    assert len(s) == 15_000
    assert len(s._heap) <= 2 * len(s) + 64
    assert len(clock.getDelayedCalls()) == 1
    clock.pump([10] * 200)
    assert len(fired) == 15_000 and fired == sorted(fired)
    assert min(t.when for t in timers[:10_000]) >= 500  # the moved ones ran at their new time
    assert clock.getDelayedCalls() == []


def test_idle_entries_cost_one_wakeup_per_deadline_not_per_entry() -> None:
    clock = Clock()
    s = Scheduler(clock)
    for i in range(10_000):
        s.call_at(1800 + i % 10, lambda: None)  # 10 distinct deadlines
    wakeups = 0
    while clock.getDelayedCalls():
        (call,) = clock.getDelayedCalls()
        clock.advance(call.getTime() - clock.seconds())
        wakeups += 1
    assert wakeups == 10 and s.fired == 10_000


def test_stop_cancels_everything() -> None:
    clock = Clock()
    s = Scheduler(clock)
    ran: list[int] = []
    t = s.call_later(1, ran.append, 1)
    s.stop()
    clock.advance(2)
    assert ran == [] and not t.active and clock.getDelayedCalls() == []


def test_pacer_lets_a_burst_through_then_spaces_the_rest() -> None:
    clock = Clock()
    pacer = Pacer(clock.seconds, rate=10, burst=5)
    delays = [pacer.delay() for _ in range(25)]
    assert delays[:5] == [0.0] * 5
    assert delays[-1] == pytest.approx(2.0)  # 20 after the burst, 10 a second
    assert delays == sorted(delays)
    clock.advance(100)  # idle long enough: a new burst is allowed
    assert pacer.delay() == 0.0


def test_a_ticker_runs_once_per_wake_and_holds_no_timer_until_woken() -> None:
    clock = Clock()
    scheduler = Scheduler(clock)
    runs: list[float] = []
    ticker = Ticker(scheduler, lambda: runs.append(clock.seconds()), 1.0)
    assert not ticker.active and len(scheduler) == 0
    ticker.wake()
    ticker.wake()  # already pending: not twice
    assert ticker.active and len(scheduler) == 1
    clock.advance(1)
    assert runs == [1.0] and not ticker.active
    clock.advance(5)
    assert runs == [1.0]  # not woken again: nothing runs
    ticker.wake()
    ticker.cancel()
    clock.advance(5)
    assert runs == [1.0] and not ticker.active


def test_a_call_scheduling_something_later_does_not_delay_an_earlier_entry() -> None:
    """Found by the upload-limit test: a call that armed the clock for its own later
    deadline (here a torrent's next tick, 1 s on) kept an entry due sooner (a 0.1 s speed
    limit grant) waiting until then."""
    clock = Clock()
    s = Scheduler(clock)
    ran: list[tuple[str, float]] = []
    s.call_at(0.15, lambda: ran.append(("grant", clock.seconds())))  # pending, not due yet
    s.call_at(0.1, lambda: s.call_at(1.1, lambda: ran.append(("tick", clock.seconds()))))
    clock.advance(0.1)  # the first call runs and schedules its next one at 1.1
    clock.advance(0.05)
    assert [name for name, _ in ran] == ["grant"] and ran[0][1] == pytest.approx(0.15)
    clock.advance(1.0)
    assert [name for name, _ in ran] == ["grant", "tick"]
