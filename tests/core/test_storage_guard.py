"""Storage availability (issue 13, class 2): a missing save path is ``storage missing``.

A torrent with progress whose save path is gone, empty, or on another device with none of
its files must not come back at 0 % and download again onto the disk under the mount
point: it is in state ``error`` with a ``storage missing: PATH`` detail, its progress is
kept, nothing is created, and it returns to the state it had when the path is back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import session_harness
from session_harness import PL, content, hashes, result
from twisted.internet import defer

from btd.core.bencode import encode
from btd.core.limits import STORAGE_RETRY_INTERVAL
from btd.core.metainfo import parse_metainfo
from btd.core.resume import storage_root_fields, stored_storage_dev
from btd.core.session import Session
from btd.core.storage import FileStorage, RootProbe, StorageMissingError, probe_root
from btd.core.storage_guard import StorageGuard, had_files, storage_problem
from btd.plugins.resume_sqlite import SqliteResumeStore

ROOT = Path("/mnt/disk")
HERE = RootProbe(True, True, dev=7, empty=False)


# -- the decision (pure) -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("probe", "recorded", "found", "expected"),
    [
        (RootProbe(False), 7, False, "does not exist"),
        (RootProbe(True, False, 7), 7, False, "is not a directory"),
        (RootProbe(False, error="Permission denied"), 7, False, "Permission denied"),
        (RootProbe(True, True, 7, empty=True), 7, False, "is empty"),
        (RootProbe(True, True, 7, empty=True), None, False, "is empty"),  # older resume data
        (RootProbe(True, True, 3, empty=False), 7, False, "on another device"),
        (RootProbe(True, True, 3, empty=False), 7, None, "on another device"),  # paused
        (RootProbe(True, True, 3, empty=False), 7, True, None),  # the disk came back as 3
        (RootProbe(True, True, 3, empty=False), None, False, None),  # nothing to compare
        (HERE, 7, False, None),  # same disk, files deleted: rechecked as before
        (HERE, 7, True, None),
    ],
)
def test_storage_problem_compares_the_recorded_device_with_the_probe(
    probe: RootProbe, recorded: int | None, found: bool | None, expected: str | None
) -> None:
    problem = storage_problem(ROOT, recorded, probe, had_files=True, files_found=found)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and problem.startswith(f"storage missing: {ROOT}")
        assert expected in problem


def test_a_torrent_that_never_wrote_anything_may_create_its_folder() -> None:
    for probe in (RootProbe(False), RootProbe(True, True, 3, empty=True)):
        assert storage_problem(ROOT, 7, probe, had_files=False, files_found=False) is None


def test_had_files_means_a_piece_or_a_file_on_disk_when_saved() -> None:
    assert not had_files((-1, -1), 0)
    assert had_files((-1, 0), 0) and had_files((-1, -1), 1)


def test_the_recorded_device_is_for_its_save_path_only() -> None:
    fields = storage_root_fields(Path("/mnt/disk"), 2049)
    assert fields == {"storage_root": "/mnt/disk", "storage_dev": 2049}
    assert stored_storage_dev(fields, Path("/mnt/disk")) == 2049
    assert stored_storage_dev(fields, Path("/elsewhere")) is None  # moved: not comparable
    assert storage_root_fields(Path("/x"), None) == {}
    for bad in ("2049", -1, 1.5, True, None):
        assert stored_storage_dev({**fields, "storage_dev": bad}, Path("/mnt/disk")) is None


def test_probe_root_looks_at_one_entry(tmp_path: Path) -> None:
    assert probe_root(tmp_path / "nope") == RootProbe(False)
    (tmp_path / "file").write_bytes(b"x")
    assert not probe_root(tmp_path / "file").is_dir
    assert probe_root(tmp_path / "file" / "below").error is not None
    (tmp_path / "empty").mkdir()
    empty = probe_root(tmp_path / "empty")
    assert empty.is_dir and empty.empty and empty.dev == os.stat(tmp_path).st_dev
    assert not probe_root(tmp_path).empty


# -- writes never re-create a missing save path ---------------------------------------------------
class Entry:
    def __init__(self, path: tuple[str, ...], length: int) -> None:
        self.path, self.length, self.pad = path, length, False


def storage(root: Path) -> FileStorage:
    return FileStorage(root, [Entry(("t", "a.bin"), PL)], PL, PL)


def test_a_write_does_not_recreate_a_save_path_that_vanished(tmp_path: Path) -> None:
    root = tmp_path / "disk"
    root.mkdir()
    s = storage(root)
    s.root_dev = os.stat(root).st_dev  # as recorded in resume data
    root.rmdir()  # unmounted
    with pytest.raises(StorageMissingError, match=f"storage missing: {root} is not there"):
        s.write_piece(0, bytes(PL))
    assert not root.exists()


def test_a_write_refuses_a_save_path_on_another_device(tmp_path: Path) -> None:
    root = tmp_path / "disk"
    root.mkdir()
    s = storage(root)
    s.root_dev = os.stat(root).st_dev + 1
    with pytest.raises(StorageMissingError, match="on another device"):
        s.write_piece(0, bytes(PL))
    assert list(root.iterdir()) == []


def test_a_fresh_torrent_creates_its_save_path_and_pins_its_device(tmp_path: Path) -> None:
    root = tmp_path / "new" / "dir"
    s = storage(root)
    s.write_piece(0, bytes(PL))
    assert (root / "t" / "a.bin").stat().st_size == PL
    assert s.root_dev == os.stat(root).st_dev


# -- the guard: one probe per distinct root per interval ------------------------------------------
class Waiting:
    def __init__(self) -> None:
        self.retries = 0

    def retry_storage(self) -> None:
        self.retries += 1


class CountingBlocking:
    def __init__(self) -> None:
        self.roots: list[list[Path]] = []

    def __call__(self, fn: Any, *args: Any) -> Any:
        from twisted.internet import defer

        self.roots.append(list(args[0]))
        return defer.maybeDeferred(fn, *args)


def test_the_guard_probes_each_missing_root_once_per_interval(tmp_path: Path) -> None:
    from twisted.internet.task import Clock

    from btd.core.scheduler import Scheduler

    clock = Clock()
    run = CountingBlocking()
    guard = StorageGuard(Scheduler(clock), run)
    disk, other = tmp_path / "disk", tmp_path / "other"
    torrents = [Waiting() for _ in range(2000)]
    for t in torrents:
        guard.wait(t, disk, probe_root(disk))
    lone = Waiting()
    guard.wait(lone, other, probe_root(other))
    assert len(guard) == 2001 and sorted(guard.roots) == [disk, other]
    clock.advance(STORAGE_RETRY_INTERVAL)
    clock.advance(STORAGE_RETRY_INTERVAL)
    assert run.roots == [[disk, other], [disk, other]]  # one job, one stat per root, per round
    assert all(t.retries == 0 for t in torrents)  # nothing changed: nobody retried
    disk.mkdir()
    (disk / "data").write_bytes(b"x")  # mounted again
    clock.advance(STORAGE_RETRY_INTERVAL)
    assert all(t.retries == 1 for t in torrents) and lone.retries == 0
    assert guard.roots == [other]
    guard.forget(lone, other)
    assert len(guard) == 0
    clock.advance(10 * STORAGE_RETRY_INTERVAL)
    assert len(run.roots) == 3  # no roots: no timer


def test_paused_torrents_on_one_root_share_a_probe(tmp_path: Path) -> None:
    from session_harness import HeldBlocking

    from btd.core.scheduler import Scheduler

    held = HeldBlocking()
    guard = StorageGuard(Scheduler(session_harness.MemoryReactorClock()), held)
    answers: list[RootProbe] = []
    for _ in range(100):
        guard.probe(tmp_path, answers.append)
    assert len(held.queue) == 1
    held.run()
    assert len(answers) == 100 and answers[0].is_dir


# -- a whole session: restart with the disk gone ----------------------------------------------------
def make_torrent(name: str, files: list[tuple[str, int]], seed: int) -> tuple[bytes, bytes]:
    blob = content(sum(size for _, size in files), seed)
    entries = [{b"length": size, b"path": [p.encode()]} for p, size in files]
    info = {b"name": name.encode(), b"piece length": PL, b"files": entries, b"pieces": hashes(blob)}
    return encode({b"info": info}), blob


TORRENT, DATA = make_torrent("two", [("a.bin", 20_000), ("b.bin", 30_000)], 1)
HEX = parse_metainfo(TORRENT).hex
PIECES = 4


def make_session(tmp_path: Path) -> Session:
    plugins = {"rarest_first": {}, "sequential": {}, "resume_sqlite": {"interval": 5}}
    return session_harness.make_session(tmp_path, plugins=plugins)


def seeding_then_stopped(tmp_path: Path, *, paused: bool = False) -> None:
    """A complete torrent in tmp_path/dl, its progress saved, the session stopped."""
    folder = tmp_path / "dl" / "two"
    folder.mkdir(parents=True)
    (folder / "a.bin").write_bytes(DATA[:20_000])
    (folder / "b.bin").write_bytes(DATA[20_000:])
    first = make_session(tmp_path)
    first.start()
    result(first.add(TORRENT))
    t = first.find(HEX)
    assert t.state == "seeding" and t.book.have.count == PIECES
    if paused:
        result(t.pause())
    result(first.stop())


def stored_have(tmp_path: Path) -> int:
    from btd.core.bitfield import Bitfield

    store = SqliteResumeStore(tmp_path / "state" / "resume.sqlite")
    try:
        found, _ = store.load_all()
    finally:
        store.close()
    (item,) = found
    assert item.progress is not None
    return Bitfield.from_bytes(item.progress.have, item.progress.num_pieces).count


def test_the_device_is_recorded_in_the_resume_data(tmp_path: Path) -> None:
    seeding_then_stopped(tmp_path)
    store = SqliteResumeStore(tmp_path / "state" / "resume.sqlite")
    try:
        (item,) = store.load_all()[0]
    finally:
        store.close()
    assert item.options["storage_root"] == str(tmp_path / "dl")
    assert item.options["storage_dev"] == os.stat(tmp_path / "dl").st_dev


@pytest.mark.parametrize("how", ["moved away", "empty mount point"])
def test_a_seeding_torrent_whose_disk_is_gone_is_storage_missing_then_seeds_again(
    tmp_path: Path, how: str
) -> None:
    seeding_then_stopped(tmp_path)
    dl, away = tmp_path / "dl", tmp_path / "away"
    dl.rename(away)
    if how == "empty mount point":
        dl.mkdir()

    session = make_session(tmp_path)
    events: list[Any] = []
    session.add_event_listener(events.append)
    session.start()
    t = session.find(HEX)
    assert t.state == "error"
    assert t.state_detail == t.error and t.error.startswith(f"storage missing: {dl}")
    assert t.book.have.count == PIECES and t.complete  # progress shown, not reset
    assert [e.data["error"] for e in events if e.kind == "error"] == [t.error]
    listed = session_harness.result(defer_list(session))
    assert listed["state"] == "error" and listed["state_detail"].startswith("storage missing")
    assert listed["progress"] == 1.0

    t.add_peers([("127.0.0.1", 6881)])  # a peer appears: nothing is dialled or written
    assert t.candidates.connecting == 0
    result(t.resume())  # btctl resume: looks again at once, still missing
    result(t.verify())  # btctl verify: the same, never a recheck that loses the pieces
    assert t.state == "error" and t.book.have.count == PIECES
    session.reactor.advance(3 * STORAGE_RETRY_INTERVAL)
    assert t.state == "error"
    assert (not dl.exists()) if how == "moved away" else list(dl.iterdir()) == []
    result(session.stop())
    assert stored_have(tmp_path) == PIECES  # the store still has every piece

    session = make_session(tmp_path)
    session.start()
    t = session.find(HEX)
    assert t.state == "error"
    if how == "empty mount point":
        dl.rmdir()
    away.rename(dl)  # mounted again
    session.reactor.advance(STORAGE_RETRY_INTERVAL)  # the guard's round
    assert t.state == "seeding" and t.error is None and t.state_detail is None
    assert t.book.have.count == PIECES
    assert session.verifier.rechecks == []  # nothing hashed: the files kept their sizes
    assert len(session.storage_guard) == 0


def defer_list(session: Session) -> Any:
    from twisted.internet import defer

    from btd.core.torrent_status import summary

    return defer.succeed(summary(session.find(HEX)))


def test_a_paused_torrent_whose_disk_is_gone_goes_back_to_paused(tmp_path: Path) -> None:
    seeding_then_stopped(tmp_path, paused=True)
    dl, away = tmp_path / "dl", tmp_path / "away"
    dl.rename(away)
    session = make_session(tmp_path)
    session.start()
    t = session.find(HEX)
    assert t.state == "error" and t.error.startswith(f"storage missing: {dl} does not exist")
    assert t.book.have.count == PIECES
    away.rename(dl)
    session.reactor.advance(STORAGE_RETRY_INTERVAL)
    assert t.state == "paused" and t.book.have.count == PIECES and not t.checked


def test_resume_looks_again_at_once(tmp_path: Path) -> None:
    seeding_then_stopped(tmp_path)
    dl, away = tmp_path / "dl", tmp_path / "away"
    dl.rename(away)
    session = make_session(tmp_path)
    session.start()
    t = session.find(HEX)
    assert t.state == "error"
    away.rename(dl)
    result(t.resume())  # no waiting for the guard's round
    assert t.state == "seeding" and session.verifier.rechecks == []


def test_a_torrent_without_progress_creates_its_folder_as_before(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    session.start()
    result(session.add(TORRENT))
    result(session.stop())
    (tmp_path / "dl").rmdir()
    session = make_session(tmp_path)
    session.start()
    t = session.find(HEX)
    assert t.state == "downloading" and t.error is None


def test_a_disk_that_comes_back_under_another_device_number_is_accepted(tmp_path: Path) -> None:
    seeding_then_stopped(tmp_path)
    db = tmp_path / "state" / "resume.sqlite"
    store = SqliteResumeStore(db)
    try:
        (item,) = store.load_all()[0]
        other = {**item.options, "storage_dev": item.options["storage_dev"] + 1}
        store.save_options(HEX, other)
    finally:
        store.close()
    session = make_session(tmp_path)
    session.start()
    t = session.find(HEX)
    assert t.state == "seeding"  # its files are there: the new device is recorded
    assert t.storage.root_dev == os.stat(tmp_path / "dl").st_dev


def test_another_device_without_the_files_is_storage_missing(tmp_path: Path) -> None:
    seeding_then_stopped(tmp_path)
    dl = tmp_path / "dl"
    (dl / "two").rename(tmp_path / "two")
    (dl / "lost+found").mkdir()  # the mount point is not empty: only the device tells
    store = SqliteResumeStore(tmp_path / "state" / "resume.sqlite")
    try:
        (item,) = store.load_all()[0]
        store.save_options(HEX, {**item.options, "storage_dev": item.options["storage_dev"] + 1})
    finally:
        store.close()
    session = make_session(tmp_path)
    session.start()
    t = session.find(HEX)
    assert t.state == "error" and "on another device" in t.error
    assert not (dl / "two").exists()


def write(t: Any, index: int) -> None:
    """A verified piece written, a failure reported as the Downloader does."""
    d = defer.maybeDeferred(t.data.verify_and_write, index, DATA[index * PL :][:PL])
    d.addCallback(lambda ok: (t.book.mark_have(index), t.pieces_changed()) if ok else None)
    d.addErrback(lambda f: t.fail(f.getErrorMessage()))


@pytest.mark.parametrize("progress", [False, True])
def test_a_download_whose_disk_vanishes_stops_and_creates_nothing(
    tmp_path: Path, progress: bool
) -> None:
    session = make_session(tmp_path)
    session.start()
    result(session.add(TORRENT))
    t = session.find(HEX)
    assert t.state == "downloading"
    if progress:
        write(t, 0)  # creates two/a.bin
        assert set(t.book.have) == {0}
    dl, away = tmp_path / "dl", tmp_path / "away"
    dl.rename(away)  # unmounted under the running torrent
    write(t, 2)  # b.bin would be created: refused
    assert t.state == "error" and t.error.startswith(f"storage missing: {dl}")
    assert not dl.exists()
    assert set(t.book.have) == ({0} if progress else set())
    away.rename(dl)
    session.reactor.advance(STORAGE_RETRY_INTERVAL)
    assert t.state == "downloading" and set(t.book.have) == ({0} if progress else set())
    assert session.verifier.rechecks == []  # a.bin kept its size: piece 0 trusted, not hashed
