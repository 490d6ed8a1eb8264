"""TorrentStore: durable copies of added torrents (atomic writes, partial failures, loading)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from btd.core.errors import StorageError
from btd.core.resume import NewTorrent
from btd.core.torrent_store import StoredTorrent, TorrentStore

HASH_A = "a" * 40
HASH_B = "b" * 40
OPTIONS = {"save_path": "/srv/dl", "paused": True, "strategy": "sequential", "added_at": 12.5}


def test_save_then_load_round_trip(tmp_path: Path) -> None:
    store = TorrentStore(tmp_path)
    store.save(HASH_A, b"d4:infode", OPTIONS)
    assert (tmp_path / "torrents" / f"{HASH_A}.torrent").read_bytes() == b"d4:infode"
    assert json.loads((tmp_path / "torrents" / f"{HASH_A}.json").read_text()) == OPTIONS
    found, problems = store.load_all()
    assert found == [StoredTorrent(HASH_A, b"d4:infode", OPTIONS)]
    assert problems == []


def test_files_are_private_and_no_temporaries_are_left(tmp_path: Path) -> None:
    store = TorrentStore(tmp_path)
    store.save(HASH_A, b"x" * 100_000, OPTIONS)
    names = sorted(p.name for p in (tmp_path / "torrents").iterdir())
    assert names == [f"{HASH_A}.json", f"{HASH_A}.torrent"]
    mode = stat.S_IMODE(os.stat(tmp_path / "torrents" / f"{HASH_A}.torrent").st_mode)
    assert mode & 0o007 == 0  # nothing for others


def test_saving_options_only_keeps_the_metainfo(tmp_path: Path) -> None:
    store = TorrentStore(tmp_path)
    store.save(HASH_A, b"meta", OPTIONS)
    store.save(HASH_A, None, {**OPTIONS, "paused": False})
    found, _ = store.load_all()
    assert found[0].metainfo == b"meta"
    assert found[0].options["paused"] is False


def test_missing_options_file_means_defaults(tmp_path: Path) -> None:
    store = TorrentStore(tmp_path)
    store.save(HASH_A, b"meta", OPTIONS)
    (tmp_path / "torrents" / f"{HASH_A}.json").unlink()
    found, problems = store.load_all()
    assert found == [StoredTorrent(HASH_A, b"meta", {})]
    assert problems == []


def test_no_state_dir_loads_nothing(tmp_path: Path) -> None:
    assert TorrentStore(tmp_path / "nowhere").load_all() == ([], [])


@pytest.mark.parametrize("bad", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_a_corrupt_options_file_is_reported_and_the_others_load(tmp_path: Path, bad: bytes) -> None:
    store = TorrentStore(tmp_path)
    store.save(HASH_A, b"meta-a", OPTIONS)
    store.save(HASH_B, b"meta-b", OPTIONS)
    (tmp_path / "torrents" / f"{HASH_A}.json").write_bytes(bad)
    found, problems = store.load_all()
    assert [f.info_hash for f in found] == [HASH_B]
    assert len(problems) == 1 and HASH_A in problems[0]


def test_an_unreadable_torrent_file_is_reported(tmp_path: Path) -> None:
    store = TorrentStore(tmp_path)
    store.save(HASH_B, b"meta-b", OPTIONS)
    (tmp_path / "torrents" / f"{HASH_A}.torrent").mkdir()  # read fails: a directory
    found, problems = store.load_all()
    assert [f.info_hash for f in found] == [HASH_B]
    assert len(problems) == 1 and HASH_A in problems[0]


def test_state_dir_that_is_a_file_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a directory")
    store = TorrentStore(tmp_path / "state")
    with pytest.raises(StorageError, match="cannot save torrent state"):
        store.save(HASH_A, b"meta", OPTIONS)


def test_a_failed_add_leaves_nothing_behind(tmp_path: Path) -> None:
    store = TorrentStore(tmp_path)
    (tmp_path / "torrents").mkdir()
    # The .torrent cannot be renamed into place (a directory is in the way): the options
    # written just before must go too, and no temporary file may stay.
    (tmp_path / "torrents" / f"{HASH_A}.torrent").mkdir()
    (tmp_path / "torrents" / f"{HASH_A}.torrent" / "keep").write_text("x")
    with pytest.raises(StorageError):
        store.save(HASH_A, b"meta", OPTIONS)
    names = sorted(p.name for p in (tmp_path / "torrents").iterdir())
    assert names == [f"{HASH_A}.torrent"]  # only the obstacle


def test_options_failure_on_add_writes_no_torrent(tmp_path: Path) -> None:
    store = TorrentStore(tmp_path)
    (tmp_path / "torrents").mkdir()
    (tmp_path / "torrents" / f"{HASH_A}.json").mkdir()
    (tmp_path / "torrents" / f"{HASH_A}.json" / "keep").write_text("x")
    with pytest.raises(StorageError):
        store.save(HASH_A, b"meta", OPTIONS)
    assert not (tmp_path / "torrents" / f"{HASH_A}.torrent").exists()
    assert store.load_all()[0] == []


def test_delete_forgets_both_files_and_tolerates_missing_ones(tmp_path: Path) -> None:
    store = TorrentStore(tmp_path)
    store.save(HASH_A, b"meta", OPTIONS)
    store.delete(HASH_A)
    assert list((tmp_path / "torrents").iterdir()) == []
    store.delete(HASH_A)  # again: nothing to do, no error
    TorrentStore(tmp_path / "nowhere").delete(HASH_A)


def test_delete_failure_is_a_storage_error(tmp_path: Path) -> None:
    store = TorrentStore(tmp_path)
    (tmp_path / "torrents").mkdir()
    (tmp_path / "torrents" / f"{HASH_A}.json").mkdir()
    (tmp_path / "torrents" / f"{HASH_A}.json" / "keep").write_text("x")
    with pytest.raises(StorageError, match="cannot delete"):
        store.delete(HASH_A)


# -- batch adds ----------------------------------------------------------------------------------
def test_a_batch_round_trips_and_drops_older_progress(tmp_path: Path) -> None:
    store = TorrentStore(tmp_path)
    store.save(HASH_A, b"old", OPTIONS)
    (tmp_path / "torrents" / f"{HASH_A}.resume").write_text("{}")
    store.save_torrents([NewTorrent(HASH_A, b"a", OPTIONS), NewTorrent(HASH_B, b"b", {})])
    found, problems = store.load_all()
    assert found == [StoredTorrent(HASH_A, b"a", OPTIONS), StoredTorrent(HASH_B, b"b", {})]
    assert problems == []
    names = sorted(p.name for p in (tmp_path / "torrents").iterdir())
    assert names == sorted(f"{h}.{s}" for h in (HASH_A, HASH_B) for s in ("json", "torrent"))


def test_a_batch_syncs_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import btd.core.torrent_store as module

    fsyncs: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real(fd))[1])
    items = [NewTorrent(f"{n:040x}", b"m", OPTIONS) for n in range(50)]
    TorrentStore(tmp_path).save_torrents(items)
    if module._syncfs() is not None:
        assert len(fsyncs) == 1  # the folder; the files' data went with one syncfs
    else:
        assert len(fsyncs) == 101
    assert len(TorrentStore(tmp_path).load_all()[0]) == 50


def test_a_failed_batch_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.replace
    calls: list[Any] = []

    def flaky(src: Any, dst: Any) -> None:
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    store = TorrentStore(tmp_path)
    with pytest.raises(StorageError, match="No space left"):
        store.save_torrents([NewTorrent(HASH_A, b"a", OPTIONS), NewTorrent(HASH_B, b"b", {})])
    assert list((tmp_path / "torrents").iterdir()) == []
