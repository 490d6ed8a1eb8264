"""Writing resume data for the session: ordered store jobs, dirty tracking, periodic saves.

Every store call for one torrent (add, options, progress, delete) runs on the thread pool
after the previous one for that torrent finished, so an older snapshot never overwrites a
newer one and a delete is never undone by a save still in flight. Progress is snapshotted
on the reactor thread, then ONE pool job fsyncs the torrent's files and records that
snapshot: a piece that became had after the snapshot is simply not recorded yet, so the
store never names a piece whose data is not on disk.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from btd.core.resume import DEFAULT_SAVE_INTERVAL, ResumeProgress

_log = Logger()


class ResumeSaver:
    """The session's writer to its ResumeStore (all methods on the reactor thread)."""

    def __init__(
        self,
        store: Any,
        run_blocking: Callable[..., defer.Deferred[Any]],
        clock: Any,
        is_current: Callable[[Any], bool],
    ) -> None:
        self.store = store
        self._run = run_blocking
        self._clock = clock
        self._is_current = is_current  # a torrent the session still holds (not removed)
        self._tails: dict[bytes, defer.Deferred[None]] = {}
        self._saved: dict[bytes, tuple[int, ...]] = {}
        self._loop: LoopingCall | None = None
        self.closed = False

    @property
    def interval(self) -> float:
        """Seconds between periodic saves: the store's ``save_interval`` (at least 1)."""
        value = getattr(self.store, "save_interval", DEFAULT_SAVE_INTERVAL)
        try:
            return max(1.0, float(value))
        except (TypeError, ValueError):
            return DEFAULT_SAVE_INTERVAL

    # -- ordered jobs ------------------------------------------------------------------------
    def job(self, info_hash: bytes, fn: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        """Run ``fn(*args)`` on the pool once earlier jobs for ``info_hash`` have ended."""
        previous = self._tails.get(info_hash)
        ended: defer.Deferred[None] = defer.Deferred()
        result: defer.Deferred[Any] = defer.Deferred()
        self._tails[info_hash] = ended

        def run(_: object = None) -> None:
            d = self._run(fn, *args)

            def finish(outcome: Any) -> Any:
                if self._tails.get(info_hash) is ended:
                    del self._tails[info_hash]
                ended.callback(None)  # starts the next job for this torrent
                return outcome

            d.addBoth(finish)
            d.chainDeferred(result)

        if previous is None:
            run()
        else:
            previous.addCallback(run)
        return result

    def busy(self, info_hash: bytes) -> bool:
        return info_hash in self._tails

    # -- progress ----------------------------------------------------------------------------
    def snapshot(self, torrent: Any) -> ResumeProgress:
        """What the torrent has now (file sizes are filled in by the pool job)."""
        return ResumeProgress(
            have=torrent.book.have.to_bytes(),
            num_pieces=torrent.num_pieces,
            uploaded=torrent.uploaded,
            downloaded=torrent.downloaded,
            file_sizes=(),
            completed_at=torrent.completed_at,
            saved_at=time.time(),
        )

    def save_progress(self, torrent: Any, *, close_storage: bool = False) -> defer.Deferred[None]:
        """Flush the torrent's files, then record what it had before the flush began.

        Only a torrent whose first check finished is saved (before it, its piece set is not
        what is on disk and would overwrite good progress). ``close_storage`` closes the
        torrent's files once done (shutdown).
        """
        storage = torrent.storage
        if self.closed or not torrent.checked:
            if close_storage:
                storage.close()
            return defer.succeed(None)
        key = torrent.progress_key()
        snapshot = self.snapshot(torrent)
        store, hex_hash = self.store, torrent.hex

        def work() -> None:
            try:
                storage.flush()  # raises: nothing is recorded
                sizes = tuple(f.size for f in storage.check_files().files)
                store.save_progress(hex_hash, dataclasses.replace(snapshot, file_sizes=sizes))
            finally:
                if close_storage:
                    storage.close()

        def saved(_: object) -> None:
            self._saved[torrent.info_hash] = key

        def failed(failure: Any) -> None:
            if self._is_current(torrent) and not failure.check(defer.CancelledError):
                _log.error(
                    "saving the progress of {name} failed: {error}",
                    name=torrent.name,
                    error=failure.getErrorMessage(),
                )

        d = self.job(torrent.info_hash, work)
        return d.addCallbacks(saved, failed)

    def dirty(self, torrent: Any) -> bool:
        return torrent.checked and self._saved.get(torrent.info_hash) != torrent.progress_key()

    def mark_clean(self, torrent: Any) -> None:
        """What the torrent has is what the store holds (it was just loaded from there)."""
        self._saved[torrent.info_hash] = torrent.progress_key()

    def forget(self, info_hash: bytes) -> None:
        self._saved.pop(info_hash, None)

    def save_changed(self, torrents: Iterable[Any]) -> None:
        """The periodic save: torrents that changed and have no store job in flight."""
        for torrent in list(torrents):
            if self.dirty(torrent) and not self.busy(torrent.info_hash):
                self.save_progress(torrent)

    def start(self, torrents: Callable[[], Iterable[Any]]) -> None:
        if self._loop is None:
            self._loop = LoopingCall(lambda: self.save_changed(torrents()))
            self._loop.clock = self._clock
            self._loop.start(self.interval, now=False)

    def stop_timer(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def close(self) -> defer.Deferred[None]:
        """Close the store once every job in flight has ended."""
        self.stop_timer()
        if self.closed:
            return defer.succeed(None)
        self.closed = True
        pending = list(self._tails.values())
        d = defer.DeferredList(pending, consumeErrors=True)
        d.addCallback(lambda _: self._run(self.store.close))

        def failed(failure: Any) -> None:
            _log.error("closing the resume store failed: {e}", e=failure.getErrorMessage())

        return d.addCallbacks(lambda _: None, failed)
