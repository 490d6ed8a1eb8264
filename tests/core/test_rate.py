from twisted.internet.task import Clock

from btd.core.rate import RateMeter


def test_rate_follows_the_window() -> None:
    clock = Clock()
    meter = RateMeter(clock.seconds, window=5)
    for _ in range(5):
        meter.add(1000)
        clock.advance(1)
    assert 900 <= meter.rate() <= 1300
    clock.advance(10)
    assert meter.rate() == 0
    assert meter.total == 5000


def test_burst_in_one_second() -> None:
    clock = Clock()
    meter = RateMeter(clock.seconds, window=5)
    meter.add(4000)
    assert meter.rate() == 1000.0
