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
from btd.core.storage import FileCheck, MissingDataError, Storage

T = TypeVar("T")

RECHECK_JOBS = 2
"""Batches of a recheck in flight at once: enough to keep two cores busy, no more."""
RECHECK_BATCH_BYTES = 8 * 1024 * 1024
"""About this many bytes are read and hashed per pool job (at least one piece)."""
WRITE_JOBS = 2
"""Hash-and-write jobs of downloaded pieces in flight at most; the second one only starts
when a full batch (``WRITE_BATCH_BYTES``) queued behind the first, i.e. when one thread
does not keep up. One job at a time costs less CPU per GiB (fewer handoffs, bigger
batches, no two threads writing one file) and one thread hashes and writes ~1 GB/s."""
WRITE_BATCH_BYTES = 8 * 1024 * 1024
"""At most about this many bytes of pieces go into one hash-and-write job."""


def make_threadpool(reactor: Any, size: int = 2, name: str = "btd-disk") -> ThreadPool:
    """A started pool of at most ``size`` threads, stopped when the reactor shuts down."""
    pool = ThreadPool(minthreads=0, maxthreads=max(1, size), name=name)
    pool.start()
    reactor.addSystemEventTrigger("during", "shutdown", pool.stop)
    return pool


Expected = bytes | Callable[[bytes], bool]
"""A piece's SHA-1, or a check of its data (v2)."""


def _hash_ok(data: bytes, expected: Expected) -> bool:
    """``expected`` is a piece's SHA-1 (v1), or a check of its data (v2's merkle hashes,
    ``Metainfo.piece_check``)."""
    if callable(expected):
        return expected(data)
    return hashlib.sha1(data).digest() == expected


def _verify_and_write(storage: Storage, index: int, data: bytes, expected: Expected) -> bool:
    if not _hash_ok(data, expected):
        return False
    storage.write_piece(index, data)
    return True


def _verify_and_write_batch(
    batch: list[tuple[Storage, int, bytes, Expected, Deferred[bool]]],
) -> list[bool | Exception]:
    """Each piece's answer, or the exception its write raised (the others still run)."""
    out: list[bool | Exception] = []
    for storage, index, data, expected, _ in batch:
        try:
            out.append(_verify_and_write(storage, index, data, expected))
        except Exception as exc:
            out.append(exc)
    return out


def _read_blocks(storage: Storage, spans: list[tuple[int, int, int]]) -> list[bytes]:
    return [storage.read(index, begin, length) for index, begin, length in spans]


def _want_files(storage: Any, indices: list[int]) -> None:
    for index in indices:
        storage.want_file(index)
    storage.flush()


def _check_batch(
    storage: Storage, piece_hashes: bytes | Callable[[int, bytes], bool], batch: list[int]
) -> list[tuple[int, bool]]:
    out = []
    for index in batch:
        try:
            data = storage.read_piece(index)
        except MissingDataError:
            out.append((index, False))
            continue
        if callable(piece_hashes):
            out.append((index, piece_hashes(index, data)))
        else:
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
        self._writes: list[tuple[Storage, int, bytes, Expected, Deferred[bool]]] = []
        self._write_jobs = 0
        self._write_queued = 0  # bytes in ``_writes``

    def _run(self, f: Callable[..., T], *args: Any) -> Deferred[T]:
        return deferToThreadPool(self._reactor, self._pool, f, *args)

    def hash_piece(self, data: bytes, expected: bytes) -> Deferred[bool]:
        """Whether sha1(data) is ``expected``."""
        return self._run(_hash_ok, data, expected)

    def write_piece(self, storage: Storage, index: int, data: bytes) -> Deferred[None]:
        return self._run(storage.write_piece, index, data)

    def verify_and_write(
        self, storage: Storage, index: int, data: bytes, expected: Expected
    ) -> Deferred[bool]:
        """Hash, then write only if it matches (on a pool thread).

        Pieces are batched: a job starts at once when none runs (a second one when a full
        batch queued, see ``WRITE_JOBS``), else the piece waits for the running job to end
        and goes with the others that queued meanwhile. Each job is two thread handoffs (there and back, with a wakeup
        of the reactor), which cost more main-thread CPU than the rest of a 1 MiB piece's
        bookkeeping; batching makes them per burst, not per piece, at full speed.
        """
        d: Deferred[bool] = Deferred()
        self._writes.append((storage, index, data, expected, d))
        self._write_queued += len(data)
        if self._write_jobs == 0 or (
            self._write_jobs < WRITE_JOBS and self._write_queued >= WRITE_BATCH_BYTES
        ):
            self._launch_writes()
        return d

    def _launch_writes(self) -> None:
        batch: list[tuple[Storage, int, bytes, Expected, Deferred[bool]]] = []
        size = 0
        writes = self._writes
        while writes and (not batch or size + len(writes[0][2]) <= WRITE_BATCH_BYTES):
            item = writes.pop(0)
            batch.append(item)
            size += len(item[2])
        self._write_queued -= size
        self._write_jobs += 1

        def finished(results: list[bool | Exception] | Failure) -> None:
            self._write_jobs -= 1
            if self._writes:  # the next batch starts before this one's callbacks run
                self._launch_writes()
            for i, (*_, d) in enumerate(batch):
                result = results if isinstance(results, Failure) else results[i]
                if isinstance(result, bool):
                    d.callback(result)
                else:
                    d.errback(result if isinstance(result, Failure) else Failure(result))

        self._run(_verify_and_write_batch, batch).addBoth(finished)

    def read_block(self, storage: Storage, index: int, begin: int, length: int) -> Deferred[bytes]:
        """A block to serve to a peer."""
        return self._run(storage.read, index, begin, length)

    def read_blocks(
        self, storage: Storage, spans: list[tuple[int, int, int]]
    ) -> Deferred[list[bytes]]:
        """Several (piece, begin, length) spans read in one pool job (one thread handoff)."""
        return self._run(_read_blocks, storage, spans)

    def flush(self, storage: Storage) -> Deferred[None]:
        """fsync what was written; resume data may record pieces once this fires."""
        return self._run(storage.flush)

    def want_files(self, storage: Any, indices: list[int]) -> Deferred[None]:
        """Skipped files became wanted: their bytes move out of the part file, then fsync
        (``FileStorage.want_file``)."""
        return self._run(_want_files, storage, indices)

    def _close_handles(self, storage: Storage) -> None:
        """A recheck read its files: they need not stay open (``FileStorage.close_handles``,
        on the pool: a close can wait on a network file system)."""
        close = getattr(storage, "close_handles", None)
        if close is not None:
            self._run(close).addErrback(lambda f: None)  # nothing to lose: a later read reopens

    def check_files(self, storage: Storage) -> Deferred[FileCheck]:
        """Which files exist and their sizes: a stat per file, so off the reactor (a torrent
        can have 200,000 files, and a network file system can be slow)."""
        return self._run(storage.check_files)

    def recheck(
        self,
        storage: Storage,
        piece_hashes: bytes | Callable[[int, bytes], bool],
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
        if not callable(piece_hashes) and len(piece_hashes) != 20 * num_pieces:
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
            self._close_handles(storage)
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
