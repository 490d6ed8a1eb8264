"""Loopback uTP benchmark: btd (``utp`` plugin) beside libtorrent, both over uTP only.

    .venv/bin/python bench/utp.py [--direction download|seed|both] [--runs 3]
                                  [--size-mib 256] [--piece-kib 1024] [--json]

Every libtorrent process here has uTP on and TCP off both ways (bench/lt_bench.py
``--utp-only``); btd runs with ``plugins: {utp: {prefer: utp}}``, so every byte moves over
uTP. download: a libtorrent seeder serves, in each run, a libtorrent leecher and a btd
leecher, one after the other; seed: a libtorrent seeder and a btd seeder each serve a fresh
libtorrent leecher. Order alternates between runs; the figures and the judging (time from
dial to the leecher's own completion notice, the file compared after each run, CPU per GiB
and peak memory of the process under test) are bench/swarm.py's.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from btdtest import BtdProcess, make_torrent, write_files  # noqa: E402
from swarm import (  # noqa: E402
    LT_BENCH,
    TIMEOUT,
    Bench,
    DiskWatch,
    LtProcess,
    alternate,
    cpu_seconds,
    print_row,
    reset_peak,
    sha1_file,
    summarize,
)

UTP_CONFIG = "plugins:\n  rarest_first: {}\n  resume_sqlite: {}\n  utp:\n    prefer: utp\n"


class UtpLtProcess(LtProcess):
    """bench/lt_bench.py with ``--utp-only``."""

    def __init__(self, mode: str, torrent: Path, save: Path) -> None:
        save.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, str(LT_BENCH), mode, str(torrent), str(save), "--utp-only"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("PORT "):
            raise SystemExit(f"libtorrent {mode} failed to start: {line!r}")
        self.port = int(line.split()[1])
        self.pid = self.proc.pid


class UtpBench(Bench):
    def lt_leech(self, seeder_port: int, measured: int | None = None) -> dict[str, float]:
        save = self._save_dir("lt")
        leecher = UtpLtProcess("leech", self.torrent, save)
        try:
            pid = measured or leecher.pid
            reset_peak(pid)
            cpu0 = cpu_seconds(pid)
            watch = DiskWatch(save / "bench.bin", self.size)
            leecher.go(seeder_port)
            start, end = leecher.wait_done()
            result = self._result(start, end, pid, cpu0, watch)
        finally:
            leecher.close()
        self._check(save)
        shutil.rmtree(save, ignore_errors=True)
        return result

    def btd_leech(self, seeder_port: int, probe_rpc: bool = False) -> dict[str, float]:
        save = self._save_dir("btd")
        btd = BtdProcess(self.work / f"btd-home-{self.n}", config=UTP_CONFIG)
        try:
            btd.start()
            pid = btd.proc.pid  # type: ignore[union-attr]
            with btd.client() as control, btd.client() as events:
                events.call("events.subscribe", {"events": ["completed", "error"]})
                data = base64.b64encode(self.torrent.read_bytes()).decode()
                control.call("torrent.add", {"metainfo": data, "save_path": str(save)})
                reset_peak(pid)
                cpu0 = cpu_seconds(pid)
                watch = DiskWatch(save / "bench.bin", self.size)
                start = time.monotonic()
                control.call(
                    "torrent.add_peer",
                    {"info_hash": self.info_hash, "address": "127.0.0.1", "port": seeder_port},
                )
                btd.wait_event(events, "completed", self.info_hash, timeout=TIMEOUT)
                end = time.monotonic()
                result = self._result(start, end, pid, cpu0, watch)
                status = control.call("utp.status")
                if status["dialled"] < 1:
                    raise SystemExit(f"btd did not dial over uTP: {status}")
            btd.stop()
        finally:
            btd.close()
        self._check(save)
        shutil.rmtree(save, ignore_errors=True)
        shutil.rmtree(btd.base, ignore_errors=True)
        return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--direction", choices=["download", "seed", "both"], default="both")
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--piece-kib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    report = []
    with tempfile.TemporaryDirectory(prefix="btd-utp-bench-") as tmp:
        work = Path(tmp)
        seed_dir = work / "seed"
        write_files(seed_dir, {"bench.bin": args.size_mib * 1024 * 1024}, seed=7)
        torrent = work / "bench.torrent"
        info_hash = make_torrent(seed_dir / "bench.bin", torrent, args.piece_kib * 1024)
        bench = UtpBench(work, torrent, info_hash, seed_dir, sha1_file(seed_dir / "bench.bin"))
        lt_seeder = UtpLtProcess("seed", torrent, seed_dir)
        btd_seeder = None
        try:
            if args.direction in ("seed", "both"):
                btd_seeder = BtdProcess(work / "btd-seeder", config=UTP_CONFIG)
                btd_seeder.start()
                with btd_seeder.client() as events:
                    events.call("events.subscribe", {"events": ["started", "error"]})
                    btd_seeder.add(torrent, save_path=str(seed_dir))
                    btd_seeder.wait_event(events, "started", info_hash, timeout=TIMEOUT)
                btd_port = btd_seeder.call("session.info")["listen_port"]
            if args.direction in ("download", "both"):
                print("download (uTP only):", file=sys.stderr)
                pairs = alternate(
                    args.runs,
                    lambda: bench.lt_leech(lt_seeder.port),
                    lambda: bench.btd_leech(lt_seeder.port),
                )
                report.append(summarize("download", pairs, args.size_mib, args.piece_kib))
            if btd_seeder is not None:
                print("seed (uTP only):", file=sys.stderr)
                btd_pid = btd_seeder.proc.pid  # type: ignore[union-attr]
                pairs = alternate(
                    args.runs,
                    lambda: bench.lt_leech(lt_seeder.port, measured=lt_seeder.pid),
                    lambda: bench.lt_leech(btd_port, measured=btd_pid),
                )
                report.append(summarize("seed", pairs, args.size_mib, args.piece_kib))
        finally:
            lt_seeder.close()
            if btd_seeder is not None:
                btd_seeder.close()

    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for row in report:
            print_row(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
