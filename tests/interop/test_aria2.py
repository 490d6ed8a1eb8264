"""aria2 (Debian ``aria2c``) and btd exchanging data over loopback, both ways, with throughput
asserted (issue 10: aria2 used to stall after 2.8 MiB from a btd seeder).

aria2 finds a seeder through opentracker; its first connection opens with an encrypted (MSE)
handshake, which btd drops until it speaks MSE (issue 14), and aria2 retries in the clear.
The reference is a libtorrent seeder of the same torrent, measured in the same test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aria2_peer import Aria2
from btdtest import make_torrent, same_tree, scrape, wait_until, write_files

pytestmark = [pytest.mark.interop]

SIZE = 128 * 2**20
PIECE = 1 << 20
FIRST_BYTE_WITHIN = 10.0  # seconds from adding the torrent to aria2 until data flows


@pytest.fixture()
def aria2_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Aria2] = []

    def make(name: str = "aria2", **kwargs: Any) -> Aria2:
        a = Aria2(tmp_path / name, **kwargs)
        started.append(a)
        return a

    yield make
    for a in started:
        a.close()


def aria2_download(aria: Aria2, torrent: Path, into: Path, timeout: float = 30) -> float:
    """Download ``torrent`` with aria2 into ``into``; the payload rate in bytes/s from the
    first byte to the last (so connection set-up does not count, a stall does)."""
    added = time.monotonic()
    gid = aria.add_torrent(torrent, dir=str(into), seed_time="0")
    first = done = None
    deadline = added + timeout
    while done is None:  # aria2's progress is only known by asking it
        status = aria.status(gid)
        now = time.monotonic()
        if first is None and int(status["completedLength"]) > 0:
            first = now
            assert first - added < FIRST_BYTE_WITHIN, f"no data for {first - added:.1f} s"
        if status["status"] == "complete":
            done = now
        elif status["status"] == "error" or now > deadline:
            raise AssertionError(f"aria2 did not finish: {status}\n{aria.log_tail()}")
        else:
            if first is None and now - added > FIRST_BYTE_WITHIN:
                raise AssertionError(f"aria2 got no data in {FIRST_BYTE_WITHIN} s: {status}")
            time.sleep(0.02)
    assert first is not None
    return SIZE / max(done - first, 1e-3)


def test_aria2_downloads_from_btd_at_least_half_as_fast_as_from_libtorrent(
    tmp_path, btd_factory, lt_factory, opentracker_factory, aria2_factory
) -> None:
    seed_dir = tmp_path / "seed"
    write_files(seed_dir, {"big/data.bin": SIZE}, seed=10)
    probe = tmp_path / "probe.torrent"
    info_hash = make_torrent(seed_dir / "big", probe, piece_size=PIECE)
    tracker = opentracker_factory([info_hash])
    torrent = tmp_path / "tracked.torrent"
    make_torrent(seed_dir / "big", torrent, PIECE, [tracker.announce])
    aria = aria2_factory()

    # btd seeds the files in place (no copy whose write-back would compete with the test).
    btd = btd_factory().start()
    with btd.client() as events:
        events.call("events.subscribe")
        btd.add(torrent, save_path=str(seed_dir))
        btd.wait_event(events, "started", info_hash)
    wait_until(lambda: scrape(tracker.announce, info_hash).get("complete") == 1, what="btd")
    btd_rate = aria2_download(aria, torrent, tmp_path / "from-btd")
    assert same_tree(seed_dir, tmp_path / "from-btd")
    stats = btd.call("torrent.get", {"info_hash": info_hash})
    btd.call("torrent.pause", {"info_hash": info_hash})  # tells the tracker "stopped"
    wait_until(lambda: scrape(tracker.announce, info_hash).get("complete", 0) == 0, what="stop")

    # The reference: a libtorrent seeder of the same files, alone in the swarm now.
    lt_factory("seed", torrent, seed_dir)
    wait_until(lambda: scrape(tracker.announce, info_hash).get("complete") == 1, what="lt")
    lt_rate = aria2_download(aria, torrent, tmp_path / "from-lt")
    assert same_tree(seed_dir, tmp_path / "from-lt")

    print(f"aria2 from libtorrent {lt_rate / 1e6:.1f} MB/s, from btd {btd_rate / 1e6:.1f} MB/s")
    assert btd_rate >= lt_rate / 2, (lt_rate, btd_rate)
    # aria2 sends its bitfield again and again: no connection may end in a protocol error.
    assert stats["disconnects"]["protocol_error"] == 0, stats["disconnects"]
    assert btd.stop() == 0


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "rc4-required"])
def test_btd_downloads_from_an_aria2_seeder(
    tmp_path, btd_factory, aria2_factory, encrypted
) -> None:
    """At loopback speed; and MSE with a second implementation: aria2 set to RC4 only
    (``--bt-require-crypto``, ``--bt-min-crypto-level=arc4``) seeding to btd set to
    ``require``, where both refusing anything but RC4 makes completing the proof."""
    seed_dir = tmp_path / "seed"
    size = (16 if encrypted else 64) * 2**20
    write_files(seed_dir, {"big/data.bin": size}, seed=11)
    torrent = tmp_path / "big.torrent"
    info_hash = make_torrent(seed_dir / "big", torrent, piece_size=PIECE)
    rc4_only = ["--bt-require-crypto=true", "--bt-min-crypto-level=arc4"]
    aria = aria2_factory(extra=rc4_only if encrypted else None)
    gid = aria.add_torrent(torrent, dir=str(seed_dir), seed_ratio="0.0")
    wait_until(lambda: aria.status(gid)["status"] == "active" and aria.completed(gid) == size,
               what="aria2 checked its files")  # fmt: skip
    config = "session:\n  encryption: require\n" if encrypted else None
    btd = btd_factory(config=config).start()
    with btd.client() as events:
        events.call("events.subscribe")
        btd.add(torrent)
        started = time.monotonic()
        btd.call(
            "torrent.add_peer",
            {"info_hash": info_hash, "address": "127.0.0.1", "port": aria.listen_port},
        )
        btd.wait_event(events, "completed", info_hash, timeout=60)
        elapsed = time.monotonic() - started
    assert same_tree(seed_dir, btd.downloads)
    rate = size / elapsed
    print(f"btd from aria2 ({'RC4' if encrypted else 'plain'}): {rate / 1e6:.1f} MB/s")
    floor = 5e6 if encrypted else 10e6
    assert rate > floor, f"{rate / 1e6:.1f} MB/s from an aria2 seeder on loopback: a stall?"
    assert btd.stop() == 0


def test_btd_takes_one_file_from_an_aria2_seeder_under_a_download_limit(
    tmp_path, btd_factory, aria2_factory
) -> None:
    """Issue 11 against a Debian client: a per-torrent download limit holds (within 10 %
    over a window after the bucket's initial burst) and only the wanted file is written."""
    limit = 2 * 2**20
    seed_dir = tmp_path / "seed"
    write_files(seed_dir, {"pack/a.bin": 3 * 2**20, "pack/b.bin": 24 * 2**20}, seed=12)
    torrent = tmp_path / "pack.torrent"
    info_hash = make_torrent(seed_dir / "pack", torrent, piece_size=256 * 1024)
    aria = aria2_factory()
    gid = aria.add_torrent(torrent, dir=str(seed_dir), seed_ratio="0.0")
    wait_until(lambda: aria.status(gid)["status"] == "active" and aria.completed(gid) > 0,
               what="aria2 checked its files")  # fmt: skip
    btd = btd_factory().start()
    with btd.client() as events:
        events.call("events.subscribe")
        btd.add(torrent, files_skipped=[0], download_limit=limit)
        btd.call(
            "torrent.add_peer",
            {"info_hash": info_hash, "address": "127.0.0.1", "port": aria.listen_port},
        )

        def downloaded() -> tuple[float, int]:
            return time.monotonic(), btd.call("torrent.get", {"info_hash": info_hash})["downloaded"]

        wait_until(lambda: downloaded()[1] > 8 * 2**20, timeout=30, what="the burst spent")
        t0, b0 = downloaded()
        wait_until(lambda: downloaded()[0] - t0 >= 5, timeout=30, what="a 5 s window")
        t1, b1 = downloaded()
        btd.wait_event(events, "completed", info_hash, timeout=60)
    rate = (b1 - b0) / (t1 - t0)
    print(f"btd from aria2 under a {limit} B/s limit: {rate:.0f} B/s")
    assert 0.9 * limit <= rate <= 1.1 * limit, rate
    assert (btd.downloads / "pack" / "b.bin").read_bytes() == (
        seed_dir / "pack" / "b.bin"
    ).read_bytes()
    assert not (btd.downloads / "pack" / "a.bin").exists()  # skipped: never created
    assert btd.stop() == 0
