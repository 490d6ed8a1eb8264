"""Rate limits against DHT abuse: token buckets, one per source IP and global ones.

Pure: time comes in as arguments. The per-IP table is bounded (``max_ips``); when it is
full, the least recently heard IP is forgotten (O(1), so a flood of spoofed sources
costs no more per datagram than one sender). libtorrent's dos_blocker does the same job with a fixed table of 20
entries and a 5 messages/s limit averaged over 10 s; a token bucket with a burst gives the
same average with less bookkeeping.
"""

from __future__ import annotations

from collections import OrderedDict


class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``; ``take`` spends one."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst = float(rate), float(burst)
        self.tokens = float(burst)
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_time(self, now: float) -> float:
        """Seconds until ``take`` would succeed."""
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate


class IpRateLimiter:
    """One TokenBucket per source IP, in a bounded table."""

    def __init__(self, rate: float, burst: float, *, max_ips: int = 4096) -> None:
        TokenBucket(rate, burst, 0.0)  # validates
        self.rate, self.burst, self.max_ips = rate, burst, max_ips
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, ip: str, now: float) -> bool:
        bucket = self._buckets.get(ip)
        if bucket is None:
            while len(self._buckets) >= self.max_ips:
                self._buckets.popitem(last=False)  # the least recently heard IP
            bucket = self._buckets[ip] = TokenBucket(self.rate, self.burst, now)
        else:
            self._buckets.move_to_end(ip)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)
