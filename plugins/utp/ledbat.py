"""uTP's congestion control and retransmission timer (BEP 29, RFC 6817). Pure.

LEDBAT keeps the queueing delay it adds to the path near a target (100 ms): the delay of
each packet is what the peer measured (its receive time less our send timestamp, sent
back as ``timestamp_diff``); the smallest seen over two minutes is the path's base delay,
the rest is queueing. Below target the window grows (at most ``GAIN`` bytes per round
trip, as libtorrent's utp_gain_factor), above it shrinks in proportion. A slow start
doubles the window per round trip until the delay reaches the target, a loss, or half the
window of the last timeout (RFC 6817 allows it; libtorrent leaves it as soon as the
linear gain would be larger, which on a fresh connection is at once). The window never
drops below one packet.

The retransmission timeout is BEP 29's: ``max(rtt + 4 * rtt_var, 500 ms)``, 1 s before any
sample, doubled by each timeout until an ack moves things forward again.
"""

from __future__ import annotations

from collections import deque

TARGET_DELAY_US = 100_000  # BEP 29 / libtorrent utp_target_delay 100 ms
GAIN = 3000  # bytes per round trip at zero delay: libtorrent utp_gain_factor 3000
BASE_HISTORY_S = 60.0  # one bucket of the base-delay minimum
BASE_BUCKETS = 2  # two buckets: the base delay is the minimum over the last 2 minutes
DELAY_SAMPLES = 3  # the delay used is the least of the last 3 (libtorrent)
INITIAL_TIMEOUT = 1.0  # BEP 29
MIN_TIMEOUT = 0.5  # BEP 29
MAX_TIMEOUT = 60.0  # back-off ceiling (btd's own; the resend limits end a connection first)
U32 = 0xFFFFFFFF
_HALF = 1 << 31


def wrap_diff(a: int, b: int) -> int:
    """``a - b`` for 32-bit microsecond clocks that wrap: a signed result."""
    d = (a - b) & U32
    return d - (1 << 32) if d >= 1 << 31 else d


class DelayHistory:
    """The base delay (minimum over ``BASE_BUCKETS`` minutes) and the latest samples; both
    figures are worked out when a sample arrives (once per ack), read for free."""

    def __init__(self) -> None:
        self._buckets: deque[int] = deque(maxlen=BASE_BUCKETS)
        self._bucket_start: float | None = None
        self._recent: deque[int] = deque(maxlen=DELAY_SAMPLES)
        self._base: int | None = None
        self._delay: int | None = None

    def add(self, sample_us: int, now: float) -> None:
        buckets = self._buckets
        if self._bucket_start is None or now - self._bucket_start >= BASE_HISTORY_S:
            buckets.append(sample_us)
            self._bucket_start = now
        # a sample below a bucket (a wrapped clock, or a faster path) becomes it
        for i, value in enumerate(buckets):
            if (sample_us - value) & U32 >= _HALF:
                buckets[i] = sample_us
        base = buckets[0]
        for value in buckets:
            if (value - base) & U32 >= _HALF:
                base = value
        self._base = base
        self._recent.append(sample_us)
        least = None
        for value in self._recent:
            diff = wrap_diff(value, base)
            if least is None or diff < least:
                least = diff
        self._delay = max(0, least) if least is not None else None

    @property
    def base(self) -> int | None:
        return self._base

    def queueing_delay(self) -> int | None:
        """Microseconds above the base of the least recent sample, or None before any."""
        return self._delay


class Ledbat:
    """The congestion window in bytes, driven by acks, losses and timeouts."""

    def __init__(self, packet_size: int, *, target_us: int = TARGET_DELAY_US) -> None:
        self.packet_size = packet_size
        self.target_us = target_us
        self.cwnd = 2 * packet_size
        self.ssthresh: float = float("inf")
        self.slow_start = True
        self.delays = DelayHistory()

    def on_delay_sample(self, sample_us: int, now: float) -> None:
        self.delays.add(sample_us, now)

    def on_ack(self, acked_bytes: int, in_flight_before: int, saturated: bool) -> None:
        """``acked_bytes`` newly acked out of ``in_flight_before``; ``saturated`` when the
        sender was limited by the window (else the window has not been tested: no growth)."""
        if acked_bytes <= 0 or in_flight_before <= 0:
            return
        delay = self.delays.queueing_delay()
        if delay is None:
            return
        window_factor = min(1.0, acked_bytes / in_flight_before)
        delay_factor = (self.target_us - delay) / self.target_us
        linear = GAIN * window_factor * delay_factor
        if delay >= self.target_us:
            self.slow_start = False
            change = linear
        elif self.slow_start:
            change = max(acked_bytes, linear)
            if self.cwnd + change >= self.ssthresh:
                self.slow_start = False
        else:
            change = linear
        if change > 0 and not saturated:
            return
        self.cwnd = max(self.packet_size, int(self.cwnd + change))

    def on_loss(self) -> None:
        """A packet lost (fast retransmit): halve, as libtorrent does, and leave slow start."""
        self.ssthresh = self.cwnd / 2
        self.cwnd = max(self.packet_size, self.cwnd // 2)
        self.slow_start = False

    def on_timeout(self) -> None:
        """Nothing acked for a whole timeout: one packet, then slow start to half of before."""
        self.ssthresh = max(self.cwnd / 2, self.packet_size)
        self.cwnd = self.packet_size
        self.slow_start = True


class RttTimer:
    """Round-trip estimate and the retransmission timeout (seconds), BEP 29's rule."""

    def __init__(self) -> None:
        self.rtt: float | None = None
        self.rtt_var = 0.0
        self.backoff = 1

    def sample(self, rtt: float) -> None:
        if self.rtt is None:
            self.rtt = rtt
            self.rtt_var = rtt / 2
        else:
            delta = self.rtt - rtt
            self.rtt_var += (abs(delta) - self.rtt_var) / 4
            self.rtt += (rtt - self.rtt) / 8

    @property
    def timeout(self) -> float:
        base = (
            INITIAL_TIMEOUT if self.rtt is None else max(self.rtt + 4 * self.rtt_var, MIN_TIMEOUT)
        )
        return min(base * self.backoff, MAX_TIMEOUT)

    def back_off(self) -> None:
        self.backoff = min(self.backoff * 2, 1 << 10)

    def progress(self) -> None:
        """An ack moved forward: back to the estimate."""
        self.backoff = 1
