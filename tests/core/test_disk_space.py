"""The disk-space guard (core/disk_space.py): downloads pause below min_free_space and go
on when there is room again; one statvfs per distinct root per round, none when off;
seeding torrents are never paused. A fake statvfs and the session's clock drive it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import session_harness
from session_harness import PL, content, multi, result

from btd.core.disk_space import DISK_SPACE_INTERVAL, free_space
from btd.core.metainfo import parse_metainfo
from btd.core.rpc.torrent_methods import torrent_methods

A, B = content(2 * PL, 1), content(PL, 2)
TORRENT = multi("two", [(["a.bin"], A), (["b.bin"], B)])
HEX = parse_metainfo(TORRENT).hex
SEED_DATA = content(PL, 3)
SEED = session_harness.single("seed.bin", SEED_DATA)
MB = 1 << 20


class FakeDisk:
    """statvfs of every path: ``free`` bytes; counts the calls."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.calls: list[str] = []

    def __call__(self, path: Any) -> Any:
        self.calls.append(str(path))
        return SimpleNamespace(f_bavail=self.free // 4096, f_frsize=4096)


def setup(tmp_path: Path, free: int, minimum: int = 100 * MB) -> tuple[Any, Any, Any, list[Any]]:
    (tmp_path / "dl" / "two").mkdir(parents=True)
    (tmp_path / "dl" / "two" / "a.bin").write_bytes(A)  # a download in progress
    (tmp_path / "dl" / "seed.bin").write_bytes(SEED_DATA)  # and a seed
    session = session_harness.make_session(tmp_path, min_free_space=minimum)
    disk = FakeDisk(free)
    session.disk_space._statvfs = disk
    events: list[Any] = []
    session.add_event_listener(events.append)
    session.start()
    result(session.add(SEED))
    result(session.add(TORRENT))
    return session, session.find(HEX), disk, events


def test_a_download_pauses_when_its_disk_is_low_and_resumes_when_there_is_room(
    tmp_path: Path,
) -> None:
    session, t, disk, events = setup(tmp_path, free=50 * MB)
    seed = session.find(parse_metainfo(SEED).hex)
    assert t.state == "downloading"
    session.reactor.advance(0)  # the round a torrent gets when it starts downloading
    assert t.state == "paused" and not t.options.paused
    assert t.state_detail == (
        f"disk full: {50 * MB} bytes free on {tmp_path / 'dl'}, below min_free_space ({100 * MB})"
    )
    assert seed.state == "seeding"  # seeding writes nothing: never paused
    full = [e for e in events if e.kind == "disk_full"]
    assert [e.data for e in full] == [
        {"path": str(tmp_path / "dl"), "free": 50 * MB, "min_free_space": 100 * MB}
    ]
    listed = torrent_methods(session)["torrent.get"](HEX)
    assert listed["state"] == "paused" and listed["state_detail"].startswith("disk full")

    session.reactor.advance(DISK_SPACE_INTERVAL)
    assert t.state == "paused"
    disk.free = 200 * MB
    session.reactor.advance(DISK_SPACE_INTERVAL)
    assert t.state == "downloading" and t.state_detail is None
    assert [e.kind for e in events if e.kind.startswith("disk")] == ["disk_full", "disk_space_ok"]


def test_one_statvfs_per_distinct_root_per_round(tmp_path: Path) -> None:
    session, t, disk, events = setup(tmp_path, free=500 * MB)
    session.reactor.advance(0)
    disk.calls.clear()
    session.reactor.advance(DISK_SPACE_INTERVAL)
    assert disk.calls == [str(tmp_path / "dl")]  # the seed's root is not looked at
    assert session.disk_space.rounds >= 2


def test_off_costs_nothing_and_turning_it_off_resumes(tmp_path: Path) -> None:
    session, t, disk, events = setup(tmp_path, free=50 * MB)
    session.reactor.advance(0)
    assert t.state == "paused"
    cfg = session.config
    session.apply_config(
        dataclasses.replace(cfg, session=dataclasses.replace(cfg.session, min_free_space=0))
    )
    session.reactor.advance(0)
    assert t.state == "downloading"
    disk.calls.clear()
    session.reactor.advance(10 * DISK_SPACE_INTERVAL)
    assert disk.calls == []


def test_a_user_pause_while_held_is_the_users(tmp_path: Path) -> None:
    session, t, disk, events = setup(tmp_path, free=50 * MB)
    session.reactor.advance(0)
    result(t.pause())
    assert t.options.paused and t.state_detail is None
    disk.free = 500 * MB
    session.reactor.advance(DISK_SPACE_INTERVAL)
    assert t.state == "paused"  # not resumed behind the user's back


def test_free_space_looks_at_the_nearest_existing_folder(tmp_path: Path) -> None:
    disk = FakeDisk(7 * 4096)
    assert free_space([tmp_path / "not" / "yet"], disk) == {tmp_path / "not" / "yet": 7 * 4096}
    assert disk.calls == [str(tmp_path)]
    assert free_space([tmp_path])[tmp_path] > 0  # the real statvfs
