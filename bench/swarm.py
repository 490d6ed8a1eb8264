"""Loopback transfer benchmark: btd against libtorrent, judged the same way, same run.

    .venv/bin/python bench/swarm.py [--direction download|seed|both] [--runs 3]
                                    [--size-mib 1024] [--piece-kib 1024] [--json]
                                    [--encryption plain|default|require] [--utp-only]

download: one libtorrent seeder serves every run; in each run a libtorrent leecher and a btd
          leecher (a fresh process each) download the torrent, one after the other.
seed:     a libtorrent seeder and a btd seeder (both started once, files checked before the
          first run) each serve a fresh libtorrent leecher, one after the other.

The order alternates between runs (lt, btd, then btd, lt, ...) so drift in the machine's
load hits both sides alike. Every transfer is judged by one criterion: from the moment the
leecher is given the seeder's address until the leecher's own completion notice (libtorrent's
``torrent_finished_alert``, btd's ``completed`` event: both mean every piece passed its hash
check and was handed to the file system), both read on the same CLOCK_MONOTONIC; after each
run the file on disk is compared with the original (SHA-1) and a run that does not match is
an error. A second, outside view is shown beside it: the time until the leecher's file has
every byte allocated on disk, polled every 5 ms (st_blocks) the same way for both. For the process under test (the leecher in ``download``, the seeder in ``seed``):
throughput, CPU seconds per GiB (user+sys from /proc over the transfer) and peak memory
(VmHWM, reset through /proc/PID/clear_refs when the transfer starts, so a seeder's check is
not counted; a leecher's whole life is short anyway). Medians over ``--runs``; ratios are
btd / libtorrent. Everything is on 127.0.0.1, DHT/LSD/UPnP/NAT-PMP/uTP off.

``--encryption`` sets both sides alike: ``plain`` (the default: libtorrent's MSE off, btd's
``session.encryption: plain``), ``default`` (libtorrent's stock setting, btd's ``prefer``:
the MSE handshake, then plaintext), ``require`` (MSE with RC4 on every byte, both sides).
Connection setup shows as "first data" (the time from the start until the leecher's file
has its first bytes on disk). A libtorrent leecher also waits about 0.5 s before it dials (its connection
tick), a btd leecher dials at once: the headline rate counts that for both as they are;
"from then" is the rate from the first bytes on disk to the end, setup left out.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from btdtest import BtdProcess, end_child, make_torrent, write_files  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
LT_BENCH = ROOT / "bench" / "lt_bench.py"
TIMEOUT = 300.0


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(the whole process, its main thread): user+sys CPU seconds so far. The main thread
    is where btd's Python runs (the reactor); its other threads hash and do file I/O."""
    out = []
    for path in (f"/proc/{pid}/stat", f"/proc/{pid}/task/{pid}/stat"):
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
        out.append((int(fields[11]) + int(fields[12])) / TICK)  # utime + stime
    return out[0], out[1]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak(pid: int) -> None:
    """VmHWM restarts from the current RSS (Linux: 5 > clear_refs); ignored if refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def sha1_file(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class DiskWatch:
    """Polls a file's allocated bytes (st_blocks) every ``interval`` seconds in a thread: the
    second, outside view of a transfer, taken the same way for both clients. ``full_at`` is
    the first monotonic time every byte of the file was allocated on disk."""

    def __init__(self, path: Path, size: int, interval: float = 0.005) -> None:
        import threading

        self.path, self.size, self.interval = path, size, interval
        self.first_at: float | None = None  # the first bytes were on disk
        self.full_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                allocated = os.stat(self.path).st_blocks * 512
                if allocated and self.first_at is None:
                    self.first_at = time.monotonic()
                if allocated >= self.size:
                    self.full_at = time.monotonic()
                    return
            except FileNotFoundError:
                pass
            self._stop.wait(self.interval)

    def stop(self, grace: float = 5.0) -> float | None:
        """When the file was full (waiting up to ``grace`` s more for it), or None."""
        self._thread.join(grace)
        self._stop.set()
        self._thread.join()
        return self.full_at


BTD_ENCRYPTION = {"plain": "plain", "default": "prefer", "require": "require"}


def btd_config() -> str:
    """btd's side of ``--encryption`` and ``--utp-only`` (what LtProcess has)."""
    config = f"session:\n  encryption: {BTD_ENCRYPTION[LtProcess.encryption]}\n"
    if LtProcess.utp_only:
        config += "plugins:\n  rarest_first: {}\n  resume_sqlite: {}\n  utp:\n    prefer: utp\n"
    return config


class LtProcess:
    """bench/lt_bench.py in a child process."""

    encryption = "plain"  # bench/lt_bench.py --encryption, for every libtorrent process
    utp_only = False  # bench/lt_bench.py --utp-only: uTP on, TCP off both ways

    def __init__(self, mode: str, torrent: Path, save: Path) -> None:
        save.mkdir(parents=True, exist_ok=True)
        argv = [str(LT_BENCH), mode, str(torrent), str(save), "--encryption", self.encryption]
        argv += ["--utp-only"] if self.utp_only else []
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("PORT "):
            raise SystemExit(f"libtorrent {mode} failed to start: {line!r}")
        self.port = int(line.split()[1])
        self.pid = self.proc.pid

    def go(self, port: int) -> None:
        self.proc.stdin.write(f"GO 127.0.0.1:{port}\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def wait_done(self) -> tuple[float, float]:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("DONE "):
            raise SystemExit(f"libtorrent leecher did not finish: {line!r}")
        _, start, end = line.split()
        return float(start), float(end)

    def close(self) -> None:
        end_child(self.proc)


class Bench:
    def __init__(self, work: Path, torrent: Path, info_hash: str, seed_dir: Path, digest: str):
        self.work = work
        self.torrent = torrent
        self.info_hash = info_hash
        self.seed_dir = seed_dir
        self.digest = digest
        self.size = (seed_dir / "bench.bin").stat().st_size
        self.n = 0

    def _save_dir(self, who: str) -> Path:
        self.n += 1
        return self.work / f"{who}-{self.n}"

    def _check(self, save: Path) -> None:
        got = sha1_file(save / "bench.bin")
        if got != self.digest:
            raise SystemExit(f"{save}: the file on disk differs from the original after DONE")

    def _result(
        self, start: float, end: float, pid: int, cpu0: tuple[float, float], watch: DiskWatch
    ) -> dict[str, float]:
        on_disk = watch.stop()
        cpu1 = cpu_seconds(pid)
        gib = self.size / 2**30
        return {
            "seconds": end - start,
            "mb_s": self.size / (end - start) / 1e6,
            "disk_mb_s": self.size / (on_disk - start) / 1e6 if on_disk else 0.0,
            "first_data_s": watch.first_at - start if watch.first_at else 0.0,
            # from the first bytes on disk to the end: the transfer without connection setup
            "data_mb_s": self.size / (end - watch.first_at) / 1e6 if watch.first_at else 0.0,
            "cpu_s_per_gib": (cpu1[0] - cpu0[0]) / gib,
            "main_cpu_s_per_gib": (cpu1[1] - cpu0[1]) / gib,
            "peak_mib": peak_rss_mib(pid),
        }

    # -- a libtorrent leecher against some seeder; the process under test is ``measured`` --
    def lt_leech(self, seeder_port: int, measured: int | None = None) -> dict[str, float]:
        save = self._save_dir("lt")
        leecher = LtProcess("leech", self.torrent, save)
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
        _remove(save)
        return result

    # -- a btd leecher -------------------------------------------------------------------------
    def btd_leech(self, seeder_port: int, probe_rpc: bool) -> dict[str, float]:
        save = self._save_dir("btd")
        btd = BtdProcess(self.work / f"btd-home-{self.n}", config=btd_config())
        latencies: list[float] = []
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
                end = _wait_event(events, self.info_hash, control if probe_rpc else None, latencies)
                result = self._result(start, end, pid, cpu0, watch)
                if LtProcess.utp_only and control.call("utp.status")["dialled"] < 1:
                    raise SystemExit("btd did not dial over uTP")
            btd.stop()
        finally:
            btd.close()
        self._check(save)
        _remove(save)
        _remove(btd.base)
        if latencies:
            latencies.sort()
            result["rpc_p50_ms"] = latencies[len(latencies) // 2] * 1000
            result["rpc_max_ms"] = latencies[-1] * 1000
        return result


def _wait_event(events: Any, info_hash: str, probe: Any, latencies: list[float]) -> float:
    """The monotonic time btd's ``completed`` event for ``info_hash`` arrived."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            for note in events.notifications(timeout=1.0 if probe else TIMEOUT):
                if note.params.get("info_hash") != info_hash:
                    continue
                now = time.monotonic()
                if note.params.get("event") != "completed":
                    raise SystemExit(f"btd failed: {note.params}")
                return now
        except Exception as exc:  # RpcTimeout: a chance to time a torrent.list call
            if type(exc).__name__ != "RpcTimeout":
                raise
        if probe is not None:
            t0 = time.monotonic()
            probe.call("torrent.list", {"fields": ["progress"]})
            latencies.append(time.monotonic() - t0)
    raise SystemExit("btd did not complete in time")


def _remove(path: Path) -> None:
    subprocess.run(["rm", "-rf", str(path)], check=False)


def alternate(runs: int, lt: Callable[[], dict], btd: Callable[[], dict]) -> list[tuple]:
    """``runs`` pairs (lt result, btd result); the first to go alternates between runs."""
    out = []
    for run in range(runs):
        if run % 2 == 0:
            a = lt()
            b = btd()
        else:
            b = btd()
            a = lt()
        out.append((a, b))
        print(
            f"  run {run + 1}: libtorrent {a['mb_s']:.0f} MB/s {a['cpu_s_per_gib']:.2f} CPU-s/GiB,"
            f" btd {b['mb_s']:.0f} MB/s {b['cpu_s_per_gib']:.2f} CPU-s/GiB"
            f" (main thread {b['main_cpu_s_per_gib']:.2f});"
            f" first data after {a['first_data_s']:.2f} / {b['first_data_s']:.2f} s",
            file=sys.stderr,
            flush=True,
        )
    return out


def summarize(direction: str, pairs: list[tuple], size_mib: int, piece_kib: int) -> dict:
    def med(side: int, key: str) -> float:
        values = [p[side][key] for p in pairs if key in p[side]]
        return statistics.median(values) if values else 0.0

    row: dict[str, Any] = {"direction": direction, "size_mib": size_mib, "piece_kib": piece_kib}
    row["runs"] = len(pairs)
    row["encryption"] = LtProcess.encryption
    keys = (
        "mb_s",
        "disk_mb_s",
        "first_data_s",
        "data_mb_s",
        "cpu_s_per_gib",
        "main_cpu_s_per_gib",
        "peak_mib",
    )
    for key in keys:
        lt_v, btd_v = med(0, key), med(1, key)
        row[f"libtorrent_{key}"] = round(lt_v, 2)
        row[f"btd_{key}"] = round(btd_v, 2)
        row[f"ratio_{key}"] = round(btd_v / lt_v, 3) if lt_v else None
    row["btd_mb_s_each"] = [round(p[1]["mb_s"], 1) for p in pairs]
    row["libtorrent_mb_s_each"] = [round(p[0]["mb_s"], 1) for p in pairs]
    if any("rpc_p50_ms" in p[1] for p in pairs):
        row["btd_rpc_p50_ms"] = round(med(1, "rpc_p50_ms"), 1)
        row["btd_rpc_max_ms"] = round(max(p[1].get("rpc_max_ms", 0) for p in pairs), 1)
    return row


def print_row(row: dict) -> None:
    what = "leecher" if row["direction"] == "download" else "seeder (to a libtorrent leecher)"
    print(
        f"{row['direction']}: {row['size_mib']} MiB, {row['piece_kib']} KiB pieces,"
        f" medians of {row['runs']}; process under test: the {what}\n"
        f"  libtorrent: {row['libtorrent_mb_s']:8.1f} MB/s  "
        f"{row['libtorrent_cpu_s_per_gib']:5.2f} CPU-s/GiB  peak {row['libtorrent_peak_mib']:.0f} MiB\n"
        f"  btd:        {row['btd_mb_s']:8.1f} MB/s  "
        f"{row['btd_cpu_s_per_gib']:5.2f} CPU-s/GiB  peak {row['btd_peak_mib']:.0f} MiB"
        f"  (main thread {row['btd_main_cpu_s_per_gib']:.2f} CPU-s/GiB)\n"
        f"  on disk (st_blocks polled every 5 ms): libtorrent {row['libtorrent_disk_mb_s']:.1f}"
        f" MB/s, btd {row['btd_disk_mb_s']:.1f} MB/s\n"
        f"  first data on disk after: libtorrent {row['libtorrent_first_data_s']:.2f} s,"
        f" btd {row['btd_first_data_s']:.2f} s (libtorrent's encryption: {row['encryption']});"
        f" from then: libtorrent {row['libtorrent_data_mb_s']:.1f} MB/s,"
        f" btd {row['btd_data_mb_s']:.1f} MB/s (ratio {row['ratio_data_mb_s']:.2f})\n"
        f"  btd/libtorrent: throughput {row['ratio_mb_s']:.2f}  CPU/GiB {row['ratio_cpu_s_per_gib']:.2f}"
        f"  peak memory {row['ratio_peak_mib']:.2f}"
    )
    if "btd_rpc_p50_ms" in row:
        print(
            f"  torrent.list during btd's downloads: p50 {row['btd_rpc_p50_ms']:.1f} ms,"
            f" max {row['btd_rpc_max_ms']:.1f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--direction", choices=["download", "seed", "both"], default="both")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--piece-kib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--probe-rpc", action="store_true", help="time a torrent.list call every second"
    )
    parser.add_argument(
        "--warmup", type=int, choices=[0, 1], default=1, help="an untimed transfer first"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--encryption",
        choices=["plain", "default", "require"],
        default="plain",
        help="MSE on both sides: plain, default (libtorrent's stock, btd's prefer) or require "
        "(RC4 on every byte)",
    )
    parser.add_argument(
        "--pause",
        action="store_true",
        help="print the seeders' pids and wait for Enter before the runs (to attach a profiler)",
    )
    parser.add_argument(
        "--utp-only",
        action="store_true",
        help="every byte over uTP: libtorrent with TCP off, btd's utp plugin with prefer: utp",
    )
    args = parser.parse_args()
    LtProcess.encryption = args.encryption
    LtProcess.utp_only = args.utp_only

    report = []
    with tempfile.TemporaryDirectory(prefix="btd-bench-") as tmp:
        work = Path(tmp)
        seed_dir = work / "seed"
        write_files(seed_dir, {"bench.bin": args.size_mib * 1024 * 1024}, seed=7)
        torrent = work / "bench.torrent"
        info_hash = make_torrent(seed_dir / "bench.bin", torrent, args.piece_kib * 1024)
        bench = Bench(work, torrent, info_hash, seed_dir, sha1_file(seed_dir / "bench.bin"))
        lt_seeder = LtProcess("seed", torrent, seed_dir)
        btd_seeder = None
        try:
            if args.direction in ("seed", "both"):
                btd_seeder = BtdProcess(work / "btd-seeder", config=btd_config())
                btd_seeder.start()
                with btd_seeder.client() as events:
                    events.call("events.subscribe", {"events": ["started", "error"]})
                    btd_seeder.add(torrent, save_path=str(seed_dir))
                    btd_seeder.wait_event(events, "started", info_hash, timeout=TIMEOUT)
                btd_port = btd_seeder.call("session.info")["listen_port"]
            if args.pause:
                print(f"libtorrent seeder pid {lt_seeder.pid}", file=sys.stderr)
                if btd_seeder is not None:
                    print(f"btd seeder pid {btd_seeder.proc.pid}", file=sys.stderr)  # type: ignore[union-attr]
                input("Enter to start> ")
            if args.warmup:  # the first transfer after a seeder starts is slow: not counted
                bench.lt_leech(lt_seeder.port)
            if args.direction in ("download", "both"):
                print("download:", file=sys.stderr)
                pairs = alternate(
                    args.runs,
                    lambda: bench.lt_leech(lt_seeder.port),
                    lambda: bench.btd_leech(lt_seeder.port, args.probe_rpc),
                )
                report.append(summarize("download", pairs, args.size_mib, args.piece_kib))
            if btd_seeder is not None:
                print("seed:", file=sys.stderr)
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
