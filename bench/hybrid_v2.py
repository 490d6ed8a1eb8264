"""A hybrid torrent's v2 swarm on loopback: a libtorrent leecher from btd, beside the same
leecher from a libtorrent seeder, in one run.

    .venv/bin/python bench/hybrid_v2.py [--size-mib 256] [--piece-kib 1024] [--rounds 2]

The hybrid .torrent announces to an opentracker whose whitelist holds only the truncated
v2 hash, so the leecher meets its seeder only through the v2 swarm (the v1 announces are
refused), as tests/interop/test_hybrid_swarms.py does. Each round, alternating, a fresh
seeder (btd, or libtorrent in seed mode over the same files) and a fresh libtorrent
leecher (tests/interop/lt_peer.py, TCP only); the time from starting the leecher to its
``DONE`` is printed as MB/s. Everything shares the machine: compare within one run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from btdtest import BtdProcess, LtPeer, OpenTracker, write_files  # noqa: E402

from btd.core.torrent_create_v2 import create_torrent_v2  # noqa: E402


def leech(torrent: Path, save: Path) -> float:
    """Seconds for a libtorrent leecher that finds its seeder through the tracker."""
    shutil.rmtree(save, ignore_errors=True)
    started = time.monotonic()
    leecher = LtPeer("leech", torrent, save)
    try:
        leecher.wait_done()
        return time.monotonic() - started
    finally:
        leecher.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--piece-kib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="btd-hybrid-bench-") as tmp:
        base = Path(tmp)
        write_files(base / "seed", {"hyb/data.bin": size}, seed=5)
        piece = args.piece_kib * 1024
        probe = create_torrent_v2(base / "seed" / "hyb", hybrid=True, piece_length=piece)
        tracker = OpenTracker(base / "tracker", [probe.info_hash_v2[:20].hex()])
        try:
            made = create_torrent_v2(
                base / "seed" / "hyb", hybrid=True, piece_length=piece, trackers=[tracker.announce]
            )
            torrent = base / "hyb.torrent"
            torrent.write_bytes(made.data)
            print(f"{args.size_mib} MiB, {args.piece_kib} KiB pieces, v2 swarm only")
            for r in range(1, args.rounds + 1):
                seeder = LtPeer("seed", torrent, base / "seed")
                try:
                    lt_rate = size / leech(torrent, base / "lt-from-lt")
                finally:
                    seeder.close()
                btd = BtdProcess(base / f"btd{r}")
                try:
                    btd.start_seeding(base / "seed", torrent)
                    btd_rate = size / leech(torrent, base / "lt-from-btd")
                finally:
                    btd.stop()
                    btd.close()
                print(
                    f"round {r}: libtorrent leecher from libtorrent {lt_rate / 1e6:.1f} MB/s, "
                    f"from btd {btd_rate / 1e6:.1f} MB/s, btd/libtorrent {btd_rate / lt_rate:.2f}"
                )
        finally:
            tracker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
