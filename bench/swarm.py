"""Loopback download benchmark: btd vs a libtorrent leecher, same seeder, same run.

    .venv/bin/python bench/swarm.py [--size-mib 1024] [--piece-kib 1024] [--runs 1]

A libtorrent seeder (its own process) serves a torrent of one file; first a libtorrent
leecher downloads it, then a real ``btd`` process (driven over its control socket). For
each: wall-clock throughput, CPU seconds per GiB of the downloading process (user+sys
from /proc), and its peak memory (VmHWM). During btd's download a ``torrent.list`` call is
timed every 0.25 s to show the reactor stays responsive. Everything is on 127.0.0.1.
Figures are reported as ratios against libtorrent measured in the same run.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from btdtest import BtdProcess, LtPeer, make_torrent, write_files  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_libtorrent(torrent: Path, work: Path, seeder_port: int) -> dict[str, float]:
    save = work / "lt-leech"
    leecher = LtPeer("leech", torrent, save, peers=[f"127.0.0.1:{seeder_port}"])
    try:
        seconds = leecher.wait_done()
        cpu = cpu_seconds(leecher.proc.pid)
        mem = peak_rss_mib(leecher.proc.pid)
    finally:
        leecher.close()
        shutil.rmtree(save, ignore_errors=True)
    return {"seconds": seconds, "cpu": cpu, "peak_mib": mem}


def run_btd(torrent: Path, work: Path, seeder_port: int, info_hash: str) -> dict[str, float]:
    btd = BtdProcess(work / "btd")
    try:
        btd.start()
        cpu_before = cpu_seconds(btd.proc.pid)  # type: ignore[union-attr]
        latencies: list[float] = []
        with btd.client() as control, btd.client() as events:
            events.call("events.subscribe", {"events": ["completed", "error"]})
            data = base64.b64encode(torrent.read_bytes()).decode()
            started = time.monotonic()
            control.call("torrent.add", {"metainfo": data})
            control.call(
                "torrent.add_peer",
                {"info_hash": info_hash, "address": "127.0.0.1", "port": seeder_port},
            )
            done = None
            while done is None:
                try:
                    for note in events.notifications(timeout=0.25):
                        if note.params.get("info_hash") == info_hash:
                            done = note.params
                        break
                except Exception as exc:  # RpcTimeout: time to probe responsiveness
                    if type(exc).__name__ != "RpcTimeout":
                        raise
                t0 = time.monotonic()
                control.call("torrent.list", {"fields": ["progress"]})
                latencies.append(time.monotonic() - t0)
            seconds = time.monotonic() - started
            if done.get("event") != "completed":
                raise SystemExit(f"btd failed: {done}")
        pid = btd.proc.pid  # type: ignore[union-attr]
        cpu = cpu_seconds(pid) - cpu_before
        mem = peak_rss_mib(pid)
        btd.stop()
    finally:
        btd.close()
    latencies.sort()
    return {
        "seconds": seconds,
        "cpu": cpu,
        "peak_mib": mem,
        "rpc_max_ms": latencies[-1] * 1000 if latencies else 0.0,
        "rpc_p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--piece-kib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="btd-bench-") as tmp:
        work = Path(tmp)
        seed_dir = work / "seed"
        size = args.size_mib * 1024 * 1024
        write_files(seed_dir, {"bench.bin": size}, seed=7)
        torrent = work / "bench.torrent"
        info_hash = make_torrent(seed_dir / "bench.bin", torrent, args.piece_kib * 1024)
        seeder = LtPeer("seed", torrent, seed_dir)
        results = []
        try:
            for run in range(args.runs):
                lt_res = run_libtorrent(torrent, work, seeder.port)
                btd_res = run_btd(torrent, work / f"run{run}", seeder.port, info_hash)
                results.append((lt_res, btd_res))
        finally:
            seeder.close()

    gib = size / 2**30
    report = []
    for lt_res, btd_res in results:
        lt_rate = size / lt_res["seconds"] / 1e6
        btd_rate = size / btd_res["seconds"] / 1e6
        row = {
            "size_mib": args.size_mib,
            "piece_kib": args.piece_kib,
            "libtorrent_mb_s": round(lt_rate, 1),
            "btd_mb_s": round(btd_rate, 1),
            "throughput_ratio": round(btd_rate / lt_rate, 3),
            "libtorrent_cpu_s_per_gib": round(lt_res["cpu"] / gib, 2),
            "btd_cpu_s_per_gib": round(btd_res["cpu"] / gib, 2),
            "libtorrent_peak_mib": round(lt_res["peak_mib"], 1),
            "btd_peak_mib": round(btd_res["peak_mib"], 1),
            "btd_rpc_p50_ms": round(btd_res["rpc_p50_ms"], 1),
            "btd_rpc_max_ms": round(btd_res["rpc_max_ms"], 1),
        }
        report.append(row)
        if not args.json:
            print(
                f"{args.size_mib} MiB, {args.piece_kib} KiB pieces\n"
                f"  libtorrent leecher: {row['libtorrent_mb_s']:8.1f} MB/s  "
                f"{row['libtorrent_cpu_s_per_gib']:5.2f} CPU-s/GiB  "
                f"peak {row['libtorrent_peak_mib']:.0f} MiB\n"
                f"  btd:                {row['btd_mb_s']:8.1f} MB/s  "
                f"{row['btd_cpu_s_per_gib']:5.2f} CPU-s/GiB  peak {row['btd_peak_mib']:.0f} MiB\n"
                f"  ratio btd/libtorrent: {row['throughput_ratio']:.2f}   "
                f"torrent.list during download: p50 {row['btd_rpc_p50_ms']:.1f} ms, "
                f"max {row['btd_rpc_max_ms']:.1f} ms"
            )
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
