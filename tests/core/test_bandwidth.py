"""Speed limits (core/bandwidth.py) and the alt schedule (core/alt_speed.py), on a fake clock."""

from __future__ import annotations

import datetime as dt

import pytest
from twisted.internet.task import Clock

from btd.core.alt_speed import AltSchedule, AltSpeed
from btd.core.bandwidth import TICK, Bandwidth, Channel
from btd.core.scheduler import Scheduler

READ = 64 * 1024


class Pipe:
    """A peer that moves ``READ`` bytes whenever it is not held and the clock steps."""

    def __init__(self) -> None:
        self.moved = 0
        self.holds = 0
        self.channel: Channel | None = None

    def hold(self) -> None:
        self.holds += 1

    def release(self) -> None:
        pass

    def step(self) -> None:
        ch = self.channel
        assert ch is not None
        if not ch.held:
            self.moved += READ
            if ch.limiter.on:
                ch.spend(READ)


def setup() -> tuple[Clock, Scheduler, Bandwidth]:
    clock = Clock()
    scheduler = Scheduler(clock)
    return clock, scheduler, Bandwidth(scheduler)


def pipes(bw: Bandwidth, shares: list, n: int) -> list[Pipe]:
    out = []
    for i in range(n):
        p = Pipe()
        p.channel = shares[i % len(shares)].channel(p.hold, p.release)
        out.append(p)
    return out


def run(clock: Clock, ps: list[Pipe], seconds: float, step: float = 0.01) -> None:
    for _ in range(round(seconds / step)):
        for p in ps:
            p.step()
        clock.advance(step)


def test_global_rate_holds() -> None:
    clock, _, bw = setup()
    t = bw.torrent()
    ps = pipes(bw, [t.down], 3)
    bw.set_global(1_000_000, 0)
    run(clock, ps, 1)  # warm-up
    before = sum(p.moved for p in ps)
    run(clock, ps, 10)
    rate = (sum(p.moved for p in ps) - before) / 10
    assert rate == pytest.approx(1_000_000, rel=0.05)


def test_torrent_rate_holds_under_a_looser_global_one() -> None:
    clock, _, bw = setup()
    t = bw.torrent()
    ps = pipes(bw, [t.up], 2)
    bw.set_global(0, 5_000_000)
    t.set(up=500_000)
    run(clock, ps, 1)
    before = sum(p.moved for p in ps)
    run(clock, ps, 10)
    assert (sum(p.moved for p in ps) - before) / 10 == pytest.approx(500_000, rel=0.05)


def test_two_peers_share_fairly() -> None:
    clock, _, bw = setup()
    t = bw.torrent()
    ps = pipes(bw, [t.down], 2)
    t.set(down=800_000)
    run(clock, ps, 10)
    a, b = ps[0].moved, ps[1].moved
    assert a == pytest.approx(b, rel=0.1)
    assert a + b == pytest.approx(8_000_000, rel=0.05)


def test_torrents_share_the_global_limit_equally() -> None:
    """One torrent with 4 peers, one with 1: each gets half of the session's limit."""
    clock, _, bw = setup()
    t1, t2 = bw.torrent(), bw.torrent()
    many = pipes(bw, [t1.down], 4)
    one = pipes(bw, [t2.down], 1)
    bw.set_global(1_000_000, 0)
    run(clock, many + one, 10)
    assert sum(p.moved for p in many) == pytest.approx(one[0].moved, rel=0.15)


def test_leftovers_of_a_tighter_torrent_go_to_the_others() -> None:
    clock, _, bw = setup()
    slow, fast = bw.torrent(), bw.torrent()
    slow.set(down=100_000)
    a = pipes(bw, [slow.down], 1)
    b = pipes(bw, [fast.down], 1)
    bw.set_global(1_000_000, 0)
    run(clock, a + b, 1)
    before = (a[0].moved, b[0].moved)
    run(clock, a + b, 10)
    assert (a[0].moved - before[0]) / 10 == pytest.approx(100_000, rel=0.1)
    assert (b[0].moved - before[1]) / 10 == pytest.approx(900_000, rel=0.1)


def test_live_change() -> None:
    clock, _, bw = setup()
    t = bw.torrent()
    ps = pipes(bw, [t.down], 2)
    bw.set_global(1_000_000, 0)
    run(clock, ps, 2)
    bw.set_global(3_000_000, 0)
    run(clock, ps, 1)
    before = sum(p.moved for p in ps)
    run(clock, ps, 5)
    assert (sum(p.moved for p in ps) - before) / 5 == pytest.approx(3_000_000, rel=0.05)
    bw.set_global(0, 0)  # lifted: held channels are released at the next grant
    clock.advance(TICK)
    assert not any(p.channel.held for p in ps)
    assert not bw.down.on
    assert not bw.ticking


def test_unlimited_does_nothing() -> None:
    """No limit: ``on`` is False, channels are never held and no timer runs."""
    clock, scheduler, bw = setup()
    t = bw.torrent()
    ps = pipes(bw, [t.down, t.up], 4)
    run(clock, ps, 1)
    assert not bw.down.on and not bw.up.on
    assert all(p.holds == 0 for p in ps)
    assert bw.ticks == 0 and len(scheduler) == 0
    assert bw.down.granted == 0


def test_a_limit_on_another_torrent_does_not_hold_this_one() -> None:
    clock, _, bw = setup()
    limited, free = bw.torrent(), bw.torrent()
    limited.set(down=10_000)
    ps = pipes(bw, [free.down], 1)
    run(clock, ps, 1)
    assert bw.down.on and ps[0].holds == 0 and ps[0].moved == 100 * READ


def test_timer_runs_only_while_a_channel_waits() -> None:
    clock, _, bw = setup()
    t = bw.torrent()
    (p,) = pipes(bw, [t.down], 1)
    bw.set_global(1_000_000, 0)
    assert not bw.ticking
    p.step()  # spends: held, waiting
    assert p.channel.held and bw.ticking
    clock.advance(1)  # granted, released; nothing else moved: the timer stops
    assert not p.channel.held and not bw.ticking
    ticks = bw.ticks
    clock.advance(60)
    assert bw.ticks == ticks


def test_a_closed_channel_stops_waiting_and_a_closed_torrent_stops_counting() -> None:
    clock, _, bw = setup()
    t = bw.torrent()
    (p,) = pipes(bw, [t.up], 1)
    t.set(up=1000)
    p.step()
    assert p.channel in bw.up.waiting
    p.channel.close()
    assert not bw.up.waiting
    t.close()
    assert not bw.up.on


# -- the alt schedule -----------------------------------------------------------------------
UTC = dt.UTC
MONDAY = dt.datetime(2024, 1, 1, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
HOUR = 3600.0


def test_schedule_parse_and_plain() -> None:
    s = AltSchedule.parse({"days": ["mon", "Friday", "weekends"], "start": "22:00", "end": "7:30"})
    assert s is not None
    assert s.plain() == {"days": ["mon", "fri", "sat", "sun"], "start": "22:00", "end": "07:30"}
    assert AltSchedule.parse(None) is None
    assert AltSchedule.parse({"start": "01:00", "end": "02:00"}).days == frozenset(range(7))
    for bad, word in [
        ({"start": "22:00"}, "end"),
        ({"start": "25:00", "end": "01:00"}, "start"),
        ({"start": "01:00", "end": "01:00"}, "differ"),
        ({"start": "01:00", "end": "02:00", "days": ["xyz"]}, "xyz"),
        ({"start": "01:00", "end": "02:00", "when": 1}, "when"),
        ({"start": 100, "end": "02:00"}, "start"),
        ("22:00-07:00", "mapping"),
    ]:
        with pytest.raises(ValueError, match=word):
            AltSchedule.parse(bad)


def test_schedule_window_over_midnight() -> None:
    s = AltSchedule.parse({"days": ["mon"], "start": "22:00", "end": "07:00"})
    assert not s.active_at(MONDAY + 21 * HOUR, UTC)
    assert s.active_at(MONDAY + 22 * HOUR, UTC)
    assert s.active_at(MONDAY + 30 * HOUR, UTC)  # Tuesday 06:00
    assert not s.active_at(MONDAY + 31 * HOUR, UTC)  # Tuesday 07:00
    assert not s.active_at(MONDAY - 1 * HOUR, UTC)  # Sunday 23:00: Sunday is not listed
    assert s.next_edge(MONDAY, UTC) == MONDAY + 22 * HOUR
    assert s.next_edge(MONDAY + 22 * HOUR, UTC) == MONDAY + 31 * HOUR
    assert s.next_edge(MONDAY + 31 * HOUR, UTC) == MONDAY + (7 * 24 + 22) * HOUR


def test_edges_flip_alt_with_one_timer_and_a_toggle_holds_until_the_next() -> None:
    clock = Clock()
    clock.advance(MONDAY)
    scheduler = Scheduler(clock)
    flips: list[bool] = []
    alt = AltSpeed(scheduler, flips.append, tz=UTC)
    alt.set_schedule(AltSchedule.parse({"days": ["all"], "start": "08:00", "end": "18:00"}))
    assert not alt.on and alt.next_edge == MONDAY + 8 * HOUR
    assert len(scheduler) == 1  # one timer, not a poll
    clock.advance(8 * HOUR)
    assert alt.on and flips == [True] and alt.next_edge == MONDAY + 18 * HOUR
    alt.toggle(False)  # by hand, inside the window: holds until its end...
    clock.advance(5 * HOUR)
    assert not alt.on
    clock.advance(5 * HOUR)  # 18:00: the end edge (off, as it is)
    assert not alt.on
    alt.toggle(True)  # by hand, outside the window: holds until the next start...
    clock.advance(13 * HOUR)  # Tuesday 07:00
    assert alt.on
    clock.advance(1 * HOUR)  # 08:00: the start edge (on)
    assert alt.on
    clock.advance(10 * HOUR)  # 18:00: off
    assert not alt.on
    assert flips == [True, False, True, False]
    assert scheduler.fired == 4 and len(scheduler) == 1
    alt.set_schedule(None)
    assert len(scheduler) == 0 and alt.next_edge is None


def test_a_schedule_set_inside_its_window_turns_alt_on_now() -> None:
    clock = Clock()
    clock.advance(MONDAY + 12 * HOUR)
    flips: list[bool] = []
    alt = AltSpeed(Scheduler(clock), flips.append, tz=UTC)
    alt.set_schedule(AltSchedule.parse({"start": "08:00", "end": "18:00"}))
    assert alt.on and flips == [True]
