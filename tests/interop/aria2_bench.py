"""aria2 downloading the same 128 MiB torrent from a btd seeder and from a libtorrent seeder,
alternating, N rounds (a benchmark, not a test; loopback only, opentracker in between).

Usage: .venv/bin/python tests/interop/aria2_bench.py [ROUNDS]
Prints one line per round: both rates (first byte to last, as tests/interop/test_aria2.py
measures them) and btd's ratio to libtorrent.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from aria2_peer import Aria2  # noqa: E402
from btdtest import (  # noqa: E402
    BtdProcess,
    LtPeer,
    OpenTracker,
    make_torrent,
    scrape,
    wait_until,
    write_files,
)
from test_aria2 import PIECE, SIZE, aria2_download  # noqa: E402


def main(rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="aria2-bench-"))
    seed_dir = tmp / "seed"
    write_files(seed_dir, {"big/data.bin": SIZE}, seed=10)
    info_hash = make_torrent(seed_dir / "big", tmp / "probe.torrent", piece_size=PIECE)
    tracker = OpenTracker(tmp / "opentracker", [info_hash])
    torrent = tmp / "tracked.torrent"
    make_torrent(seed_dir / "big", torrent, PIECE, [tracker.announce])
    aria = Aria2(tmp / "aria2")
    btd = BtdProcess(tmp / "btd").start()
    btd.add(torrent, save_path=str(seed_dir), paused=True)
    seeders = lambda: scrape(tracker.announce, info_hash).get("complete", 0)  # noqa: E731
    n = 0
    try:
        for r in range(rounds):
            btd.call("torrent.resume", {"info_hash": info_hash})
            wait_until(lambda: seeders() == 1, what="btd announced")
            n += 1
            btd_rate = aria2_download(aria, torrent, tmp / f"d{n}")
            shutil.rmtree(tmp / f"d{n}")
            btd.call("torrent.pause", {"info_hash": info_hash})
            wait_until(lambda: seeders() == 0, what="btd stopped")
            lt = LtPeer("seed", torrent, seed_dir)
            wait_until(lambda: seeders() == 1, what="libtorrent announced")
            n += 1
            lt_rate = aria2_download(aria, torrent, tmp / f"d{n}")
            shutil.rmtree(tmp / f"d{n}")
            lt.close()
            wait_until(lambda: seeders() == 0, timeout=60, what="libtorrent stopped")
            print(
                f"round {r}: aria2 from btd {btd_rate / 1e6:.1f} MB/s, from libtorrent "
                f"{lt_rate / 1e6:.1f} MB/s, btd/libtorrent {btd_rate / lt_rate:.2f}",
                flush=True,
            )
    finally:
        aria.close()
        btd.close()
        tracker.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
