"""SHA-1 checks and piece I/O on a bounded thread pool, so the reactor thread never blocks.

hashlib and file I/O release the GIL, so a small pool (2-4 threads) uses the other cores.
Everything here returns Deferreds that fire on the reactor thread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from btd.core.bitfield import Bitfield
from btd.core.storage import MissingDataError, Storage

T = TypeVar("T")

RECHECK_JOBS = 2
"""Batches of a recheck in flight at once: enough to keep two cores busy, no more."""
RECHECK_BATCH_BYTES = 8 * 1024 * 1024
"""About this many bytes are read and hashed per pool job (at least one piece)."""


def make_threadpool(reactor: Any, size: int = 2, name: str = "btd-disk") -> ThreadPool:
    """A started pool of at most ``size`` threads, stopped when the reactor shuts down."""
    pool = ThreadPool(minthreads=0, maxthreads=max(1, size), name=name)
    pool.start()
    reactor.addSystemEventTrigger("during", "shutdown", pool.stop)
    return pool


def _hash_ok(data: bytes, expected: bytes) -> bool:
    return hashlib.sha1(data).digest() == expected


def _verify_and_write(storage: Storage, index: int, data: bytes, expected: bytes) -> bool:
    if not _hash_ok(data, expected):
        return False
    storage.write_piece(index, data)
    return True


def _check_batch(storage: Storage, piece_hashes: bytes, batch: list[int]) -> list[tuple[int, bool]]:
    out = []
    for index in batch:
        try:
            data = storage.read_piece(index)
        except MissingDataError:
            out.append((index, False))
            continue
        out.append((index, _hash_ok(data, piece_hashes[index * 20 : index * 20 + 20])))
    return out


def _batches(pieces: Iterable[int], per_batch: int) -> Iterator[list[int]]:
    batch: list[int] = []
    for index in pieces:
        batch.append(index)
        if len(batch) >= per_batch:
            yield batch
            batch = []
    if batch:
        yield batch


class Verifier:
    """Runs hashing and storage calls on ``threadpool``; results come back on the reactor."""

    def __init__(self, reactor: Any, threadpool: ThreadPool) -> None:
        self._reactor = reactor
        self._pool = threadpool

    def _run(self, f: Callable[..., T], *args: Any) -> Deferred[T]:
        return deferToThreadPool(self._reactor, self._pool, f, *args)

    def hash_piece(self, data: bytes, expected: bytes) -> Deferred[bool]:
        """Whether sha1(data) is ``expected``."""
        return self._run(_hash_ok, data, expected)

    def write_piece(self, storage: Storage, index: int, data: bytes) -> Deferred[None]:
        return self._run(storage.write_piece, index, data)

    def verify_and_write(
        self, storage: Storage, index: int, data: bytes, expected: bytes
    ) -> Deferred[bool]:
        """Hash, then write only if it matches: one pool job, one thread hop."""
        return self._run(_verify_and_write, storage, index, data, expected)

    def read_block(self, storage: Storage, index: int, begin: int, length: int) -> Deferred[bytes]:
        """A block to serve to a peer."""
        return self._run(storage.read, index, begin, length)

    def flush(self, storage: Storage) -> Deferred[None]:
        """fsync what was written; resume data may record pieces once this fires."""
        return self._run(storage.flush)

    def recheck(
        self,
        storage: Storage,
        piece_hashes: bytes,
        piece_length: int,
        total_length: int,
        *,
        pieces: Iterable[int] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        jobs: int = RECHECK_JOBS,
        batch_bytes: int = RECHECK_BATCH_BYTES,
    ) -> Deferred[Bitfield]:
        """Read and hash pieces off-thread; fires with the Bitfield of pieces that check out.

        Pieces not checked (not in ``pieces``) and pieces whose data is missing are not in it.
        At most ``jobs`` batches are in flight. ``on_progress(done, total)`` and
        ``should_stop()`` run on the reactor thread after each batch; stopping (or cancelling
        the Deferred) fails it with CancelledError. A StorageError other than missing data
        fails it with that error.
        """
        num_pieces = -(-total_length // piece_length)
        if len(piece_hashes) != 20 * num_pieces:
            raise ValueError(f"{len(piece_hashes)} bytes of piece hashes for {num_pieces} pieces")
        wanted = sorted(set(range(num_pieces) if pieces is None else pieces))
        if wanted and not (0 <= wanted[0] and wanted[-1] < num_pieces):
            raise ValueError(f"piece index out of range 0..{num_pieces - 1}")
        have = Bitfield(num_pieces)
        total = len(wanted)
        batches = _batches(wanted, max(1, batch_bytes // piece_length))
        state = {"done": 0, "in_flight": 0, "stopped": False, "failure": None}

        def cancel(_: Deferred[Bitfield]) -> None:
            state["stopped"] = True

        result: Deferred[Bitfield] = Deferred(cancel)

        def finish() -> None:
            if state["in_flight"] or result.called:
                return
            if state["failure"] is not None:
                result.errback(state["failure"])
            elif state["stopped"]:
                result.errback(defer.CancelledError("recheck stopped"))
            else:
                result.callback(have)

        def launch() -> None:
            while (
                state["in_flight"] < max(1, jobs)
                and not state["stopped"]
                and state["failure"] is None
            ):
                batch = next(batches, None)
                if batch is None:
                    break
                state["in_flight"] += 1
                d = self._run(_check_batch, storage, piece_hashes, batch)
                d.addCallbacks(on_batch, on_error)
            finish()

        def on_batch(found: list[tuple[int, bool]]) -> None:
            state["in_flight"] -= 1
            for index, ok in found:
                if ok:
                    have.add(index)
            state["done"] += len(found)
            try:
                if on_progress is not None:
                    on_progress(state["done"], total)
                if should_stop is not None and should_stop():
                    state["stopped"] = True
            except Exception:
                state["failure"] = Failure()
            launch()

        def on_error(failure: Any) -> None:
            state["in_flight"] -= 1
            if state["failure"] is None:  # later errors are dropped: the first one is reported
                state["failure"] = failure
            finish()

        launch()
        return result
