"""btd and real peers (libtorrent, opentracker) exchanging data over loopback, both ways."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from btdtest import (
    CorruptSeeder,
    make_torrent,
    same_tree,
    scrape,
    seeded_torrent,
    wait_until,
    write_files,
)

pytestmark = [pytest.mark.interop]

SIZES = {"multi/a.bin": 1_500_000, "multi/sub/b.bin": 1234, "multi/c.bin": 700_001}
PIECE = 64 * 1024


@pytest.fixture()
def content(tmp_path: Path) -> tuple[Path, Path, str]:
    """A multi-file torrent (a file smaller than a piece, files across piece boundaries)."""
    return seeded_torrent(tmp_path, SIZES, "multi", "multi.torrent", piece_size=PIECE)


def add_peer(btd, info_hash: str, port: int) -> None:
    btd.call("torrent.add_peer", {"info_hash": info_hash, "address": "127.0.0.1", "port": port})


def test_btd_downloads_multifile_from_libtorrent(btd_factory, lt_factory, content) -> None:
    seed_dir, torrent, info_hash = content
    seeder = lt_factory("seed", torrent, seed_dir)
    btd = btd_factory().start()
    with btd.client() as events:
        events.call("events.subscribe")
        assert btd.add(torrent) == info_hash
        add_peer(btd, info_hash, seeder.port)
        btd.wait_event(events, "completed", info_hash)
    assert same_tree(seed_dir, btd.downloads)
    assert btd.stop() == 0


def test_btd_downloads_through_opentracker(
    tmp_path, btd_factory, lt_factory, opentracker_factory
) -> None:
    seed_dir = tmp_path / "seed"
    write_files(seed_dir, SIZES, seed=2)
    probe = tmp_path / "probe.torrent"
    info_hash = make_torrent(seed_dir / "multi", probe, piece_size=PIECE)
    tracker = opentracker_factory([info_hash])
    torrent = tmp_path / "tracked.torrent"
    assert make_torrent(seed_dir / "multi", torrent, PIECE, [tracker.announce]) == info_hash
    lt_factory("seed", torrent, seed_dir)  # announces itself to opentracker
    btd = btd_factory().start()
    with btd.client() as events:
        events.call("events.subscribe")
        btd.add(torrent)  # no add_peer: the only way to find the seeder is the tracker
        btd.wait_event(events, "completed", info_hash)
    trackers = btd.call("torrent.trackers", {"info_hash": info_hash})
    assert trackers[0]["url"] == tracker.announce
    assert trackers[0]["status"] in ("working", "updating")
    assert same_tree(seed_dir, btd.downloads)
    assert btd.stop() == 0


def test_shutdown_tells_the_tracker(tmp_path, btd_factory, opentracker_factory) -> None:
    seed_dir = tmp_path / "seed"
    write_files(seed_dir, SIZES, seed=4)
    probe = tmp_path / "probe.torrent"
    info_hash = make_torrent(seed_dir / "multi", probe, piece_size=PIECE)
    tracker = opentracker_factory([info_hash])
    torrent = tmp_path / "tracked.torrent"
    make_torrent(seed_dir / "multi", torrent, PIECE, [tracker.announce])
    btd = btd_factory()
    shutil.copytree(seed_dir, btd.downloads)
    btd.start()
    btd.add(torrent)
    wait_until(lambda: scrape(tracker.announce, info_hash).get("complete") == 1, what="announce")
    assert btd.stop() == 0
    # `stopped` was sent before the process exited: the tracker forgot the seeder at once.
    assert scrape(tracker.announce, info_hash).get("complete", 0) == 0


def test_libtorrent_downloads_from_btd(tmp_path, btd_factory, lt_factory, content) -> None:
    seed_dir, torrent, info_hash = content
    btd = btd_factory()
    btd.start_seeding(seed_dir, torrent)  # btd checks the data and seeds it
    assert btd.call("torrent.get", {"info_hash": info_hash})["state"] == "seeding"
    port = btd.call("session.info")["listen_port"]
    leecher = lt_factory("leech", torrent, tmp_path / "lt-leech", peers=[f"127.0.0.1:{port}"])
    leecher.wait_done()
    assert same_tree(seed_dir, tmp_path / "lt-leech")
    assert btd.call("torrent.get", {"info_hash": info_hash})["uploaded"] >= sum(SIZES.values())
    assert btd.stop() == 0


def test_btd_downloads_from_three_seeders(tmp_path, btd_factory, lt_factory) -> None:
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, {"big/data.bin": 12_000_000}, "big", "big.torrent", seed=3, piece_size=PIECE
    )
    lt_a = lt_factory("seed", torrent, seed_dir)
    lt_b = lt_factory("seed", torrent, seed_dir)
    btd_seed = btd_factory("btd-seed")
    shutil.copytree(seed_dir, btd_seed.downloads)
    btd_seed.start()
    btd_seed.add(torrent)
    btd_seed_port = btd_seed.call("session.info")["listen_port"]
    btd = btd_factory("btd-leech").start()
    with btd.client() as events:
        events.call("events.subscribe")
        btd.add(torrent)
        for port in (lt_a.port, lt_b.port, btd_seed_port):
            add_peer(btd, info_hash, port)
        btd.wait_event(events, "completed", info_hash, timeout=90)
    sources = btd.call("torrent.get", {"info_hash": info_hash})["sources"]
    for port in (lt_a.port, lt_b.port, btd_seed_port):
        assert sources.get(f"127.0.0.1:{port}", 0) > 0, (port, sources)
    assert same_tree(seed_dir, btd.downloads)


def test_btd_serves_while_downloading(tmp_path, btd_factory, lt_factory, content) -> None:
    seed_dir, torrent, info_hash = content
    slow_seed = lt_factory("seed", torrent, seed_dir, upload_limit=400_000)
    btd = btd_factory().start()
    port = btd.call("session.info")["listen_port"]
    with btd.client() as events:
        events.call("events.subscribe")
        btd.add(torrent)
        add_peer(btd, info_hash, slow_seed.port)
        # A libtorrent leecher whose only peer is btd, joining while btd has little.
        leecher = lt_factory("leech", torrent, tmp_path / "lt-leech", peers=[f"127.0.0.1:{port}"])
        done = btd.wait_event(events, "completed", info_hash, timeout=60)
    assert done["uploaded"] > 0, "btd uploaded nothing before its own download completed"
    leecher.wait_done()
    assert same_tree(seed_dir, tmp_path / "lt-leech")


def test_corrupt_peer_is_banned_and_data_refetched(tmp_path, btd_factory, lt_factory, content):
    seed_dir, torrent, info_hash = content
    num_pieces = -(-sum(SIZES.values()) // PIECE)
    bad = CorruptSeeder(info_hash, num_pieces)
    try:
        btd = btd_factory().start()
        with btd.client() as events:
            events.call("events.subscribe")
            btd.add(torrent)
            add_peer(btd, info_hash, bad.port)
            # Only once the corrupt peer is found out does a good seeder appear.
            banned = btd.wait_event(events, "peer_banned", info_hash, timeout=30)
            assert banned["address"] == f"127.0.0.1:{bad.port}"
            good = lt_factory("seed", torrent, seed_dir)
            add_peer(btd, info_hash, good.port)
            btd.wait_event(events, "completed", info_hash, timeout=60)
    finally:
        bad.close()
    status = btd.call("torrent.get", {"info_hash": info_hash})
    assert status["banned"] == [f"127.0.0.1:{bad.port}"]
    assert bad.blocks_sent > 0 and status["wasted"] > 0
    assert all(p["port"] != bad.port for p in btd.call("torrent.peers", {"info_hash": info_hash}))
    assert same_tree(seed_dir, btd.downloads)


def test_whole_path_through_btctl(tmp_path, btd_factory, lt_factory, content) -> None:
    seed_dir, torrent, info_hash = content
    seeder = lt_factory("seed", torrent, seed_dir)
    btd = btd_factory().start()
    with btd.client() as events:
        events.call("events.subscribe")
        added = btd.btctl("add", str(torrent))
        assert added.returncode == 0, added.stderr
        assert f"added {info_hash}" in added.stdout
        again = btd.btctl("--json", "add", str(torrent))  # cron jobs repeat themselves
        assert again.returncode == 0 and '"added": false' in again.stdout
        peer = btd.btctl("add-peer", info_hash[:10], f"127.0.0.1:{seeder.port}")
        assert peer.returncode == 0, peer.stderr
        btd.wait_event(events, "completed", info_hash)
        listed = btd.btctl("list")
        assert info_hash[:8] in listed.stdout and "seeding" in listed.stdout
        removed = btd.btctl("rm", info_hash[:8])
        assert removed.returncode == 0, removed.stderr
        btd.wait_event(events, "removed", info_hash)
    assert btd.btctl("--json", "list").stdout.strip() == "[]"
    assert btd.btctl("info", info_hash).returncode == 4  # gone: not found
    assert same_tree(seed_dir, btd.downloads)  # removed without --delete-data: files stay
    assert btd.stop() == 0
