"""Seeding goals (core/seeding_goals.py) on a whole synchronous Session: ratio, seeding
time and idle time; global, per torrent and unlimited; the actions; the event; the clocks
kept across a restart; the cost (only torrents that uploaded are looked at)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from queue_helpers import SIZE, add, reconfigure, settle
from session_harness import Probe, make_session, result

from btd.core.seeding_goals import CHECK_EVERY, SeedClock
from btd.core.session import Session
from btd.core.torrent_settings import SettingError, apply_settings
from btd.core.torrent_state import TorrentState

S = TorrentState


def run_for(session: Session, seconds: float) -> None:
    for _ in range(round(seconds / CHECK_EVERY)):
        session.clock.advance(CHECK_EVERY)
    settle(session)


def upload(session: Session, t: Any, size: int) -> None:
    """As a peer taking data would: the totals grow and the torrent's tick reports it."""
    t.uploaded += size
    session._progress_changed(t)


def goal_events(probe: Probe) -> list[dict[str, Any]]:
    return [e.data for e in probe.events if e.kind == "seeding_goal_reached"]


def test_no_goal_no_looks_no_timer(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    (t,) = add(session, 1, data=True)
    looks = session.seeding_goals.looks
    upload(session, t, SIZE * 5)
    run_for(session, 60)
    assert t.state is S.SEEDING
    assert session.seeding_goals.looks - looks <= 2  # when it uploaded, then once quiet
    assert not session.seeding_goals._heap  # nothing to wait for


def test_global_ratio_pauses_with_an_event(tmp_path: Path) -> None:
    probe = Probe()
    session = make_session(tmp_path, probe, ratio_limit=1.0)
    a, b = add(session, 2, data=True)
    upload(session, a, SIZE // 2)
    run_for(session, CHECK_EVERY)
    assert a.state is S.SEEDING  # ratio 0.5 (nothing downloaded: uploaded / size)
    upload(session, a, SIZE // 2)
    run_for(session, CHECK_EVERY)
    assert (a.state, b.state) == (S.PAUSED, S.SEEDING)
    assert goal_events(probe) == [{"goal": "ratio", "limit": 1.0, "value": 1.0, "action": "pause"}]
    assert probe.kinds()[-2:] == ["seeding_goal_reached", "paused"]
    assert a.options.paused  # kept across restarts


def test_per_torrent_goal_beats_the_global_one(tmp_path: Path) -> None:
    session = make_session(tmp_path, ratio_limit=1.0)
    a, b, c = add(session, 3, data=True)
    apply_settings(a, {"ratio_limit": -1})  # unlimited
    apply_settings(b, {"ratio_limit": 3})
    for t in (a, b, c):
        upload(session, t, SIZE * 2)
    run_for(session, CHECK_EVERY)
    assert [t.state for t in (a, b, c)] == [S.SEEDING, S.SEEDING, S.PAUSED]
    upload(session, b, SIZE)
    run_for(session, CHECK_EVERY)
    assert b.state is S.PAUSED and a.state is S.SEEDING
    apply_settings(a, {"ratio_limit": None})  # back to the global goal: reached at once
    run_for(session, CHECK_EVERY)
    assert a.state is S.PAUSED and a.options.ratio_limit is None
    with pytest.raises(SettingError) as info:
        apply_settings(a, {"ratio_limit": -2})
    assert info.value.name == "ratio_limit"
    with pytest.raises(SettingError):
        apply_settings(a, {"seeding_time_limit": "1h"})


def test_seeding_time_is_reached_without_any_traffic(tmp_path: Path) -> None:
    probe = Probe()
    session = make_session(tmp_path, probe, seeding_time_limit=10)
    (t,) = add(session, 1, data=True)
    looks = session.seeding_goals.looks
    session.clock.advance(9 * 60)
    assert t.state is S.SEEDING
    session.clock.advance(60)
    settle(session)
    assert t.state is S.PAUSED
    assert session.seeding_goals.looks - looks == 1  # one look, at the deadline
    [event] = goal_events(probe)
    assert event["goal"] == "seeding_time" and event["value"] == pytest.approx(10)


def test_idle_time_restarts_with_every_upload(tmp_path: Path) -> None:
    session = make_session(tmp_path, idle_seeding_limit=2)
    (t,) = add(session, 1, data=True)
    for _ in range(5):  # an upload every 90 s: never idle for 2 minutes
        run_for(session, 90)
        upload(session, t, 100)
    run_for(session, CHECK_EVERY)
    assert t.state is S.SEEDING
    run_for(session, 120)
    assert t.state is S.PAUSED


def test_seeding_time_counts_only_while_seeding(tmp_path: Path) -> None:
    session = make_session(tmp_path, seeding_time_limit=10)
    (t,) = add(session, 1, data=True)
    run_for(session, 6 * 60)
    result(t.pause())
    run_for(session, 30 * 60)  # paused: does not count
    t.resume()
    settle(session)
    assert t.state is S.SEEDING
    run_for(session, 3 * 60)
    assert t.state is S.SEEDING
    run_for(session, 60 + CHECK_EVERY)
    assert t.state is S.PAUSED


@pytest.mark.parametrize("action", ["remove", "remove_data"])
def test_remove_actions(tmp_path: Path, action: str) -> None:
    probe = Probe()
    session = make_session(tmp_path, probe, ratio_limit=0.5, seeding_goal_action=action)
    (t,) = add(session, 1, data=True)
    path = session.config.session.download_dir / t.name
    upload(session, t, SIZE)
    run_for(session, CHECK_EVERY)
    assert t.info_hash not in session.torrents
    assert probe.kinds()[-2:] == ["seeding_goal_reached", "removed"]
    assert path.exists() is (action == "remove")


def test_goal_set_live_on_the_session(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    (t,) = add(session, 1, data=True)
    upload(session, t, SIZE * 2)
    run_for(session, CHECK_EVERY)
    assert t.state is S.SEEDING
    reconfigure(session, ratio_limit=2.0)
    assert t.state is S.PAUSED


@pytest.mark.parametrize("store", ["files", "resume_sqlite"])
def test_seeding_and_idle_time_survive_a_restart(tmp_path: Path, store: str) -> None:
    plugins = {"rarest_first": {}, "resume_sqlite": {}} if store == "resume_sqlite" else None
    session = make_session(tmp_path, plugins=plugins, seeding_time_limit=10)
    (t,) = add(session, 1, data=True)
    run_for(session, 7 * 60)
    result(session.stop())
    again = make_session(tmp_path, plugins=plugins, seeding_time_limit=10)
    again.start()
    settle(again)
    t2 = again.find(t.hex)
    assert t2.state is S.SEEDING
    assert t2.seed_clock.seeding_time(again.clock.seconds()) == pytest.approx(7 * 60, abs=1)
    run_for(again, 2 * 60)
    assert t2.state is S.SEEDING
    run_for(again, 60 + CHECK_EVERY)
    assert t2.state is S.PAUSED


def test_seed_clock() -> None:
    clock = SeedClock(seeded=100.0, idle=30.0)
    clock.start(1000.0, uploaded=5)
    assert clock.seeding_time(1010.0) == 110.0 and clock.idle_time(1010.0) == 40.0
    clock.saw(1020.0, uploaded=6)  # an upload
    assert clock.idle_time(1025.0) == 5.0
    clock.stop(1030.0)
    assert (clock.seeding_time(5000.0), clock.idle_time(5000.0)) == (130.0, 10.0)
    assert clock.as_json(0.0) == {"seeding_time": 130.0, "idle_time": 10.0}
    back = SeedClock.from_json({"seeding_time": 130.0, "idle_time": "x"})
    assert (back.seeded, back.idle_before) == (130.0, 0.0)
