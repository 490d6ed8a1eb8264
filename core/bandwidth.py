"""Speed limits: token buckets shared global -> torrent -> peer, refilled by ONE timer.

Each direction (download, upload) is a ``Limiter``: the session-wide ``Bucket`` and one
``Share`` (a bucket) per torrent. Every peer has a ``Channel`` per direction holding its
``quota``. Moving bytes spends quota (it may go below zero: a socket read of 256 KiB is
not split); a channel whose quota is spent is put on hold (the connection stops reading,
or the uploader stops sending) and waits. ONE timer, armed only while a channel waits,
grants the waiting channels tokens every ``TICK``: each waiting torrent an equal slice of
the global tokens, each of its waiting peers an equal slice of that and of its torrent's
own tokens (leftovers go round again, ``PASSES`` times); a channel whose quota is positive
again is released. Buckets refill lazily from the clock (up to ``BURST_SECONDS`` of their
rate), so an idle session costs nothing and no bucket has a timer.

What counts: in download, every byte read from a peer connection after the handshake (the
reads are what is paused; piece payload is all but a fraction of a percent of them); in
upload, piece payload (the uploader's sends). Other messages are never held back.

With no limit set in a direction, ``Limiter.on`` is False: the per-read and per-batch paths
test it and do nothing else. No Twisted: the scheduler (core/scheduler.py) is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TICK = 0.1  # seconds between grants while a channel waits
# What a bucket holds at most, in seconds of its rate: libtorrent's bandwidth_channel keeps
# 3 s too. A peer that idles a moment (its requests ran dry, a disk read) does not lose its
# share; the rate holds over a few seconds, bursts after an idle spell last up to this long.
BURST_SECONDS = 3.0
MIN_BURST = 64 * 1024  # ... and at least (a very low limit still moves whole blocks)
PASSES = 3  # rounds of one grant (leftovers of channels limited by another bucket)
MAX_RATE = 10**12  # bytes/s: what a limit may be set to (0 = unlimited)


def _nothing() -> None:
    """The hold of an upload channel: the uploader checks ``held`` itself."""


class Bucket:
    """Tokens (bytes) accruing at ``rate`` per second up to a burst; 0 = unlimited."""

    __slots__ = ("rate", "tokens", "_at")

    def __init__(self, rate: int = 0, now: float = 0.0) -> None:
        self.rate = rate
        self.tokens = 0.0
        self._at = now

    @property
    def capacity(self) -> float:
        return max(self.rate * BURST_SECONDS, MIN_BURST)

    def refill(self, now: float) -> None:
        if self.rate and now > self._at:
            self.tokens = min(self.capacity, self.tokens + self.rate * (now - self._at))
        self._at = now

    def set_rate(self, rate: int, now: float) -> None:
        """A live change: tokens earned so far at the old rate, then the new one."""
        self.refill(now)
        self.rate = rate
        self.tokens = min(self.tokens, self.capacity) if rate else 0.0


class Share:
    """One torrent's bucket in one direction."""

    __slots__ = ("limiter", "bucket")

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        self.bucket = Bucket(0, limiter.now())

    @property
    def rate(self) -> int:
        return self.bucket.rate

    def set_rate(self, rate: int) -> None:
        self.limiter._share_rate(self, rate)

    def channel(self, hold: Callable[[], None], release: Callable[[], None]) -> Channel:
        return Channel(self.limiter, self, hold, release)

    def close(self) -> None:
        """The torrent is gone: its limit no longer counts."""
        self.set_rate(0)


class Channel:
    """One peer's quota in one direction; ``hold`` stops its transfer, ``release`` restarts it."""

    __slots__ = ("limiter", "share", "quota", "held", "hold", "release")

    def __init__(
        self,
        limiter: Limiter,
        share: Share | None,
        hold: Callable[[], None],
        release: Callable[[], None],
    ) -> None:
        self.limiter = limiter
        self.share = share
        self.quota = 0.0
        self.held = False
        self.hold = hold
        self.release = release

    def spend(self, size: int) -> bool:
        """``size`` bytes moved (call only when ``limiter.on``); True: now on hold."""
        share = self.share
        if not self.limiter.bucket.rate and (share is None or not share.bucket.rate):
            return False  # limits elsewhere, none on this peer's path
        self.quota -= size
        if self.quota > 0:
            return False
        self.limiter._wait(self)
        return True

    def close(self) -> None:
        """The peer is gone."""
        self.limiter.waiting.pop(self, None)
        self.held = False


class Limiter:
    """One direction, session-wide: the global bucket and the channels waiting for tokens.

    ``now`` reads the clock; ``wake`` asks for the next grant (``Bandwidth`` arms its timer).
    """

    def __init__(self, now: Callable[[], float], wake: Callable[[], None]) -> None:
        self.now = now
        self._wake = wake
        self.bucket = Bucket(0, now())
        self.on = False  # some limit is set: the global one or a torrent's
        self._limited_shares = 0
        self.waiting: dict[Channel, None] = {}  # in arrival order
        self.granted = 0.0  # tokens given out so far (tests, measurements)

    @property
    def rate(self) -> int:
        return self.bucket.rate

    def share(self) -> Share:
        return Share(self)

    def set_rate(self, rate: int) -> None:
        """The global limit in bytes/s (0 = unlimited); applies at the next grant."""
        self.bucket.set_rate(rate, self.now())
        self._changed()

    def _share_rate(self, share: Share, rate: int) -> None:
        old = share.bucket.rate
        share.bucket.set_rate(rate, self.now())
        self._limited_shares += bool(rate) - bool(old)
        self._changed()

    def _changed(self) -> None:
        self.on = bool(self.bucket.rate) or self._limited_shares > 0
        if self.waiting:
            self._wake()  # lifted limits release their channels at the next grant

    def _wait(self, channel: Channel) -> None:
        if channel.held:
            return
        channel.held = True
        self.waiting[channel] = None
        channel.hold()
        self._wake()

    def grant(self) -> None:
        """One round: tokens to the waiting channels, fairly; release those with quota."""
        if not self.waiting:
            return
        now = self.now()
        glob = self.bucket
        glob.refill(now)
        for _ in range(PASSES):
            released = self._grant_pass(glob, now)
            for channel in released:
                if self.waiting.pop(channel, False) is None:
                    channel.held = False
                    channel.release()  # may spend and wait again (re-added at the end)
            if not released or not self.waiting:
                break

    def _grant_pass(self, glob: Bucket, now: float) -> list[Channel]:
        waiting = self.waiting
        per_share: dict[Share | None, int] = {}
        for channel in waiting:
            per_share[channel.share] = per_share.get(channel.share, 0) + 1
        # Global tokens: an equal slice per waiting torrent, then per waiting peer in it.
        glob_slice = glob.tokens / len(per_share) if glob.rate else 0.0
        slices: dict[Share | None, float] = {}
        for share, count in per_share.items():
            limit = glob_slice / count if glob.rate else float("inf")
            if share is not None and share.bucket.rate:
                share.bucket.refill(now)
                limit = min(limit, share.bucket.tokens / count)
            slices[share] = limit
        released = []
        for channel in waiting:
            share = channel.share
            give = slices[share]
            if give == float("inf"):  # no limit on its path any more
                channel.quota = max(channel.quota, 0.0)
                released.append(channel)
                continue
            if give <= 0:
                continue
            channel.quota += give
            self.granted += give
            if glob.rate:
                glob.tokens -= give
            if share is not None and share.bucket.rate:
                share.bucket.tokens -= give
            if channel.quota > 0:
                released.append(channel)
        return released


class Bandwidth:
    """The session's two limiters and the ONE timer that grants tokens while a channel waits.

    ``scheduler`` is the session's ``btd.core.scheduler.Scheduler``.
    """

    def __init__(self, scheduler: Any) -> None:
        self._timer = scheduler.timer(self._tick)
        self.down = Limiter(scheduler.now, self._wake)
        self.up = Limiter(scheduler.now, self._wake)
        self.ticks = 0

    def set_global(self, down: int, up: int) -> None:
        if down != self.down.rate:
            self.down.set_rate(down)
        if up != self.up.rate:
            self.up.set_rate(up)

    def torrent(self) -> TorrentLimits:
        return TorrentLimits(self)

    @property
    def ticking(self) -> bool:
        return self._timer.active

    def _wake(self) -> None:
        if not self._timer.active:
            self._timer.delay(TICK)

    def _tick(self) -> None:
        self.ticks += 1
        self.down.grant()
        self.up.grant()
        if self.down.waiting or self.up.waiting:
            self._wake()


class TorrentLimits:
    """One torrent's two shares, and its peers' channels."""

    __slots__ = ("down", "up")

    def __init__(self, bandwidth: Bandwidth) -> None:
        self.down = bandwidth.down.share()
        self.up = bandwidth.up.share()

    def set(self, down: int | None = None, up: int | None = None) -> None:
        """Bytes/s, 0 = unlimited; None leaves that direction as it is."""
        if down is not None and down != self.down.rate:
            self.down.set_rate(down)
        if up is not None and up != self.up.rate:
            self.up.set_rate(up)

    def attach(self, peer: Any, link: Any, writable: Callable[[], None]) -> None:
        """Give a new peer its channels: reads held by pausing its connection, sends by the
        uploader's pump (``writable`` restarts it)."""
        peer.recv_limit = link.read_limit = self.down.channel(
            link.pause_reading, link.resume_reading
        )
        peer.send_limit = self.up.channel(_nothing, writable)

    @staticmethod
    def detach(peer: Any) -> None:
        peer.recv_limit.close()
        peer.send_limit.close()

    def close(self) -> None:
        self.down.close()
        self.up.close()


UNLIMITED = Channel(Limiter(lambda: 0.0, _nothing), None, _nothing, _nothing)
"""The channel of a peer no torrent attached (tests, metadata peers): never limited."""
