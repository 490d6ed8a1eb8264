"""Resume data through the Session: saved when it should be, restored without rehashing.

The session runs on a MemoryReactorClock with a synchronous verifier that really hashes
(and records every recheck), ``run_blocking`` inline unless a test holds it back, and real
downloads from a fake seeder speaking the wire protocol over a StringTransport. Both stores
are exercised: the ``resume_sqlite`` plugin and the files fallback (core/torrent_store.py).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import session_harness
from session_harness import PL, HeldBlocking, content, hashes, result
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from btd.core.bencode import encode
from btd.core.bitfield import Bitfield
from btd.core.errors import StorageError
from btd.core.metainfo import parse_metainfo
from btd.core.net.peer import PeerProtocol
from btd.core.resume import (
    NewTorrent,
    ResumeProgress,
    progress_problem,
    resume_plan,
    save_many,
    save_progress_batch,
)
from btd.core.session import Session
from btd.core.storage import FileStorage
from btd.core.torrent_store import TorrentStore
from btd.core.wire import messages as m
from btd.core.wire.codec import WireDecoder, encode_handshake
from btd.plugins.resume_sqlite import SqliteResumeStore

INTERVAL = 5


# -- harness -----------------------------------------------------------------------------------
class Recording:
    """A store wrapper that logs every call (and passes it on)."""

    def __init__(self, store: Any, log: list[tuple[Any, ...]]) -> None:
        self.inner = store
        self.log = log
        self.save_interval = store.save_interval

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.inner, name)

        def call(*args: Any) -> Any:
            self.log.append((name, *args))
            return fn(*args)

        return call


def progress_saves(log: list[tuple[Any, ...]]) -> list[tuple[str, ResumeProgress]]:
    """Every (hex, progress) a Recording store was asked to record, one call or a batch."""
    out: list[tuple[str, ResumeProgress]] = []
    for e in log:
        if e[0] == "save_progress":
            out.append((e[1], e[2]))
        elif e[0] == "save_progress_many":
            out.extend(e[1])
    return out


def make_torrent(name: str, files: list[tuple[str, int]], seed: int) -> tuple[bytes, bytes]:
    """(.torrent bytes, content): a multi-file torrent with 16 KiB pieces."""
    blob = content(sum(size for _, size in files), seed)
    entries = [{b"length": size, b"path": [p.encode()]} for p, size in files]
    info = {b"name": name.encode(), b"piece length": PL, b"files": entries, b"pieces": hashes(blob)}
    return encode({b"info": info}), blob


# 4 pieces: a.bin holds pieces 0-1, b.bin pieces 1-3 (piece 1 spans both; piece 3 is short)
TORRENT, DATA = make_torrent("two", [("a.bin", 20_000), ("b.bin", 30_000)], 1)
HEX = parse_metainfo(TORRENT).hex
OTHER, OTHER_DATA = make_torrent("other", [("c.bin", 40_000)], 2)
OTHER_HEX = parse_metainfo(OTHER).hex


def make_session(tmp_path: Path, store: str = "sqlite") -> Session:
    plugins: dict[str, Any] = {"rarest_first": {}, "sequential": {}}
    if store == "sqlite":
        plugins["resume_sqlite"] = {"interval": INTERVAL}
    session = session_harness.make_session(tmp_path, plugins=plugins)
    if store == "files":
        TorrentStore.save_interval = INTERVAL
    return session


@pytest.fixture(autouse=True)
def _files_store_interval() -> Any:
    yield
    TorrentStore.save_interval = 30.0


def stored(tmp_path: Path, store: str = "sqlite") -> dict[str, Any]:
    """What a fresh store on the same state directory gives back: hex -> StoredTorrent."""
    s: Any = (
        SqliteResumeStore(tmp_path / "state" / "resume.sqlite")
        if store == "sqlite"
        else TorrentStore(tmp_path / "state")
    )
    try:
        found, problems = s.load_all()
    finally:
        s.close()
    assert problems == []
    return {item.info_hash: item for item in found}


def have_of(progress: ResumeProgress) -> set[int]:
    return set(Bitfield.from_bytes(progress.have, progress.num_pieces))


class Seeder:
    """A remote peer with ``pieces`` that unchokes us and answers our requests (wire level)."""

    port = 40000

    def __init__(self, session: Session, torrent: bytes, data: bytes, pieces: Any) -> None:
        Seeder.port += 1
        self.data = data
        meta = parse_metainfo(torrent)
        self.proto = PeerProtocol(session.connector, session.clock)
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", self.port))
        self.proto.makeConnection(self.transport)
        self.decoder = WireDecoder(expect_handshake=True)
        self.read = 0
        self.lost = False
        hs = m.Handshake(meta.info_hash, b"-XX0001-%012d" % self.port, m.make_reserved(fast=True))
        have = Bitfield(meta.num_pieces)
        for i in pieces:
            have.add(i)
        self.proto.dataReceived(encode_handshake(hs))
        assert self.proto.peer is not None, "the session did not take the peer"
        self.send(m.Bitfield(have.to_bytes()), m.UNCHOKE_MSG)

    def send(self, *msgs: Any) -> None:
        from btd.core.wire.codec import encode as wire

        self.proto.dataReceived(b"".join(wire(x) for x in msgs))

    def serve(self) -> None:
        """Answer requests until we stop asking; deliver our close if we closed."""
        while not self.lost:
            raw = self.transport.value()
            msgs = self.decoder.feed(raw[self.read :])
            self.read = len(raw)
            reqs = [x for x in msgs if isinstance(x, m.Request)]
            if self.transport.disconnecting:
                self.lost = True
                self.proto.connectionLost(Failure(ConnectionDone("closed by us")))
            if not reqs or self.lost:
                return
            self.send(
                *[
                    m.Piece(r.index, r.begin, self.data[r.index * PL + r.begin :][: r.length])
                    for r in reqs
                ]
            )


def download(session: Session, torrent: bytes, data: bytes, pieces: Any) -> None:
    Seeder(session, torrent, data, pieces).serve()


# -- the pure plan -----------------------------------------------------------------------------
def progress(have: set[int], sizes: tuple[int, ...], n: int = 4) -> ResumeProgress:
    bf = Bitfield(n)
    for i in have:
        bf.add(i)
    return ResumeProgress(bf.to_bytes(), n, 1, 2, sizes, None, 0.0)


def test_plan_trusts_pieces_of_files_that_kept_their_size(tmp_path: Path) -> None:
    meta = parse_metainfo(TORRENT)
    s = FileStorage(tmp_path, meta.files, PL, meta.total_length)
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "a.bin").write_bytes(DATA[:20_000])
    (tmp_path / "two" / "b.bin").write_bytes(DATA[20_000:])
    plan = resume_plan(progress({0, 1, 3}, (20_000, 30_000)), s.check_files().files, 4)
    assert set(plan.trusted) == {0, 1, 3} and plan.recheck == []
    # b.bin got shorter: its stored pieces are rechecked, piece 2 (not stored) is not
    (tmp_path / "two" / "b.bin").write_bytes(DATA[20_000:30_000])
    plan = resume_plan(progress({0, 1, 3}, (20_000, 30_000)), s.check_files().files, 4)
    assert set(plan.trusted) == {0} and plan.recheck == [1, 3]
    # the recorded size differs from today's (even if today's is "right"): recheck too
    (tmp_path / "two" / "b.bin").write_bytes(DATA[20_000:])
    plan = resume_plan(progress({0, 1}, (20_000, 12)), s.check_files().files, 4)
    assert set(plan.trusted) == {0} and plan.recheck == [1]


def test_progress_that_does_not_fit_is_named() -> None:
    assert progress_problem(progress({0}, (1, 2)), 4, 2) is None
    assert "pieces" in str(progress_problem(progress({0}, (1, 2)), 5, 2))
    assert "files" in str(progress_problem(progress({0}, (1,)), 4, 2))
    bad = dataclasses.replace(progress({0}, (1, 2)), have=b"\x0f")  # a spare bit set
    assert "bad piece set" in str(progress_problem(bad, 4, 2))


# -- saving ------------------------------------------------------------------------------------
def test_add_is_in_the_store_before_the_deferred_fires(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    held = HeldBlocking()
    session.run_blocking = held  # type: ignore[method-assign]
    d = session.add(TORRENT)
    assert not d.called and stored(tmp_path) == {}
    seen: list[Any] = []
    d.addCallback(lambda r: seen.append(stored(tmp_path)) or r)
    held.run()
    assert result(d)["added"] is True
    assert list(seen[0]) == [HEX] and seen[0][HEX].metainfo == TORRENT
    assert seen[0][HEX].progress is None


def recorded_session(tmp_path: Path, kind: str = "sqlite") -> tuple[Any, list[tuple[Any, ...]]]:
    """A started session whose store calls are recorded in the returned log."""
    session = make_session(tmp_path, kind)
    log: list[tuple[Any, ...]] = []
    session.store = Recording(session.store, log)
    session.start()
    return session, log


@pytest.mark.parametrize("kind", ["sqlite", "files"])
def test_periodic_save_writes_only_torrents_that_changed(tmp_path: Path, kind: str) -> None:
    session, log = recorded_session(tmp_path, kind)
    result(session.add(TORRENT))
    result(session.add(OTHER))

    def saves() -> list[str]:
        return sorted(h for h, _ in progress_saves(log))

    session.reactor.advance(INTERVAL - 1)
    assert saves() == []
    session.reactor.advance(1)
    assert saves() == sorted([HEX, OTHER_HEX])  # never saved before: both
    assert [e[0] for e in log if e[0].startswith("save_progress")] == ["save_progress_many"]
    del log[:]
    session.reactor.advance(INTERVAL)
    assert saves() == []  # nothing changed
    download(session, TORRENT, DATA, [0, 1])
    session.reactor.advance(INTERVAL)
    assert saves() == [HEX]
    assert have_of(stored(tmp_path, kind)[HEX].progress) == {0, 1}
    del log[:]
    other = session.find(OTHER_HEX)
    other.count_upload(100)  # the totals count as a change
    other.env.progress_changed(other)  # what its tick does while it has peers
    session.reactor.advance(INTERVAL)
    assert saves() == [OTHER_HEX]
    assert stored(tmp_path, kind)[OTHER_HEX].progress.uploaded == 100


def test_pause_saves_the_progress(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(TORRENT))
    download(session, TORRENT, DATA, [0, 2])
    t = session.find(HEX)
    result(t.pause())
    p = stored(tmp_path)[HEX]
    assert have_of(p.progress) == {0, 2}
    assert p.options["paused"] is True
    assert p.progress.downloaded == t.downloaded == 2 * PL


def test_completion_saves_the_progress(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(TORRENT))
    session.reactor.advance(3)
    download(session, TORRENT, DATA, range(4))
    t = session.find(HEX)
    assert t.state == "seeding" and t.completed_at == 3
    p = stored(tmp_path)[HEX].progress
    assert have_of(p) == {0, 1, 2, 3} and p.completed_at == 3
    assert p.file_sizes == (20_000, 30_000)


def test_stop_saves_what_changed_and_closes_the_files_and_store(tmp_path: Path) -> None:
    session, log = recorded_session(tmp_path)
    result(session.add(TORRENT))
    result(session.add(OTHER))
    session.reactor.advance(INTERVAL)  # both saved once
    download(session, TORRENT, DATA, [1])
    del log[:]
    result(session.stop())
    assert [e[0] for e in log] == ["save_progress_many", "close"]  # one write, then close
    assert [h for h, _ in progress_saves(log)] == [HEX]
    assert have_of(stored(tmp_path)[HEX].progress) == {1}
    with pytest.raises(StorageError, match="closed"):
        session.find(HEX).storage.write_piece(0, DATA[:PL])


def test_remove_forgets_the_progress_and_a_new_add_starts_afresh(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(TORRENT))
    download(session, TORRENT, DATA, [0])
    result(session.find(HEX).pause())
    assert stored(tmp_path)[HEX].progress is not None
    result(session.remove(session.find(HEX), delete_data=True))
    assert stored(tmp_path) == {}
    result(session.add(TORRENT))
    assert stored(tmp_path)[HEX].progress is None
    assert session.find(HEX).book.have.count == 0


# -- flush before record -----------------------------------------------------------------------
def test_a_piece_is_recorded_only_after_its_data_was_flushed(tmp_path: Path) -> None:
    """Snapshot, then more pieces land, then the job flushes and saves: they wait a turn."""
    session = make_session(tmp_path)
    events: list[tuple[Any, ...]] = []
    session.store = Recording(session.store, events)
    result(session.add(TORRENT))
    t = session.find(HEX)
    storage = t.storage
    write, flush = storage.write_piece, storage.flush
    storage.write_piece = lambda i, d: (events.append(("write", i)), write(i, d))[1]  # type: ignore[method-assign]
    storage.flush = lambda: (events.append(("flush",)), flush())[1]  # type: ignore[method-assign]
    download(session, TORRENT, DATA, [0])
    held = HeldBlocking()
    session.run_blocking = held  # type: ignore[method-assign]
    first = session.save_progress(t)  # snapshot: {0}
    download(session, TORRENT, DATA, [0, 2])  # piece 2 lands (written, not flushed) meanwhile
    second = session.save_progress(t)  # waits for the first job: ordered per torrent
    assert len(held.queue) == 1
    held.run()
    result(first), result(second)
    saves = [have_of(p) for _, p in progress_saves(events)]
    assert saves == [{0}, {0, 2}]
    # every piece a save names was written before a flush that came before that save
    for n, event in enumerate(events):
        if event[0].startswith("save_progress"):
            last_flush = max(i for i, e in enumerate(events[:n]) if e == ("flush",))
            written = {e[1] for e in events[:last_flush] if e[0] == "write"}
            assert all(have_of(p) <= written for _, p in progress_saves([event]))


def test_a_failed_flush_records_nothing(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(TORRENT))
    t = session.find(HEX)
    download(session, TORRENT, DATA, [0])

    def broken() -> None:
        raise StorageError("disk on fire")

    t.storage.flush = broken  # type: ignore[method-assign]
    result(session.save_progress(t))  # logged, not raised
    assert stored(tmp_path)[HEX].progress is None


# -- restoring ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sqlite", "files"])
def test_restart_brings_torrents_back_in_their_states_without_hashing(
    tmp_path: Path, kind: str
) -> None:
    third, third_data = make_torrent("third", [("d.bin", 50_000)], 3)
    first = make_session(tmp_path, kind)
    result(first.add(TORRENT))
    result(first.add(OTHER))
    result(first.add(third))
    first.reactor.advance(7)
    download(first, TORRENT, DATA, range(4))  # complete: seeding
    download(first, OTHER, OTHER_DATA, [0])
    result(first.find(OTHER_HEX).pause())
    download(first, third, third_data, [1, 2])  # still downloading
    before = {
        t.hex: (t.state, set(t.book.have), t.downloaded, t.uploaded, t.completed_at, t.added_at)
        for t in first.torrents.values()
    }
    result(first.stop())

    second = make_session(tmp_path, kind)
    second.start()
    after = {
        t.hex: (t.state, set(t.book.have), t.downloaded, t.uploaded, t.completed_at, t.added_at)
        for t in second.torrents.values()
    }
    assert after == before
    third_hex = parse_metainfo(third).hex
    states = {h: v[0] for h, v in after.items()}
    assert states == {HEX: "seeding", OTHER_HEX: "paused", third_hex: "downloading"}
    assert second.verifier.rechecks == []  # nothing was hashed: every file is as saved


def test_a_paused_torrent_comes_back_without_reading_its_files_until_resumed(
    tmp_path: Path,
) -> None:
    first = make_session(tmp_path)
    result(first.add(OTHER))
    first.reactor.advance(1)
    download(first, OTHER, OTHER_DATA, [0])
    result(first.find(OTHER_HEX).pause())
    result(first.stop())

    second = make_session(tmp_path)
    second.start()
    t = second.find(OTHER_HEX)
    assert t.state == "paused" and set(t.book.have) == {0}  # the saved pieces, shown
    assert not t.checked  # its files were not even looked at
    (tmp_path / "dl" / "other" / "c.bin").unlink()  # gone while paused: found on resume
    result(t.resume())
    second.reactor.advance(1)
    assert t.checked and set(t.book.have) == set() and t.state == "downloading"


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_changed_file_has_only_its_stored_pieces_rechecked(tmp_path: Path, damage: str) -> None:
    first = make_session(tmp_path)
    result(first.add(TORRENT))
    download(first, TORRENT, DATA, [0, 1, 3])
    result(first.stop())
    b = tmp_path / "dl" / "two" / "b.bin"
    if damage == "truncate":
        with open(b, "r+b") as f:
            f.truncate(10_000)  # piece 1's part of b.bin is gone; piece 3's too
    else:
        b.unlink()

    second = make_session(tmp_path)
    second.start()
    assert second.verifier.rechecks == [[1, 3]]  # b.bin's stored pieces; 2 was never had
    t = second.find(HEX)
    assert set(t.book.have) == {0} and t.state == "downloading"
    second.reactor.advance(INTERVAL)
    assert have_of(stored(tmp_path)[HEX].progress) == {0}  # the smaller set is saved


def test_without_progress_existing_files_are_rechecked_as_before(tmp_path: Path) -> None:
    (tmp_path / "dl" / "two").mkdir(parents=True)
    (tmp_path / "dl" / "two" / "a.bin").write_bytes(DATA[:20_000])
    first = make_session(tmp_path)
    result(first.add(TORRENT))
    assert first.verifier.rechecks == [[0, 1]]
    assert set(first.find(HEX).book.have) == {0}


def test_progress_for_another_shape_is_ignored(tmp_path: Path) -> None:
    first = make_session(tmp_path)
    result(first.add(TORRENT))
    download(first, TORRENT, DATA, [0])
    result(first.stop())
    db = sqlite3.connect(tmp_path / "state" / "resume.sqlite")
    with db:
        db.execute("UPDATE progress SET num_pieces = 9")
    db.close()
    second = make_session(tmp_path)
    second.start()
    assert second.verifier.rechecks == [[0, 1]]  # as without progress: a.bin exists, b.bin not
    assert set(second.find(HEX).book.have) == {0}


def test_a_torrent_still_checking_at_stop_keeps_its_stored_progress(tmp_path: Path) -> None:
    first = make_session(tmp_path)
    result(first.add(TORRENT))
    download(first, TORRENT, DATA, [0, 3])
    result(first.stop())
    with open(tmp_path / "dl" / "two" / "b.bin", "r+b") as f:
        f.truncate(29_000)
    second = make_session(tmp_path)
    second.verifier.hold_rechecks = True
    second.start()
    assert second.find(HEX).state == "checking"
    result(second.stop())
    assert have_of(stored(tmp_path)[HEX].progress) == {0, 3}


def test_a_bad_row_is_reported_and_skipped(tmp_path: Path, caplog: Any) -> None:
    from twisted.logger import globalLogPublisher

    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        first = make_session(tmp_path)
        result(first.add(TORRENT))
        result(first.add(OTHER))
        result(first.stop())
        db = sqlite3.connect(tmp_path / "state" / "resume.sqlite")
        with db:
            db.execute("UPDATE torrents SET metainfo = ? WHERE info_hash = ?", (b"garbage", HEX))
        db.close()
        second = make_session(tmp_path)
        second.start()
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert [t.hex for t in second.torrents.values()] == [OTHER_HEX]
    assert any(HEX in str(e.get("h", "")) for e in logged)
    assert HEX in stored(tmp_path)  # reported, not deleted


def test_a_damaged_store_starts_with_its_torrents_rechecked_and_says_so(tmp_path: Path) -> None:
    from twisted.logger import LogLevel, globalLogPublisher

    from btd.core import session_status

    first = make_session(tmp_path)
    result(first.add(TORRENT))
    result(first.add(OTHER))
    download(first, TORRENT, DATA, [0, 3])
    result(first.stop())
    path = tmp_path / "state" / "resume.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        second = make_session(tmp_path)
        events: list[Any] = []
        second.add_event_listener(events.append)
        second.start()
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert {t.hex for t in second.torrents.values()} == {HEX, OTHER_HEX}  # from the copies
    assert second.verifier.rechecks[0] == [0, 1, 2, 3]  # progress lost: the files are hashed
    assert set(second.find(HEX).book.have) == {0, 3}
    report = second.store_report
    assert report is not None and report.problem == "damaged" and report.rebuilt == 2
    critical = [e for e in logged if e.get("log_level") == LogLevel.critical]
    assert critical and "damaged" in critical[0]["message"]
    [event] = [e for e in events if e.kind == "resume_store"]
    assert event.data["rebuilt"] == 2 and event.data["moved_to"]
    info = session_status.info(second)
    assert "damaged" in info["resume_store"] and info["resume_store_report"]["lost"] == []
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"  # a new store in its place
    result(second.stop())
    third = make_session(tmp_path)
    third.start()
    assert third.store_report is None and len(third.torrents) == 2
    assert session_status.info(third)["resume_store"] == "ok"
    result(third.stop())


def test_start_checks_and_recovers_the_store_off_the_reactor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``start`` (the reactor) only peeks; the integrity check, the salvage and the rebuild
    wait for the thread pool, so the control socket answers meanwhile."""
    from btd.core import session_status
    from btd.plugins import resume_sqlite

    first = make_session(tmp_path)
    result(first.add(TORRENT))
    result(first.stop())
    path = tmp_path / "state" / "resume.sqlite"
    data = bytearray(path.read_bytes())
    data[4096 : 4096 + 8] = b"\xff" * 8  # page 2: only integrity_check can tell
    path.write_bytes(bytes(data))
    second = make_session(tmp_path)
    held = HeldBlocking()
    second.run_blocking = held  # type: ignore[method-assign]
    seen: list[str] = []
    real = resume_sqlite.integrity_problems
    monkeypatch.setattr(
        resume_sqlite, "integrity_problems", lambda p: seen.append("checked") or real(p)
    )
    second.start()
    assert seen == [] and path.read_bytes() == bytes(data)  # nothing done on the reactor
    assert session_status.info(second)["resume_store"] == "loading"
    held.run()
    assert seen == ["checked"] and second.store_report is not None
    assert [t.hex for t in second.torrents.values()] == [HEX]
    stopped = second.stop()
    held.run()
    result(stopped)


def test_a_store_that_cannot_be_read_is_reported_not_taken_for_empty(tmp_path: Path) -> None:
    from btd.core import session_status

    session = make_session(tmp_path)
    store = session.store

    def broken() -> Any:
        raise StorageError("cannot read the resume store: disk I/O error")

    store.load_all = broken
    session.start()
    assert session.store_report is not None and session.store_report.problem == "unreadable"
    assert "disk I/O error" in session_status.info(session)["resume_store"]
    result(session.stop())


# -- save_many: batch adds on any store ------------------------------------------------------------
class _PerItemStore:
    """A store without ``save_torrents``: save_many calls it per item."""

    def __init__(self) -> None:
        self.saved: list[str] = []

    def save_torrent(self, info_hash: str, metainfo: bytes, options: dict[str, Any]) -> None:
        if metainfo == b"bad":
            raise StorageError("refused")
        self.saved.append(info_hash)


def test_save_many_loops_without_save_torrents_and_isolates_failures() -> None:
    store = _PerItemStore()
    outcome = save_many(
        store, [NewTorrent("a", b"ok", {}), NewTorrent("b", b"bad", {}), NewTorrent("c", b"ok", {})]
    )
    assert store.saved == ["a", "c"]
    assert [type(o).__name__ for o in outcome] == ["NoneType", "StorageError", "NoneType"]


def test_save_many_uses_save_torrents_all_or_nothing() -> None:
    class Batched(_PerItemStore):
        def save_torrents(self, items: list[NewTorrent]) -> None:
            raise StorageError("disk full")

    outcome = save_many(Batched(), [NewTorrent("a", b"ok", {}), NewTorrent("b", b"ok", {})])
    assert [str(o) for o in outcome] == ["disk full", "disk full"]
    assert save_many(Batched(), []) == []


# -- batched rounds ----------------------------------------------------------------------------
def test_a_failing_flush_in_a_round_costs_only_that_torrent_its_save(tmp_path: Path) -> None:
    session, log = recorded_session(tmp_path)
    result(session.add(TORRENT))
    result(session.add(OTHER))
    t = session.find(HEX)
    flush = t.storage.flush

    def broken() -> None:
        raise StorageError("disk on fire")

    t.storage.flush = broken  # type: ignore[method-assign]
    session.reactor.advance(INTERVAL)
    assert [h for h, _ in progress_saves(log)] == [OTHER_HEX]  # written without the broken one
    assert stored(tmp_path)[HEX].progress is None
    assert session.saver.marked == 1  # tried again next round
    t.storage.flush = flush  # type: ignore[method-assign]
    del log[:]
    session.reactor.advance(INTERVAL)
    assert [h for h, _ in progress_saves(log)] == [HEX]


def test_a_round_looks_only_at_marked_torrents(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    session.start()
    result(session.add(TORRENT))
    result(session.add(OTHER))
    session.reactor.advance(INTERVAL)
    assert session.saver.marked == 0
    looked: list[Any] = []
    dirty = session.saver.dirty
    session.saver.dirty = lambda t: (looked.append(t.hex), dirty(t))[1]  # type: ignore[method-assign]
    session.reactor.advance(INTERVAL)
    assert looked == []  # nothing changed: the round costs nothing per torrent
    t = session.find(OTHER_HEX)
    Seeder(session, OTHER, OTHER_DATA, [])  # a peer: the torrent ticks
    t.count_upload(7)
    session.reactor.advance(1)  # its tick marks it
    assert session.saver.marked == 1
    session.reactor.advance(INTERVAL)
    assert looked == [OTHER_HEX]
    assert stored(tmp_path)[OTHER_HEX].progress.uploaded == 7


@pytest.mark.parametrize("kind", ["sqlite", "files"])
def test_save_progress_many_records_known_torrents(tmp_path: Path, kind: str) -> None:
    store: Any = (
        SqliteResumeStore(tmp_path / "resume.sqlite")
        if kind == "sqlite"
        else TorrentStore(tmp_path)
    )
    try:
        store.save_torrents([NewTorrent("a" * 40, TORRENT, {}), NewTorrent("b" * 40, OTHER, {})])
        items = [(h, progress({i}, (20_000, 30_000))) for i, h in enumerate(("a" * 40, "c" * 40))]
        store.save_progress_many(items)  # "c" is not stored (removed): left out
        found, problems = store.load_all()
    finally:
        store.close()
    assert problems == []
    got = {item.info_hash: item.progress for item in found}
    assert set(got) == {"a" * 40, "b" * 40}
    assert got["a" * 40] is not None and have_of(got["a" * 40]) == {0}
    assert got["b" * 40] is None


def test_save_progress_batch_loops_without_the_batch_method_and_isolates_failures() -> None:
    class PerItem:
        def __init__(self) -> None:
            self.saved: list[str] = []

        def save_progress(self, info_hash: str, p: ResumeProgress) -> None:
            if info_hash == "bad":
                raise StorageError("refused")
            self.saved.append(info_hash)

    store = PerItem()
    p = progress({0}, (1, 1))
    outcome = save_progress_batch(store, [("a", p), ("bad", p), ("c", p)])
    assert store.saved == ["a", "c"]
    assert [type(o).__name__ for o in outcome] == ["NoneType", "StorageError", "NoneType"]

    class Batched(PerItem):
        def save_progress_many(self, items: Any) -> None:
            raise StorageError("disk full")

    assert [str(o) for o in save_progress_batch(Batched(), [("a", p), ("c", p)])] == [
        "disk full",
        "disk full",
    ]
    assert save_progress_batch(Batched(), []) == []


def test_torrents_share_the_session_scheduler_even_while_it_is_empty(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    assert len(session.scheduler) == 0  # empty, hence falsy: still the one to use
    result(session.add(TORRENT))
    result(session.add(OTHER))
    assert all(t.scheduler is session.scheduler for t in session.torrents.values())


def test_a_removal_waits_for_the_round_in_flight_and_leaves_no_progress(tmp_path: Path) -> None:
    session, log = recorded_session(tmp_path)
    result(session.add(TORRENT))
    result(session.add(OTHER))
    held = HeldBlocking()
    session.run_blocking = held  # type: ignore[method-assign]
    session.reactor.advance(INTERVAL)  # the round's one job for both torrents waits
    assert len(held.queue) == 1
    removed = session.remove(session.find(OTHER_HEX))
    assert len(held.queue) == 1  # the delete waits for the round that names the torrent
    held.run()
    result(removed)
    calls = [e[0] for e in log if e[0] in ("save_progress_many", "delete")]
    assert calls == ["save_progress_many", "delete"]
    assert set(stored(tmp_path)) == {HEX} and stored(tmp_path)[HEX].progress is not None
