"""Web seed download speed on loopback: btd against libtorrent, from the same HTTP server.

    .venv/bin/python bench/web_seed.py [--size-mb 200] [--piece-kib 1024] [--rounds 2]

One twisted.web server (tests/web_seed_server.py, static.File with Range) serves a file;
its .torrent has that server in ``url-list`` and no trackers, and nobody seeds it. Each
round, alternating, a fresh btd (the ``web_seed`` plugin, ``allow_local_trackers``) and a
fresh libtorrent (tests/interop/lt_peer.py leech: it reads the url-list itself) download
it from the web seed alone; the time from add to completion (btd: the ``completed`` event;
libtorrent: its ``DONE``) is printed as MB/s. The server and the clients share the machine:
compare the figures of one run, not across runs. libtorrent 2.0 crawls against this server
(about 0.5 MB/s, its leecher gives up after 120 s; it pipelines its requests on one
connection): its figure says more about twisted.web than about either client.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from btdtest import BtdProcess, LtPeer, write_files  # noqa: E402

from btd.core.bencode import decode, encode  # noqa: E402
from btd.core.torrent_create import create_torrent  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--piece-kib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    size = args.size_mb * 1_000_000
    with tempfile.TemporaryDirectory(prefix="btd-ws-bench-") as tmp:
        base = Path(tmp)
        content = base / "content"
        write_files(content, {"big.bin": size}, seed=3)
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "web_seed_server.py"), str(content), "files",
             str(base / "web.log")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            url = f"http://127.0.0.1:{int(server.stdout.readline())}/"
            made = create_torrent(content / "big.bin", piece_length=args.piece_kib * 1024)
            top = decode(made.data)
            top[b"url-list"] = url.encode()  # single file: URL + name (it ends in /)
            torrent = base / "big.torrent"
            torrent.write_bytes(encode(top))
            print(f"{args.size_mb} MB, {args.piece_kib} KiB pieces, web seed {url}")
            for n in range(args.rounds):
                btd = run_btd(base / f"btd{n}", torrent, size)
                print(f"round {n + 1}: btd        {btd:7.1f} MB/s", flush=True)
                try:
                    lt = run_lt(base / f"lt{n}", torrent, size)
                    print(f"round {n + 1}: libtorrent {lt:7.1f} MB/s", flush=True)
                except AssertionError as exc:  # its leecher gives up after 120 s
                    print(f"round {n + 1}: libtorrent did not finish: {exc}", flush=True)
        finally:
            server.terminate()
            server.wait(10)
    return 0


def run_btd(where: Path, torrent: Path, size: int) -> float:
    btd = BtdProcess(where).start()
    try:
        with btd.client() as events:
            events.call("events.subscribe")
            data = base64.b64encode(torrent.read_bytes()).decode()
            start = time.monotonic()
            info_hash = btd.call("torrent.add", {"metainfo": data, "allow_local_trackers": True})[
                "info_hash"
            ]
            btd.wait_event(events, "completed", info_hash, timeout=600)
            seconds = time.monotonic() - start
        btd.stop()
    finally:
        btd.close()
        shutil.rmtree(where, ignore_errors=True)
    return size / seconds / 1e6


def run_lt(where: Path, torrent: Path, size: int) -> float:
    where.mkdir(parents=True)
    start = time.monotonic()
    peer = LtPeer("leech", torrent, where)
    try:
        peer.wait_done()
        seconds = time.monotonic() - start  # includes libtorrent's start-up, as btd's does
    finally:
        peer.close()
        shutil.rmtree(where, ignore_errors=True)
    return size / seconds / 1e6


if __name__ == "__main__":
    sys.exit(main())
