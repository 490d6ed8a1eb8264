"""uTP alone (BEP 29) between real btd processes with the ``utp`` plugin and libtorrent
peers whose TCP is off both ways (``enable_outgoing_tcp``/``enable_incoming_tcp`` false):
whatever moves, moved over uTP. Both directions, and btd dialling with each ``prefer``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from btdtest import same_tree, seeded_torrent

pytestmark = [pytest.mark.interop]

SIZE = 8 * 1024 * 1024
PIECE = 256 * 1024
MIN_RATE = 1024 * 1024  # bytes/s: far below what loopback uTP moves; a stall is below it


def utp_config(prefer: str) -> str:
    return f"plugins:\n  rarest_first: {{}}\n  resume_sqlite: {{}}\n  utp:\n    prefer: {prefer}\n"


@pytest.fixture()
def content(tmp_path: Path) -> tuple[Path, Path, str]:
    return seeded_torrent(tmp_path, {"utp/data.bin": SIZE}, "utp", "utp.torrent", piece_size=PIECE)


def test_a_utp_only_libtorrent_downloads_from_btd(
    tmp_path, btd_factory, lt_factory, content
) -> None:
    seed_dir, torrent, info_hash = content
    btd = btd_factory(config=utp_config("tcp"))
    btd.start_seeding(seed_dir, torrent)
    port = btd.call("session.info")["listen_port"]
    started = time.monotonic()
    leecher = lt_factory(
        "leech", torrent, tmp_path / "lt", peers=[f"127.0.0.1:{port}"], utp_only=True
    )
    leecher.wait_done()
    rate = SIZE / (time.monotonic() - started)
    assert same_tree(seed_dir, tmp_path / "lt")
    assert rate > MIN_RATE, f"{rate / 1e6:.1f} MB/s"
    status = btd.call("utp.status")
    assert status["accepted"] >= 1 and status["dialled"] == 0
    assert btd.stop() == 0


@pytest.mark.parametrize("prefer", ["utp", "tcp"])
def test_btd_downloads_from_a_utp_only_libtorrent(
    tmp_path, btd_factory, lt_factory, content, prefer
) -> None:
    """``prefer: utp`` dials uTP at once; ``prefer: tcp`` finds TCP refused, then uTP."""
    seed_dir, torrent, info_hash = content
    seeder = lt_factory("seed", torrent, seed_dir, utp_only=True)
    btd = btd_factory(config=utp_config(prefer)).start()
    with btd.client() as events:
        events.call("events.subscribe")
        assert btd.add(torrent) == info_hash
        started = time.monotonic()
        btd.call(
            "torrent.add_peer",
            {"info_hash": info_hash, "address": "127.0.0.1", "port": seeder.port},
        )
        btd.wait_event(events, "completed", info_hash)
        rate = SIZE / (time.monotonic() - started)
    assert same_tree(seed_dir, btd.downloads)
    assert rate > MIN_RATE, f"{rate / 1e6:.1f} MB/s"
    assert btd.call("utp.status")["dialled"] >= 1
    assert btd.stop() == 0


@pytest.mark.parametrize("listen", ["::1", "::"])
def test_utp_over_ipv6_both_ways(tmp_path, btd_factory, lt_factory, content, listen) -> None:
    """On ::1 (and on a dual-stack ``::`` socket, which takes an IPv4 peer too): libtorrent,
    uTP only, downloads from btd, then btd downloads from another libtorrent the same way."""
    seed_dir, torrent, info_hash = content
    config = f"session:\n  listen_host: '{listen}'\n" + utp_config("utp")
    btd = btd_factory("seeder", config=config)
    btd.start_seeding(seed_dir, torrent)
    port = btd.call("session.info")["listen_port"]
    leecher = lt_factory(
        "leech", torrent, tmp_path / "lt", peers=[f"[::1]:{port}"], host="::1", utp_only=True
    )
    leecher.wait_done()
    assert same_tree(seed_dir, tmp_path / "lt")
    if listen == "::":  # the same socket takes an IPv4 peer (mapped addresses both ways)
        v4 = lt_factory(
            "leech", torrent, tmp_path / "lt4", peers=[f"127.0.0.1:{port}"], utp_only=True
        )
        v4.wait_done()
        assert same_tree(seed_dir, tmp_path / "lt4")
    assert btd.call("utp.status")["accepted"] >= (2 if listen == "::" else 1)
    assert btd.stop() == 0

    seeder = lt_factory("seed", torrent, seed_dir, host="::1", utp_only=True)
    btd = btd_factory("leecher", config=config).start()
    with btd.client() as events:
        events.call("events.subscribe")
        btd.add(torrent)
        btd.call(
            "torrent.add_peer", {"info_hash": info_hash, "address": "::1", "port": seeder.port}
        )
        btd.wait_event(events, "completed", info_hash)
    assert same_tree(seed_dir, btd.downloads)
    assert btd.call("utp.status")["dialled"] >= 1
    assert btd.stop() == 0
