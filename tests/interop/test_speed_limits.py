"""Speed limits against libtorrent (loopback): the rate a real peer sees holds within 10 %.

Each test measures over ``WINDOW`` seconds after ``WARMUP`` (not until completion: the
content is larger than the window can move), so each takes about 25 s.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
from btdtest import LT_PEER, seeded_torrent

lt = pytest.importorskip("libtorrent")
_spec = importlib.util.spec_from_file_location("lt_peer", LT_PEER)
lt_peer = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(lt_peer)  # type: ignore[union-attr]
make_session, wait_listening, wait_started = (
    lt_peer.make_session,
    lt_peer.wait_listening,
    lt_peer.wait_started,
)

pytestmark = [pytest.mark.interop]

LIMIT = 4 * 1024 * 1024  # bytes/s
WARMUP = 3.0
WINDOW = 20.0
SIZE = 112 * 1024 * 1024  # more than (WARMUP + WINDOW) * LIMIT
PIECE = 1024 * 1024


def rate_over_window(read_bytes, tick) -> float:  # type: ignore[no-untyped-def]
    """Bytes/s between WARMUP and WARMUP + WINDOW after the first byte, read by
    ``read_bytes()``; ``tick()`` waits a little (an outside program's state: polled)."""
    deadline = time.monotonic() + 30
    while read_bytes() == 0:
        assert time.monotonic() < deadline, "no transfer started"
        tick()
    start = time.monotonic()
    while time.monotonic() < start + WARMUP:
        tick()
    before, t0 = read_bytes(), time.monotonic()
    while time.monotonic() < t0 + WINDOW:
        tick()
    after, t1 = read_bytes(), time.monotonic()
    return (after - before) / (t1 - t0)


@pytest.fixture()
def content(tmp_path: Path) -> tuple[Path, Path, str]:
    return seeded_torrent(tmp_path, {"big/data.bin": SIZE}, "big", "big.torrent", piece_size=PIECE)


def test_global_upload_limit_holds_for_a_libtorrent_leecher(tmp_path, btd_factory, content) -> None:
    seed_dir, torrent, info_hash = content
    btd = btd_factory(config=f"session:\n  upload_limit: {LIMIT}\n")
    btd.start_seeding(seed_dir, torrent)
    ses = make_session()
    wait_listening(ses)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(str(torrent))
    params.save_path = str(tmp_path / "lt")
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    handle = ses.add_torrent(params)
    wait_started(ses, handle)
    btd.call(
        "torrent.add_peer",
        {"info_hash": info_hash, "address": "127.0.0.1", "port": ses.listen_port()},
    )

    def tick() -> None:
        ses.wait_for_alert(100)
        ses.pop_alerts()

    rate = rate_over_window(lambda: handle.status().total_payload_download, tick)
    print(f"measured {rate / 2**20:.3f} MiB/s (limit {LIMIT / 2**20:g} MiB/s)")
    assert rate == pytest.approx(LIMIT, rel=0.10), f"{rate / 2**20:.2f} MiB/s"
    assert handle.status().progress < 1.0  # the window measured a transfer still going
    assert btd.stop() == 0


def test_torrent_download_limit_holds_from_a_libtorrent_seeder(
    tmp_path, btd_factory, lt_factory, content
) -> None:
    seed_dir, torrent, info_hash = content
    seeder = lt_factory("seed", torrent, seed_dir)
    btd = btd_factory().start()
    btd.add(torrent, download_limit=LIMIT)
    btd.call(
        "torrent.add_peer", {"info_hash": info_hash, "address": "127.0.0.1", "port": seeder.port}
    )

    def downloaded() -> int:
        return btd.call("torrent.list", {"fields": ["downloaded"]})[0]["downloaded"]

    rate = rate_over_window(downloaded, lambda: time.sleep(0.1))
    print(f"measured {rate / 2**20:.3f} MiB/s (limit {LIMIT / 2**20:g} MiB/s)")
    assert rate == pytest.approx(LIMIT, rel=0.10), f"{rate / 2**20:.2f} MiB/s"
    got = btd.call("torrent.get", {"info_hash": info_hash})
    assert got["download_limit"] == LIMIT and got["state"] == "downloading"
    # Lifted live: the same peer now runs at loopback speed.
    btd.call("torrent.set", {"info_hash": info_hash, "download_limit": 0})
    before, t0 = downloaded(), time.monotonic()
    while time.monotonic() < t0 + 2 and downloaded() < SIZE:
        time.sleep(0.1)
    assert (downloaded() - before) / (time.monotonic() - t0) > 1.5 * LIMIT
    assert btd.stop() == 0
