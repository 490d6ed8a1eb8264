"""A real btd with watch folders configured only through YAML: files dropped the way a cron
job should (written under a hidden name, then renamed into place) are added and moved; a
garbage file is set aside as ``.invalid``; a folder missing at start is created; a
``.magnet`` file waits in the list for its metadata."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from btdtest import wait_until
from twisted.python.runtime import platform

from btd.core.bencode import encode
from btd.core.metainfo import parse_metainfo

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not platform.supportsINotify(), reason="needs inotify (Linux)"),
]


def torrent_bytes(name: str) -> bytes:
    info = {b"name": name.encode(), b"piece length": 16384, b"length": 1000, b"pieces": b"\7" * 20}
    return encode({b"info": info})


def drop(folder: Path, name: str, data: bytes) -> None:
    """What a well-behaved cron job does: never a half-written file under the final name."""
    tmp = folder / f".{name}.part"
    tmp.write_bytes(data)
    os.rename(tmp, folder / name)


def test_watch_folders_from_yaml(tmp_path: Path, btd_factory) -> None:
    inbox, later, elsewhere = tmp_path / "inbox", tmp_path / "later", tmp_path / "elsewhere"
    inbox.mkdir()
    early = torrent_bytes("early")
    (inbox / "early.torrent").write_bytes(early)  # there before btd starts: found by a scan
    config = f"""
plugins:
  rarest_first: {{}}
  sequential: {{}}
  watch_dir:
    folders:
      - path: {inbox}
        interval: 0.5
      - path: {later}
        save_path: {elsewhere}
        paused: true
        strategy: sequential
        on_added: delete
        interval: 3600
"""
    btd = btd_factory(config=config).start()
    early_hash = parse_metainfo(early).hex
    wait_until(lambda: (inbox / "added" / "early.torrent").exists(), what="early.torrent moved")
    assert btd.call("torrent.get", {"info_hash": early_hash})["save_path"] == str(btd.downloads)

    # Scanned only at start: what is dropped later can only be seen through inotify.
    wait_until(
        lambda: f"watching {later} for .torrent and .magnet files (inotify" in btd.log_text(),
        what="the missing folder to be created and watched",
    )
    assert later.is_dir() and f"watch folder {later} did not exist; created it" in btd.log_text()
    fresh = torrent_bytes("fresh")
    fresh_hash = parse_metainfo(fresh).hex
    with btd.client() as events:
        events.call("events.subscribe")
        drop(later, "fresh.torrent", fresh)
        drop(inbox, "garbage.torrent", b"<html>404 not found</html>")
        added = btd.wait_event(events, "added", fresh_hash, timeout=30)
    assert added["save_path"] == str(elsewhere)
    # Its files are looked at first (off the reactor: "checking" for a moment), then it rests.
    wait_until(
        lambda: btd.call("torrent.get", {"info_hash": fresh_hash})["state"] == "paused",
        timeout=10,
        what="the added torrent to rest paused",
    )
    status = btd.call("torrent.get", {"info_hash": fresh_hash})
    assert status["strategy"] == "sequential"
    wait_until(lambda: not (later / "fresh.torrent").exists(), what="fresh.torrent deleted")
    assert not (later / "added").exists()

    wait_until(lambda: (inbox / "garbage.torrent.invalid").exists(), what="garbage set aside")
    assert not (inbox / "garbage.torrent").exists()
    assert "garbage.torrent is unusable" in btd.log_text()
    assert {t["info_hash"] for t in btd.call("torrent.list")} == {early_hash, fresh_hash}
    assert btd.stop() == 0


def test_a_magnet_file_waits_for_its_metadata(tmp_path: Path, btd_factory) -> None:
    inbox = tmp_path / "inbox"
    config = f"""
plugins:
  rarest_first: {{}}
  watch_dir:
    folders:
      - path: {inbox}
        save_path: {tmp_path / "iso"}
        interval: 3600
"""
    btd = btd_factory(config=config).start()
    wait_until(
        lambda: f"watching {inbox} for .torrent and .magnet files (inotify" in btd.log_text(),
        what="the folder to be watched",
    )
    info_hash = "5a" * 20  # no peer anywhere has it: no tracker, no peer, no DHT
    with btd.client() as events:
        events.call("events.subscribe")
        drop(inbox, "nobody.magnet", f"  magnet:?xt=urn:btih:{info_hash}&dn=nobody\n".encode())
        drop(inbox, "broken.magnet", b"magnet:?xt=urn:btih:1234\n")
        added = btd.wait_event(events, "added", info_hash, timeout=30)
    assert added["name"] == "nobody" and added["metadata"] is False
    assert added["save_path"] == str(tmp_path / "iso")
    wait_until(lambda: (inbox / "added" / "nobody.magnet").exists(), what="nobody.magnet moved")
    assert not (inbox / "nobody.magnet").exists()
    assert btd.call("torrent.list", {"fields": ["info_hash", "name", "state"]}) == [
        {"info_hash": info_hash, "name": "nobody", "state": "metadata"}
    ]
    wait_until(lambda: (inbox / "broken.magnet.invalid").exists(), what="broken.magnet set aside")
    assert "not a valid magnet link" in (inbox / "broken.magnet.invalid.txt").read_text()
    assert "broken.magnet is unusable" in btd.log_text()

    assert btd.stop() == 0  # still waiting after a restart
    btd.start()
    assert btd.call("torrent.get", {"info_hash": info_hash})["state"] == "metadata"
    assert btd.stop() == 0
