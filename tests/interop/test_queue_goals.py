"""The queue and a seeding goal against libtorrent, with a real btd.

- ``max_active_downloads: 1``: three torrents, each seeded by its own libtorrent peer, are
  added at once; they download one after the other, in queue order (events and states).
- ``ratio_limit: 1.0``: a btd seeder pauses once a libtorrent leecher has taken the whole
  torrent (ratio = uploaded / size for a torrent that downloaded nothing), and says why
  with a ``seeding_goal_reached`` event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from btdtest import make_torrent, same_tree, wait_until, write_files

pytestmark = [pytest.mark.interop]

SIZE = 3 * 2**20
PIECE = 64 * 1024
LIMIT = 1_500_000  # each seeder's upload limit, bytes/s: a download takes about 2 s


def test_max_active_downloads_1_runs_three_torrents_one_after_the_other(
    tmp_path: Path, btd_factory: Any, lt_factory: Any
) -> None:
    seeders, hashes, torrents = [], [], []
    for i in range(3):
        seed_dir = tmp_path / f"seed{i}"
        write_files(seed_dir, {f"q{i}/data.bin": SIZE}, seed=40 + i)
        torrent = tmp_path / f"q{i}.torrent"
        hashes.append(make_torrent(seed_dir / f"q{i}", torrent, piece_size=PIECE))
        torrents.append(torrent)
        seeders.append(lt_factory("seed", torrent, seed_dir, upload_limit=LIMIT))
    btd = btd_factory(config="session:\n  max_active_downloads: 1\n").start()
    seen: list[tuple[str, str]] = []
    with btd.client() as events:
        events.call("events.subscribe")
        for torrent, seeder, info_hash in zip(torrents, seeders, hashes, strict=True):
            btd.add(torrent)
            btd.call(
                "torrent.add_peer",
                {"info_hash": info_hash, "address": "127.0.0.1", "port": seeder.port},
            )
        listed = {t["info_hash"]: t for t in btd.call("torrent.list")}
        assert [listed[h]["queue_position"] for h in hashes] == [0, 1, 2]
        done: set[str] = set()
        for note in events.notifications(timeout=120):
            p = note.params
            if p.get("info_hash") in hashes and p["event"] in ("started", "queued", "completed"):
                seen.append((p["event"], hashes.index(p["info_hash"])))
                if p["event"] == "completed":
                    done.add(p["info_hash"])
                    states = [t["state"] for t in btd.call("torrent.list")]
                    assert states.count("downloading") <= 1, states
                if len(done) == 3:
                    break
            if p.get("event") == "error":
                raise AssertionError(f"{p}\n{btd.log_text()}")
    print(seen)
    completed = [i for event, i in seen if event == "completed"]
    assert completed == [0, 1, 2]
    last_start = {i: max(n for n, (e, j) in enumerate(seen) if e == "started" and j == i)
                  for i in range(3)}  # fmt: skip
    done_at = {i: seen.index(("completed", i)) for i in range(3)}
    assert last_start[1] > done_at[0] and last_start[2] > done_at[1], seen
    assert ("queued", 1) in seen and ("queued", 2) in seen
    for i in range(3):
        assert same_tree(tmp_path / f"seed{i}" / f"q{i}", btd.downloads / f"q{i}")
    assert btd.stop() == 0


def test_ratio_goal_pauses_a_btd_seeder_once_a_leecher_took_it_all(
    tmp_path: Path, btd_factory: Any, lt_factory: Any
) -> None:
    seed_dir = tmp_path / "seed"
    write_files(seed_dir, {"goal/data.bin": SIZE}, seed=7)
    torrent = tmp_path / "goal.torrent"
    make_torrent(seed_dir / "goal", torrent, piece_size=PIECE)
    btd = btd_factory(config="session:\n  ratio_limit: 1.0\n")
    info_hash = btd.start_seeding(seed_dir, torrent)
    port = btd.call("session.info")["listen_port"]
    with btd.client() as events:
        events.call("events.subscribe")
        leecher = lt_factory("leech", torrent, tmp_path / "leech", peers=[f"127.0.0.1:{port}"])
        leecher.wait_done()
        reached = btd.wait_event(events, "seeding_goal_reached", info_hash, timeout=30)
        btd.wait_event(events, "paused", info_hash, timeout=10)
    assert reached["goal"] == "ratio" and reached["action"] == "pause", reached
    assert reached["value"] >= 1.0 and reached["limit"] == 1.0
    t = btd.call("torrent.get", {"info_hash": info_hash})
    assert t["state"] == "paused" and t["uploaded"] >= SIZE, t
    assert same_tree(seed_dir / "goal", tmp_path / "leech" / "goal")
    wait_until(lambda: btd.call("torrent.get", {"info_hash": info_hash})["peers"] == 0)
    assert btd.stop() == 0
