"""Magnet links (BEP 9 metadata exchange) against libtorrent, both directions."""

from __future__ import annotations

from pathlib import Path

import pytest
from btdtest import make_torrent, same_tree, seeded_torrent, wait_until

pytestmark = [pytest.mark.interop]

SIZES = {"mag/a.bin": 900_000, "mag/b/c.bin": 33_333}


@pytest.fixture()
def content(tmp_path: Path) -> tuple[Path, Path, str]:
    return seeded_torrent(tmp_path, SIZES, "mag", "mag.torrent", seed=11, piece_size=32 * 1024)


def test_magnet_only_add_downloads_from_libtorrent(btd_factory, lt_factory, content) -> None:
    seed_dir, torrent, info_hash = content
    seeder = lt_factory("seed", torrent, seed_dir)
    btd = btd_factory().start()
    magnet = f"magnet:?xt=urn:btih:{info_hash}&dn=mag&x.pe=127.0.0.1:{seeder.port}"
    with btd.client() as events:
        events.call("events.subscribe")
        added = btd.btctl("--json", "add", magnet)
        assert added.returncode == 0, added.stderr
        waiting = btd.call("torrent.list", {"fields": ["info_hash", "state", "name"]})
        assert {"info_hash": info_hash, "state": "metadata", "name": "mag"} in waiting or any(
            t["info_hash"] == info_hash for t in waiting
        )
        btd.wait_event(events, "metadata", info_hash)
        btd.wait_event(events, "completed", info_hash)
    assert same_tree(seed_dir, btd.downloads)
    # The metadata was saved like a .torrent: it survives a restart as a normal torrent.
    assert btd.stop() == 0
    btd.start()  # its files are looked at (sizes, off the reactor), not hashed: seeding soon
    seeding = lambda: btd.call("torrent.get", {"info_hash": info_hash})["state"] == "seeding"  # noqa: E731
    wait_until(seeding, timeout=10, what="seeding after the restart")
    again = btd.call("torrent.get", {"info_hash": info_hash})
    assert again["size"] == sum(SIZES.values()) and again["check_progress"] == 1.0
    assert btd.stop() == 0


def test_libtorrent_fetches_metadata_from_btd(tmp_path, btd_factory, lt_factory, content) -> None:
    seed_dir, torrent, info_hash = content
    btd = btd_factory()
    btd.start_seeding(seed_dir, torrent)
    port = btd.call("session.info")["listen_port"]
    leecher = lt_factory(
        "leech", f"magnet:?xt=urn:btih:{info_hash}", tmp_path / "lt", peers=[f"127.0.0.1:{port}"]
    )
    leecher.wait_done()
    assert same_tree(seed_dir, tmp_path / "lt")


def test_tracker_only_magnet_against_libtorrent(
    tmp_path, btd_factory, lt_factory, opentracker_factory, content
) -> None:
    seed_dir, _, info_hash = content
    tracker = opentracker_factory([info_hash])
    torrent = tmp_path / "tracked.torrent"
    assert make_torrent(seed_dir / "mag", torrent, 32 * 1024, [tracker.announce]) == info_hash
    lt_factory("seed", torrent, seed_dir)  # announces to opentracker
    btd = btd_factory().start()
    magnet = f"magnet:?xt=urn:btih:{info_hash}&tr={tracker.announce}"
    with btd.client() as events:
        events.call("events.subscribe")
        btd.call("torrent.add", {"magnet": magnet})
        btd.wait_event(events, "completed", info_hash)
    assert same_tree(seed_dir, btd.downloads)


def test_bad_magnets_are_refused(btd_factory) -> None:
    btd = btd_factory().start()
    for bad in ("magnet:?xt=urn:btih:1234", "magnet:?dn=nothing", "http://not-a-magnet"):
        result = btd.btctl("add", bad)
        assert result.returncode != 0
    assert btd.call("torrent.list") == []
    assert btd.stop() == 0
