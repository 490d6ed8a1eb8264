"""Scale benchmark: N small torrents loaded in btd and in transmission-daemon, same run.

    .venv/bin/python bench/scale.py [--n 10000] [--seeding 2000] [--idle-seconds 60] [--json]

N single-file torrents of small files (``--file-kib``, data on disk for all of them, or only
for the seeding ones with ``--paused-without-data``); the first ``--seeding`` are added running
(they check their data and seed), the rest paused.
Trackers are unreachable (an announce URL on a 127.0.0.1 port that nothing listens on) and
there are no peers. Both daemons run at once, each with its own state, on 127.0.0.1 only
(Transmission with DHT, LSD, PEX, UPnP/NAT-PMP off); measurements alternate between them.

Measured for each: the add rate (btd: ONE batched ``torrent.add`` of all N, and
``--one-by-one`` adds one call each into a fresh btd; Transmission: ``torrent-add`` one call
each, its only way), ``list`` latency (every field, and 3 fields; median of ``--rounds``;
btd's once it is quiet: under 10 % of a core for a second after the add's work),
idle CPU over the same ``--idle-seconds`` window for both (after all have settled), resident
memory, graceful stop (SIGTERM until exit), restart (process start until every torrent is
listed in its state: seeding or paused/stopped), and resident memory after the restart.

``--during-download MIB`` (btd only) then adds one more torrent of MIB, fed at full speed by
a libtorrent seeder on 127.0.0.1 (bench/lt_bench.py), and times ``torrent.list`` while it
downloads with all N loaded: every field (what ``btctl list --json`` asks) and the fields
``btctl list`` shows (``BTCTL_LIST_FIELDS``, in the table form btctl asks for), one connection
per call as btctl makes, and the ``btctl list`` command itself (a new Python process:
start-up, the call, the table), in turn, one every ``LIST_PACE`` seconds (back to back, 10,000-row lists would hold the
reactor and the download would no longer be at full speed); p50/p90 of each and the
download rate with them. The torrent is removed (with its data) after.

The machine may be shared: compare the two columns of one run, not runs with each other.
``--netns`` re-runs the benchmark inside ``unshare --net`` (root; only ``lo``) when it can.
Everything is cleaned up at the end (``--keep`` keeps the work folder).
"""

from __future__ import annotations

import argparse
import base64
import compileall
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from btdtest import BIN, BtdProcess, free_port  # noqa: E402

from btd.core.bencode import encode  # noqa: E402
from btd.ctl.format import LIST_FIELDS  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PIECE = 16 * 1024
BTD_CONFIG = """\
plugins:
  rarest_first: {}
  resume_sqlite: {}
"""
# btd's every summary field vs a like set of Transmission's
TR_ALL_FIELDS = [
    "id", "hashString", "name", "status", "percentDone", "totalSize", "leftUntilDone",
    "downloadedEver", "uploadedEver", "uploadRatio", "rateDownload", "rateUpload", "eta",
    "peersConnected", "downloadDir", "addedDate", "doneDate", "error", "errorString",
    "pieceCount", "pieceSize", "sizeWhenDone", "haveValid", "isFinished", "queuePosition",
    "recheckProgress", "labels",
]  # fmt: skip
BTD_3_FIELDS = ["info_hash", "state", "progress"]
BTCTL_LIST_FIELDS = list(LIST_FIELDS)  # what `btctl list` asks for (ctl/format.py)
TR_3_FIELDS = ["hashString", "status", "percentDone"]
TR_STOPPED, TR_SEEDING = 0, 6


# -- measuring a process ------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_until(what: str, check: Callable[[], bool], timeout: float, poll: float = 0.2) -> float:
    """Seconds until ``check()`` holds; RuntimeError after ``timeout``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)  # polling a state another process holds
    return time.monotonic() - start


def wait_quiet(pid: int, timeout: float, busy_pct: float = 10.0) -> float:
    """Seconds until ``pid`` used under ``busy_pct`` % of a core over one second (the work
    an add leaves behind: checks, .torrent copies, options saves), at most ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        before = cpu_seconds(pid)
        time.sleep(1.0)  # a measurement window
        if 100 * (cpu_seconds(pid) - before) < busy_pct:
            break
    return time.monotonic() - start


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def stop_process(proc: subprocess.Popen[Any], timeout: float) -> float:
    """SIGTERM; seconds until it exited (killed after ``timeout``: reported as inf)."""
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return float("inf")
    return time.monotonic() - start


# -- the torrents -------------------------------------------------------------------------------
def make_torrents(
    work: Path, n: int, file_kib: int, announce: str, with_data: int | None = None
) -> tuple[Path, list[bytes]]:
    """N .torrents (bytes), in order, and the files of the first ``with_data`` (all: None)
    under work/data."""
    data_dir = work / "data"
    data_dir.mkdir()
    torrents = []
    block = hashlib.sha256(b"scale").digest() * (file_kib * 1024 // 32 + 1)
    for i in range(n):
        name = f"f{i:06d}.bin"
        data = i.to_bytes(4, "big") + block[: file_kib * 1024 - 4]
        if with_data is None or i < with_data:
            (data_dir / name).write_bytes(data)
        pieces = b"".join(
            hashlib.sha1(data[o : o + PIECE]).digest() for o in range(0, len(data), PIECE)
        )
        info = {b"name": name.encode(), b"piece length": PIECE, b"length": len(data),
                b"pieces": pieces}  # fmt: skip
        torrents.append(encode({b"announce": announce.encode(), b"info": info}))
    return data_dir, torrents


# -- btd ----------------------------------------------------------------------------------------
class Btd:
    def __init__(self, base: Path) -> None:
        self.p = BtdProcess(base, config=BTD_CONFIG)

    @property
    def pid(self) -> int:
        assert self.p.proc is not None
        return self.p.proc.pid

    def client(self, timeout: float = 120) -> Any:
        return self.p.client(timeout=timeout)

    def add_batch(self, items: list[dict[str, Any]]) -> list[Any]:
        with self.client(timeout=600) as c:
            out: list[Any] = []
            for i in range(0, len(items), 10_000):
                out += c.call("torrent.add", {"torrents": items[i : i + 10_000]})
        bad = [r for r in out if "error" in r]
        if bad:
            raise RuntimeError(f"btd refused {len(bad)} adds, e.g. {bad[0]}")
        return out

    def add_each(self, items: list[dict[str, Any]]) -> None:
        with self.client() as c:
            for item in items:
                c.call("torrent.add", item)

    def list(self, fields: list[str] | None, form: str = "objects") -> Any:
        with self.client() as c:
            return c.call(
                "torrent.list", {"format": form, **({} if fields is None else {"fields": fields})}
            )

    def counts(self) -> dict[str, int]:
        states: dict[str, int] = {}
        for t in self.list(["state"]):
            states[t["state"]] = states.get(t["state"], 0) + 1
        return states


# -- Transmission -------------------------------------------------------------------------------
class Transmission:
    """transmission-daemon with safe loopback settings, driven over its HTTP RPC."""

    def __init__(self, base: Path, download_dir: Path) -> None:
        self.base = base
        self.config = base / "config"
        self.config.mkdir(parents=True)
        self.rpc_port = free_port()
        settings = {
            "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False,
            "utp-enabled": False, "port-forwarding-enabled": False,
            "bind-address-ipv4": "127.0.0.1", "bind-address-ipv6": "::1",
            "rpc-bind-address": "127.0.0.1", "rpc-whitelist": "127.0.0.1",
            "rpc-whitelist-enabled": True, "rpc-authentication-required": False,
            "rpc-host-whitelist-enabled": False, "rpc-port": self.rpc_port,
            "peer-port": free_port(), "peer-port-random-on-start": False,
            "blocklist-enabled": False, "download-dir": str(download_dir),
            "incomplete-dir-enabled": False, "watch-dir-enabled": False,
            "download-queue-enabled": False, "seed-queue-enabled": False,
            "queue-stalled-enabled": False, "ratio-limit-enabled": False,
            "idle-seeding-limit-enabled": False, "scrape-paused-torrents-enabled": False,
            "start-added-torrents": True, "message-level": 1,
        }  # fmt: skip
        (self.config / "settings.json").write_text(json.dumps(settings, indent=1))
        self.url = f"http://127.0.0.1:{self.rpc_port}/transmission/rpc"
        self.session_id = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = base / "transmission.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60) -> None:
        self.proc = subprocess.Popen(
            ["transmission-daemon", "-f", "-g", str(self.config)],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

        def answers() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"transmission-daemon exited: {self.log.read_text()[-2000:]}")
            try:
                self.call("session-get", {"fields": ["version"]})
            except OSError:
                return False
            return True

        wait_until("transmission-daemon's RPC", answers, timeout, poll=0.05)

    def call(self, method: str, arguments: dict[str, Any] | None = None) -> Any:
        body = json.dumps({"method": method, "arguments": arguments or {}}).encode()
        for _ in range(3):
            request = urllib.request.Request(
                self.url, body, {"X-Transmission-Session-Id": self.session_id}
            )
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    reply = json.loads(response.read())
            except urllib.error.HTTPError as exc:
                if exc.code == 409:  # the session id, first or renewed
                    self.session_id = exc.headers.get("X-Transmission-Session-Id", "")
                    continue
                raise
            if reply.get("result") != "success":
                raise RuntimeError(f"transmission {method}: {reply.get('result')}")
            return reply["arguments"]
        raise RuntimeError("transmission kept refusing the session id")

    def add_each(self, torrents: list[bytes], download_dir: Path, paused: list[bool]) -> None:
        for data, stop in zip(torrents, paused, strict=True):
            self.call(
                "torrent-add",
                {"metainfo": base64.b64encode(data).decode(), "download-dir": str(download_dir),
                 "paused": stop},
            )  # fmt: skip

    def list(self, fields: list[str]) -> list[dict[str, Any]]:
        return self.call("torrent-get", {"fields": fields})["torrents"]

    def counts(self) -> dict[str, int]:
        states: dict[str, int] = {}
        for t in self.list(["status"]):
            name = {TR_STOPPED: "paused", TR_SEEDING: "seeding"}.get(t["status"], str(t["status"]))
            states[name] = states.get(name, 0) + 1
        return states

    def stop(self, timeout: float) -> float:
        assert self.proc is not None
        seconds = stop_process(self.proc, timeout)
        self.proc = None
        return seconds

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# -- the run -------------------------------------------------------------------------------------
def settled(counts: Callable[[], dict[str, int]], n: int, seeding: int) -> Callable[[], bool]:
    def check() -> bool:
        c = counts()
        return c.get("seeding", 0) == seeding and c.get("paused", 0) == n - seeding

    return check


def median_ms(fn: Callable[[], Any], rounds: int) -> float:
    return statistics.median(timed(fn) for _ in range(rounds)) * 1000


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    n, seeding = args.n, min(args.seeding, args.n)
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    dead = socket.socket()  # bound, never listening: announces are refused at once
    dead.bind(("127.0.0.1", 0))
    announce = f"http://127.0.0.1:{dead.getsockname()[1]}/announce"
    log(f"making {n} torrents of {args.file_kib} KiB ...")
    with_data = seeding if args.paused_without_data else None
    data_dir, torrents = make_torrents(work, n, args.file_kib, announce, with_data)
    paused = [i >= seeding for i in range(n)]
    btd = Btd(work / "btd")
    tr = Transmission(work / "transmission", data_dir) if not args.no_transmission else None
    results: dict[str, dict[str, Any]] = {"btd": {}, "transmission": {}}
    b, t = results["btd"], results["transmission"]
    try:
        btd.p.start()
        if tr is not None:
            tr.start()
        items = [
            {"metainfo": base64.b64encode(d).decode(), "save_path": str(data_dir), "paused": p}
            for d, p in zip(torrents, paused, strict=True)
        ]
        log("btd: one batched torrent.add ...")
        b["add_per_s"] = n / timed(lambda: btd.add_batch(items))
        if tr is not None:
            log("transmission: torrent-add one by one ...")
            t["add_per_s"] = n / timed(lambda: tr.add_each(torrents, data_dir, paused))
        log("waiting until all are seeding or paused ...")
        b["settle_s"] = wait_until("btd to settle", settled(btd.counts, n, seeding), args.timeout)
        if tr is not None:
            t["settle_s"] = wait_until(
                "transmission to settle", settled(tr.counts, n, seeding), args.timeout
            )
        log("waiting until btd is quiet (under 10 % of a core for 1 s) ...")
        b["quiet_s"] = wait_quiet(btd.pid, args.timeout)
        log("list latency ...")
        for key, btd_fields, tr_fields in (
            ("list_all_ms", None, TR_ALL_FIELDS),
            ("list_3_ms", BTD_3_FIELDS, TR_3_FIELDS),
        ):
            b_times, t_times = [], []
            for _ in range(args.rounds):  # alternating
                b_times.append(timed(lambda f=btd_fields: btd.list(f)))
                if tr is not None:
                    t_times.append(timed(lambda f=tr_fields: tr.list(f)))
            b[key] = statistics.median(b_times) * 1000
            if t_times:
                t[key] = statistics.median(t_times) * 1000
        log(f"idle CPU over {args.idle_seconds:g} s (both at once) ...")
        pids = {"btd": btd.pid, **({"transmission": tr.pid} if tr else {})}
        before = {k: cpu_seconds(pid) for k, pid in pids.items()}
        start = time.monotonic()
        time.sleep(args.idle_seconds)  # the measurement window itself
        wall = time.monotonic() - start
        for k, pid in pids.items():
            results[k]["idle_cpu_pct"] = 100 * (cpu_seconds(pid) - before[k]) / wall
            results[k]["rss_mib"] = rss_mib(pid)
        if args.during_download:
            log(
                f"torrent.list during a {args.during_download} MiB download (libtorrent seeder) ..."
            )
            b.update(list_during_download(btd, work, args.during_download, args.timeout))
        log("graceful stop ...")
        assert btd.p.proc is not None
        b["stop_s"] = stop_process(btd.p.proc, args.timeout)
        if tr is not None:
            t["stop_s"] = tr.stop(args.timeout)
        log("restart until all are listed in their state ...")
        start = time.monotonic()
        btd.p.start(timeout=args.timeout)
        wait_until("btd restart", settled(btd.counts, n, seeding), args.timeout, poll=0.1)
        b["restart_s"] = time.monotonic() - start
        b["rss_after_restart_mib"] = rss_mib(btd.pid)
        b["stop_again_s"] = stop_process(btd.p.proc, args.timeout)
        if tr is not None:
            start = time.monotonic()
            tr.start(timeout=args.timeout)
            wait_until("transmission restart", settled(tr.counts, n, seeding), args.timeout, 0.1)
            t["restart_s"] = time.monotonic() - start
            t["rss_after_restart_mib"] = rss_mib(tr.pid)
            tr.stop(args.timeout)
        one = min(args.one_by_one, n)
        if one:
            log(f"btd: {one} torrent.add calls one by one, into a fresh btd ...")
            fresh = Btd(work / "btd-one-by-one")
            try:
                fresh.p.start()
                b["add_one_by_one_per_s"] = one / timed(lambda: fresh.add_each(items[:one]))
            finally:
                fresh.p.stop()
                fresh.p.close()
    finally:
        btd.p.stop()
        btd.p.close()
        if tr is not None:
            tr.close()
        dead.close()
    return {
        "n": n,
        "seeding": seeding,
        "paused_data": not args.paused_without_data,
        "file_kib": args.file_kib,
        "idle_seconds": args.idle_seconds,
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "btd": b,
        "transmission": t,
    }


LIST_PACE = 0.25  # seconds between two lists during the download


def list_during_download(btd: Btd, work: Path, mib: int, timeout: float) -> dict[str, float]:
    """``torrent.list`` latencies while one more torrent downloads at full speed from a
    libtorrent seeder (bench/lt_bench.py), all N others loaded; the torrent is removed after."""
    from btdtest import make_torrent, write_files

    src, dst = work / "dl-src", work / "dl-dst"
    write_files(src, {"big.bin": mib * 1024 * 1024}, seed=3)
    torrent = work / "big.torrent"
    info_hash = make_torrent(src / "big.bin", torrent, 1024 * 1024)
    seeder = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "lt_bench.py"), "seed", str(torrent), str(src)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    timings: dict[str, list[float]] = {"all": [], "btctl": [], "btctl_command": []}
    command = [str(BIN / "btctl"), "--socket", str(btd.p.socket), "list"]

    def btctl_list() -> None:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=timeout)

    try:
        line = seeder.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("PORT "):
            raise RuntimeError(f"the libtorrent seeder did not start: {line!r}")
        port = int(line.split()[1])
        with btd.client() as c:
            data = base64.b64encode(torrent.read_bytes()).decode()
            c.call("torrent.add", {"metainfo": data, "save_path": str(dst)})
            start = time.monotonic()
            c.call("torrent.add_peer", {"info_hash": info_hash, "address": "127.0.0.1",
                                        "port": port})  # fmt: skip
        size = mib * 1024 * 1024

        def left() -> int:
            with btd.client() as c:
                return c.call("torrent.get", {"info_hash": info_hash})["left"]

        remaining = size
        while remaining > 0:
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"the download did not finish in {timeout:.0f} s")
            for key, call in (
                ("all", lambda: btd.list(None)),
                ("btctl", lambda: btd.list(BTCTL_LIST_FIELDS, "table")),  # as btctl asks
                ("btctl_command", btctl_list),
            ):
                time.sleep(LIST_PACE)  # a user's pace: back to back, lists would starve it
                timings[key].append(timed(call))
            remaining = left()
        seconds = time.monotonic() - start
        with btd.client() as c:
            c.call("torrent.remove", {"info_hash": info_hash, "delete_data": True})
    finally:
        seeder.stdin.close()  # type: ignore[union-attr]
        try:
            seeder.wait(10)
        except subprocess.TimeoutExpired:
            seeder.kill()
            seeder.wait()
    out = {"download_mb_s": size / seconds / 1e6, "list_calls_during_download": len(timings["all"])}
    for key, times in timings.items():
        times.sort()
        if times:
            out[f"list_{key}_dl_p50_ms"] = times[len(times) // 2] * 1000
            out[f"list_{key}_dl_p90_ms"] = times[min(len(times) - 1, int(len(times) * 0.9))] * 1000
    return out


ROWS = [
    ("add_per_s", "adding, torrents/s (btd: one batch)", "higher"),
    ("add_one_by_one_per_s", "adding one call each, torrents/s", "higher"),
    ("list_all_ms", "list, all fields, ms (median)", "lower"),
    ("list_3_ms", "list, 3 fields, ms (median)", "lower"),
    ("idle_cpu_pct", "idle CPU, % of one core", "lower"),
    ("rss_mib", "resident memory, MiB", "lower"),
    ("stop_s", "SIGTERM to exit, s", "lower"),
    ("restart_s", "restart until all listed, s", "lower"),
    ("rss_after_restart_mib", "resident memory after restart, MiB", "lower"),
    ("settle_s", "after adding: until all checked, s", "lower"),
    ("quiet_s", "then until under 10 % CPU for 1 s, s", "lower"),
    ("download_mb_s", "--during-download: the download, MB/s", "higher"),
    ("list_all_dl_p50_ms", "  list, all fields, during it, p50 ms", "lower"),
    ("list_all_dl_p90_ms", "  list, all fields, during it, p90 ms", "lower"),
    ("list_btctl_dl_p50_ms", "  list, btctl's fields, during it, p50 ms", "lower"),
    ("list_btctl_dl_p90_ms", "  list, btctl's fields, during it, p90 ms", "lower"),
    ("list_btctl_command_dl_p50_ms", "  the btctl list command, during it, p50 ms", "lower"),
    ("list_btctl_command_dl_p90_ms", "  the btctl list command, during it, p90 ms", "lower"),
]


def table(report: dict[str, Any]) -> str:
    b, t = report["btd"], report["transmission"]
    lines = [
        f"N = {report['n']} torrents ({report['seeding']} seeding with data, the rest paused"
        f"{'' if report.get('paused_data', True) else ' without data'}),"
        f" {report['file_kib']} KiB each; load average at the end"
        f" {', '.join(f'{x:.2f}' for x in report['load_average'])} on {report['cpus']} CPUs",
        "",
        "| measure | btd | transmission-daemon | btd / transmission |",
        "|---|---|---|---|",
    ]
    # Transmission's only add is one call each: the batch row compares with that too
    t = {**t, "add_one_by_one_per_s": t.get("add_per_s")}
    for key, label, _better in ROWS:
        bv, tv = b.get(key), t.get(key)
        if bv is None and tv is None:
            continue
        ratio = f"{bv / tv:.2f}x" if bv is not None and tv else "-"
        lines.append(f"| {label} | {_fmt(bv)} | {_fmt(tv)} | {ratio} |")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def in_netns(argv: list[str]) -> int | None:
    """Run this benchmark again inside a private network namespace (only ``lo``), if we can."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0 or os.environ.get("BTD_SCALE_NETNS") == "1":
        return None
    inner = " ".join(map(_quote, [sys.executable, __file__, *argv]))
    cmd = [unshare, "--net", "--fork", "--", "sh", "-c", f"ip link set lo up && exec {inner}"]
    done = subprocess.run(cmd, env={**os.environ, "BTD_SCALE_NETNS": "1"}, check=False)
    return done.returncode


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="torrents (default 10,000)")
    parser.add_argument("--seeding", type=int, default=2_000, help="of them seeding; rest paused")
    parser.add_argument(
        "--paused-without-data",
        action="store_true",
        help="no files for the paused ones (only the seeding ones have data on disk)",
    )
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="idle CPU window")
    parser.add_argument("--one-by-one", type=int, default=1_000,
                        help="btd adds timed one call each (into a fresh btd; 0: skip)")  # fmt: skip
    parser.add_argument("--file-kib", type=int, default=4, help="size of each torrent's file")
    parser.add_argument("--rounds", type=int, default=5, help="list calls timed per daemon")
    parser.add_argument("--timeout", type=float, default=600.0, help="for each wait, seconds")
    parser.add_argument("--no-transmission", action="store_true", help="btd only")
    parser.add_argument("--during-download", type=int, default=0, metavar="MIB",
                        help="time torrent.list during a download of MIB from a libtorrent "
                        "seeder, all N loaded (btd only; 0: skip)")  # fmt: skip
    parser.add_argument("--netns", action="store_true", help="run inside `unshare --net`")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.netns:
        code = in_netns([a for a in argv if a != "--netns"])
        if code is not None:
            return code
        print("bench: cannot use unshare --net here; running in this namespace", file=sys.stderr)
    if not args.no_transmission and shutil.which("transmission-daemon") is None:
        parser.error("transmission-daemon is not installed (apt-get install transmission-daemon)")
    for folder in ("core", "ctl", "plugins"):  # start-up as installed (pip writes bytecode),
        compileall.compile_dir(ROOT / folder, quiet=2)  # even under PYTHONDONTWRITEBYTECODE
    work = Path(tempfile.mkdtemp(prefix="btd-scale-"))
    try:
        report = run(args, work)
    finally:
        if args.keep:
            print(f"bench: work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2) if args.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
