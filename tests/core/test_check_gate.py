"""The session-wide gate on torrent checks (core/check_gate.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from session_harness import HashingVerifier, content, make_session, result, single
from twisted.internet import defer

from btd.core.check_gate import CHECKS_AT_ONCE, CheckGate


def held(started: list[defer.Deferred[Any]]) -> Any:
    def start() -> defer.Deferred[Any]:
        started.append(defer.Deferred())
        return started[-1]

    return start


def never_stop() -> bool:
    return False


# -- the gate alone ------------------------------------------------------------------------
def test_at_most_limit_run_and_the_others_start_in_order() -> None:
    gate = CheckGate(2)
    started: list[defer.Deferred[Any]] = []
    order: list[int] = []
    outs = []
    for i in range(5):

        def start(i: int = i) -> defer.Deferred[Any]:
            order.append(i)
            started.append(defer.Deferred())
            return started[-1]

        outs.append(gate.run(start, never_stop))
    assert order == [0, 1] and gate.running == 2 and gate.waiting == 3
    started[1].callback("b")
    assert order == [0, 1, 2]
    started[0].callback("a")
    started[2].callback("c")
    assert order == [0, 1, 2, 3, 4]
    started[3].callback("d")
    started[4].errback(ValueError("bad"))
    got = []
    for d in outs:
        d.addBoth(got.append)
    assert got[:4] == ["a", "b", "c", "d"]
    assert got[4].check(ValueError)
    assert gate.running == 0 and gate.waiting == 0


def test_a_waiting_check_no_longer_wanted_never_starts() -> None:
    gate = CheckGate(1)
    started: list[defer.Deferred[Any]] = []
    gate.run(held(started), never_stop)
    stop = [False]
    waiting = gate.run(held(started), lambda: stop[0])
    stop[0] = True
    started[0].callback(None)
    assert len(started) == 1
    failures: list[Any] = []
    waiting.addErrback(failures.append)
    assert failures and failures[0].check(defer.CancelledError)
    assert gate.running == 0


def test_checks_that_end_at_once_do_not_nest() -> None:
    gate = CheckGate(1)
    first: list[defer.Deferred[Any]] = []
    gate.run(held(first), never_stop)
    depth = []
    outs = [gate.run(lambda: defer.succeed(len(depth)), never_stop) for _ in range(5000)]
    first[0].callback(None)  # 5,000 checks that end at once: a loop, not a recursion
    assert all(result(d) == 0 for d in outs)
    assert gate.running == 0 and gate.waiting == 0


def test_a_start_that_raises_frees_its_slot() -> None:
    gate = CheckGate(1)

    def boom() -> Any:
        raise OSError("disk")

    with pytest.raises(OSError):  # started at once: the caller sees it, as without the gate
        gate.run(boom, never_stop)
    assert gate.running == 0
    started: list[defer.Deferred[Any]] = []
    gate.run(held(started), never_stop)
    failures: list[Any] = []
    gate.run(boom, never_stop).addErrback(failures.append)  # started later: its failure
    started[0].callback(None)
    assert failures[0].check(OSError) and gate.running == 0


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CheckGate(0)


# -- in the session ------------------------------------------------------------------------
class HeldFiles(HashingVerifier):
    """Each check's first step (the stat of its files) waits until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[tuple[Any, defer.Deferred[Any]]] = []

    def check_files(self, storage: Any) -> Any:
        d: defer.Deferred[Any] = defer.Deferred()
        self.waiting.append((storage, d))
        return d

    def release(self) -> None:
        now, self.waiting = self.waiting, []
        for storage, d in now:
            d.callback(storage.check_files())


def test_adding_many_torrents_with_data_checks_a_few_at_once(tmp_path: Path) -> None:
    session = make_session(tmp_path, verifier=HeldFiles())
    assert session.check_gate.limit == CHECKS_AT_ONCE
    session.check_gate.limit = 4  # a small limit: a short test
    (tmp_path / "dl").mkdir()
    n = 4 + 6
    for i in range(n):
        data = content(20_000, 100 + i)
        (tmp_path / "dl" / f"f{i}.bin").write_bytes(data)
        result(session.add(single(f"f{i}.bin", data), paused=i == n - 1))
    torrents = list(session.torrents.values())
    assert all(t.state == "checking" for t in torrents)
    assert len(session.verifier.waiting) == 4  # not n
    result(torrents[-2].pause())  # still waiting for its turn: never checked
    while session.verifier.waiting:
        session.verifier.release()
        assert len(session.verifier.waiting) <= 4
    states = [t.state for t in torrents]
    assert states[:-2] == ["seeding"] * (n - 2)
    assert states[-2:] == ["paused", "paused"] and torrents[-1].complete
    assert len(session.verifier.rechecks) == n - 1  # all but the one paused while waiting
