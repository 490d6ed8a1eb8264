"""Transmission (Debian ``transmission-daemon`` 3.00) downloading from a btd seeder, loopback.

On loopback Transmission takes only incoming peers, so btd dials it (``torrent.add_peer``).
It unchokes at its 10 s rechoke round, so the first bytes come after up to ~10 s; from then
on the transfer must run at loopback speed: a stall (a dropped connection that nobody
re-dials, a refused message) fails the rate bound, not just a timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from btdtest import make_torrent, same_tree, wait_until, write_files
from transmission_peer import Transmission

pytestmark = [pytest.mark.interop]

SIZE = 64 * 2**20
PIECE = 1 << 20
FIRST_BYTE_WITHIN = 25.0  # Transmission sends its first requests after its 10 s rounds (15 s here)
MIN_RATE = 10e6  # bytes/s once data flows (measured here: see the test's printout)


@pytest.fixture(params=[1, 2], ids=["transmission-default", "transmission-requires-encryption"])
def transmission(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Transmission]:
    """Transmission as it ships (encryption preferred), and requiring encryption: btd's
    dial must then complete an MSE handshake with RC4 (Transmission picks it)."""
    t = Transmission(tmp_path / "transmission", encryption=request.param)
    yield t
    t.close()


def test_transmission_downloads_from_btd(tmp_path: Path, btd_factory: Any, transmission) -> None:
    seed_dir = tmp_path / "seed"
    write_files(seed_dir, {"big/data.bin": SIZE}, seed=12)
    torrent = tmp_path / "big.torrent"
    info_hash = make_torrent(seed_dir / "big", torrent, piece_size=PIECE)
    btd = btd_factory().start()
    with btd.client() as events:
        events.call("events.subscribe")
        btd.add(torrent, save_path=str(seed_dir))
        btd.wait_event(events, "started", info_hash)
    transmission.add(torrent)
    # Transmission drops handshakes for a torrent it is still checking: dial once it runs.
    wait_until(lambda: transmission.torrent()["status"] == 4, 20, "Transmission downloading")
    dialled = time.monotonic()
    btd.call(
        "torrent.add_peer",
        {"info_hash": info_hash, "address": "127.0.0.1", "port": transmission.peer_port},
    )
    first = None
    while True:  # Transmission's progress is only known by asking it
        t = transmission.torrent()
        now = time.monotonic()
        if first is None and t["haveValid"] > 0:
            first = now
            peers = btd.call("torrent.peers", {"info_hash": info_hash})
            if transmission.encryption == 2:  # required: only RC4 gets this far
                assert [p["encrypted"] for p in peers] == [True], peers
        if t["percentDone"] >= 1.0:
            break
        if first is None:
            assert now - dialled < FIRST_BYTE_WITHIN, (
                f"Transmission got nothing in {FIRST_BYTE_WITHIN} s: {t}\n"
                f"{btd.call('torrent.get', {'info_hash': info_hash})['disconnects']}"
            )
        else:
            assert now - first < SIZE / MIN_RATE, f"stalled: {t}"
        time.sleep(0.05)
    assert first is not None
    rate = SIZE / max(now - first, 1e-3)
    print(f"Transmission from btd: first byte after {first - dialled:.1f} s, {rate / 1e6:.1f} MB/s")
    assert same_tree(seed_dir, transmission.dir)
    assert btd.call("torrent.get", {"info_hash": info_hash})["uploaded"] >= SIZE
    assert btd.stop() == 0
