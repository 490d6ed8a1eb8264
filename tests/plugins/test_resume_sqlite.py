"""resume_sqlite: round trips, WAL, durability order, and refusing files it must not touch.

Damaged, empty and missing stores (recovered, not refused) are tests/plugins/test_resume_recovery.py.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from btd.core.config import default_config
from btd.core.errors import ConfigError, StorageError
from btd.core.resume import NewTorrent, ResumeProgress, ResumeStoreError, StoredTorrent
from btd.plugins import resume_sqlite
from btd.plugins.resume_sqlite import SCHEMA_VERSION, SqliteResumeStore

A, B, C = "a" * 40, "b" * 40, "c" * 40
OPTIONS = {"save_path": "/srv/dl", "paused": False, "strategy": "rarest-first", "added_at": 10.0}
PROGRESS = ResumeProgress(
    have=b"\xa0",
    num_pieces=3,
    uploaded=5,
    downloaded=7,
    file_sizes=(100, -1),
    completed_at=None,
    saved_at=123.5,
)


@pytest.fixture()
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "resume.sqlite"


def open_store(path: Path) -> SqliteResumeStore:
    """Opened and prepared (checked, created), as the daemon's first ``load_all`` does."""
    store = SqliteResumeStore(path)
    store.load_all()
    return store


def reopened(path: Path) -> tuple[list[StoredTorrent], list[str]]:
    store = open_store(path)
    try:
        return store.load_all()
    finally:
        store.close()


def config(tmp_path: Path, **settings: Any) -> Any:
    cfg = default_config({"HOME": str(tmp_path)})
    return dataclasses.replace(
        cfg,
        daemon=dataclasses.replace(cfg.daemon, state_dir=tmp_path / "state"),
        plugins={"resume_sqlite": settings},
    )


# -- round trips -------------------------------------------------------------------------------
def test_torrents_options_and_progress_round_trip(path: Path) -> None:
    store = open_store(path)
    store.save_torrent(A, b"meta-a", OPTIONS)
    store.save_torrent(B, b"meta-b", {**OPTIONS, "added_at": 11.0})
    store.save_progress(A, PROGRESS)
    store.save_options(B, {**OPTIONS, "paused": True, "added_at": 11.0})
    store.close()
    found, problems = reopened(path)
    assert problems == []
    assert found == [
        StoredTorrent(A, b"meta-a", OPTIONS, PROGRESS),
        StoredTorrent(B, b"meta-b", {**OPTIONS, "paused": True, "added_at": 11.0}, None),
    ]


def test_progress_is_replaced_and_completed_at_kept(path: Path) -> None:
    store = open_store(path)
    store.save_torrent(A, b"meta", OPTIONS)
    store.save_progress(A, PROGRESS)
    later = dataclasses.replace(PROGRESS, have=b"\xe0", completed_at=99.0, saved_at=200.0)
    store.save_progress(A, later)
    assert store.load_all()[0][0].progress == later
    store.close()


def test_delete_forgets_torrent_and_progress(path: Path) -> None:
    store = open_store(path)
    store.save_torrent(A, b"meta", OPTIONS)
    store.save_progress(A, PROGRESS)
    store.delete(A)
    store.delete(A)  # already gone: fine
    assert store.load_all() == ([], [])
    store.save_progress(A, PROGRESS)  # a late save for a removed torrent leaves nothing
    count = store._db.execute("SELECT count(*) FROM progress").fetchone()[0]
    assert count == 0
    store.close()


def test_adding_again_drops_older_progress(path: Path) -> None:
    store = open_store(path)
    store.save_torrent(A, b"meta", OPTIONS)
    store.save_progress(A, PROGRESS)
    store.save_torrent(A, b"meta", {**OPTIONS, "save_path": "/elsewhere"})
    (item,), _ = store.load_all()
    assert item.progress is None and item.options["save_path"] == "/elsewhere"
    store.close()


def test_a_new_file_is_private_and_versioned(path: Path) -> None:
    open_store(path).close()
    assert os.stat(path).st_mode & 0o007 == 0
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


# -- WAL and durability ------------------------------------------------------------------------
def test_wal_mode_is_on(path: Path) -> None:
    store = open_store(path)
    store.save_torrent(A, b"meta", OPTIONS)
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert path.with_name(path.name + "-wal").exists()
    other = sqlite3.connect(path)  # the mode is in the file: a second reader sees it too
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()
    store.close()


def traced(store: SqliteResumeStore) -> list[str]:
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    return statements


def test_what_a_reply_waits_for_is_committed_with_synchronous_full(path: Path) -> None:
    store = open_store(path)
    for call in (
        lambda: store.save_torrent(A, b"meta", OPTIONS),
        lambda: store.save_options(A, OPTIONS),
        lambda: store.delete(A),
    ):
        log = traced(store)
        call()
        full, begin, commit = (
            log.index("PRAGMA synchronous=FULL"),
            log.index("BEGIN IMMEDIATE"),
            log.index("COMMIT"),
        )
        assert full < begin < commit  # fsynced at COMMIT, before the call returns
        assert log[-1] == "PRAGMA synchronous=NORMAL"
    store.close()


def test_progress_is_committed_with_synchronous_normal(path: Path) -> None:
    store = open_store(path)
    store.save_torrent(A, b"meta", OPTIONS)
    log = traced(store)
    store.save_progress(A, PROGRESS)
    assert "COMMIT" in log and not any("synchronous" in s for s in log)
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    store.close()


def test_a_save_is_visible_to_another_connection_on_return(path: Path) -> None:
    store = open_store(path)
    store.save_torrent(A, b"meta", OPTIONS)
    other = sqlite3.connect(path)
    assert other.execute("SELECT info_hash FROM torrents").fetchall() == [(A,)]
    other.close()
    store.close()


def test_the_connection_is_shared_by_threads(path: Path) -> None:
    import threading

    store = open_store(path)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            h = f"{n:040x}"
            store.save_torrent(h, b"meta", OPTIONS)
            for _ in range(20):
                store.save_progress(h, PROGRESS)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(store.load_all()[0]) == 4
    store.close()


# -- files it must refuse (and leave alone) ----------------------------------------------------
def assert_refused_untouched(path: Path, match: str) -> None:
    before = path.read_bytes()
    siblings = sorted(p.name for p in path.parent.iterdir())
    with pytest.raises(ResumeStoreError, match=match) as info:
        open_store(path)
    message = str(info.value)
    assert str(path) in message and "move it aside" in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == siblings  # no -wal, no -journal


def test_a_newer_schema_is_refused(path: Path) -> None:
    open_store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    assert_refused_untouched(path, "newer")


def test_another_programs_database_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE songs (title TEXT)")
    db.commit()
    db.close()
    assert_refused_untouched(path, "not a btd resume store")


def test_an_empty_file_becomes_a_store(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    store = open_store(path)
    store.save_torrent(A, b"meta", OPTIONS)
    store.close()
    assert [t.info_hash for t in reopened(path)[0]] == [A]


def test_bad_rows_are_reported_and_skipped(path: Path) -> None:
    store = open_store(path)
    for h in (A, B, C):
        store.save_torrent(h, b"meta-" + h.encode(), OPTIONS)
        store.save_progress(h, PROGRESS)
    store.close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE torrents SET options = '{oops' WHERE info_hash = ?", (A,))
        db.execute("UPDATE progress SET file_sizes = 'nope' WHERE info_hash = ?", (C,))
    db.close()
    found, problems = reopened(path)
    assert [(t.info_hash, t.progress is not None) for t in found] == [(B, True), (C, False)]
    assert len(problems) == 2
    assert A in problems[0] and str(path) in problems[0]
    assert C in problems[1] and "progress ignored" in problems[1]
    found, _ = reopened(path)  # reported, not deleted: the row is still there
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM torrents").fetchone()[0] == 3
    db.close()


# -- settings and hooks --------------------------------------------------------------------------
def test_the_hook_opens_the_store_in_the_state_dir(tmp_path: Path) -> None:
    cfg = config(tmp_path, interval=2)
    resume_sqlite.ResumeSqlitePlugin().btd_configure(cfg)
    store = resume_sqlite.ResumeSqlitePlugin().btd_resume_store(cfg)
    assert store.path == tmp_path / "state" / "resume.sqlite" and store.save_interval == 2.0
    store.close()
    other = tmp_path / "elsewhere" / "r.db"
    store = resume_sqlite.ResumeSqlitePlugin().btd_resume_store(config(tmp_path, path=str(other)))
    assert not other.exists()  # opening only peeks: the first load_all (a worker) creates it
    store.load_all()
    assert store.path == other and other.exists() and store.save_interval == 30.0
    store.close()


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"path": "relative/r.db"}, "path"),
        ({"path": 5}, "path"),
        ({"interval": 0.5}, "interval"),
        ({"interval": True}, "interval"),
        ({"interval": "30"}, "interval"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_settings_are_config_errors(tmp_path: Path, settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        resume_sqlite.ResumeSqlitePlugin().btd_configure(config(tmp_path, **settings))
    assert info.value.key == f"plugins.resume_sqlite.{key}"


def test_the_plugin_has_a_version() -> None:
    assert isinstance(resume_sqlite.__version__, str)


# -- starting from the files fallback ------------------------------------------------------------
def test_a_new_store_takes_in_what_the_files_fallback_kept(tmp_path: Path) -> None:
    from btd.core.torrent_store import TorrentStore

    files = TorrentStore(tmp_path / "state")
    files.save_torrent(A, b"meta-a", OPTIONS)
    files.save_progress(A, PROGRESS)
    files.save_torrent(B, b"meta-b", {**OPTIONS, "added_at": 11.0})
    store = resume_sqlite.ResumeSqlitePlugin().btd_resume_store(config(tmp_path))
    found, _ = store.load_all()
    assert store.created == 2 and store.report is None  # moving in is not a loss
    assert found == [
        StoredTorrent(A, b"meta-a", OPTIONS, PROGRESS),
        StoredTorrent(B, b"meta-b", {**OPTIONS, "added_at": 11.0}, None),
    ]
    store.delete(B)
    store.close()
    assert [t.info_hash for t in files.load_all()[0]] == [A]  # the copies follow the store
    store = resume_sqlite.ResumeSqlitePlugin().btd_resume_store(
        config(tmp_path)
    )  # not a new store: no import
    assert [t.info_hash for t in store.load_all()[0]] == [A] and store.created is None
    store.close()


def test_a_failed_import_leaves_no_schema_and_is_tried_again(tmp_path: Path) -> None:
    from btd.core.torrent_store import TorrentStore

    TorrentStore(tmp_path / "state").save_torrent(A, b"meta", OPTIONS)
    path = tmp_path / "state" / "resume.sqlite"
    store = SqliteResumeStore(path, copies=tmp_path / "state")
    assert store.copies is not None

    def broken() -> set[str]:
        raise OSError("disk trouble")

    store.copies.hashes = broken  # type: ignore[method-assign]
    with pytest.raises(OSError):
        store.load_all()
    assert not path.exists()
    store = SqliteResumeStore(path, copies=tmp_path / "state")
    assert [t.info_hash for t in store.load_all()[0]] == [A]
    store.close()


# -- batch adds ----------------------------------------------------------------------------------
def test_a_batch_is_one_durable_transaction(path: Path) -> None:
    store = open_store(path)
    store.save_torrent(A, b"old", OPTIONS)
    store.save_progress(A, PROGRESS)
    log = traced(store)
    store.save_torrents([NewTorrent(h, h.encode(), OPTIONS) for h in (A, B, C)])
    assert log.count("BEGIN IMMEDIATE") == 1 and log.count("COMMIT") == 1
    assert log.index("PRAGMA synchronous=FULL") < log.index("BEGIN IMMEDIATE")
    store.close()
    found, problems = reopened(path)
    assert [(s.info_hash, s.metainfo, s.progress) for s in found] == [
        (h, h.encode(), None)
        for h in (A, B, C)  # an earlier add's progress is gone
    ]
    assert problems == []


def test_a_failed_batch_keeps_none_of_it(path: Path) -> None:
    store = open_store(path)
    store._db.execute(  # the third row fails inside the transaction
        f"CREATE TRIGGER refuse BEFORE INSERT ON torrents WHEN NEW.info_hash = '{C}'"
        " BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    with pytest.raises(StorageError, match="refused"):
        store.save_torrents([NewTorrent(h, b"m", OPTIONS) for h in (A, B, C)])
    assert store.load_all() == ([], [])
    store.close()


# -- a batch's copies, written after the reply ---------------------------------------------------
def test_a_batch_records_at_once_and_writes_its_copies_later(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = SqliteResumeStore(state / "resume.sqlite", copies=state)
    store.load_all()
    copy = state / "torrents"
    store.save_torrents([NewTorrent(h, h.encode(), OPTIONS) for h in (A, B, C)])
    assert [t.info_hash for t in store.load_all()[0]] == [A, B, C]  # durable: the records
    assert not list(copy.glob("*.torrent"))  # the copies wait
    store.save_options(B, {**OPTIONS, "paused": True})  # a pending copy takes them
    store.delete(C)  # a removed torrent's copy is never written
    store.write_copies()
    assert sorted(p.name for p in copy.glob("?*.*")) == sorted(
        f"{h}{suffix}" for h in (A, B) for suffix in (".json", ".torrent")
    )
    from btd.core.torrent_store import TorrentStore

    found = {t.info_hash: t for t in TorrentStore(state).load_all()[0]}
    assert found[B].options["paused"] is True and found[A].metainfo == A.encode()
    store.close()


def test_copies_not_written_yet_are_written_at_close(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = SqliteResumeStore(state / "resume.sqlite", copies=state)
    store.load_all()
    store.save_torrents([NewTorrent(h, h.encode(), OPTIONS) for h in (A, B)])
    store.close()
    assert {p.name for p in (state / "torrents").glob("?*.*")} == {
        f"{h}{suffix}" for h in (A, B) for suffix in (".json", ".torrent")
    }
