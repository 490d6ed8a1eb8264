"""MSE/PE between real btd processes and libtorrent peers that refuse anything but
encrypted connections (``pe_forced`` both ways), in both directions and at both of
libtorrent's levels: RC4 only, and plaintext after an obfuscated handshake.

btd runs with ``encryption: require`` where it must prove it took the encrypted path (a
plain connection would be refused), and with the default ``prefer`` where it must show it
tells an encrypted newcomer from a plain one on the same port."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from btdtest import same_tree, seeded_torrent

pytestmark = [pytest.mark.interop]

SIZE = 8 * 1024 * 1024
PIECE = 256 * 1024
MIN_RATE = 2 * 1024 * 1024  # bytes/s: loopback moves hundreds of MB/s; a stall is far below


@pytest.fixture()
def content(tmp_path: Path) -> tuple[Path, Path, str]:
    return seeded_torrent(tmp_path, {"enc/data.bin": SIZE}, "enc", "enc.torrent", piece_size=PIECE)


def peers_of(btd, info_hash: str) -> list[dict]:
    return btd.call("torrent.peers", {"info_hash": info_hash})


@pytest.mark.parametrize(("level", "policy"), [("rc4", "require"), ("both", "prefer")])
def test_a_forced_encryption_libtorrent_downloads_from_btd(
    tmp_path, btd_factory, lt_factory, content, level, policy
) -> None:
    seed_dir, torrent, info_hash = content
    btd = btd_factory(config=f"session:\n  encryption: {policy}\n")
    btd.start_seeding(seed_dir, torrent)
    port = btd.call("session.info")["listen_port"]
    started = time.monotonic()
    leecher = lt_factory(
        "leech", torrent, tmp_path / "lt", peers=[f"127.0.0.1:{port}"], encryption=level
    )
    leecher.wait_done()
    rate = SIZE / (time.monotonic() - started)
    assert same_tree(seed_dir, tmp_path / "lt")
    assert rate > MIN_RATE, f"{rate / 1e6:.1f} MB/s"
    assert btd.call("torrent.get", {"info_hash": info_hash})["uploaded"] >= SIZE
    assert btd.stop() == 0


@pytest.mark.parametrize(("level", "policy"), [("rc4", "require"), ("both", "prefer")])
def test_btd_downloads_from_a_forced_encryption_libtorrent(
    tmp_path, btd_factory, lt_factory, content, level, policy
) -> None:
    seed_dir, torrent, info_hash = content
    seeder = lt_factory("seed", torrent, seed_dir, encryption=level)
    btd = btd_factory(config=f"session:\n  encryption: {policy}\n").start()
    with btd.client() as events:
        events.call("events.subscribe")
        assert btd.add(torrent) == info_hash
        started = time.monotonic()
        btd.call(
            "torrent.add_peer",
            {"info_hash": info_hash, "address": "127.0.0.1", "port": seeder.port},
        )
        seen = peers_of(btd, info_hash)
        btd.wait_event(events, "completed", info_hash)
        rate = SIZE / (time.monotonic() - started)
    assert same_tree(seed_dir, btd.downloads)
    assert rate > MIN_RATE, f"{rate / 1e6:.1f} MB/s"
    # RC4 forced by libtorrent: the connection reports it (once it was listed).
    for peer in seen:
        assert peer["encrypted"] == (level == "rc4")
    assert btd.stop() == 0


def test_a_per_torrent_require_admits_an_encrypting_libtorrent(
    tmp_path, btd_factory, lt_factory, content
) -> None:
    """The torrent requires encryption, the session does not (set at run time): an
    encrypting libtorrent gets in. That a plain one is refused is
    tests/core/net/test_mse_connections.py."""
    seed_dir, torrent, info_hash = content
    btd = btd_factory()
    btd.start_seeding(seed_dir, torrent)
    btd.call("torrent.set", {"info_hash": info_hash, "encryption": "require"})
    port = btd.call("session.info")["listen_port"]
    leecher = lt_factory(
        "leech", torrent, tmp_path / "lt", peers=[f"127.0.0.1:{port}"], encryption="rc4"
    )
    leecher.wait_done()
    assert same_tree(seed_dir, tmp_path / "lt")
    assert btd.stop() == 0
