"""A real btd started while a finished torrent's disk is not mounted (issue 13, class 2).

Before the fix it came back ``downloading`` at 0 % and, once a seeder appeared, re-created
the folder on the disk under the mount point and downloaded everything again. Now: state
``error``, ``storage missing: PATH``, progress kept, nothing created even with a seeder
and a leecher in sight; with the folder back, ``btctl resume`` seeds again at once,
without downloading (or hashing) anything.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from btdtest import seeded_torrent, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.interop]

PIECE = 32 * 1024
SIZES = {"album/a.bin": 300_000, "album/b.bin": 200_000}
CONFIG = """\
plugins:
  rarest_first: {}
  resume_sqlite: {}
"""


@pytest.mark.parametrize("how", ["moved away", "empty mount point"])
def test_a_finished_torrent_whose_disk_is_not_mounted_is_storage_missing(
    btd_factory: Any, lt_factory: Any, tmp_path: Path, how: str
) -> None:
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, SIZES, "album", "album.torrent", seed=9, piece_size=PIECE
    )
    disk, away = tmp_path / "disk", tmp_path / "away"
    shutil.copytree(seed_dir, disk)
    btd = btd_factory(config=CONFIG).start()
    with btd.client() as events:
        events.call("events.subscribe")
        assert btd.add(torrent, save_path=str(disk)) == info_hash
        btd.wait_event(events, "started", info_hash)
    before = btd.call("torrent.get", {"info_hash": info_hash})
    assert before["state"] == "seeding" and before["progress"] == 1.0
    assert btd.stop() == 0

    disk.rename(away)  # the disk is not mounted
    if how == "empty mount point":
        disk.mkdir()
    btd.start()
    wait_until(
        lambda: btd.call("torrent.get", {"info_hash": info_hash})["state"] == "error",
        what="storage missing",
    )
    got = btd.call("torrent.get", {"info_hash": info_hash})
    assert got["state_detail"].startswith(f"storage missing: {disk}")
    assert got["error"] == got["state_detail"]
    assert got["progress"] == 1.0 and got["pieces_have"] == before["pieces_have"]
    listed = btd.call("torrent.list", {"fields": ["info_hash", "state", "state_detail"]})
    assert listed == [{"info_hash": info_hash, "state": "error", "state_detail": got["error"]}]

    # a seeder and a leecher appear; btctl resume and verify look again at once
    seeder = lt_factory("seed", torrent, seed_dir)
    leecher = lt_factory("leech", torrent, tmp_path / "leech")
    with btd.client() as events:
        events.call("events.subscribe")
        for peer in (seeder, leecher):
            btd.call(
                "torrent.add_peer",
                {"info_hash": info_hash, "address": "127.0.0.1", "port": peer.port},
            )
        for command in ("resume", "verify"):
            done = btd.btctl(command, info_hash)
            assert done.returncode == 0, done.stderr
            assert btd.wait_event(events, "error", info_hash)["error"].startswith("storage missing")
    got = btd.call("torrent.get", {"info_hash": info_hash})
    assert got["state"] == "error" and got["pieces_have"] == before["pieces_have"]
    assert got["downloaded"] == 0
    if how == "moved away":
        assert not disk.exists()  # never re-created on the disk under the mount point
    else:
        assert list(disk.iterdir()) == []
        disk.rmdir()

    away.rename(disk)  # mounted again
    with btd.client() as events:
        events.call("events.subscribe")
        done = btd.btctl("resume", info_hash)
        assert done.returncode == 0, done.stderr
        btd.wait_event(events, "started", info_hash)
    got = btd.call("torrent.get", {"info_hash": info_hash})
    assert got["state"] == "seeding" and got["error"] is None and got["state_detail"] is None
    assert got["downloaded"] == 0 and got["pieces_have"] == before["pieces_have"]
    assert btd.stop() == 0
    assert "storage missing" in btd.log_text()
