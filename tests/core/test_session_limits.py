"""The session's speed limits: config keys applied live, the alt switch and its schedule."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from session_harness import make_session

from btd.core.alt_speed import AltSchedule


def reload(session, **keys):  # type: ignore[no-untyped-def]
    """What a SIGHUP reload or session.set does: a new Config through apply_config."""
    cfg = session.config
    session.apply_config(dataclasses.replace(cfg, session=dataclasses.replace(cfg.session, **keys)))


def test_limits_apply_live_and_alt_replaces_them(tmp_path: Path) -> None:
    s = make_session(tmp_path, upload_limit=1000, alt_upload_limit=10, alt_download_limit=20)
    bw = s.bandwidth
    assert (bw.down.rate, bw.up.rate) == (0, 1000)
    assert bw.up.on and not bw.down.on
    reload(s, download_limit=5000)
    assert (bw.down.rate, bw.up.rate) == (5000, 1000)
    reload(s, alt_enabled=True)
    assert (bw.down.rate, bw.up.rate) == (20, 10)
    reload(s, alt_upload_limit=0)  # 0 is unlimited in alt mode too
    assert (bw.down.rate, bw.up.rate) == (20, 0)
    reload(s, alt_enabled=False)
    assert (bw.down.rate, bw.up.rate) == (5000, 1000)
    reload(s, download_limit=0, upload_limit=0)
    assert not bw.down.on and not bw.up.on


def test_the_schedule_flips_alt_and_the_config_says_so(tmp_path: Path) -> None:
    s = make_session(tmp_path, alt_upload_limit=10)
    clock = s.clock
    schedule = AltSchedule.parse({"start": "00:00", "end": "12:00"})
    reload(s, alt_schedule=schedule)
    assert s.config.session.alt_enabled == schedule.active_at(clock.seconds())
    edge = s.alt_speed.next_edge
    assert edge is not None
    clock.advance(edge - clock.seconds())
    on = s.alt_speed.on
    assert on == schedule.active_at(clock.seconds())
    assert s.config.session.alt_enabled is on
    assert s.bandwidth.up.rate == (10 if on else 0)
    reload(s, alt_enabled=not on)  # by hand: holds until the next edge
    assert s.alt_speed.on is (not on) and s.config.session.alt_enabled is (not on)
    clock.advance(s.alt_speed.next_edge - clock.seconds())
    assert s.alt_speed.on is (not on)  # the next edge: the schedule's state again
    assert s.alt_speed.on == schedule.active_at(clock.seconds())


def test_a_torrents_limits_are_options(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    opts = s.options_for({"download_limit": 100, "upload_limit": True})
    assert (opts.download_limit, opts.upload_limit) == (100, 0)
