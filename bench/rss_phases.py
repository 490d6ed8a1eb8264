"""Where btd's resident memory goes at N torrents, phase by phase (issue 10: RSS <= 300 MB).

One btd (the same config and torrents as bench/scale.py: N small torrents, data on disk for
all, the first 2,000 seeding, the rest paused, trackers unreachable): RSS after one batched
``torrent.add``, once the checks are done, after 9 lists with every field and 9 with 3, after
an idle wait, and (``--restart``) the same after a restart. Each line splits the RSS: the
C heap (``[heap]``: glibc's main arena), the other anonymous mappings (CPython's small-object
arenas, threads' malloc arenas, big buffers), file-backed pages, and open files.

``--holes`` (needs gdb and ptrace rights) also asks the daemon's CPython, at each quiet point,
how many bytes its small-object allocator holds in use and how many sit free inside pools
it cannot give back (holes: what a burst of short-lived objects made among long-lived ones
leaves).

    .venv/bin/python bench/rss_phases.py                    # N=10,000: about a minute
    .venv/bin/python bench/rss_phases.py --restart --holes
    .venv/bin/python bench/rss_phases.py --env MALLOC_ARENA_MAX=2

The torrents are made once and kept in ``--cache`` (default /tmp/btd-rss-N).
"""

from __future__ import annotations

import argparse
import base64
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import scale  # noqa: E402 - bench/scale.py, beside this file

DEAD_TRACKER = "http://127.0.0.1:1/announce"  # nothing listens on port 1: refused at once


def mappings(pid: int) -> str:
    """RSS by kind of mapping, MiB: [heap], other anonymous, file-backed; open files."""
    heap = anon = files = 0
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if not parts[0].endswith(":"):  # a mapping's header: address range, ..., [path]
            name = parts[5] if len(parts) > 5 else ""
        elif parts[0] == "Rss:":
            kib = int(parts[1])
            if name == "[heap]":
                heap += kib
            elif name == "" or name.startswith("[anon"):
                anon += kib
            else:
                files += kib
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return f"heap {heap / 1024:4.0f}  anon {anon / 1024:4.0f}  files {files / 1024:3.0f}  fds {fds}"


def holes(pid: int) -> str:
    """CPython's small-object allocator, from inside the daemon (gdb), when it is quiet."""
    out = Path(tempfile.mkstemp(prefix="btd-dms")[1])
    code = (
        f"import os,sys; fd=os.open('{out}', os.O_WRONLY|os.O_TRUNC); old=os.dup(2); "
        "os.dup2(fd,2); sys._debugmallocstats(); os.dup2(old,2); os.close(fd); os.close(old)"
    )
    subprocess.run(
        ["gdb", "-p", str(pid), "-batch", "-ex", "call (int)PyGILState_Ensure()",
         "-ex", f'call (int)PyRun_SimpleString("{code}")',
         "-ex", "call (void)PyGILState_Release($1)"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    found = {}
    for line in out.read_text().splitlines():
        for key in ("arenas allocated current", "bytes in allocated blocks",
                    "bytes in available blocks"):  # fmt: skip
            if line.startswith("# " + key):
                found[key] = int(line.split("=")[1].replace(",", ""))
    out.unlink()
    if len(found) < 3:
        return "holes: gdb could not ask"
    return (
        f"obmalloc: {found['arenas allocated current']} arenas, "
        f"{found['bytes in allocated blocks'] / 2**20:.0f} MiB in use, "
        f"{found['bytes in available blocks'] / 2**20:.0f} MiB holes"
    )


def torrents(cache: Path, n: int) -> tuple[str, list[bytes]]:
    made = cache / "torrents.pickle"
    if not made.exists():
        if cache.exists():
            shutil.rmtree(cache)
        cache.mkdir(parents=True)
        data_dir, metas = scale.make_torrents(cache, n, 4, DEAD_TRACKER, None)
        made.write_bytes(pickle.dumps((str(data_dir), metas)))
    data_dir, metas = pickle.loads(made.read_bytes())
    return data_dir, metas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seeding", type=int, default=2_000)
    ap.add_argument("--lists", type=int, default=9, help="lists of each kind (default 9)")
    ap.add_argument("--idle-seconds", type=float, default=5.0)
    ap.add_argument("--restart", action="store_true", help="the same after a restart")
    ap.add_argument("--holes", action="store_true", help="CPython's allocator via gdb")
    ap.add_argument("--env", action="append", default=[], help="K=V for btd (repeatable)")
    ap.add_argument("--cache", type=Path, help="where the torrents are kept")
    args = ap.parse_args()
    for kv in args.env:
        key, _, value = kv.partition("=")
        os.environ[key] = value
    data_dir, metas = torrents(args.cache or Path(f"/tmp/btd-rss-{args.n}"), args.n)
    work = Path(tempfile.mkdtemp(prefix="btd-rss"))
    btd = scale.Btd(work / "btd")

    def report(what: str, quiet: bool = True) -> None:
        line = f"{what:<30} rss {scale.rss_mib(btd.pid):6.1f} MiB | {mappings(btd.pid)}"
        if args.holes and quiet:
            line += " | " + holes(btd.pid)
        print(line, flush=True)

    def settle_and_list(tag: str) -> None:
        took = scale.wait_until("settle", scale.settled(btd.counts, args.n, args.seeding), 600)
        scale.wait_quiet(btd.pid, 60)
        report(f"{tag}settled ({took:.1f} s)")
        for _ in range(args.lists):
            btd.list(None)
        report(f"{tag}after all-field lists")
        for _ in range(args.lists):
            btd.list(scale.BTD_3_FIELDS)
        report(f"{tag}after 3-field lists")
        time.sleep(args.idle_seconds)
        report(f"{tag}after {args.idle_seconds:.0f} s idle")

    try:
        btd.p.start()
        report("started")
        items = [
            {"metainfo": base64.b64encode(m).decode(), "save_path": data_dir,
             "paused": i >= args.seeding}
            for i, m in enumerate(metas)
        ]  # fmt: skip
        start = time.monotonic()
        btd.add_batch(items)
        del items
        report(f"batch add ({time.monotonic() - start:.1f} s)", quiet=False)
        settle_and_list("")
        if args.restart:
            btd.p.stop()
            btd.p.start()
            settle_and_list("restart: ")
    finally:
        if btd.p.proc is not None:
            btd.p.stop()
        btd.p.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
