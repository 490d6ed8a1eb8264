"""Resume store costs, with and without the .torrent copies, same run (alternating).

    .venv/bin/python bench/resume_store.py [--n 10000] [--one-by-one 300] [--rounds 3]

For the SQLite store (plugins/resume_sqlite.py) with copies in ``<state>/torrents/`` (the
default) and without (``copies=None``, the store as it was before copies were kept): the
batch add of N torrents (one ``save_torrents``), ``--one-by-one`` adds (one fsynced
``save_torrent`` each), the first ``load_all`` of a healthy store of N (the start: integrity
check, rows, matching with copies), and the recovery of that store truncated to half (with
copies: every torrent back). Medians of ``--rounds``; the machine may be shared: compare the
columns of one run, not runs with each other.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from btd.core.bencode import encode
from btd.core.resume import NewTorrent
from btd.plugins.resume_sqlite import SqliteResumeStore


def torrents(n: int) -> list[NewTorrent]:
    out = []
    for i in range(n):
        info = {
            b"name": f"f{i:06d}.bin".encode(),
            b"piece length": 16384,
            b"length": 4096,
            b"pieces": hashlib.sha1(b"%d" % i).digest(),
        }
        data = encode({b"announce": b"http://127.0.0.1:9/announce", b"info": info})
        h = hashlib.sha1(encode(info)).hexdigest()
        out.append(NewTorrent(h, data, {"save_path": "/srv/dl", "added_at": float(i)}))
    return out


def store(state: Path, copies: bool) -> SqliteResumeStore:
    return SqliteResumeStore(state / "resume.sqlite", copies=state if copies else None)


def one_round(base: Path, items: list[NewTorrent], one: int, copies: bool) -> dict[str, float]:
    state = base / ("with" if copies else "without")
    shutil.rmtree(state, ignore_errors=True)
    s = store(state, copies)
    s.load_all()
    t = time.perf_counter()
    s.save_torrents(items)
    batch = time.perf_counter() - t
    extra = torrents(len(items) + one)[len(items) :]
    t = time.perf_counter()
    for item in extra:
        s.save_torrent(item.info_hash, item.metainfo, item.options)
    single = (time.perf_counter() - t) / max(1, one)
    s.close()
    t = time.perf_counter()
    s = store(state, copies)
    found, _ = s.load_all()
    start = time.perf_counter() - t
    assert len(found) == len(items) + one
    s.close()
    path = state / "resume.sqlite"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    t = time.perf_counter()
    s = store(state, copies)
    found, _ = s.load_all()
    recover = time.perf_counter() - t
    back = len(found)
    s.close()
    return {
        "batch_add_s": batch,
        "one_add_ms": single * 1000,
        "start_s": start,
        "recover_s": recover,
        "back_after_truncation": back,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--one-by-one", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    items = torrents(args.n)
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="btd-bench-") as tmp:
        for _ in range(args.rounds):
            for copies in (False, True):  # alternating
                runs[copies].append(one_round(Path(tmp), items, args.one_by_one, copies))
    report: dict[str, Any] = {}
    for copies, rounds in runs.items():
        report["with copies" if copies else "without copies"] = {
            k: round(statistics.median(r[k] for r in rounds), 4) for k in rounds[0]
        }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        keys = list(next(iter(report.values())))
        print(f"n={args.n}, one-by-one={args.one_by_one}, median of {args.rounds} rounds")
        print(f"{'':24}" + "".join(f"{k:>16}" for k in report))
        for k in keys:
            print(f"{k:24}" + "".join(f"{report[c][k]:>16}" for c in report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
