"""A real btd whose resume.sqlite was damaged while it was stopped starts with every torrent.

Seven torrents (their data on disk, so they seed) are added; btd stops; the store is
truncated, has bytes flipped in its middle, or is emptied to 0 bytes; btd starts again. It
must start, list all seven (recovered with their progress, or rebuilt from the copies of the
.torrent files and rechecked) and say loudly what happened: the log, ``session.info`` and
``btctl status``. The damaged file is kept beside the new one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from btdtest import wait_until

from btd.core.bencode import encode

pytestmark = [pytest.mark.integration]

PIECE = 16 * 1024
PAGE = 4096
CONFIG = """\
plugins:
  rarest_first: {}
  resume_sqlite: {}
"""


def small_torrent(folder: Path, n: int, data_dir: Path) -> Path:
    """A single-file torrent whose data is in ``data_dir``; a 3 KB comment gives it a page
    of the store to itself, so damage in the middle of the file hits some torrents only."""
    data = hashlib.sha256(str(n).encode()).digest() * 40
    name = f"f{n}.bin"
    (data_dir / name).write_bytes(data)
    info = {
        b"name": name.encode(),
        b"piece length": PIECE,
        b"length": len(data),
        b"pieces": hashlib.sha1(data).digest(),
    }
    path = folder / f"t{n}.torrent"
    path.write_bytes(encode({b"info": info, b"comment": b"x" * 3000}))
    return path


def damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        del data[len(data) // 2 :]
    elif how == "flipped":
        middle = len(data) // PAGE // 2 * PAGE
        data[middle : middle + 8] = b"\xff" * 8  # a b-tree page's header
    else:
        data.clear()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "flipped", "empty"])
def test_a_damaged_store_starts_with_every_torrent_and_says_so(
    btd_factory, tmp_path: Path, how: str
) -> None:
    btd = btd_factory(config=CONFIG)
    btd.downloads.mkdir(parents=True)
    torrents = [small_torrent(tmp_path, n, btd.downloads) for n in range(7)]
    btd.start()
    hashes = {btd.add(t) for t in torrents}
    wait_until(
        lambda: {t["state"] for t in btd.call("torrent.list")} == {"seeding"}, what="seeding"
    )
    assert btd.call("session.info")["resume_store"] == "ok"
    assert btd.stop() == 0

    store = btd.state / "resume.sqlite"
    assert len(store.read_bytes()) > 8 * PAGE
    damage(store, how)
    btd.start()
    wait_until(lambda: not btd.call("session.info")["loading"], what="loaded")
    listed = btd.call("torrent.list")
    assert {t["info_hash"] for t in listed} == hashes  # all seven, none lost
    wait_until(  # the ones whose progress was lost were rechecked: their data is there
        lambda: {t["state"] for t in btd.call("torrent.list")} == {"seeding"},
        what="seeding again",
    )
    info = btd.call("session.info")
    word = "empty" if how == "empty" else "damaged"
    assert word in info["resume_store"] and "rebuilt" in info["resume_store"]
    assert info["resume_store_report"]["problem"] == word
    assert info["resume_store_report"]["lost"] == []
    status = btd.btctl("status")
    assert status.returncode == 0 and word in status.stdout
    log = btd.log_text()
    assert "CRITICAL" in log.upper() and "resume store" in log
    if how != "empty":
        kept = [
            p
            for p in btd.state.glob("resume.sqlite.damaged-*")
            if p.name[-4:] not in ("-wal", "-shm")
        ]
        assert len(kept) == 1
    assert btd.stop() == 0

    btd.start()  # the rebuilt store is whole: no report, every torrent still there
    wait_until(lambda: not btd.call("session.info")["loading"], what="loaded")
    assert {t["info_hash"] for t in btd.call("torrent.list")} == hashes
    assert btd.call("session.info")["resume_store"] == "ok"
    assert json.dumps(btd.call("session.info"))  # plain JSON
    assert btd.stop() == 0
