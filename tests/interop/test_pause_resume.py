"""Pause/resume and verify against a libtorrent seeder: bytes flow again within 5 s.

Before issue 10 btd refused for 60 s to dial a peer it had just been connected to, even when
the tracker named it again after the resume: a paused download stood still for a minute.
The seeder is found through opentracker only (no ``add_peer``), and rate-limited so that
the download is still running when the test pauses it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from btdtest import make_torrent, same_tree, scrape, wait_until, write_files

pytestmark = [pytest.mark.interop]

SIZE = 24 * 2**20
PIECE = 256 * 1024
LIMIT = 1_500_000  # the seeder's upload limit, bytes/s: the download takes ~16 s
AGAIN_WITHIN = 5.0


def downloaded(btd: Any, info_hash: str) -> int:
    return int(btd.call("torrent.get", {"info_hash": info_hash})["downloaded"])


def flows_again(btd: Any, info_hash: str) -> float:
    """Seconds until btd's download counter moves again (btd is another process: polled)."""
    before = downloaded(btd, info_hash)
    start = time.monotonic()
    wait_until(
        lambda: downloaded(btd, info_hash) > before, timeout=AGAIN_WITHIN, what="bytes again"
    )
    return time.monotonic() - start


def test_bytes_flow_again_within_5_s_after_resume_and_verify(
    tmp_path: Path, btd_factory: Any, lt_factory: Any, opentracker_factory: Any
) -> None:
    seed_dir = tmp_path / "seed"
    write_files(seed_dir, {"slow/data.bin": SIZE}, seed=13)
    info_hash = make_torrent(seed_dir / "slow", tmp_path / "probe.torrent", piece_size=PIECE)
    tracker = opentracker_factory([info_hash])
    torrent = tmp_path / "tracked.torrent"
    make_torrent(seed_dir / "slow", torrent, PIECE, [tracker.announce])
    lt_factory("seed", torrent, seed_dir, upload_limit=LIMIT)
    wait_until(lambda: scrape(tracker.announce, info_hash).get("complete") == 1, what="lt")
    btd = btd_factory().start()
    with btd.client() as events:
        events.call("events.subscribe")
        btd.add(torrent)
        wait_until(lambda: downloaded(btd, info_hash) > 0, what="the first bytes")

        assert btd.call("torrent.pause", {"info_hash": info_hash})["state"] == "paused"
        btd.call("torrent.resume", {"info_hash": info_hash})
        after_resume = flows_again(btd, info_hash)

        btd.call("torrent.verify", {"info_hash": info_hash})
        btd.wait_event(events, "verified", info_hash)
        after_verify = flows_again(btd, info_hash)

        reply = btd.call("torrent.reannounce", {"info_hash": info_hash})
        assert reply["announce_in"] is not None, reply
        btd.wait_event(events, "completed", info_hash, timeout=60)
    print(f"bytes again {after_resume:.2f} s after resume, {after_verify:.2f} s after verify")
    assert same_tree(seed_dir, btd.downloads)
    disconnects = btd.call("torrent.get", {"info_hash": info_hash})["disconnects"]
    assert disconnects["left"] >= 2 and disconnects["protocol_error"] == 0, disconnects
    assert btd.stop() == 0
