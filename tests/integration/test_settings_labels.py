"""A real btd: ``btctl settings`` changes a live key that survives a restart and a SIGHUP;
``btctl add --label tv`` with a ``labels: tv: save_path`` default downloads from a
libtorrent seeder into that folder, byte for byte."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from btdtest import BtdProcess, LtPeer, same_tree, seeded_torrent

pytestmark = pytest.mark.integration


def config_text(tv: Path, slots: int) -> str:
    return (
        f"session:\n  upload_slots: {slots}\n  listen_host: 127.0.0.1\n"
        f"labels:\n  tv:\n    save_path: {tv}\n"
    )


@pytest.fixture()
def btd(tmp_path: Path) -> Any:
    proc = BtdProcess(tmp_path / "btd", config=config_text(tmp_path / "tv", 4))
    yield proc
    proc.close()


def test_settings_set_survives_restart_and_sighup(btd: BtdProcess) -> None:
    btd.start()
    done = btd.btctl("settings", "upload_slots=9", "daemon.log_level=debug")
    assert done.returncode == 0, done.stderr
    assert "upload_slots = 9 (saved)" in done.stdout
    bad = btd.btctl("settings", "upload_slots=0", "max_connections=50")
    assert bad.returncode == 1 and "upload_slots: must be a positive integer" in bad.stderr
    assert btd.call("session.get")["upload_slots"] == 9
    assert btd.call("session.get")["max_connections"] == 200  # nothing of the bad call applied
    saved = btd.state / "settings.yaml"
    assert saved.stat().st_mode & 0o777 == 0o600

    assert btd.stop() == 0
    btd.start()
    assert btd.call("session.get")["upload_slots"] == 9  # the saved value, not the file's 4
    assert btd.call("session.config")["session"]["upload_slots"] == 9

    # SIGHUP re-reads both files: the saved key stays on top, the file's other edits apply
    assert btd.config is not None
    btd.config.write_text(
        config_text(btd.base.parent / "tv", 5).replace(
            "upload_slots: 5", "upload_slots: 5\n  max_connections: 150"
        )
    )
    assert btd.proc is not None
    btd.proc.send_signal(signal.SIGHUP)
    btd.wait_notify("RELOADING=1", 10)
    btd.wait_notify("READY=1", 10)
    got = btd.call("session.get")
    assert (got["upload_slots"], got["max_connections"]) == (9, 150)

    done = btd.btctl("settings", "--reset", "upload_slots")
    assert done.returncode == 0, done.stderr
    assert btd.call("session.get")["upload_slots"] == 5  # the file's value again


def test_a_label_default_save_path_receives_the_download(tmp_path: Path, btd: BtdProcess) -> None:
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, {"show/e01.bin": 300_000, "show/e02.bin": 200_000}, "show", "show.torrent"
    )
    seeder = LtPeer("seed", torrent, seed_dir)
    try:
        btd.start()
        with btd.client() as events:
            events.call("events.subscribe")
            done = btd.btctl("add", "--label", "tv", "--label", "hd", str(torrent))
            assert done.returncode == 0, done.stderr
            btd.call(
                "torrent.add_peer",
                {"info_hash": info_hash, "address": "127.0.0.1", "port": seeder.port},
            )
            btd.wait_event(events, "completed", info_hash)
    finally:
        seeder.close()
    tv = tmp_path / "tv"
    assert same_tree(seed_dir, tv)  # the files landed in the label's folder, byte-identical
    assert not (btd.downloads / "show").exists()
    listed = btd.btctl("--json", "list", "--label", "hd")
    assert listed.returncode == 0, listed.stderr
    (record,) = json.loads(listed.stdout)
    assert record["labels"] == ["tv", "hd"] and record["save_path"] == str(tv)
    assert json.loads(btd.btctl("--json", "list", "--label", "movies").stdout) == []
    cleared = btd.btctl("label", info_hash[:8], "--clear")
    assert cleared.returncode == 0, cleared.stderr
    assert btd.call("torrent.get", {"info_hash": info_hash})["labels"] == []
