"""/events streams: the socket's notification format, filters, and a slow client dropped
once its backlog passes the cap (never buffered without bound)."""

from __future__ import annotations

import json
from typing import Any

from btd.plugins.http.events import EventHub, Stream


class FakeTransport:
    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True


class FakeChannel:
    def __init__(self) -> None:
        self.transport = FakeTransport()


class FakeRequest:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.channel = FakeChannel()
        self.finished = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def unregisterProducer(self) -> None:
        pass

    def finish(self) -> None:
        self.finished = True


def stream(hub: EventHub, kinds: Any = None) -> tuple[Stream, FakeRequest]:
    request = FakeRequest()
    s = Stream(hub, request, kinds)  # type: ignore[arg-type]
    hub.streams.add(s)
    return s, request


def test_each_event_is_one_data_line_of_the_socket_notification() -> None:
    hub = EventHub()
    _, everything = stream(hub)
    _, completed = stream(hub, frozenset({"completed"}))
    hub.publish("added", {"info_hash": "ab", "name": "n\nx"})
    hub.publish("completed", {"info_hash": "ab"})
    assert len(everything.written) == 2 and len(completed.written) == 1
    line = everything.written[0]
    assert line.startswith(b"data: ") and line.endswith(b"\n\n") and line.count(b"\n") == 2
    note = json.loads(line[6:])
    assert note == {
        "jsonrpc": "2.0",
        "method": "event",
        "params": {"event": "added", "info_hash": "ab", "name": "n\nx"},
    }


def test_a_client_that_stops_reading_is_dropped_at_the_cap() -> None:
    hub = EventHub(max_backlog=2000)  # about 20 events of ~110 bytes
    slow, request = stream(hub)
    fast, other = stream(hub)
    slow.pauseProducing()  # its transport buffer is full
    for _ in range(10):
        hub.publish("added", {"info_hash": "x" * 40})
    assert not request.channel.transport.aborted
    for _ in range(20):
        hub.publish("added", {"info_hash": "x" * 40})
    assert request.channel.transport.aborted and slow not in hub.streams
    assert len(request.written) < 25  # nothing more written once dropped
    assert fast in hub.streams and len(other.written) == 30


def test_a_client_that_catches_up_starts_afresh() -> None:
    hub = EventHub(max_backlog=1000)
    s, request = stream(hub)
    for _ in range(5):
        s.pauseProducing()
        for _ in range(8):
            hub.publish("added", {"info_hash": "x" * 40})
        s.resumeProducing()
    assert not request.channel.transport.aborted and len(request.written) == 40
    hub.close_all()
    assert request.finished and not hub.streams
