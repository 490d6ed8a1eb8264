from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from session_harness import content, single
from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from btd.core import verify
from btd.core.errors import StorageError
from btd.core.metainfo import FileEntry as FE  # the real one: storage must accept it
from btd.core.metainfo import parse_metainfo
from btd.core.storage import FileStorage
from btd.core.torrent_data import TorrentData
from btd.core.verify import Verifier, make_threadpool


class InlineReactor:
    """callFromThread runs at once: with InlinePool, every Deferred fires synchronously."""

    def __init__(self) -> None:
        self.triggers: list[tuple[str, str, Callable[[], Any]]] = []

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        f(*args, **kw)

    def addSystemEventTrigger(self, phase: str, event: str, f: Callable[[], Any]) -> None:
        self.triggers.append((phase, event, f))


class InlinePool:
    def callInThreadWithCallback(self, on_result, f, *args, **kw) -> None:
        try:
            result = f(*args, **kw)
        except BaseException:
            on_result(False, Failure())
        else:
            on_result(True, result)


class QueuedPool(InlinePool):
    """Holds jobs until the test runs them, to see how many are in flight."""

    def __init__(self) -> None:
        self.pending: list[tuple[Any, ...]] = []
        self.most = 0

    def callInThreadWithCallback(self, on_result, f, *args, **kw) -> None:
        self.pending.append((on_result, f, args, kw))
        self.most = max(self.most, len(self.pending))

    def run_one(self) -> None:
        on_result, f, args, kw = self.pending.pop(0)
        super().callInThreadWithCallback(on_result, f, *args, **kw)


def result_of(d: defer.Deferred) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


PIECE = 64


def make_torrent(tmp_path: Path, total: int = 1000) -> tuple[FileStorage, bytes, bytes]:
    files = [FE(("t", "a"), 300, 0), FE(("t", "b"), 450, 300), FE(("t", "c"), total - 750, 750)]
    data = bytes((i * 13) % 251 for i in range(total))
    n = -(-total // PIECE)
    hashes = b"".join(hashlib.sha1(data[i * PIECE : (i + 1) * PIECE]).digest() for i in range(n))
    return FileStorage(tmp_path, files, PIECE, total), data, hashes


def test_hash_piece() -> None:
    v = Verifier(InlineReactor(), InlinePool())
    assert result_of(v.hash_piece(b"abc", hashlib.sha1(b"abc").digest())) is True
    assert result_of(v.hash_piece(b"abd", hashlib.sha1(b"abc").digest())) is False


def test_verify_and_write_writes_only_good_pieces(tmp_path: Path) -> None:
    s, data, hashes = make_torrent(tmp_path)
    v = Verifier(InlineReactor(), InlinePool())
    good = data[PIECE : 2 * PIECE]
    assert result_of(v.verify_and_write(s, 1, b"\xff" * PIECE, hashes[20:40])) is False
    assert not (tmp_path / "t" / "a").exists()
    assert result_of(v.verify_and_write(s, 1, good, hashes[20:40])) is True
    assert result_of(v.read_block(s, 1, 16, 16)) == good[16:32]
    result_of(v.write_piece(s, 2, data[2 * PIECE : 3 * PIECE]))
    result_of(v.flush(s))
    assert (tmp_path / "t" / "a").read_bytes()[PIECE : 3 * PIECE] == data[PIECE : 3 * PIECE]


def test_errors_arrive_as_failures(tmp_path: Path) -> None:
    s, _, _ = make_torrent(tmp_path)
    v = Verifier(InlineReactor(), InlinePool())
    with pytest.raises(StorageError, match="file missing"):
        result_of(v.read_block(s, 0, 0, 16))


def test_recheck_all_pieces(tmp_path: Path) -> None:
    s, data, hashes = make_torrent(tmp_path)
    for p in range(s.num_pieces):
        s.write_piece(p, data[p * PIECE : (p + 1) * PIECE])
    s.write_piece(5, b"\x00" * PIECE)  # corrupt one piece
    progress: list[tuple[int, int]] = []
    v = Verifier(InlineReactor(), InlinePool())
    have = result_of(
        v.recheck(
            s, hashes, PIECE, 1000, on_progress=lambda *a: progress.append(a), batch_bytes=3 * PIECE
        )
    )
    assert [p in have for p in range(16)] == [p != 5 for p in range(16)]
    assert have.count == 15
    assert progress[-1] == (16, 16) and len(progress) == 6  # 16 pieces in batches of 3


def test_recheck_missing_file_counts_as_not_have(tmp_path: Path) -> None:
    s, data, hashes = make_torrent(tmp_path)
    for p in range(s.num_pieces):
        s.write_piece(p, data[p * PIECE : (p + 1) * PIECE])
    s.close()
    (tmp_path / "t" / "b").unlink()  # bytes 300..749: pieces 4..11
    s2 = FileStorage(tmp_path, s._files, PIECE, 1000)
    v = Verifier(InlineReactor(), InlinePool())
    have = result_of(v.recheck(s2, hashes, PIECE, 1000))
    assert [p for p in range(16) if p not in have] == list(range(4, 12))
    assert s2.check_files().bad_pieces() == set(range(4, 12))


def test_recheck_only_given_pieces(tmp_path: Path) -> None:
    s, data, hashes = make_torrent(tmp_path)
    for p in range(s.num_pieces):
        s.write_piece(p, data[p * PIECE : (p + 1) * PIECE])
    v = Verifier(InlineReactor(), InlinePool())
    have = result_of(v.recheck(s, hashes, PIECE, 1000, pieces=[15, 3, 3]))
    assert [p for p in range(16) if p in have] == [3, 15]
    with pytest.raises(ValueError):
        v.recheck(s, hashes, PIECE, 1000, pieces=[16])
    with pytest.raises(ValueError):
        v.recheck(s, hashes[:-20], PIECE, 1000)


def test_recheck_bounds_jobs_in_flight(tmp_path: Path) -> None:
    s, data, hashes = make_torrent(tmp_path)
    pool = QueuedPool()
    v = Verifier(InlineReactor(), pool)
    d = v.recheck(s, hashes, PIECE, 1000, batch_bytes=PIECE, jobs=2)
    assert len(pool.pending) == 2
    while pool.pending:
        pool.run_one()
    assert pool.most == 2
    assert result_of(d).count == 0


def test_recheck_stops_when_asked(tmp_path: Path) -> None:
    s, _, hashes = make_torrent(tmp_path)
    pool = QueuedPool()
    v = Verifier(InlineReactor(), pool)
    progress: list[int] = []
    d = v.recheck(
        s,
        hashes,
        PIECE,
        1000,
        batch_bytes=PIECE,
        jobs=2,
        on_progress=lambda done, total: progress.append(done),
        should_stop=lambda: len(progress) >= 3,
    )
    while pool.pending:
        pool.run_one()
    assert progress == [1, 2, 3, 4]  # the 4th batch was in flight when stop was asked
    with pytest.raises(defer.CancelledError):
        result_of(d)


def test_recheck_cancel(tmp_path: Path) -> None:
    s, _, hashes = make_torrent(tmp_path)
    pool = QueuedPool()
    v = Verifier(InlineReactor(), pool)
    d = v.recheck(s, hashes, PIECE, 1000, batch_bytes=PIECE)
    d.cancel()
    while pool.pending:
        pool.run_one()
    assert pool.most == 2
    with pytest.raises(defer.CancelledError):
        result_of(d)


def test_recheck_storage_error_fails(tmp_path: Path) -> None:
    s, _, hashes = make_torrent(tmp_path)
    s.close()
    v = Verifier(InlineReactor(), InlinePool())
    with pytest.raises(StorageError, match="closed"):
        result_of(v.recheck(s, hashes, PIECE, 1000))


def test_make_threadpool_stops_at_shutdown() -> None:
    reactor = InlineReactor()
    pool = make_threadpool(reactor, 3, "btd-test")
    try:
        assert pool.started and pool.max == 3
        assert reactor.triggers == [("during", "shutdown", pool.stop)]
    finally:
        pool.stop()


def test_recheck_with_real_threadpool_and_reactor(tmp_path: Path) -> None:
    from twisted.internet import reactor

    s, data, hashes = make_torrent(tmp_path)
    for p in range(s.num_pieces):
        s.write_piece(p, data[p * PIECE : (p + 1) * PIECE])
    pool = ThreadPool(minthreads=0, maxthreads=2, name="btd-verify-test")
    pool.start()
    try:
        v = Verifier(reactor, pool)
        seen: list[tuple[int, int]] = []
        d = v.recheck(
            s, hashes, PIECE, 1000, batch_bytes=2 * PIECE, on_progress=lambda *a: seen.append(a)
        )
        out: list[Any] = []
        d.addBoth(out.append)
        for _ in range(2000):
            if out:
                break
            reactor.iterate(0.01)
        assert len(out) == 1 and out[0].complete, out
        assert seen[-1] == (16, 16)
    finally:
        pool.stop()
        s.close()


def test_verify_and_write_batches_pieces_that_queue_behind_a_running_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify, "WRITE_JOBS", 2)
    monkeypatch.setattr(verify, "WRITE_BATCH_BYTES", 2 * PIECE)
    s, data, hashes = make_torrent(tmp_path)
    pool = QueuedPool()
    v = Verifier(InlineReactor(), pool)

    def piece(i: int) -> bytes:
        return data[i * PIECE : (i + 1) * PIECE]

    first = v.verify_and_write(s, 0, piece(0), hashes[0:20])
    assert len(pool.pending) == 1  # none was running: the first piece goes at once
    rest = [v.verify_and_write(s, i, piece(i), hashes[20 * i : 20 * i + 20]) for i in (1, 2, 3)]
    bad = v.verify_and_write(s, 4, b"\xff" * PIECE, hashes[80:100])
    assert len(pool.pending) == 2  # a second job once a full batch queued; the rest wait
    pool.run_one()
    assert result_of(first) is True
    assert len(pool.pending) == 2  # the queue went out as soon as the first job ended
    pool.run_one()
    pool.run_one()
    assert [result_of(d) for d in rest] == [True, True, True] and result_of(bad) is False
    assert pool.most == 2 and not pool.pending
    flushed = v.flush(s)
    pool.run_one()
    result_of(flushed)
    assert (tmp_path / "t" / "a").read_bytes()[: 4 * PIECE] == data[: 4 * PIECE]


def test_a_failed_write_in_a_batch_fails_only_its_piece(tmp_path: Path) -> None:
    s, data, hashes = make_torrent(tmp_path)
    pool = QueuedPool()
    v = Verifier(InlineReactor(), pool)
    calls: list[int] = []
    real = s.write_piece

    def write_piece(index: int, piece: bytes) -> None:
        calls.append(index)
        if index == 2:
            raise StorageError("disk full")
        real(index, piece)

    s.write_piece = write_piece  # type: ignore[method-assign]
    ds = [
        v.verify_and_write(s, i, data[i * PIECE : (i + 1) * PIECE], hashes[20 * i : 20 * i + 20])
        for i in range(4)
    ]
    while pool.pending:
        pool.run_one()
    assert calls == [0, 1, 2, 3]
    assert result_of(ds[3]) is True
    with pytest.raises(StorageError, match="disk full"):
        result_of(ds[2])


def test_a_torrents_file_check_stats_its_files_on_the_pool_not_the_reactor(tmp_path: Path) -> None:
    """TorrentData.check asks the pool for the stat calls (slow on NFS, many for big torrents)."""
    meta = parse_metainfo(single("t.bin", content(50_000, 1)))
    storage = FileStorage(tmp_path, meta.files, meta.piece_length, meta.total_length)
    pool = QueuedPool()
    checker = TorrentData(meta, storage, lambda: Verifier(InlineReactor(), pool))
    stats: list[int] = []
    real = storage.check_files
    storage.check_files = lambda: stats.append(1) or real()  # type: ignore[method-assign]
    d = checker.check(full=False, resume=None, should_stop=lambda: False)
    assert stats == [] and len(pool.pending) == 1 and not d.called  # queued, not run inline
    pool.run_one()
    assert stats == [1]
    assert result_of(d).count == 0  # no file exists yet: nothing to hash, nothing had
