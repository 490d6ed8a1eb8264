"""PeerCandidates: whom to connect to next, with backoff, bans and reconnects; why
connections ended."""

from __future__ import annotations

import random

import pytest

from btd.core.peer_slots import INACTIVE_REASON, REPLACED_REASON
from btd.core.swarm_peers import (
    DISCONNECT_REASONS,
    MAX_CANDIDATES,
    MAX_FAILURES,
    RECONNECT_AFTER,
    REDUNDANT_RETRY,
    RETRY_BASE,
    DisconnectCounts,
    PeerCandidates,
    classify,
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


def test_a_clean_end_of_a_connection_resets_the_failure_count() -> None:
    c, now = make()
    c.add([A])
    for _ in range(3):
        c.next(exclude=set())
        c.failed(A)
        now.t += 10_000
    c.next(exclude=set())
    c.connected(A)
    c.disconnected(A, None, "Connection was closed cleanly.")
    now.t += RECONNECT_AFTER
    c.next(exclude=set())
    c.failed(A)
    now.t += RETRY_BASE
    assert c.next(exclude=set()) == A  # back to the first step of the backoff


def test_repeated_protocol_errors_back_off_further() -> None:
    c, now = make()
    c.add([A])
    for k in range(2):
        assert c.next(exclude=set()) == A
        c.connected(A)
        assert c.disconnected(A, None, "protocol error: have index 99") == "protocol_error"
        now.t += RETRY_BASE * 2**k - 1
        assert c.next(exclude=set()) is None, k
        now.t += 1


@pytest.mark.parametrize(
    ("reason", "key", "wait"),
    [
        ("torrent stopped", "left", 0.0),
        ("Connection was closed cleanly.", "closed_by_peer", RECONNECT_AFTER),
        ("both seeding", "redundant", REDUNDANT_RETRY),
        ("idle for 120 s", "timeout", RETRY_BASE),
        (INACTIVE_REASON.format(seconds=600), "inactive", REDUNDANT_RETRY),
        (REPLACED_REASON, "replaced", REDUNDANT_RETRY),
        ("protocol error: bad", "protocol_error", RETRY_BASE),
    ],
)
def test_when_an_address_is_dialled_again_depends_on_why_it_left(
    reason: str, key: str, wait: float
) -> None:
    c, now = make()
    c.add([A])
    c.next(exclude=set())
    c.connected(A)
    assert c.disconnected(A, None, reason) == key
    if wait:
        now.t += wait - 0.5
        assert c.next(exclude=set()) is None
        now.t += 0.5
    assert c.next(exclude=set()) == A


def test_a_known_address_named_again_is_ready_at_once_unless_it_failed() -> None:
    c, now = make()
    c.add([A, B])
    c.next(exclude={B})
    c.connected(A)
    c.disconnected(A, None, "Connection was closed cleanly.")
    c.next(exclude={A})
    c.failed(B)
    assert c.add([A, B]) == 1  # A again (a tracker's reply); B still backs off
    assert drain(c) == [A]
    assert c.add([B], retry=True) == 1  # the user insists
    assert drain(c) == [B]
    assert c.add([A]) == 0  # being connected: nothing to do


def test_classify_and_count() -> None:
    assert classify("sent corrupt data") == "banned"
    assert classify("no handshake within 10 s") == "timeout"
    assert classify("no room for this peer (limit reached or already connected)") == "refused"
    assert classify("Connection to the other side was lost") == "closed_by_peer"
    totals = DisconnectCounts()
    a, b = DisconnectCounts(totals), DisconnectCounts(totals)
    assert a.as_dict() == dict.fromkeys(DISCONNECT_REASONS, 0)
    a.count("left")
    b.count("left")
    b.count("timeout")
    assert a.as_dict()["left"] == 1 and b.as_dict()["timeout"] == 1
    assert totals.as_dict()["left"] == 2 and sum(totals.as_dict().values()) == 3
    assert set(totals.as_dict()) == set(DISCONNECT_REASONS)


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
    c.disconnected(A, None, "Connection lost")
    now.t += 100_000
    assert drain(c) == [B]


def test_disconnect_adds_the_listen_port() -> None:
    c, now = make()
    inbound: PeerAddress = ("127.0.0.1", 51234)  # its ephemeral port
    c.disconnected(inbound, 7000, "Connection was closed cleanly.")
    assert len(c) == 1
    assert c.next(exclude=set()) is None
    now.t += RECONNECT_AFTER
    assert c.next(exclude=set()) == ("127.0.0.1", 7000)
    c, now = make()
    c.disconnected(inbound, 7000, "torrent stopped")  # we left: back at once on resume
    assert c.next(exclude=set()) == ("127.0.0.1", 7000)


def test_disconnect_does_not_bring_back_a_banned_peer() -> None:
    c, now = make()
    inbound: PeerAddress = ("127.0.0.1", 51234)
    c.ban(inbound, "corrupt data")
    c.disconnected(inbound, 7000, "sent corrupt data")
    assert ("127.0.0.1", 7000) in c.banned
    c.ban(("127.0.0.1", 7001), "ourselves")
    c.disconnected(("127.0.0.1", 51235), 7001, "connected to ourselves")
    now.t += 100_000
    assert drain(c) == [] and len(c) == 0


def test_a_peer_heard_in_another_swarm_keeps_its_id_until_it_is_dropped() -> None:
    """A hybrid's v2 swarm (BEP 52): the tag sticks when the peer is heard untagged too,
    and goes with the candidate (a ban, too many failures), so tags stay bounded."""
    c, now = make()
    v2 = b"\x22" * 20
    assert c.add([A], swarm_id=v2) == 1
    c.add([A, B])  # A heard in the v1 swarm too: still dialled with the v2 id
    assert (c.swarm_id(A), c.swarm_id(B)) == (v2, None)
    c.ban(A, "corrupt data")
    assert c.swarm_id(A) is None
    c.add([B], swarm_id=v2)
    for _ in range(MAX_FAILURES):
        assert c.next(exclude=set()) == B
        c.failed(B)
        now.t += RETRY_BASE * 2**MAX_FAILURES
    assert len(c) == 0 and c.swarm_id(B) is None
