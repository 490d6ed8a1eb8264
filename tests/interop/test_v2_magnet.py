"""Magnets of BitTorrent v2 torrents (``xt=urn:btmh:1220...``) against libtorrent, both
ways: the info dictionary comes by ut_metadata and must hash (SHA-256) to the btmh hash,
the piece layers by BEP 52 hash requests, each reply proved against its file's root."""

from __future__ import annotations

from pathlib import Path

import pytest
from btdtest import same_tree, wait_until, write_files

from btd.core.torrent_create_v2 import create_torrent_v2

pytestmark = [pytest.mark.interop]

# Files over one piece need their layers by hash request: 600 pieces makes two requests
# (512 + the rest) for big.bin; a.bin one; small.bin is its own root.
FILES = {"v2m/big.bin": 600 * 16384 + 777, "v2m/a.bin": 100_000, "v2m/small.bin": 5_000}


def made(tmp_path: Path, seed: int):
    folder = tmp_path / "seed"
    write_files(folder, FILES, seed=seed)
    created = create_torrent_v2(folder / "v2m", piece_length=16384)
    torrent = tmp_path / "v2m.torrent"
    torrent.write_bytes(created.data)
    return folder, created, torrent


def btmh(created) -> str:
    return f"magnet:?xt=urn:btmh:1220{created.info_hash_v2.hex()}&dn=v2m"


def test_libtorrent_resolves_a_btmh_magnet_from_btd(tmp_path, btd_factory, lt_factory) -> None:
    """btd seeds its own v2 torrent; libtorrent, given only the btmh magnet, gets the info
    dictionary and every piece layer from btd (hash requests answered) and the data."""
    folder, created, torrent = made(tmp_path, seed=21)
    btd = btd_factory()
    assert btd.start_seeding(folder, torrent) == created.hex
    port = btd.call("session.info")["listen_port"]
    leecher = lt_factory("leech", btmh(created), tmp_path / "lt", peers=[f"127.0.0.1:{port}"])
    leecher.wait_done()
    assert same_tree(folder, tmp_path / "lt")
    record = btd.call("torrent.get", {"info_hash": created.hex})
    assert record["uploaded"] >= sum(FILES.values())
    assert "answering hash requests (BEP 52)" in btd.log_text()
    assert btd.stop() == 0


def test_btd_resolves_a_btmh_magnet_from_libtorrent(tmp_path, btd_factory, lt_factory) -> None:
    """libtorrent seeds the .torrent; btd, given only the btmh magnet, fetches the info
    dictionary, then the piece layers by hash requests, and completes byte-identical. The
    stored torrent has its layers: after a restart it seeds without asking anyone."""
    folder, created, torrent = made(tmp_path, seed=22)
    seeder = lt_factory("seed", torrent, folder)
    btd = btd_factory().start()
    magnet = btmh(created) + f"&x.pe=127.0.0.1:{seeder.port}"
    with btd.client() as events:
        events.call("events.subscribe")
        added = btd.call("torrent.add", {"magnet": magnet})
        assert added["info_hash"] == created.hex
        btd.wait_event(events, "metadata", created.hex)
        btd.wait_event(events, "completed", created.hex)
    assert same_tree(folder, btd.downloads)
    assert "fetching the piece layers of 2 files" in btd.log_text()
    record = btd.call("torrent.get", {"info_hash": created.hex})
    assert record["info_hash_v2"] == created.info_hash_v2.hex()
    seeder.close()
    assert btd.stop() == 0
    btd.start()
    seeding = lambda: btd.call("torrent.get", {"info_hash": created.hex})["state"] == "seeding"  # noqa: E731
    wait_until(seeding, timeout=20, what="seeding after the restart, with no peer")
    assert btd.stop() == 0
