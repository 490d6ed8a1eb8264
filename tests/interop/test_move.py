"""torrent.move and incomplete_dir with a real btd and libtorrent peers (loopback only).

"Another file system" is a tmpfs mounted for the test (``mount -t tmpfs``, root here and in
CI); where mounting is refused, /dev/shm (a tmpfs) stands in, and the "fills up" test, which
needs a small one, is skipped (tests/core/test_move_files.py covers it with an injected
ENOSPC).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from btdtest import same_tree, seeded_torrent, wait_until

pytestmark = [pytest.mark.interop]

SIZES = {"multi/a.bin": 9_000_000, "multi/sub/b.bin": 1234, "multi/c.bin": 12_000_001}
SMALL = {"multi/a.bin": 600_000, "multi/b.bin": 2_400_000}  # b does not fit in 1 MiB
PIECE = 256 * 1024


@pytest.fixture()
def tmpfs(tmp_path: Path) -> Iterator[Any]:
    """``tmpfs(size)``: a fresh tmpfs of ``size`` (e.g. "64M"), or None if mounting is refused
    (then the caller may fall back to /dev/shm)."""
    mounted: list[Path] = []

    def make(size: str) -> Path | None:
        mnt = tmp_path / f"tmpfs{len(mounted)}"
        mnt.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mnt)],
            capture_output=True,
        )
        if done.returncode != 0:
            return None
        mounted.append(mnt)
        return mnt

    yield make
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def other_fs(tmpfs: Any, near: Path) -> Path:
    mnt = tmpfs("256M")
    if mnt is None:
        mnt = Path("/dev/shm") / f"btd-move-{uuid.uuid4().hex[:8]}"
        mnt.mkdir()
    assert os.stat(mnt).st_dev != os.stat(near).st_dev, "not another file system"
    return mnt


def lt_has(seed_dir: Path, folder: Path) -> None:
    """libtorrent says DONE when every piece checked out; its writes may still be queued."""
    wait_until(lambda: same_tree(seed_dir, folder), timeout=20, what=f"the files in {folder}")


def port_of(btd: Any) -> int:
    return int(btd.call("session.info")["listen_port"])


def events_until(btd: Any, client: Any, info_hash: str, kinds: set[str]) -> dict:
    for note in client.notifications(timeout=60):
        if note.params.get("info_hash") == info_hash and note.params.get("event") in kinds:
            return note.params
    raise AssertionError(f"no {kinds}:\n{btd.log_text()}")


def test_a_completed_torrent_moved_to_a_tmpfs_keeps_seeding(
    tmp_path: Path, btd_factory: Any, lt_factory: Any, tmpfs: Any
) -> None:
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, SIZES, "multi", "multi.torrent", piece_size=PIECE
    )
    btd = btd_factory()
    btd.start_seeding(seed_dir, torrent)
    target = other_fs(tmpfs, btd.downloads)
    peer = [f"127.0.0.1:{port_of(btd)}"]
    with btd.client() as events:
        events.call("events.subscribe")
        during = lt_factory("leech", torrent, tmp_path / "lt-during", peers=peer)
        reply = btd.call("torrent.move", {"info_hash": info_hash, "path": str(target)})
        assert reply["to"] == str(target) and reply["size"] == sum(SIZES.values())
        moved = btd.wait_event(events, "moved", info_hash)
        during.wait_done()  # served while the files moved, each from where it was
    assert moved["from"] == str(btd.downloads) and moved["save_path"] == str(target)
    assert same_tree(seed_dir, target)
    lt_has(seed_dir, tmp_path / "lt-during")
    assert not (btd.downloads / "multi").exists()
    got = btd.call("torrent.get", {"info_hash": info_hash})
    assert (got["state"], got["save_path"], got["move_progress"]) == ("seeding", str(target), None)

    after = lt_factory("leech", torrent, tmp_path / "lt-after", peers=peer)
    after.wait_done()  # seeds from the tmpfs
    lt_has(seed_dir, tmp_path / "lt-after")

    assert btd.stop() == 0
    btd.start()  # the new place was stored
    got = btd.call("torrent.get", {"info_hash": info_hash})
    assert got["save_path"] == str(target) and got["state"] in ("checking", "seeding")
    assert btd.stop() == 0


def test_a_move_onto_a_full_tmpfs_leaves_the_data_whole_and_a_clear_error(
    tmp_path: Path, btd_factory: Any, lt_factory: Any, tmpfs: Any
) -> None:
    small = tmpfs("1M")
    if small is None:
        pytest.skip("mount -t tmpfs is refused here (core/test_move_files.py injects ENOSPC)")
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, SMALL, "multi", "small.torrent", piece_size=PIECE
    )
    btd = btd_factory()
    btd.start_seeding(seed_dir, torrent)
    with btd.client() as events:
        events.call("events.subscribe")
        btd.call("torrent.move", {"info_hash": info_hash, "path": str(small)})
        failed = events_until(btd, events, info_hash, {"error", "moved"})
    assert failed["event"] == "error", failed
    got = btd.call("torrent.get", {"info_hash": info_hash})
    assert got["state"] == "error" and got["save_path"] == str(btd.downloads)
    assert got["error"].startswith(f"move to {small} failed: copying to {small}/multi/")
    assert "disk full" in got["error"] and str(btd.downloads) in got["error"]
    assert same_tree(seed_dir, btd.downloads)  # whole, in one place
    assert list(small.iterdir()) == []  # partial copies and folders removed

    with btd.client() as events:
        events.call("events.subscribe")
        btd.call("torrent.resume", {"info_hash": info_hash})
        btd.wait_event(events, "started", info_hash)
    leecher = lt_factory("leech", torrent, tmp_path / "lt", peers=[f"127.0.0.1:{port_of(btd)}"])
    leecher.wait_done()
    lt_has(seed_dir, tmp_path / "lt")
    assert btd.stop() == 0


def test_incomplete_dir_end_to_end(tmp_path: Path, btd_factory: Any, lt_factory: Any) -> None:
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, SIZES, "multi", "multi.torrent", piece_size=PIECE
    )
    seeder = lt_factory("seed", torrent, seed_dir)
    incoming = tmp_path / "incoming"
    btd = btd_factory(config=f"session:\n  incomplete_dir: {incoming}\n").start()
    with btd.client() as events:
        events.call("events.subscribe")
        btd.add(torrent)
        got = btd.call("torrent.get", {"info_hash": info_hash})
        assert got["save_path"] == str(btd.downloads)  # where it goes once complete
        btd.call(
            "torrent.add_peer",
            {"info_hash": info_hash, "address": "127.0.0.1", "port": seeder.port},
        )
        btd.wait_event(events, "completed", info_hash)
        moving = btd.wait_event(events, "moving", info_hash)
        btd.wait_event(events, "moved", info_hash)
    assert moving["from"] == str(incoming) and moving["to"] == str(btd.downloads)
    assert same_tree(seed_dir, btd.downloads)
    assert not (incoming / "multi").exists()
    got = btd.call("torrent.get", {"info_hash": info_hash})
    assert got["state"] == "seeding" and got["save_path"] == str(btd.downloads)

    leecher = lt_factory("leech", torrent, tmp_path / "lt", peers=[f"127.0.0.1:{port_of(btd)}"])
    leecher.wait_done()  # seeds from the save path
    lt_has(seed_dir, tmp_path / "lt")
    assert btd.stop() == 0
