"""kill -9 at random points, many times: nothing claimed is wrong, nothing acknowledged is lost.

Each round restarts the same daemon (same state, same downloads) and checks, before giving it
any peer: every piece it claims hashes right on disk, and every torrent whose ``torrent.add``
was answered is listed. Then it goes on (downloading from a rate-limited libtorrent seeder, or
adding torrents one by one from another thread) and is killed with SIGKILL at a point drawn
at random. ``BTD_KILL_ROUNDS`` sets the number of rounds (default 6; the long mode in the
README runs 50); the seed is printed so a failing run can be replayed (``BTD_KILL_SEED``).
"""

from __future__ import annotations

import base64
import os
import random
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from btdtest import (
    BtdProcess,
    assert_every_piece_checks_out,
    make_torrent,
    pieces_had,
    seeded_torrent,
    wait_until,
    write_files,
)

pytestmark = [pytest.mark.integration, pytest.mark.interop]

ROUNDS = int(os.environ.get("BTD_KILL_ROUNDS", "6"))
PIECE = 32 * 1024
SIZES = {"pack/a.bin": 2_500_000, "pack/b.bin": 1_700_000}
CONFIG = """\
plugins:
  rarest_first: {}
  resume_sqlite:
    interval: 1
"""


def restart_and_check(btd: BtdProcess, torrent: Path, info_hash: str, acked: list[str]) -> set[int]:
    btd.start()  # the socket answers at once; stored torrents come up in the background
    wait_until(lambda: not btd.call("session.info")["loading"], what="every torrent loaded")
    listed = {t["info_hash"] for t in btd.call("torrent.list", {"fields": ["info_hash"]})}
    lost = [h for h in acked if h not in listed]
    assert not lost, f"{len(lost)} acknowledged adds were lost, e.g. {lost[0]}"
    wait_until(
        lambda: btd.call("torrent.get", {"info_hash": info_hash})["state"] != "checking",
        timeout=60,
        what="the check after the restart",
    )
    had = pieces_had(btd, info_hash)
    assert_every_piece_checks_out(btd, torrent, had)
    return had


def add_one_by_one(btd: BtdProcess, blobs: list[bytes], acked: list[str]) -> None:
    """Adds until the daemon dies; each answered add is recorded (the caller kills)."""
    try:
        with btd.client(timeout=10) as c:
            for data in blobs:
                reply = c.call("torrent.add", {"metainfo": base64.b64encode(data).decode()})
                acked.append(reply["info_hash"])
    except Exception:  # the kill: the connection drops mid-call
        return


def test_kill_9_at_random_points(btd_factory: Any, lt_factory: Any, tmp_path: Path) -> None:
    seed = int(os.environ.get("BTD_KILL_SEED", random.randrange(1 << 30)))
    print(f"BTD_KILL_SEED={seed}")
    rng = random.Random(seed)
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, SIZES, "pack", "pack.torrent", seed=9, piece_size=PIECE
    )
    extra: list[bytes] = []  # small torrents for the add rounds
    for n in range(40 * ROUNDS):
        f = tmp_path / "extra" / f"{n}.bin"
        write_files(f.parent, {f.name: 1000 + n}, seed=n)
        t = tmp_path / "extra" / f"{n}.torrent"
        make_torrent(f, t, 16384)
        extra.append(t.read_bytes())
    seeder = lt_factory("seed", torrent, seed_dir, upload_limit=1_000_000)

    btd = btd_factory(config=CONFIG).start()
    assert btd.add(torrent) == info_hash
    acked: list[str] = [info_hash]
    total = btd.call("torrent.get", {"info_hash": info_hash})["pieces"]
    had: set[int] = set()
    for round_ in range(ROUNDS):
        if round_:
            had = restart_and_check(btd, torrent, info_hash, acked)
        if round_ % 2 == 0 and len(had) < total:  # kill during the download
            target = rng.randint(len(had) + 1, min(total, len(had) + total // 4))
            btd.call(
                "torrent.add_peer",
                {"info_hash": info_hash, "address": "127.0.0.1", "port": seeder.port},
            )
            wait_until(
                lambda t=target: len(pieces_had(btd, info_hash)) >= t,
                timeout=60,
                what=f"{target} pieces",
            )
        else:  # kill during adds
            batch, extra = extra[:40], extra[40:]
            kill_after = len(acked) + rng.randint(1, len(batch) - 1)
            adder = threading.Thread(target=add_one_by_one, args=(btd, batch, acked))
            adder.start()
            wait_until(lambda k=kill_after: len(acked) >= k, timeout=60, what=f"{kill_after} adds")
        assert btd.stop(signal.SIGKILL) == -signal.SIGKILL
        if round_ % 2:
            adder.join(10)
    restart_and_check(btd, torrent, info_hash, acked)
    assert btd.stop() == 0
