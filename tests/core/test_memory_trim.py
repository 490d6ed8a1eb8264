"""Giving freed heap back after big control messages (core/memory_trim.py)."""

from __future__ import annotations

import json
import sys

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from btd.core import memory_trim
from btd.core.memory_trim import BIG, DELAY, MemoryTrim
from btd.core.rpc.peercred import PeerCred
from btd.core.rpc.server import ControlServer


def counting() -> tuple[MemoryTrim, Clock, list[int]]:
    clock = Clock()
    calls: list[int] = []
    return MemoryTrim(clock, lambda: calls.append(1)), clock, calls


def test_one_trim_a_while_after_a_big_message() -> None:
    trim, clock, calls = counting()
    trim.message(BIG)
    clock.advance(DELAY - 0.1)
    assert calls == []  # the reply leaves first
    clock.advance(0.1)
    assert calls == [1] and trim.trims == 1
    assert clock.getDelayedCalls() == []


def test_small_messages_never_trim() -> None:
    trim, clock, calls = counting()
    for _ in range(100):
        trim.message(BIG - 1)
    assert clock.getDelayedCalls() == []


def test_a_burst_of_big_messages_is_one_trim_then_the_next_burst_another() -> None:
    trim, clock, calls = counting()
    for _ in range(9):
        trim.message(10 * BIG)
        clock.advance(0.1)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(DELAY)
    assert calls == [1]
    trim.message(BIG)
    clock.advance(DELAY)
    assert calls == [1, 1]


def test_without_a_trim_function_nothing_is_scheduled() -> None:
    clock = Clock()
    trim = MemoryTrim(clock, None)
    trim.message(10 * BIG)
    assert clock.getDelayedCalls() == []


def test_cancel_drops_a_pending_trim() -> None:
    trim, clock, calls = counting()
    trim.message(BIG)
    trim.cancel()
    clock.advance(DELAY)
    assert calls == [] and clock.getDelayedCalls() == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_this_process_can_trim() -> None:
    fn = memory_trim._glibc_trim()
    if fn is None:
        pytest.skip("no malloc_trim in this C library")
    fn()  # returns nothing, raises nothing


def test_the_control_server_reports_request_and_reply_sizes() -> None:
    me = PeerCred(pid=1, uid=1000, gid=1000)
    server = ControlServer(
        {"echo": lambda text: text},
        clock=Clock(),
        our_uid=me.uid,
        peer_cred=lambda transport: me,
        groups_of=lambda uid, gid: [gid],
    )
    sizes: list[int] = []
    server.message_size = sizes.append
    proto = server.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    text = "x" * 1000
    line = json.dumps({"jsonrpc": "2.0", "method": "echo", "params": [text], "id": 1}).encode()
    proto.dataReceived(line + b"\n")
    reply = transport.value()
    assert sizes == [len(line), len(reply)]
