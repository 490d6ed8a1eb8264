"""A real btd stopped mid-download (SIGTERM, SIGKILL) and restarted: it resumes, never lies.

The seeder is libtorrent, upload-limited so the download is still going when btd is stopped.
After the restart, before any peer is given back, every piece btd reports as had is hashed
here against the .torrent: resume data may lose recent progress (SIGKILL) but must never
claim a piece whose data is not on disk. Then the download finishes with identical bytes.
"""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from btdtest import BtdProcess, same_tree, seeded_torrent, wait_until

from btd.core.bitfield import Bitfield
from btd.core.metainfo import parse_metainfo

pytestmark = [pytest.mark.integration]

PIECE = 32 * 1024
SIZES = {"movie/a.bin": 1_200_000, "movie/b.bin": 900_000}
CONFIG = """\
plugins:
  rarest_first: {}
  sequential: {}
  resume_sqlite:
    interval: 1
"""
LIST_FIELDS = ["info_hash", "name", "size", "save_path", "strategy", "added_at", "pieces"]


@pytest.fixture()
def content(tmp_path: Path) -> tuple[Path, Path, str]:
    return seeded_torrent(tmp_path, SIZES, "movie", "movie.torrent", seed=5, piece_size=PIECE)


def pieces_had(btd: BtdProcess, info_hash: str) -> set[int]:
    got = btd.call("torrent.get", {"info_hash": info_hash})
    return set(Bitfield.from_bytes(bytes.fromhex(got["piece_map"]), got["pieces"]))


def assert_every_piece_checks_out(btd: BtdProcess, torrent: Path, pieces: set[int]) -> None:
    """Hash what is on disk for every piece btd says it has."""
    meta = parse_metainfo(torrent.read_bytes())
    parts = []
    for f in meta.files:
        path = btd.downloads.joinpath(*f.path)
        parts.append(path.read_bytes() if path.exists() else bytes(f.length))  # not written yet
    blob = b"".join(parts)
    for i in sorted(pieces):
        data = blob[i * meta.piece_length : (i + 1) * meta.piece_length]
        assert hashlib.sha1(data).digest() == meta.piece_hash(i), f"piece {i} is claimed but bad"


def stored_pieces(btd: BtdProcess, info_hash: str) -> int:
    """How many pieces the resume store holds for the torrent (read-only, from outside)."""
    path = btd.state / "resume.sqlite"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT have, num_pieces FROM progress WHERE info_hash = ?", (info_hash,)
        ).fetchone()
    except sqlite3.OperationalError:  # created but no schema yet
        return 0
    finally:
        db.close()
    return Bitfield.from_bytes(row[0], row[1]).count if row else 0


@pytest.mark.interop
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_stopped_mid_download_resumes_and_finishes(
    btd_factory: Any, lt_factory: Any, content: tuple[Path, Path, str], sig: int
) -> None:
    seed_dir, torrent, info_hash = content
    slow = lt_factory("seed", torrent, seed_dir, upload_limit=300_000)
    btd = btd_factory(config=CONFIG).start()
    assert btd.add(torrent) == info_hash
    btd.call(
        "torrent.add_peer", {"info_hash": info_hash, "address": "127.0.0.1", "port": slow.port}
    )
    total = btd.call("torrent.get", {"info_hash": info_hash})["pieces"]
    if sig == signal.SIGTERM:
        wait_until(
            lambda: btd.call("torrent.get", {"info_hash": info_hash})["progress"] > 0,
            timeout=60,
            what="some progress",
        )
        seen = len(pieces_had(btd, info_hash))
    else:  # a kill loses what was not saved yet: wait until a save recorded something
        wait_until(lambda: stored_pieces(btd, info_hash) > 0, timeout=60, what="a saved piece")
        seen = stored_pieces(btd, info_hash)
    listed = btd.call("torrent.list", {"fields": LIST_FIELDS})
    assert 0 < seen < total, "the download must be stopped half way"
    assert btd.stop(sig) == (0 if sig == signal.SIGTERM else -signal.SIGKILL)

    btd.start()  # the socket answers at once; stored torrents come up in the background
    wait_until(lambda: btd.call("torrent.list", {"fields": LIST_FIELDS}) != [], what="loaded")
    assert btd.call("torrent.list", {"fields": LIST_FIELDS}) == listed
    got = btd.call("torrent.get", {"info_hash": info_hash})
    assert got["state"] in ("downloading", "checking")
    with btd.client() as events:
        events.call("events.subscribe")
        if btd.call("torrent.get", {"info_hash": info_hash})["state"] == "checking":
            btd.wait_event(events, "started", info_hash)
        resumed = pieces_had(btd, info_hash)
        assert len(resumed) >= seen  # nothing saved was lost (SIGKILL: what was stored)
        assert_every_piece_checks_out(btd, torrent, resumed)  # and nothing claimed is wrong
        assert btd.call("torrent.get", {"info_hash": info_hash})["downloaded"] > 0  # totals

        fast = lt_factory("seed", torrent, seed_dir)
        btd.call(
            "torrent.add_peer", {"info_hash": info_hash, "address": "127.0.0.1", "port": fast.port}
        )
        btd.wait_event(events, "completed", info_hash, timeout=120)
    assert same_tree(seed_dir, btd.downloads)
    assert btd.stop() == 0

    btd.start()  # a complete torrent comes back seeding, without a recheck of its pieces
    wait_until(  # asked for at once: the call waits for the store, not "not found"
        lambda: btd.call("torrent.get", {"info_hash": info_hash})["state"] == "seeding",
        timeout=10,
        what="seeding after the restart",
    )
    got = btd.call("torrent.get", {"info_hash": info_hash})
    assert got["state"] == "seeding" and got["pieces_have"] == total
    assert btd.stop() == 0
    assert "resume data of" not in btd.log_text()  # the stored progress always fitted


def test_another_programs_database_stops_the_daemon_and_is_kept(btd_factory: Any) -> None:
    """Not ours to move aside (a damaged store is recovered: test_resume_damage.py)."""
    btd = btd_factory(config=CONFIG)
    btd.state.mkdir(parents=True)
    store = btd.state / "resume.sqlite"
    db = sqlite3.connect(store)
    db.execute("CREATE TABLE songs (title TEXT)")
    db.commit()
    db.close()
    before = store.read_bytes()
    done = subprocess.run(btd.argv(), check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 78, done.stderr
    assert str(store) in done.stderr and "move it aside" in done.stderr
    assert "Traceback" not in done.stderr
    assert store.read_bytes() == before
