"""The session's queue (core/queue.py) on a whole synchronous Session: limits, order,
positions, force start, stalled torrents, live limit changes, persistence."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from queue_helpers import add, positions, reconfigure, settle, states
from session_harness import Probe, make_session, result

from btd.core.queue import CHECK_EVERY, Order, TorrentQueue
from btd.core.scheduler import Scheduler
from btd.core.session import Session
from btd.core.torrent_state import TorrentState

S = TorrentState


def test_without_limits_everything_runs_and_nothing_is_scheduled(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    ts = add(session, 3)
    assert states(ts) == [S.DOWNLOADING] * 3
    assert positions(ts) == [0, 1, 2]  # new torrents go to the bottom
    assert not session.queue._check.active  # no stall checks without stalled_minutes
    assert session.queue.evaluations == 0  # no limits, nobody waiting: nothing to decide


def test_max_active_downloads_runs_the_first_and_queues_the_rest(tmp_path: Path) -> None:
    probe = Probe()
    session = make_session(tmp_path, probe, max_active_downloads=1)
    a, b, c = add(session, 3)
    assert states([a, b, c]) == [S.DOWNLOADING, S.QUEUED, S.QUEUED]
    assert probe.kinds().count("queued") == 2
    assert not b.ticking and not b.announcer.running  # queued: nothing scheduled, no announce
    result(a.pause())
    settle(session)
    assert states([a, b, c]) == [S.PAUSED, S.DOWNLOADING, S.QUEUED]
    result(session.remove(b))
    settle(session)
    assert c.state is S.DOWNLOADING
    assert a.resume() is not None
    settle(session)
    # a is first in the queue: it takes the slot back from c
    assert states([a, c]) == [S.DOWNLOADING, S.QUEUED]


def test_seeds_and_the_total(tmp_path: Path) -> None:
    session = make_session(tmp_path, max_active_seeds=1, max_active_torrents=2)
    seeds = add(session, 3, data=True)
    assert states(seeds) == [S.SEEDING, S.QUEUED, S.QUEUED]
    downloads = add(session, 2, seed=10)
    # the total (2) leaves one slot for downloads after... downloads are served first
    assert states(downloads) == [S.DOWNLOADING, S.DOWNLOADING]
    assert states(seeds) == [S.QUEUED, S.QUEUED, S.QUEUED]
    reconfigure(session, max_active_torrents=-1)
    assert states(seeds) == [S.SEEDING, S.QUEUED, S.QUEUED]
    reconfigure(session, max_active_seeds=-1)
    assert states(seeds) == [S.SEEDING] * 3


def test_lowering_a_limit_live_queues_the_last_ones(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    ts = add(session, 4)
    reconfigure(session, max_active_downloads=2)
    assert states(ts) == [S.DOWNLOADING, S.DOWNLOADING, S.QUEUED, S.QUEUED]
    reconfigure(session, max_active_downloads=0)
    assert states(ts) == [S.QUEUED] * 4
    reconfigure(session, max_active_downloads=3)
    assert states(ts) == [S.DOWNLOADING] * 3 + [S.QUEUED]


def test_moves_top_up_down_bottom(tmp_path: Path) -> None:
    session = make_session(tmp_path, max_active_downloads=1)
    a, b, c, d = add(session, 4)
    assert c.queue_move("top") == 0
    settle(session)
    assert positions([a, b, c, d]) == [1, 2, 0, 3]
    assert states([a, b, c, d]) == [S.QUEUED, S.QUEUED, S.DOWNLOADING, S.QUEUED]
    assert c.queue_move("down") == 1
    settle(session)
    assert positions([a, b, c, d]) == [0, 2, 1, 3]
    assert states([a, c]) == [S.DOWNLOADING, S.QUEUED]
    assert d.queue_move("up") == 2
    assert positions([a, b, c, d]) == [0, 3, 1, 2]
    assert a.queue_move("bottom") == 3
    assert positions([a, b, c, d]) == [3, 2, 0, 1]
    assert a.queue_move("up") == 2 and a.queue_move(0) == 0 and a.queue_move(99) == 3
    assert positions([a, b, c, d]) == [3, 2, 0, 1]
    assert c.queue_move("up") == 0  # already first
    with pytest.raises(ValueError):
        a.queue_move("sideways")


def test_order_changes_counts_moves_not_adds_at_the_bottom(tmp_path: Path) -> None:
    """Kept list rows with a queue position (core/rpc/list_rows.py) are built again only
    when positions may have moved: a torrent added at the bottom moves no other."""
    session = make_session(tmp_path)
    a, b = add(session, 2)
    assert positions([a, b]) == [0, 1]
    changes = session.queue.order_changes
    (c,) = add(session, 1, seed=2)
    assert positions([a, b, c]) == [0, 1, 2]
    assert session.queue.order_changes == changes
    c.queue_move("top")
    assert session.queue.order_changes > changes
    assert positions([a, b, c]) == [1, 2, 0]
    changes = session.queue.order_changes
    session.remove(c, False)
    assert session.queue.order_changes > changes and positions([a, b]) == [0, 1]


def test_moves_to_a_place_between_two_others_many_times(tmp_path: Path) -> None:
    """Moving into the middle halves the gap between two keys; when no float is left the
    queue spaces every key out again and the order stays right."""
    session = make_session(tmp_path)
    ts = add(session, 4)
    for i in range(80):
        mover = ts[3] if i % 2 == 0 else ts[2]
        mover.queue_move(2)
        order = sorted(ts, key=lambda t: t.queue_position)
        assert order[2] is mover and sorted(positions(ts)) == [0, 1, 2, 3]


def test_force_start_ignores_the_queue_and_is_not_counted(tmp_path: Path) -> None:
    session = make_session(tmp_path, max_active_downloads=1)
    a, b, c = add(session, 3)
    c.set_force_start(True)
    settle(session)
    assert states([a, b, c]) == [S.DOWNLOADING, S.QUEUED, S.DOWNLOADING]
    result(a.pause())
    settle(session)
    assert b.state is S.DOWNLOADING  # c does not take a's slot: it is not counted
    c.set_force_start(False)
    settle(session)
    assert states([b, c]) == [S.DOWNLOADING, S.QUEUED]


def run_for(session: Session, seconds: float) -> None:
    for _ in range(round(seconds / CHECK_EVERY)):
        session.clock.advance(CHECK_EVERY)
    settle(session)


def test_stalled_torrents_are_not_counted(tmp_path: Path) -> None:
    session = make_session(tmp_path, max_active_downloads=1, stalled_minutes=2)
    a, b, c = add(session, 3)
    assert states([a, b, c]) == [S.DOWNLOADING, S.QUEUED, S.QUEUED]
    run_for(session, 60)
    a.downloaded += 1000  # a moved data at minute one
    run_for(session, 110)
    assert b.state is S.QUEUED  # a is stalled only two minutes after its last data
    run_for(session, 15)
    assert states([a, b, c]) == [S.DOWNLOADING, S.DOWNLOADING, S.QUEUED]  # a keeps running
    a.downloaded += 1000  # a wakes up: counted again, the last one beyond the limit waits
    run_for(session, CHECK_EVERY)
    assert states([a, b, c]) == [S.DOWNLOADING, S.QUEUED, S.QUEUED]
    reconfigure(session, stalled_minutes=0)  # off, live: nothing is watched any more
    assert not session.queue._activity and not session.queue._check.active
    reconfigure(session, stalled_minutes=1)  # on again: the running ones are watched
    run_for(session, 60 + CHECK_EVERY)
    assert states([a, b, c]) == [S.DOWNLOADING, S.DOWNLOADING, S.QUEUED]


def test_queue_position_via_torrent_set_and_list(tmp_path: Path) -> None:
    from btd.core.rpc.torrent_methods import torrent_methods

    session = make_session(tmp_path, max_active_downloads=1)
    a, b, c = add(session, 3)
    methods = torrent_methods(session)
    reply = methods["torrent.set"](c.hex, queue_position=0, ratio_limit=2.5)
    assert reply["queue_position"] == 0 and reply["ratio_limit"] == 2.5
    settle(session)
    listed = {t["info_hash"]: t for t in methods["torrent.list"]()}
    assert [listed[t.hex]["queue_position"] for t in (a, b, c)] == [1, 2, 0]
    assert [listed[t.hex]["state"] for t in (a, b, c)] == ["queued", "queued", "downloading"]
    assert methods["torrent.list"](state="queued")[0]["info_hash"] == a.hex
    moved = methods["torrent.queue"](b.hex, "top")
    assert moved["queue_position"] == 0
    with pytest.raises(Exception, match="move"):
        methods["torrent.queue"](b.hex, "left")
    with pytest.raises(Exception, match="queue_position"):
        methods["torrent.set"](b.hex, queue_position=-1)


def test_positions_and_force_start_persist(tmp_path: Path) -> None:
    session = make_session(tmp_path, max_active_downloads=1)
    ts = add(session, 4)
    ts[3].queue_move("top")
    ts[0].queue_move("bottom")
    ts[1].set_force_start(True)
    session.save_options(ts[1])
    before = {t.hex: t.queue_position for t in ts}
    result(session.stop())
    probe = Probe()
    again = make_session(tmp_path, probe, max_active_downloads=1)
    again.start()
    settle(again)
    started = {e.info_hash for e in probe.events if e.kind == "started"}
    assert started == {ts[3].hex, ts[1].hex}  # the queue waited for all: none started twice
    after = {h: again.find(h).queue_position for h in before}
    assert after == before
    assert again.find(ts[1].hex).options.force_start
    running = sorted(h for h, t in again.torrents.items() if t.state is S.DOWNLOADING)
    assert running == sorted([ts[3].info_hash, ts[1].info_hash])  # the first, and the forced
    new = add(again, 1, seed=50)[0]
    assert new.queue_position == 4  # a new one goes to the bottom


@dataclasses.dataclass(frozen=True)
class Options:
    queue_position: float | None = None
    force_start: bool = False


def test_evaluation_is_coalesced_and_walks_only_what_it_must() -> None:
    """Many events in one turn are one decision; with a limit of 2 among 5,000 queued
    torrents a decision looks at a handful, not all."""
    from twisted.internet.task import Clock

    clock = Clock()
    cfg = type("Cfg", (), {"max_active_downloads": 2, "max_active_seeds": -1,
                           "max_active_torrents": -1, "stalled_minutes": 0})()  # fmt: skip
    queue = TorrentQueue(Scheduler(clock), lambda: cfg)
    looked: list[bytes] = []

    class T:
        def __init__(self, i: int) -> None:
            self.info_hash = i.to_bytes(20, "big")
            self.options = Options()
            self.state = S.STOPPED
            self.complete = False
            self.downloaded = self.uploaded = 0

        def _to(self, state: S) -> None:
            old, self.state = self.state, state
            queue.state_changed(self, old, state)

        def dequeue(self) -> None:
            looked.append(self.info_hash)
            self._to(S.DOWNLOADING)

        def enqueue(self) -> None:
            self._to(S.QUEUED)

    ts = [T(i) for i in range(5000)]
    for t in ts:
        queue.join(t)
    for t in ts:
        t._to(S.DOWNLOADING if queue.admit(t) else S.QUEUED)
    clock.advance(0)
    assert [t.state for t in ts[:3]] == [S.DOWNLOADING, S.DOWNLOADING, S.QUEUED]
    evaluations = queue.evaluations
    ts[0]._to(S.PAUSED)
    ts[1]._to(S.PAUSED)
    clock.advance(0)
    assert queue.evaluations == evaluations + 1  # two events, one decision
    assert looked == [ts[2].info_hash, ts[3].info_hash]
    assert sum(t.state is S.DOWNLOADING for t in ts) == 2


def test_order_ranks_and_ties() -> None:
    order = Order()
    order.add(b"b", 1.0)
    order.add(b"a", 1.0)  # a tie: by hash
    order.add(b"c", 0.5)
    assert list(order) == [b"c", b"a", b"b"]
    assert [order.rank(h) for h in (b"a", b"b", b"c")] == [1, 2, 0]
    order.add(b"c", 2.0)  # moved
    order.discard(b"a")
    assert list(order) == [b"b", b"c"] and len(order) == 2 and b"a" not in order
