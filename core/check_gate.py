"""At most a few torrent checks under way at once, session-wide; the others wait in order.

Adding 10,000 torrents with their data started 10,000 checks at once: every one built its
chain of Deferreds, closures and thread-pool work items (about 4 KB) at the same moment,
while the torrents' own long-lived objects were being made. The pool runs two jobs at a
time anyway, so nearly all of those waited; when they were freed, the small-object pools
they shared with the torrents stayed pinned: 70 MB of holes in CPython's allocator (an RSS
of 285-295 MiB after the add and a few lists, 245-249 with this gate). A check that waits
here is one queue entry until its turn; the disk sees the same order, and enough checks
are under way to keep the pool's threads busy.

A waiting check whose torrent stopped wanting it meanwhile (``should_stop``: paused,
removed) is never started: it fails with ``CancelledError``, as a stopped recheck does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer

T = TypeVar("T")

CHECKS_AT_ONCE = 256
"""Checks under way at once. 10,000 small torrents with their data, on 2 cores: with 4 the
checks took 1.5-2x as long (each check's steps wait for a reactor turn while the pool
idles), with 32 a little longer, with 256 as long as with no limit; 256 chains are ~1 MB."""


class CheckGate:
    """FIFO admission of checks; ``limit`` of them run at once."""

    def __init__(self, limit: int = CHECKS_AT_ONCE) -> None:
        if limit < 1:
            raise ValueError("limit must be positive")
        self.limit = limit
        self.running = 0
        self._waiting: deque[tuple[Callable[[], Any], Callable[[], bool], defer.Deferred[Any]]]
        self._waiting = deque()
        self._pumping = False

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def run(
        self, start: Callable[[], defer.Deferred[T] | T], should_stop: Callable[[], bool]
    ) -> defer.Deferred[T]:
        """``start()`` now if a slot is free (what it raises, the caller gets), else when
        one is (its result, or what it raised, chained)."""
        if self.running < self.limit and not self._waiting:
            self.running += 1
            try:
                d = start()
            except BaseException:
                self.running -= 1
                raise
            return self._watch(d)
        d: defer.Deferred[T] = defer.Deferred()
        self._waiting.append((start, should_stop, d))
        return d

    def _start(self, start: Callable[[], Any]) -> defer.Deferred[Any]:
        self.running += 1
        return self._watch(defer.maybeDeferred(start))

    def _watch(self, d: Any) -> defer.Deferred[Any]:
        if not isinstance(d, defer.Deferred):
            d = defer.succeed(d)
        return d.addBoth(self._done)

    def _done(self, result: Any) -> Any:
        self.running -= 1
        self._pump()
        return result

    def _pump(self) -> None:
        if self._pumping:  # a check that ended at once, inside the loop below
            return
        self._pumping = True
        try:
            while self._waiting and self.running < self.limit:
                start, should_stop, d = self._waiting.popleft()
                if d.called:  # cancelled by its owner
                    continue
                if should_stop():
                    d.errback(defer.CancelledError("check no longer wanted"))
                    continue
                self._start(start).chainDeferred(d)
        finally:
            self._pumping = False
