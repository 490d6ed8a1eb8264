"""`btctl wait` / `btctl add --wait` / `btctl create --add` against a real btd and libtorrent.

Every exit code of waiting is shown for real: 0 (the download from a libtorrent seeder
completes), 5 (no peers, --timeout 1), 7 (the save path lies under a regular file, so
storage fails and the torrent goes to state error).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from btdtest import BIN, same_tree, seeded_torrent, wait_until, write_files

from btd.core.metainfo import parse_metainfo

pytestmark = [pytest.mark.integration, pytest.mark.interop]

PIECE = 64 * 1024
SIZES = {"set/a.bin": 700_000, "set/sub/b.bin": 300_001}


@pytest.fixture()
def content(tmp_path: Path) -> tuple[Path, Path, str]:
    return seeded_torrent(tmp_path, SIZES, "set", "set.torrent", seed=11, piece_size=PIECE)


def add_wait(btd, *args: str) -> subprocess.Popen[str]:
    """`btctl add --wait ...` running; its first stdout line (``added HASH NAME``) read."""
    return subprocess.Popen(
        [str(BIN / "btctl"), "--socket", str(btd.socket), "add", "--wait", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=90)
    return proc.returncode, out, err


def test_wait_exits_0_when_the_download_completes(btd_factory, lt_factory, content) -> None:
    seed_dir, torrent, info_hash = content
    seeder = lt_factory("seed", torrent, seed_dir)
    btd = btd_factory().start()
    done = btd.btctl("add", "--paused", str(torrent))
    assert done.returncode == 0 and done.stdout == f"added {info_hash} set\n"
    assert btd.btctl("add-peer", info_hash, f"127.0.0.1:{seeder.port}").returncode == 0
    assert btd.btctl("resume", info_hash[:8]).returncode == 0
    done = btd.btctl("wait", info_hash[:8], "--timeout", "60")
    assert (done.returncode, done.stdout) == (0, f"completed {info_hash} set\n"), done.stderr
    assert done.stderr == ""  # not a terminal: no progress bar, only the final line
    assert same_tree(seed_dir, btd.downloads)
    again = btd.btctl("--json", "wait", info_hash, "--timeout", "1")  # complete: at once
    assert again.returncode == 0 and '"result": "completed"' in again.stdout


def test_add_wait_exits_0_when_the_download_completes(btd_factory, lt_factory, content) -> None:
    seed_dir, torrent, info_hash = content
    seeder = lt_factory("seed", torrent, seed_dir)
    btd = btd_factory().start()
    proc = add_wait(btd, "--timeout", "60", str(torrent))
    assert proc.stdout is not None and proc.stdout.readline() == f"added {info_hash} set\n"
    btd.call("torrent.add_peer", {"info_hash": info_hash, "address": "127.0.0.1",
                                  "port": seeder.port})  # fmt: skip
    code, out, err = finish(proc)
    assert (code, out) == (0, f"completed {info_hash} set\n"), err
    assert same_tree(seed_dir, btd.downloads)


def test_wait_without_peers_times_out_with_5(btd_factory, content) -> None:
    _, torrent, info_hash = content
    btd = btd_factory().start()
    assert btd.btctl("add", str(torrent)).returncode == 0
    done = btd.btctl("wait", info_hash, "--timeout", "1")
    assert done.returncode == 5, done.stderr
    assert done.stdout == f"timeout {info_hash} set (0.0%)\n"
    assert "gave up after 1s (--timeout)" in done.stderr


def test_add_wait_exits_7_when_storage_fails(tmp_path, btd_factory, lt_factory, content) -> None:
    seed_dir, torrent, info_hash = content
    seeder = lt_factory("seed", torrent, seed_dir)
    target = tmp_path / "target"
    btd = btd_factory().start()
    proc = add_wait(btd, "--dir", str(target), "--timeout", "60", str(torrent))
    assert proc.stdout is not None and proc.stdout.readline() == f"added {info_hash} set\n"
    # Writable when it was added (save paths are checked then); it breaks afterwards.
    shutil.rmtree(target)
    target.write_text("not a folder")
    btd.call("torrent.add_peer", {"info_hash": info_hash, "address": "127.0.0.1",
                                  "port": seeder.port})  # fmt: skip
    code, out, err = finish(proc)
    assert code == 7, (out, err)
    assert out.startswith(f"failed {info_hash} set: ") and "torrent failed" in err
    state = btd.call("torrent.get", {"info_hash": info_hash})
    assert state["state"] == "error" and state["error"]


def test_create_add_seeds_to_a_libtorrent_leecher(tmp_path, btd_factory, lt_factory) -> None:
    """`btctl create --add`: btd checks the data in place and seeds it to libtorrent."""
    share = tmp_path / "share"
    write_files(share, {"pics/x.jpg": 500_000, "pics/.hidden": 10, "pics/y/z.raw": 90_001})
    btd = btd_factory().start()
    made = tmp_path / "pics.torrent"
    done = btd.btctl("create", str(share / "pics"), "-o", str(made), "--add")
    assert done.returncode == 0, done.stderr
    info_hash = parse_metainfo(made.read_bytes()).hex
    assert done.stdout.splitlines()[-1] == f"added {info_hash} to btd, seeding from {share}"
    assert btd.btctl("wait", info_hash, "--timeout", "30").returncode == 0  # checked: seeding
    port = btd.call("session.stats")["listen_port"]
    leecher = lt_factory("leech", made, tmp_path / "leech", peers=[f"127.0.0.1:{port}"])
    leecher.wait_done()
    # libtorrent says done once every piece hashed; its last writes may land just after.
    wait_until(lambda: same_tree(share, tmp_path / "leech"), timeout=10, what="the leecher's files")
