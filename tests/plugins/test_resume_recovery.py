"""resume_sqlite after damage: a truncated, bit-flipped, 0-byte or missing store.

The file is moved aside (never deleted), every row still readable is salvaged, and every
torrent whose copy (``<state_dir>/torrents/<hash>.torrent``) has no record is rebuilt from
it with no progress (so its data is rechecked). The store says what happened in ``report``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from btd.core.bencode import encode
from btd.core.resume import NewTorrent, ResumeProgress, ResumeStoreError, StoredTorrent
from btd.core.torrent_store import TorrentStore
from btd.plugins.resume_sqlite import SqliteResumeStore

PAGE = 4096
OPTIONS = {"save_path": "/srv/dl", "paused": False, "strategy": "rarest-first"}
PROGRESS = ResumeProgress(
    have=b"\x80",
    num_pieces=1,
    uploaded=5,
    downloaded=7,
    file_sizes=(100,),
    completed_at=None,
    saved_at=123.5,
)


def metainfo(n: int, pad: int = 3000) -> tuple[str, bytes]:
    """(info hash hex, .torrent bytes): a real single-file torrent, ``pad`` bytes of comment
    so that a few torrents fill several pages."""
    info = {b"name": f"t{n}".encode(), b"piece length": 16384, b"length": 100}
    info[b"pieces"] = hashlib.sha1(b"%d" % n).digest()
    data = encode({b"info": info, b"comment": os.urandom(pad // 2).hex().encode()})
    return hashlib.sha1(encode(info)).hexdigest(), data


@pytest.fixture()
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def store_at(state: Path, copies: bool = True) -> SqliteResumeStore:
    return SqliteResumeStore(state / "resume.sqlite", copies=state if copies else None)


def fill(state: Path, count: int, *, copies: bool = True, pad: int = 3000) -> list[str]:
    store = store_at(state, copies)
    hashes = []
    for n in range(count):
        h, data = metainfo(n, pad)
        store.save_torrent(h, data, {**OPTIONS, "added_at": float(n)})
        store.save_progress(h, PROGRESS)
        hashes.append(h)
    assert store.load_all()[1] == []
    store.close()
    return hashes


def loaded(state: Path, copies: bool = True) -> tuple[SqliteResumeStore, list[StoredTorrent]]:
    store = store_at(state, copies)
    found, _ = store.load_all()
    return store, found


def aside(state: Path) -> list[Path]:
    return sorted(
        p for p in state.glob("resume.sqlite.damaged-*") if p.name[-4:] not in ("-wal", "-shm")
    )


# -- copies: the source of truth to rebuild from ------------------------------------------------
def test_every_add_keeps_a_copy_and_a_removal_drops_it(state: Path) -> None:
    a, b = fill(state, 2)
    copies = TorrentStore(state)
    assert {t.info_hash for t in copies.load_all()[0]} == {a, b}
    store = store_at(state)
    store.delete(a)
    store.save_options(b, {**OPTIONS, "paused": True})
    store.close()
    found = copies.load_all()[0]
    assert [(t.info_hash, t.options["paused"]) for t in found] == [(b, True)]


def test_a_healthy_store_gets_copies_written_for_records_that_had_none(state: Path) -> None:
    hashes = fill(state, 3, copies=False)  # a store from before copies were kept
    store, found = loaded(state)
    assert len(found) == 3 and store.report is None
    store.close()
    assert {t.info_hash for t in TorrentStore(state).load_all()[0]} == set(hashes)


def test_a_copy_without_a_record_comes_back_for_a_recheck(state: Path) -> None:
    hashes = fill(state, 2)
    h, data = metainfo(9)
    TorrentStore(state).save_torrent(h, data, OPTIONS)  # an add that crashed half way
    store, found = loaded(state)
    by_hash = {t.info_hash: t for t in found}
    assert set(by_hash) == {*hashes, h}
    assert by_hash[h].progress is None and by_hash[hashes[0]].progress == PROGRESS
    assert store.report is not None and store.report.rebuilt == 1
    store.close()


# -- damage ----------------------------------------------------------------------------------
def test_a_truncated_store_is_moved_aside_and_rebuilt_from_copies(state: Path) -> None:
    hashes = fill(state, 7)
    path = state / "resume.sqlite"
    data = path.read_bytes()
    assert len(data) > 8 * PAGE
    path.write_bytes(data[: len(data) // 2])
    store, found = loaded(state)
    assert sorted(t.info_hash for t in found) == sorted(hashes)  # every one of them
    report = store.report
    assert report is not None and report.problem == "damaged"
    assert report.recovered + report.rebuilt == 7 and report.lost == []
    assert report.rebuilt >= 1  # some records were past the cut: rebuilt, rechecking
    assert report.recovered >= 1  # and those before it were read back
    assert all(t.progress is None for t in found if t.info_hash not in report.recovered_hashes)
    [moved] = aside(state)
    assert moved.read_bytes() == data[: len(data) // 2]  # kept exactly as it was found
    assert str(moved) in report.message and "damaged" in report.message
    store.close()
    store, again = loaded(state)  # the new store is whole: no report the next time
    assert store.report is None and len(again) == 7
    store.close()


def test_a_truncated_store_without_copies_keeps_the_rows_before_the_cut(state: Path) -> None:
    hashes = fill(state, 200, copies=False, pad=200)
    path = state / "resume.sqlite"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    store, found = loaded(state, copies=False)
    report = store.report
    assert report is not None and report.rebuilt == 0
    assert 40 <= len(found) < 200 and report.recovered == len(found)
    assert {t.info_hash for t in found} < set(hashes)
    assert all(t.progress == PROGRESS for t in found if t.progress is not None)
    assert report.lost and set(report.lost) <= set(hashes) - {t.info_hash for t in found}
    store.close()


def test_flipped_bytes_mid_file_lose_only_that_page_without_copies(state: Path) -> None:
    hashes = fill(state, 12, copies=False)
    path = state / "resume.sqlite"
    data = bytearray(path.read_bytes())
    pages = len(data) // PAGE
    assert pages > 10
    middle = pages // 2 * PAGE
    data[middle : middle + 8] = b"\xff" * 8  # one b-tree page's header scribbled on
    path.write_bytes(bytes(data))
    store, found = loaded(state, copies=False)
    report = store.report
    assert report is not None and report.problem == "damaged"
    survivors = {t.info_hash for t in found}
    assert survivors < set(hashes) and len(survivors) >= 6  # the others survive
    assert all(t.progress == PROGRESS for t in found)  # read back whole from intact pages
    assert report.recovered == len(survivors) and report.rebuilt == 0
    assert set(report.lost) <= set(hashes) - survivors
    assert bytes(data) == aside(state)[0].read_bytes()
    store.close()


def batch(state: Path, count: int, pad: int = 600) -> list[str]:
    """``count`` torrents with progress, in one transaction each (fast), no copies."""
    store = store_at(state, copies=False)
    items = [metainfo(n, pad) for n in range(count)]
    store.save_torrents(
        [NewTorrent(h, d, {**OPTIONS, "added_at": float(n)}) for n, (h, d) in enumerate(items)]
    )
    store.save_progress_many([(h, PROGRESS) for h, _ in items])
    store.close()
    return [h for h, _ in items]


def scribble_on_page(path: Path, page: int) -> None:
    data = bytearray(path.read_bytes())
    at = (page - 1) * PAGE
    data[at : at + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))


def test_a_lost_interior_page_hides_no_row_from_the_page_scan(state: Path) -> None:
    hashes = batch(state, 400)
    path = state / "resume.sqlite"
    db = sqlite3.connect(path)
    [(root,)] = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'torrents'")
    db.close()
    scribble_on_page(path, root)  # every row of the table is now out of reach of SQL
    store, found = loaded(state, copies=False)
    assert sorted(t.info_hash for t in found) == sorted(hashes)
    assert all(t.progress == PROGRESS for t in found)
    assert store.report is not None and store.report.recovered == 400
    store.close()


def test_the_page_scan_does_not_bring_back_removed_torrents(state: Path) -> None:
    hashes = batch(state, 400)
    store = store_at(state, copies=False)
    for h in hashes[100:]:
        store.delete(h)  # their pages go to the freelist, their cells still in them
    store.close()
    path = state / "resume.sqlite"
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA freelist_count").fetchone()[0] > 10
    [(root,)] = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'torrents'")
    db.close()
    scribble_on_page(path, root)
    store, found = loaded(state, copies=False)
    assert sorted(t.info_hash for t in found) == sorted(hashes[:100])
    store.close()


def test_flipped_bytes_with_copies_lose_nothing(state: Path) -> None:
    hashes = fill(state, 12)
    path = state / "resume.sqlite"
    data = bytearray(path.read_bytes())
    middle = len(data) // PAGE // 2 * PAGE
    data[middle : middle + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    store, found = loaded(state)
    assert sorted(t.info_hash for t in found) == sorted(hashes)
    assert store.report is not None and store.report.lost == []
    store.close()


def test_garbage_is_moved_aside_and_rebuilt_from_copies(state: Path) -> None:
    hashes = fill(state, 3)
    path = state / "resume.sqlite"
    garbage = os.urandom(8192)
    path.write_bytes(garbage)
    store, found = loaded(state)
    assert sorted(t.info_hash for t in found) == sorted(hashes)
    assert all(t.progress is None for t in found)  # progress is lost: rechecked
    assert store.report is not None and store.report.rebuilt == 3
    assert aside(state)[0].read_bytes() == garbage
    store.close()


def test_an_empty_file_with_copies_is_rebuilt_and_reported(state: Path) -> None:
    hashes = fill(state, 7)
    (state / "resume.sqlite").write_bytes(b"")
    store, found = loaded(state)
    assert sorted(t.info_hash for t in found) == sorted(hashes)
    report = store.report
    assert report is not None and report.problem == "empty" and report.rebuilt == 7
    assert "empty" in report.message
    store.close()


def test_a_missing_store_with_copies_is_rebuilt_and_reported(state: Path) -> None:
    hashes = fill(state, 4)
    (state / "resume.sqlite").unlink()
    store, found = loaded(state)
    assert sorted(t.info_hash for t in found) == sorted(hashes)
    assert store.report is not None and store.report.problem == "missing"
    store.close()


def test_a_newer_schema_is_still_refused(state: Path) -> None:
    fill(state, 1)
    db = sqlite3.connect(state / "resume.sqlite")
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(ResumeStoreError, match="newer"):
        store_at(state)
    assert aside(state) == []
