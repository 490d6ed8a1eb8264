"""PeerCandidates: whom to connect to next, with backoff, bans and reconnects."""

from __future__ import annotations

import random

from btd.core.swarm_peers import (
    MAX_CANDIDATES,
    MAX_FAILURES,
    RECONNECT_AFTER,
    RETRY_BASE,
    PeerCandidates,
)
from btd.core.types import PeerAddress

A: PeerAddress = ("127.0.0.1", 6881)
B: PeerAddress = ("127.0.0.1", 6882)


class Now:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make() -> tuple[PeerCandidates, Now]:
    now = Now()
    return PeerCandidates(now, rng=random.Random(3)), now


def drain(c: PeerCandidates) -> list[PeerAddress]:
    out = []
    while (a := c.next(exclude=set())) is not None:
        out.append(a)
    return out


def test_add_ignores_duplicates_bad_ports_and_keeps_a_bound() -> None:
    c, _ = make()
    assert c.add([A, A, ("127.0.0.1", 0), ("127.0.0.1", 65536), B]) == 2
    assert len(c) == 2
    assert c.add([("127.0.0.1", 10000 + k) for k in range(MAX_CANDIDATES)]) == MAX_CANDIDATES - 2
    assert len(c) == MAX_CANDIDATES


def test_next_marks_connecting_and_respects_exclude() -> None:
    c, now = make()
    c.add([A, B])
    assert c.next(exclude={A}) == B
    assert c.connecting == 1
    assert c.next(exclude={A}) is None  # B is being connected
    assert c.next(exclude=set()) == A
    c.connected(A)
    c.connected(B)
    assert c.connecting == 0
    assert drain(c) == []  # tried just now
    now.t += RECONNECT_AFTER
    assert sorted(drain(c)) == [A, B]


def test_failures_back_off_doubling_then_drop_the_address() -> None:
    c, now = make()
    c.add([A])
    for k in range(MAX_FAILURES - 1):
        assert c.next(exclude=set()) == A
        c.failed(A)
        wait = RETRY_BASE * 2**k
        now.t += wait - 1
        assert c.next(exclude=set()) is None, k
        now.t += 1
    assert c.next(exclude=set()) == A
    c.failed(A)  # the 5th failure: forgotten
    assert len(c) == 0
    now.t += 10_000
    assert c.next(exclude=set()) is None


def test_a_connection_resets_the_failure_count() -> None:
    c, now = make()
    c.add([A])
    for _ in range(3):
        c.next(exclude=set())
        c.failed(A)
        now.t += 10_000
    c.next(exclude=set())
    c.connected(A)
    c.disconnected(A, None)
    now.t += RECONNECT_AFTER
    c.next(exclude=set())
    c.failed(A)
    now.t += RETRY_BASE
    assert c.next(exclude=set()) == A  # back to the first step of the backoff


def test_failures_of_unknown_addresses_are_not_remembered() -> None:
    """Inbound connections that fail are not candidates: no backoff, no memory."""
    c, now = make()
    for _ in range(MAX_FAILURES - 2):
        c.failed(A)
    assert c.add([A]) == 1
    assert c.next(exclude=set()) == A
    c.failed(A)
    now.t += RETRY_BASE
    assert c.next(exclude=set()) == A  # the first failure's wait, not the fifth's


def test_ban_is_forever() -> None:
    c, now = make()
    c.add([A, B])
    c.next(exclude={B})
    c.ban(A, "corrupt data", peer_id=b"x" * 20)
    assert c.connecting == 0
    assert c.banned == {A: "corrupt data"} and b"x" * 20 in c.banned_peer_ids
    assert c.add([A]) == 0
    c.failed(A)
    c.disconnected(A, None)
    now.t += 100_000
    assert drain(c) == [B]


def test_disconnect_adds_the_listen_port_after_a_delay() -> None:
    c, now = make()
    inbound: PeerAddress = ("127.0.0.1", 51234)  # its ephemeral port
    c.disconnected(inbound, 7000)
    assert len(c) == 1
    assert c.next(exclude=set()) is None
    now.t += RECONNECT_AFTER
    assert c.next(exclude=set()) == ("127.0.0.1", 7000)


def test_disconnect_does_not_bring_back_a_banned_peer() -> None:
    c, now = make()
    inbound: PeerAddress = ("127.0.0.1", 51234)
    c.ban(inbound, "corrupt data")
    c.disconnected(inbound, 7000)
    assert ("127.0.0.1", 7000) in c.banned
    c.ban(("127.0.0.1", 7001), "ourselves")
    c.disconnected(("127.0.0.1", 51235), 7001)
    now.t += 100_000
    assert drain(c) == [] and len(c) == 0
