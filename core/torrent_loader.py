"""Bringing the stored torrents back at start, without blocking the reactor.

The resume store is read and every metainfo parsed in ONE thread-pool job; the torrents
then come up ``LOAD_SLICE`` per reactor turn, so the control socket answers from the
first moment and ``torrent.list`` shows the torrents as they come. Until the store has
been read, adds wait (``when_read``); a torrent that is stored but not up yet is brought
up at once when asked for (``take``), so an add never duplicates it. What the store found
wrong with itself at start (``store.report``, a StoreReport: damaged, empty, rebuilt from
copies) or a store that could not be read at all goes to ``report`` on the reactor.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.errors import MetainfoError
from btd.core.metainfo import Metainfo, parse_metainfo
from btd.core.resume import StoredTorrent
from btd.core.resume_recovery import StoreReport

_log = Logger(namespace="btd.core.session")

LOAD_SLICE = 100  # torrents brought up per reactor turn (the socket answers in between)

Entry = tuple[StoredTorrent, Metainfo]
Parsed = tuple[list[Entry], list[str], list[tuple[str, str]], StoreReport | None]


def parse_stored(store: Any) -> Parsed:
    """Read every stored torrent and parse its metainfo (blocking: the thread pool): the
    usable ones, the store's problems, (info hash, why) for unusable metainfo, and the
    store's report on itself (None: nothing was wrong)."""
    stored, problems = store.load_all()
    parsed: list[Entry] = []
    unusable: list[tuple[str, str]] = []
    for item in stored:
        try:
            meta = parse_metainfo(item.metainfo)
            if meta.hex != item.info_hash:  # remove() would delete the wrong file
                raise MetainfoError(f"its info hash is {meta.hex}, not its file name")
        except MetainfoError as exc:
            unusable.append((item.info_hash, str(exc)))
            continue
        parsed.append((item, meta))
    report = getattr(store, "report", None)
    return parsed, problems, unusable, report if isinstance(report, StoreReport) else None


class TorrentLoader:
    """Reads the store off the reactor, then calls ``bring_up(item, meta)`` in slices."""

    def __init__(
        self,
        clock: Any,
        run_blocking: Callable[..., defer.Deferred[Any]],
        bring_up: Callable[[StoredTorrent, Metainfo], None],
        stopping: Callable[[], bool],
        done: Callable[[], None],
        report: Callable[[StoreReport], None] = lambda report: None,
    ) -> None:
        self._clock = clock
        self._run = run_blocking
        self._bring_up = bring_up
        self._stopping = stopping
        self._done = done
        self._report = report
        self._store: Any = None
        self._pending: dict[bytes, Entry] | None = {}  # None: the store is being read
        self._order: deque[bytes] = deque()  # the store's order: oldest added first
        self._waiters: list[defer.Deferred[None]] = []
        self.loading = False

    def start(self, store: Any) -> None:
        self._pending = None
        self.loading = True
        self._store = store
        d = self._run(parse_stored, store)
        d.addCallback(self._read)
        d.addErrback(self._failed)

    @property
    def read(self) -> bool:
        """The store has been read (adds need not wait)."""
        return self._pending is not None

    def when_read(self) -> defer.Deferred[None]:
        """Fires once the store has been read (at once if it has)."""
        if self._pending is not None:
            return defer.succeed(None)
        waiter: defer.Deferred[None] = defer.Deferred()
        self._waiters.append(waiter)
        return waiter

    def take(self, info_hash: bytes) -> None:
        """Bring up this stored torrent now, if it is waiting for its turn."""
        entry = self._pending.pop(info_hash, None) if self._pending else None
        if entry is not None:
            self._bring_up(*entry)

    def take_matching(self, prefix: str) -> None:
        """Bring up now the waiting torrents whose info hash starts with ``prefix``, so a
        lookup during start-up finds them (a scan only while torrents are still waiting)."""
        if not self._pending:
            return
        key = prefix.lower()
        if len(key) == 40:
            try:
                self.take(bytes.fromhex(key))
            except ValueError:
                pass
            return
        for info_hash in [h for h in self._pending if h.hex().startswith(key)]:
            self.take(info_hash)

    def _read(self, result: Parsed) -> None:
        parsed, problems, unusable, report = result
        if report is not None:
            self._report(report)
        for problem in problems:
            _log.error("cannot load a stored torrent: {problem}", problem=problem)
        for info_hash, why in unusable:
            _log.error("stored torrent {h} is unusable: {e}", h=info_hash, e=why)
        self._pending = {meta.info_hash: (item, meta) for item, meta in parsed}
        self._order = deque(self._pending)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)
        self._slice()

    def _failed(self, failure: Failure) -> None:
        _log.failure("loading the stored torrents failed", failure)
        path = str(getattr(self._store, "path", "") or "")
        self._report(StoreReport("unreadable", path, why=str(failure.value)))
        self._pending = {}
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)
        self._finish()

    def _slice(self) -> None:
        pending, order = self._pending, self._order
        if pending is None or self._stopping():
            self.loading = False
            return
        done = 0
        while order and done < LOAD_SLICE:
            entry = pending.pop(order.popleft(), None)
            if entry is not None:  # else ``take`` brought it up already
                self._bring_up(*entry)
                done += 1
        if pending:
            self._clock.callLater(0, self._slice)
        else:
            self._finish()

    def _finish(self) -> None:
        self.loading = False
        self._done()
