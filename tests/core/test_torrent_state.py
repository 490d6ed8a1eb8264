"""The lifecycle table (core/torrent_state.py) and the Torrent's single transition method."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torrent_harness import Swarm

from btd.core.torrent_state import (
    ACTIVE,
    TRANSITIONS,
    IllegalTransition,
    TorrentState,
    check_transition,
)

S = TorrentState


def test_states_are_the_rpc_strings() -> None:
    assert [s.value for s in S] == [
        "metadata",
        "checking",
        "downloading",
        "seeding",
        "paused",
        "error",
        "stopped",
        "queued",
    ]
    assert json.dumps({"state": S.PAUSED}) == '{"state": "paused"}'
    assert S.SEEDING == "seeding" and f"{S.ERROR}" == "error"


def test_the_table_names_every_state_and_only_torrent_states_move() -> None:
    assert set(TRANSITIONS) == set(S)
    assert TRANSITIONS[S.METADATA] == frozenset()  # a magnet becomes a new Torrent instead
    assert all(S.METADATA not in targets for targets in TRANSITIONS.values())
    assert ACTIVE == {S.DOWNLOADING, S.SEEDING}


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.PAUSED, S.SEEDING),  # resume goes through stopped, then a check or activation
        (S.CHECKING, S.METADATA),  # a torrent never becomes a magnet again
        (S.STOPPED, S.ERROR),  # nothing runs that could fail (a paused one's save path
        # is probed: paused -> error is storage missing)
        (S.METADATA, S.CHECKING),
    ],
)
def test_illegal_transitions_raise(old: TorrentState, new: TorrentState) -> None:
    with pytest.raises(IllegalTransition, match=f"from {old} to {new}"):
        check_transition(old, new)


def test_legal_transitions_pass() -> None:
    for old, targets in TRANSITIONS.items():
        for new in targets:
            check_transition(old, new)


def test_a_failure_reported_to_a_torrent_that_runs_nothing_raises(tmp_path: Path) -> None:
    s = Swarm(tmp_path)
    assert s.torrent.state is S.STOPPED
    with pytest.raises(IllegalTransition):
        s.torrent.fail("disk gone")
    assert s.torrent.state is S.STOPPED and s.torrent.error is None
    assert "error" not in s.kinds


def test_the_lifecycle_walks_the_table(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True).start()
    t = s.torrent
    assert t.state is S.SEEDING and s.kinds == ["verified", "started"]
    t.pause()
    assert t.state is S.PAUSED and t.options.paused
    t.resume()
    assert t.state is S.SEEDING and not t.options.paused
    t.verify()
    assert t.state is S.SEEDING and s.kinds.count("verified") == 2  # checking, then back
    t.fail("disk gone")
    assert t.state is S.ERROR and t.error == "disk gone"
    t.resume()
    assert t.state is S.SEEDING and t.error is None
    t.stop()
    assert t.state is S.STOPPED
