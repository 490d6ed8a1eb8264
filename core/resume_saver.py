"""Writing resume data for the session: ordered store jobs, dirty tracking, periodic saves.

Every store call for one torrent (add, options, progress, delete) runs on the thread pool
after the previous one for that torrent finished, so an older snapshot never overwrites a
newer one and a delete is never undone by a save still in flight. Progress is snapshotted
on the reactor thread, then a pool job fsyncs the torrents' files and records those
snapshots: a piece that became had after the snapshot is simply not recorded yet, so the
store never names a piece whose data is not on disk.

A round of the periodic save costs what changed, not what is loaded: torrents are marked
(``mark``) when their progress may have changed (a tick while they have peers, a verified
piece, a state change), and a round flushes and records the marked ones that did change in
ONE store write (``save_progress_many``: one transaction, one sync). A torrent whose flush
fails is left out (and marked again) without costing the others their save.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from btd.core.resume import DEFAULT_SAVE_INTERVAL, ResumeProgress, save_progress_batch

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
        self._marked: dict[bytes, Any] = {}  # info hash -> torrent that may have changed
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
        return self.job_many((info_hash,), fn, *args)

    def job_many(
        self, hashes: Iterable[bytes], fn: Callable[..., Any], *args: Any
    ) -> defer.Deferred[Any]:
        """Run ``fn(*args)`` once earlier jobs for every one of ``hashes`` have ended; later
        jobs for any of them wait for this one."""
        hashes = tuple(hashes)
        waits = {id(d): d for h in hashes if (d := self._tails.get(h)) is not None}
        ended: defer.Deferred[None] = defer.Deferred()
        result: defer.Deferred[Any] = defer.Deferred()
        for h in hashes:
            self._tails[h] = ended

        def run(_: object = None) -> None:
            d = self._run(fn, *args)

            def finish(outcome: Any) -> Any:
                for h in hashes:
                    if self._tails.get(h) is ended:
                        del self._tails[h]
                ended.callback(None)  # starts the next jobs for these torrents
                return outcome

            d.addBoth(finish)
            d.chainDeferred(result)

        previous = list(waits.values())
        if not previous:
            run()
        elif len(previous) == 1:
            previous[0].addCallback(run)
        else:
            defer.DeferredList(previous).addCallback(run)
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
        """Flush the torrent's files, then record what it had before the flush began."""
        return self.save_batch([torrent], close_storage=close_storage)

    def save_batch(
        self, torrents: Iterable[Any], *, close_storage: bool = False
    ) -> defer.Deferred[None]:
        """Flush each torrent's files, then record what they had before, in ONE store write.

        Only a torrent whose first check finished is saved (before it, its piece set is not
        what is on disk and would overwrite good progress). A torrent whose flush fails is
        left out of the write (logged, marked again); the others are recorded.
        ``close_storage`` closes every torrent's files once done (shutdown). Never fails.
        """
        items = []
        for torrent in torrents:
            if self.closed or not torrent.checked:
                if close_storage:
                    torrent.storage.close()
                continue
            items.append((torrent, torrent.progress_key(), self.snapshot(torrent)))
        if not items:
            return defer.succeed(None)
        store = self.store
        work_items = [(t.hex, t.storage, snapshot) for t, _, snapshot in items]

        def work() -> list[Exception | None]:
            outcome: list[Exception | None] = []
            ready = []
            real_dirs: dict[str, str] = {}  # each folder resolved once in this round
            try:
                for hex_hash, storage, snapshot in work_items:
                    try:
                        storage.flush()  # raises: nothing is recorded for this torrent
                        sizes = tuple(f.size for f in storage.check_files(real_dirs).files)
                    except Exception as exc:
                        outcome.append(exc)
                        continue
                    outcome.append(None)
                    ready.append((len(outcome) - 1, hex_hash, snapshot, sizes))
                written = save_progress_batch(
                    store,
                    [(h, dataclasses.replace(snap, file_sizes=sz)) for _, h, snap, sz in ready],
                )
                for (index, *_), exc in zip(ready, written, strict=True):
                    outcome[index] = exc
            finally:
                if close_storage:
                    for _, storage, _ in work_items:
                        storage.close()
            return outcome

        def done(outcome: list[Exception | None]) -> None:
            failures: dict[str, list[Any]] = {}
            for (torrent, key, _), exc in zip(items, outcome, strict=True):
                if not self._is_current(torrent):
                    continue
                if exc is None:
                    self._saved[torrent.info_hash] = key
                else:
                    failures.setdefault(str(exc), []).append(torrent)
                    self.mark(torrent)  # tried again next round
            for error, failed in failures.items():
                names = failed[0].name if len(failed) == 1 else f"{len(failed)} torrents"
                _log.error("saving the progress of {name} failed: {error}", name=names, error=error)

        def failed(failure: Any) -> None:
            if not failure.check(defer.CancelledError):
                _log.error("saving progress failed: {error}", error=failure.getErrorMessage())

        d = self.job_many([t.info_hash for t, _, _ in items], work)
        return d.addCallbacks(done, failed)

    def dirty(self, torrent: Any) -> bool:
        return torrent.checked and self._saved.get(torrent.info_hash) != torrent.progress_key()

    def mark(self, torrent: Any) -> None:
        """The torrent's progress may have changed: the next round looks at it."""
        self._marked[torrent.info_hash] = torrent

    @property
    def marked(self) -> int:
        """Torrents the next round looks at."""
        return len(self._marked)

    def mark_clean(self, torrent: Any) -> None:
        """What the torrent has is what the store holds (it was just loaded from there)."""
        self._saved[torrent.info_hash] = torrent.progress_key()
        self._marked.pop(torrent.info_hash, None)

    def forget(self, info_hash: bytes) -> None:
        self._saved.pop(info_hash, None)
        self._marked.pop(info_hash, None)

    def save_changed(self) -> defer.Deferred[None]:
        """The periodic save: the marked torrents that changed and have no store job in
        flight (those with one stay marked), in one batch."""
        marked, self._marked = self._marked, {}
        batch = []
        for info_hash, torrent in marked.items():
            if not self._is_current(torrent):
                continue
            if self.busy(info_hash):
                self._marked[info_hash] = torrent
            elif self.dirty(torrent):
                batch.append(torrent)
        return self.save_batch(batch)

    def start(self) -> None:
        if self._loop is None:
            self._loop = LoopingCall(self.save_changed)
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
        pending = list({id(d): d for d in self._tails.values()}.values())
        d = defer.DeferredList(pending, consumeErrors=True)
        d.addCallback(lambda _: self._run(self.store.close))

        def failed(failure: Any) -> None:
            _log.error("closing the resume store failed: {e}", e=failure.getErrorMessage())

        return d.addCallbacks(lambda _: None, failed)
