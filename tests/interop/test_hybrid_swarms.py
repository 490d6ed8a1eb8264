"""A hybrid torrent (BEP 52) joins both its swarms: here libtorrent can reach btd only
through the **v2 swarm**, and the transfer works both ways over it.

opentracker's whitelist holds only the hybrid's truncated v2 hash, so every announce under
the v1 hash is refused (libtorrent's and btd's alike): the peers meet only because each
announces under the v2 hash too. Which hash each handshake carried is read back from btd
(``torrent.peers``' ``v2``), sampled while the data flows."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from btdtest import same_tree, write_files

from btd.core.torrent_create_v2 import create_torrent_v2

pytestmark = [pytest.mark.interop]

SIZE = 48 * 1024 * 1024
PIECE = 256 * 1024
MIN_RATE = 2 * 1024 * 1024  # bytes/s: loopback moves hundreds of MB/s; a stall is far below


class PeerSampler:
    """Reads ``torrent.peers`` in a thread while a transfer runs: btd's connections come and
    go at libtorrent's pace (an outside program), so they are sampled, not awaited."""

    def __init__(self, btd, info_hash: str) -> None:
        self.btd, self.info_hash = btd, info_hash
        self.seen: dict[tuple[str, int], bool] = {}  # address -> v2
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.btd.client() as rpc:
            while not self._stop.is_set():
                for peer in rpc.call("torrent.peers", {"info_hash": self.info_hash}):
                    self.seen[(peer["address"], peer["port"])] = peer["v2"]
                self._stop.wait(0.02)

    def __enter__(self) -> PeerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture()
def hybrid(tmp_path: Path, opentracker_factory):
    """The data, a hybrid .torrent of it announcing to an opentracker that knows only the
    v2 swarm, and the CreatedTorrent."""
    folder = tmp_path / "seed"
    write_files(folder, {"hyb/data.bin": SIZE, "hyb/small.txt": 1000}, seed=31)
    probe = create_torrent_v2(folder / "hyb", hybrid=True, piece_length=PIECE)
    v2_swarm = probe.info_hash_v2[:20].hex()
    tracker = opentracker_factory([v2_swarm])  # the v1 hash is not on the whitelist
    created = create_torrent_v2(
        folder / "hyb", hybrid=True, piece_length=PIECE, trackers=[tracker.announce]
    )
    assert created.hex == probe.hex and created.hex != v2_swarm
    torrent = tmp_path / "hyb.torrent"
    torrent.write_bytes(created.data)
    return folder, torrent, created


def assert_v2_only(sampler: PeerSampler) -> None:
    print("peers seen (address -> v2):", sampler.seen)
    assert sampler.seen, "no peer was ever listed"
    assert all(sampler.seen.values()), sampler.seen  # every handshake named the v2 hash


def test_libtorrent_in_the_v2_swarm_downloads_from_btd(tmp_path, btd_factory, lt_factory, hybrid):
    folder, torrent, created = hybrid
    btd = btd_factory()
    assert btd.start_seeding(folder, torrent) == created.hex
    with PeerSampler(btd, created.hex) as sampler:
        started = time.monotonic()
        leecher = lt_factory("leech", torrent, tmp_path / "lt")  # no peer given: the tracker
        leecher.wait_done()
        rate = SIZE / (time.monotonic() - started)
    print(f"libtorrent from btd over the v2 swarm: {rate / 1e6:.1f} MB/s")
    assert same_tree(folder, tmp_path / "lt")
    assert rate > MIN_RATE, f"{rate / 1e6:.1f} MB/s"
    assert_v2_only(sampler)
    assert btd.call("torrent.get", {"info_hash": created.hex})["uploaded"] >= SIZE
    assert btd.stop() == 0


def test_btd_downloads_from_libtorrent_in_the_v2_swarm(btd_factory, lt_factory, hybrid):
    folder, torrent, created = hybrid
    lt_factory("seed", torrent, folder)  # announces itself; only the v2 announce is taken
    btd = btd_factory().start()
    with btd.client() as events:
        events.call("events.subscribe")
        started = time.monotonic()
        assert btd.add(torrent) == created.hex  # no add_peer: the tracker's v2 answer only
        with PeerSampler(btd, created.hex) as sampler:
            btd.wait_event(events, "completed", created.hex)
        rate = SIZE / (time.monotonic() - started)
    print(f"btd from libtorrent over the v2 swarm: {rate / 1e6:.1f} MB/s")
    assert same_tree(folder, btd.downloads)
    assert rate > MIN_RATE, f"{rate / 1e6:.1f} MB/s"
    assert_v2_only(sampler)
    trackers = btd.call("torrent.trackers", {"info_hash": created.hex})
    assert trackers[0]["status"] in ("working", "updating")  # the v2 announce answered
    assert btd.stop() == 0


def test_libtorrent_with_only_the_btmh_magnet_downloads_a_hybrid_from_btd(
    tmp_path, btd_factory, lt_factory, hybrid
):
    """libtorrent given only the v2 magnet of a hybrid is in its v2 swarm alone: the info
    dictionary (ut_metadata), the piece layers (BEP 52 hash requests, answered from the
    hybrid's .torrent) and the data come from btd over a v2 connection."""
    folder, torrent, created = hybrid
    btd = btd_factory()
    assert btd.start_seeding(folder, torrent) == created.hex
    port = btd.call("session.info")["listen_port"]
    magnet = f"magnet:?xt=urn:btmh:1220{created.info_hash_v2.hex()}&dn=hyb"
    with PeerSampler(btd, created.hex) as sampler:
        started = time.monotonic()
        leecher = lt_factory("leech", magnet, tmp_path / "lt", peers=[f"127.0.0.1:{port}"])
        leecher.wait_done()
        rate = SIZE / (time.monotonic() - started)
    print(f"libtorrent (btmh magnet) from btd over the v2 swarm: {rate / 1e6:.1f} MB/s")
    assert same_tree(folder, tmp_path / "lt")
    assert rate > MIN_RATE, f"{rate / 1e6:.1f} MB/s"
    assert_v2_only(sampler)
    assert "answering hash requests (BEP 52)" in btd.log_text()
    assert btd.stop() == 0
