"""The udp_tracker plugin against opentracker's UDP side, alone and inside btd (loopback)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from btdtest import make_torrent, same_tree, scrape, wait_until, write_files
from btdtest import wait_fired as wait
from twisted.internet import reactor
from twisted.python.failure import Failure

from btd.core.tracker.codec import AnnounceRequest, AnnounceResponse
from btd.plugins.udp_tracker.client import UdpTrackerClient

pytestmark = [pytest.mark.interop]

SIZES = {"udp/a.bin": 900_000, "udp/b.bin": 70_001}
PIECE = 64 * 1024
CONFIG = "plugins:\n  rarest_first: {}\n  udp_tracker:\n    bind: 127.0.0.1\n"


def request(info_hash: bytes, peer_id: bytes, port: int, event: str = "started") -> AnnounceRequest:
    return AnnounceRequest(
        info_hash=info_hash,
        peer_id=peer_id,
        port=port,
        uploaded=0,
        downloaded=0,
        left=1000,
        event=event,
    )


@pytest.fixture()
def client() -> Any:
    c = UdpTrackerClient(reactor, bind="127.0.0.1", retry_base=1, max_retries=3)
    c.listen()
    yield c
    wait(c.close())


def test_client_against_opentracker(client: Any, opentracker_factory: Any) -> None:
    info_hash = bytes(range(40, 60))
    tracker = opentracker_factory([info_hash.hex()])
    url = tracker.udp_announce
    first = wait(client.announce(url, request(info_hash, b"-BT0100-aaaaaaaaaaaa", 41111)))
    assert isinstance(first, AnnounceResponse), first
    second = wait(client.announce(url, request(info_hash, b"-BT0100-bbbbbbbbbbbb", 42222)))
    assert isinstance(second, AnnounceResponse), second
    assert ("127.0.0.1", 41111) in second.peers, (second, client.stats())
    assert second.incomplete == 2 and second.interval >= 60, (second, client.stats())
    counts = wait(client.scrape(url, info_hash))
    assert counts == (0, 2, 0), (counts, client.stats())
    stopped = wait(
        client.announce(url, request(info_hash, b"-BT0100-aaaaaaaaaaaa", 41111, "stopped"))
    )
    assert isinstance(stopped, AnnounceResponse)
    counts = wait(client.scrape(url, info_hash))
    stats = client.stats()
    assert counts[1] == 1, (counts, stats)
    assert stats["connects"] == 1, stats  # one connection id served every request
    assert stats["ignored_malformed"] == stats["ignored_wrong_source"] == 0, stats


def test_client_times_out_on_a_silent_port(opentracker_factory: Any) -> None:
    from btdtest import free_port

    c = UdpTrackerClient(reactor, bind="127.0.0.1", retry_base=0.05, max_retries=2)
    c.listen()
    try:
        url = f"udp://127.0.0.1:{free_port()}/announce"  # nothing listens there
        result = wait(c.announce(url, request(b"\x02" * 20, b"-BT0100-dddddddddddd", 1)))
        assert isinstance(result, Failure) and str(result.value) == "udp tracker timed out"
        assert c.stats()["sent"] == 3
    finally:
        wait(c.close())


def tracked_torrent(
    tmp_path: Path, opentracker_factory: Any, seed: int
) -> tuple[Path, Path, str, Any]:
    seed_dir = tmp_path / "seed"
    write_files(seed_dir, SIZES, seed=seed)
    info_hash = make_torrent(seed_dir / "udp", tmp_path / "probe.torrent", piece_size=PIECE)
    tracker = opentracker_factory([info_hash])
    torrent = tmp_path / "udp.torrent"
    assert make_torrent(seed_dir / "udp", torrent, PIECE, [tracker.udp_announce]) == info_hash
    return seed_dir, torrent, info_hash, tracker


def test_btd_downloads_through_a_udp_tracker(
    tmp_path: Path, btd_factory: Any, lt_factory: Any, opentracker_factory: Any
) -> None:
    seed_dir, torrent, info_hash, tracker = tracked_torrent(tmp_path, opentracker_factory, 5)
    lt_factory("seed", torrent, seed_dir)  # announces itself over UDP
    wait_until(
        lambda: scrape(tracker.announce, info_hash).get("complete") == 1,
        what="libtorrent's udp announce",
    )
    btd = btd_factory(config=CONFIG).start()
    with btd.client() as events:
        events.call("events.subscribe")
        btd.add(torrent)  # no add_peer: only the udp tracker knows the seeder
        btd.wait_event(events, "completed", info_hash)
    (entry,) = btd.call("torrent.trackers", {"info_hash": info_hash})
    assert entry["url"] == tracker.udp_announce
    assert entry["status"] in ("working", "updating"), entry
    assert entry["last_error"] is None
    assert same_tree(seed_dir, btd.downloads)
    assert btd.stop() == 0


def test_shutdown_tells_the_udp_tracker(
    tmp_path: Path, btd_factory: Any, opentracker_factory: Any
) -> None:
    seed_dir, torrent, info_hash, tracker = tracked_torrent(tmp_path, opentracker_factory, 6)
    btd = btd_factory(config=CONFIG)
    shutil.copytree(seed_dir, btd.downloads)
    btd.start()
    btd.add(torrent)
    wait_until(lambda: scrape(tracker.announce, info_hash).get("complete") == 1, what="announce")
    (entry,) = btd.call("torrent.trackers", {"info_hash": info_hash})
    assert entry["status"] == "working", entry
    assert btd.stop() == 0
    # The socket outlived the plugin's stopping hook: `stopped` reached the tracker.
    assert scrape(tracker.announce, info_hash).get("complete", 0) == 0


def test_restored_torrent_announces_over_udp(
    tmp_path: Path, btd_factory: Any, opentracker_factory: Any
) -> None:
    """Torrents loaded at start ask for their tracker client before the socket opens."""
    seed_dir, torrent, info_hash, tracker = tracked_torrent(tmp_path, opentracker_factory, 7)
    btd = btd_factory(config=CONFIG)
    shutil.copytree(seed_dir, btd.downloads)
    btd.start()
    btd.add(torrent)
    wait_until(lambda: scrape(tracker.announce, info_hash).get("complete") == 1, what="announce")
    assert btd.stop() == 0
    assert scrape(tracker.announce, info_hash).get("complete", 0) == 0
    btd.start()  # the torrent comes back from the state directory
    wait_until(lambda: scrape(tracker.announce, info_hash).get("complete") == 1, what="re-announce")
    (entry,) = btd.call("torrent.trackers", {"info_hash": info_hash})
    assert entry["status"] == "working", entry
    assert btd.stop() == 0
