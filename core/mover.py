"""Moving torrents' data (``torrent.move``, ``incomplete_dir``) without blocking the reactor.

The disk work is btd.core.move_files (a plan that refuses before anything moves, then a
job done in bounded steps); the ``Mover`` runs each step as one job on the disk pool and
chains the next when it is done, so the reactor never waits and reads of every torrent
interleave with the move. One task per torrent: its progress (``move_progress``), the
events ``moving`` and ``moved``, the torrent's new ``save_path`` (saved with its storage
root and device), or on a failure the rollback and the torrent's error state naming the
target and the cause. A torrent is moved while nothing writes its files: seeding, paused
or in error; a download is refused (pause it first), and resuming a paused download that
is being moved waits for the move to end. Shutdown and removal undo a running move.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.move_files import (
    DiskOps,
    MoveJob,
    MovePlan,
    MoveRefused,
    describe,
    file_specs,
    plan_move,
)
from btd.core.torrent_state import TorrentState

_log = Logger(namespace="btd.core.mover")
S = TorrentState

MOVABLE = frozenset({S.SEEDING, S.PAUSED, S.ERROR})
"""States a torrent may be moved in: nothing writes its files (a download is paused first)."""


@dataclass
class MoveTask:
    """One torrent's move in progress (``torrent.move_task`` while it runs)."""

    torrent: Any
    source: Path
    target: Path
    job: MoveJob | None = None
    started: float = field(default_factory=time.monotonic)
    cancelled: bool = False
    resume_after: bool = False  # resumed while moving: transfers start once the data is in place
    ended: defer.Deferred[None] = field(default_factory=defer.Deferred)

    @property
    def progress(self) -> float:
        return 0.0 if self.job is None else self.job.progress

    @property
    def detail(self) -> str:
        return f"moving to {self.target} ({self.progress:.0%})"


class Mover:
    """Moves torrents' data on the disk pool (``run_blocking``), one task per torrent."""

    def __init__(self, run_blocking: Callable[..., Any], ops: DiskOps | None = None) -> None:
        self._run = run_blocking
        self.ops = ops or DiskOps()
        self.tasks: dict[Any, MoveTask] = {}

    def move(self, torrent: Any, target: Path) -> defer.Deferred[dict[str, Any]]:
        """Start moving ``torrent``'s files to ``target``; fires once it started (the plan
        passed) with what moves, MoveRefused (nothing changed) otherwise."""
        target = Path(target)
        if torrent in self.tasks:
            raise MoveRefused(f"it is being moved to {self.tasks[torrent].target}", "info_hash")
        if torrent.storage_problem is not None:
            raise MoveRefused(f"its data is not there: {torrent.storage_problem}", "info_hash")
        if torrent.state not in MOVABLE:
            raise MoveRefused(
                f"it is {torrent.state}: pause it first (a download's writes would race the "
                "copy), or wait until it seeds",
                "info_hash",
            )
        task = MoveTask(torrent, torrent.storage.save_path, target)
        self.tasks[torrent] = task
        torrent.move_task = task
        specs = file_specs(torrent.meta.files)
        d = self._run(plan_move, task.source, target, specs, torrent.storage.part_path)

        def planned(plan: MovePlan) -> dict[str, Any]:
            task.job = MoveJob(plan, torrent.storage, self.ops)
            if task.cancelled:
                self._end(task)
                raise MoveRefused("the torrent was removed", "info_hash")
            torrent.env.emit(
                torrent, "moving", {"from": str(task.source), "to": str(target), "size": plan.total}
            )
            _log.info("moving {label} to {t}", label=torrent.label, t=target)
            self._step(task)
            return {
                "info_hash": torrent.hex,
                "from": str(task.source),
                "to": str(target),
                "size": plan.total,
            }

        def refused(failure: Failure) -> Failure:
            if task.job is None:
                self._end(task)
            if failure.check(OSError):  # the plan could not look at the disk
                raise MoveRefused(f"cannot move to {target}: {describe(failure.value)}")
            return failure

        return d.addCallbacks(planned, refused)

    def progress(self, torrent: Any) -> float | None:
        task = self.tasks.get(torrent)
        return None if task is None else round(task.progress, 4)

    def cancel(self, torrent: Any) -> defer.Deferred[None]:
        """Stop the torrent's move and put its files back; fires when they are (at once
        if it is not moving)."""
        task = self.tasks.get(torrent)
        if task is None:
            return defer.succeed(None)
        task.cancelled = True
        waiter: defer.Deferred[None] = defer.Deferred()
        task.ended.addBoth(lambda _: waiter.callback(None))
        return waiter

    def stop(self) -> defer.Deferred[Any]:
        """Shutdown: every move is undone (files back at their source)."""
        return defer.DeferredList([self.cancel(t) for t in list(self.tasks)])

    def _step(self, task: MoveTask) -> None:
        assert task.job is not None
        d = self._run(task.job.step)
        d.addCallbacks(lambda done: self._stepped(task, done), lambda f: self._undo(task, f))
        d.addErrback(self._bug, task)

    def _stepped(self, task: MoveTask, done: bool) -> None:
        assert task.job is not None
        if task.cancelled:
            self._undo(task, None)
        elif done:
            d = self._run(task.job.commit)
            d.addCallbacks(lambda dev: self._moved(task, dev), lambda f: self._undo(task, f))
            d.addErrback(self._bug, task)
        else:
            self._step(task)

    def _moved(self, task: MoveTask, dev: int) -> None:
        t = task.torrent
        t.options = replace(t.options, save_path=task.target)
        t.storage.root_dev = dev
        seconds = round(time.monotonic() - task.started, 3)
        _log.info("moved {label} to {t} in {s} s", label=t.label, t=task.target, s=seconds)
        for warning in task.job.warnings if task.job is not None else ():
            _log.warn("moving {label}: {w}", label=t.label, w=warning)
        self._end(task)
        t.env.emit(
            t, "moved", {"from": str(task.source), "to": str(task.target), "seconds": seconds}
        )
        if task.resume_after:
            t.resume()

    def _undo(self, task: MoveTask, failure: Failure | None) -> None:
        assert task.job is not None
        d = self._run(task.job.rollback)
        d.addCallbacks(
            lambda problems: self._undone(task, failure, problems),
            lambda f: self._undone(task, failure, [f.getErrorMessage()]),
        )
        d.addErrback(self._bug, task)

    def _undone(self, task: MoveTask, failure: Failure | None, problems: list[str]) -> None:
        t = task.torrent
        self._end(task)
        if failure is None and not problems:  # cancelled: shutdown or removal
            _log.info("move of {label} undone: the data stays in {s}", label=t.label, s=task.source)
            return
        cause = failure.getErrorMessage() if failure is not None else "cancelled"
        if problems:
            message = (
                f"move to {task.target} failed: {cause}; undoing it failed too: "
                f"{'; '.join(problems)} (files are split between {task.source} and {task.target})"
            )
        else:
            message = (
                f"move to {task.target} failed: {cause}; the data stays whole in {task.source}"
            )
        if t.state is not S.STOPPED:
            t.fail(message)

    def _end(self, task: MoveTask) -> None:
        if self.tasks.get(task.torrent) is task:
            del self.tasks[task.torrent]
        if task.torrent.move_task is task:
            task.torrent.move_task = None
        if not task.ended.called:
            task.ended.callback(None)

    def _bug(self, failure: Failure, task: MoveTask) -> None:
        _log.failure("moving {label} failed", failure, label=task.torrent.label)
        self._end(task)
