"""btd and libtorrent exchanging real data over loopback, in both directions."""

from __future__ import annotations

from pathlib import Path

import pytest

from btdtest import make_torrent, same_tree, write_files  # type: ignore[import-not-found]

pytestmark = [pytest.mark.interop]

SIZES = {"multi/a.bin": 1_500_000, "multi/sub/b.bin": 1234, "multi/c.bin": 700_001}


@pytest.fixture()
def content(tmp_path: Path) -> tuple[Path, Path, str]:
    seed_dir = tmp_path / "seed"
    write_files(seed_dir, SIZES)
    torrent = tmp_path / "multi.torrent"
    info_hash = make_torrent(seed_dir / "multi", torrent, piece_size=64 * 1024)
    return seed_dir, torrent, info_hash


def test_btd_downloads_multifile_from_libtorrent(btd_factory, lt_factory, content) -> None:
    seed_dir, torrent, info_hash = content
    seeder = lt_factory("seed", torrent, seed_dir)
    btd = btd_factory().start()
    with btd.client() as events:
        events.call("events.subscribe")
        assert btd.add(torrent) == info_hash
        btd.call("torrent.add_peer", {"info_hash": info_hash, "address": "127.0.0.1", "port": seeder.port})
        btd.wait_event(events, "completed", info_hash)
    assert same_tree(seed_dir, btd.downloads)
    assert btd.stop() == 0
