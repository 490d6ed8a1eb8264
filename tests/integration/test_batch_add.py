"""A real btd adds a few hundred torrents in ONE ``btctl add`` call, durably.

The torrents are small single-file ones (the data for half of them is on disk, so those
seed); one file in the middle is not a torrent and one is given twice. After a SIGTERM and
a restart every accepted torrent is back from the resume store.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from btdtest import BtdProcess, wait_until

from btd.core.bencode import encode

pytestmark = [pytest.mark.integration]

N = 300
PIECE = 16 * 1024
CONFIG = """\
plugins:
  rarest_first: {}
  resume_sqlite: {}
"""


def small_torrent(folder: Path, n: int, data_dir: Path | None) -> Path:
    data = hashlib.sha256(str(n).encode()).digest() * 40  # 1,280 bytes
    name = f"f{n:04d}.bin"
    if data_dir is not None:
        (data_dir / name).write_bytes(data)
    info = {
        b"name": name.encode(),
        b"piece length": PIECE,
        b"length": len(data),
        b"pieces": hashlib.sha1(data).digest(),
    }
    path = folder / f"{n:04d}.torrent"
    path.write_bytes(encode({b"announce": b"http://127.0.0.1:9/announce", b"info": info}))
    return path


def test_a_few_hundred_in_one_call_then_restart(tmp_path: Path) -> None:
    btd = BtdProcess(tmp_path / "btd", config=CONFIG)
    btd.downloads.mkdir(parents=True)
    folder = tmp_path / "torrents"
    folder.mkdir()
    files = [small_torrent(folder, n, btd.downloads if n % 2 else None) for n in range(N)]
    junk = folder / "junk.torrent"
    junk.write_bytes(b"not a torrent")
    args = [str(f) for f in files[: N // 2]] + [str(junk)] + [str(f) for f in files[N // 2 :]]
    args.append(str(files[0]))  # again
    try:
        btd.start()
        done = btd.btctl("--json", "add", *args)
        assert done.returncode == 1, done.stderr  # the junk file: a remote error
        results = json.loads(done.stdout)
        assert len(results) == N + 2
        assert results[N // 2]["error"]["code"] == -32003
        assert results[-1]["added"] is False
        added = [r for r in results if r.get("added")]
        assert len(added) == N
        # one call: the daemon logs one batch of the 301 that parsed
        assert "added 300 of 301 torrent(s) in a batch" in btd.log_text()

        def all_settled() -> bool:
            states = [t["state"] for t in btd.call("torrent.list", {"fields": ["state"]})]
            return len(states) == N and "checking" not in states

        wait_until(all_settled, timeout=60, what="all checked")
        states = [t["state"] for t in btd.call("torrent.list", {"fields": ["state"]})]
        assert states.count("seeding") == N // 2
        assert btd.stop() == 0

        btd.start()
        wait_until(all_settled, timeout=60, what="all back after the restart")
        hashes = {t["info_hash"] for t in btd.call("torrent.list", {"fields": ["info_hash"]})}
        assert hashes == {r["info_hash"] for r in added}
    finally:
        btd.stop()
        btd.close()
