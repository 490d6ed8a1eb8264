"""LEDBAT and the retransmission timer: the rules alone, then whole transfers on a simulated
path whose delay and bottleneck are known, so the expected window and rate are too."""

from __future__ import annotations

import pytest
from utp_link import Link

from btd.core.limits import UTP_RECV_WINDOW, UTP_REORDER_PACKETS
from btd.plugins.utp.connection import PACKET_SIZE
from btd.plugins.utp.ledbat import (
    BASE_HISTORY_S,
    GAIN,
    INITIAL_TIMEOUT,
    MIN_TIMEOUT,
    TARGET_DELAY_US,
    DelayHistory,
    Ledbat,
    RttTimer,
    wrap_diff,
)


def _steady(queueing_us: int) -> Ledbat:
    cc = Ledbat(1000)
    cc.slow_start = False
    cc.cwnd = 50_000
    cc.on_delay_sample(20_000, 0.0)  # the base
    cc.on_delay_sample(20_000 + queueing_us, 1.0)
    for t in (2.0, 3.0):
        cc.on_delay_sample(20_000 + queueing_us, t)
    return cc


@pytest.mark.parametrize(
    ("queueing_us", "change"),
    [
        (0, GAIN),
        (TARGET_DELAY_US // 2, GAIN // 2),
        (TARGET_DELAY_US, 0),
        (2 * TARGET_DELAY_US, -GAIN),
    ],
)
def test_one_window_of_acks_moves_cwnd_by_gain_times_off_target(
    queueing_us: int, change: int
) -> None:
    cc = _steady(queueing_us)
    for _ in range(50):  # one round trip: 50 acks of 1000 bytes out of 50,000 in flight
        cc.on_ack(1000, 50_000, saturated=True)
    assert cc.cwnd == pytest.approx(50_000 + change, abs=60)


def test_no_growth_when_the_window_is_not_the_limit() -> None:
    cc = _steady(0)
    cc.on_ack(1000, 5000, saturated=False)
    assert cc.cwnd == 50_000
    cc = _steady(2 * TARGET_DELAY_US)
    cc.on_ack(1000, 5000, saturated=False)
    assert cc.cwnd < 50_000  # shrinking does not wait


def test_slow_start_doubles_until_the_target() -> None:
    cc = Ledbat(1000)
    cc.on_delay_sample(10_000, 0.0)
    cc.cwnd = 20_000
    cc.on_ack(20_000, 20_000, saturated=True)  # a whole window acked in one round trip
    assert cc.cwnd == 40_000 and cc.slow_start
    for t in (1.0, 2.0, 3.0):
        cc.on_delay_sample(10_000 + TARGET_DELAY_US, t)
    cc.on_ack(1000, cc.cwnd, saturated=True)
    assert not cc.slow_start


def test_loss_halves_and_timeout_drops_to_one_packet() -> None:
    cc = _steady(0)
    cc.on_loss()
    assert cc.cwnd == 25_000 and not cc.slow_start
    cc.on_timeout()
    assert cc.cwnd == 1000 and cc.slow_start and cc.ssthresh == 12_500
    for _ in range(10):
        cc.on_loss()
    assert cc.cwnd == 1000  # never below one packet


def test_base_delay_is_the_minimum_of_two_minutes() -> None:
    h = DelayHistory()
    h.add(5_000, 0.0)
    h.add(9_000, 10.0)
    assert h.base == 5_000
    h.add(9_000, BASE_HISTORY_S + 1)
    assert h.base == 5_000  # still within two minutes
    h.add(9_500, 2 * BASE_HISTORY_S + 2)
    assert h.base == 9_000  # the 5 ms minute has gone
    assert h.queueing_delay() == 0


def test_base_delay_survives_the_32_bit_wrap() -> None:
    h = DelayHistory()
    h.add(0xFFFFFF00, 0.0)
    h.add(0x00000010, 1.0)  # 0x110 us later on a wrapped clock: larger, not smaller
    assert h.base == 0xFFFFFF00
    assert wrap_diff(0x10, 0xFFFFFF00) == 0x110


def test_rtt_timeout_follows_bep29() -> None:
    timer = RttTimer()
    assert timer.timeout == INITIAL_TIMEOUT
    timer.sample(0.2)
    assert timer.timeout == pytest.approx(0.2 + 4 * 0.1)
    timer.sample(0.2)
    assert timer.rtt == pytest.approx(0.2) and timer.rtt_var == pytest.approx(0.075)
    fast = RttTimer()
    fast.sample(0.01)
    assert fast.timeout == MIN_TIMEOUT
    fast.back_off()
    fast.back_off()
    assert fast.timeout == 4 * MIN_TIMEOUT
    fast.progress()
    assert fast.timeout == MIN_TIMEOUT


def _rate(link: Link, side: int, seconds: float) -> float:
    start, got = link.clock.now, len(link.rec[side].data)
    link.run(lambda: link.clock.now >= start + seconds)
    return (len(link.rec[side].data) - got) / (link.clock.now - start)


def test_bottleneck_queue_settles_at_the_target_delay() -> None:
    rate = 500_000
    link = Link(delay=0.01, rate=rate)
    a, _ = link.established()
    a.write(bytes(30 * rate))
    _rate(link, 1, 10.0)  # slow start, then settling
    measured = _rate(link, 1, 10.0)
    delay = a.cc.delays.queueing_delay()
    assert delay is not None and 0.8 * TARGET_DELAY_US <= delay <= 1.2 * TARGET_DELAY_US
    assert measured >= 0.9 * rate
    # the window is what fills the path plus the target queue: rate * (rtt + target)
    expected = rate * (2 * 0.01 + TARGET_DELAY_US / 1e6)
    assert a.cc.cwnd == pytest.approx(expected, rel=0.25)
    assert a.resent == 0 and a.timeouts == 0


def test_fixed_delay_without_a_queue_fills_the_window() -> None:
    link = Link(delay=0.05)
    a, _ = link.established()
    a.write(bytes(60_000_000))
    _rate(link, 1, 3.0)
    measured = _rate(link, 1, 3.0)
    # no queueing: LEDBAT keeps growing, so the cap is what may be in flight per round trip
    cap = min(UTP_RECV_WINDOW, UTP_REORDER_PACKETS * PACKET_SIZE) / 0.1
    assert 0.8 * cap <= measured <= 1.01 * cap
    assert a.cc.delays.queueing_delay() == 0
