"""HttpTrackerClient against a real in-process twisted.web server on 127.0.0.1.

pytest has no Twisted plugin here, so `wait` turns the global reactor with
``reactor.iterate`` until a Deferred fires (bounded by a deadline; no sleeping).
The reactor is never run/stopped, so tests in other modules can share it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from btdtest import free_port
from btdtest import wait_fired as wait
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from btd.core.bencode import encode
from btd.core.errors import TrackerError
from btd.core.tracker.codec import AnnounceRequest
from btd.core.tracker.http import HttpTrackerClient

IH = bytes(range(236, 256))  # high bytes: not valid UTF-8, must survive byte-exactly
PID = b"-BT0100-" + b"\x00\xff%&=+ /?#ab"


def wait_error(d: Deferred[Any], deadline: float = 10.0) -> str:
    result = wait(d, deadline)
    assert isinstance(result, Failure), f"expected a failure, got {result!r}"
    assert result.check(TrackerError), result.getTraceback()
    return str(result.value)


class Tracker(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.uris: list[bytes] = []
        self.headers: list[dict[bytes, list[bytes]]] = []
        self.hanging: list[Any] = []

    def render_GET(self, request: Any) -> Any:
        self.uris.append(request.uri)
        self.headers.append(dict(request.requestHeaders.getAllRawHeaders()))
        path = request.path
        if path in (b"/announce", b"/p/announce"):
            peers = socket.inet_aton("127.0.0.1") + (6881).to_bytes(2, "big")
            peers += socket.inet_aton("127.0.0.2") + (6882).to_bytes(2, "big")
            return encode({b"interval": 900, b"complete": 2, b"incomplete": 1, b"peers": peers})
        if path == b"/scrape":
            files = {IH: {b"complete": 5, b"incomplete": 6, b"downloaded": 7}}
            return encode({b"files": files})
        if path == b"/failure/announce":
            return encode({b"failure reason": b"unregistered torrent"})
        if path == b"/garbage/announce":
            return b"<html><body>502 Bad Gateway</body></html>"
        if path == b"/big/announce":  # streamed, no Content-Length
            chunk = b"x" * 65536
            for _ in range(32):  # 2 MiB
                request.write(chunk)
            request.finish()
            return NOT_DONE_YET
        if path == b"/biglen/announce":
            request.setHeader(b"content-length", b"%d" % (2 << 20))
            request.write(b"d")
            self.hanging.append(request)
            return NOT_DONE_YET
        if path == b"/hang/announce":
            self.hanging.append(request)
            return NOT_DONE_YET
        request.setResponseCode(404)
        return b"not found"


@pytest.fixture(scope="module", autouse=True)
def _threads(reactor_threads: None) -> None:
    """Name resolution needs the reactor's thread pool (see tests/conftest.py)."""


@pytest.fixture
def server() -> Iterator[tuple[Tracker, str]]:
    tracker = Tracker()
    port = reactor.listenTCP(0, Site(tracker), interface="127.0.0.1")  # type: ignore[attr-defined]
    yield tracker, f"http://127.0.0.1:{port.getHost().port}"
    wait(port.stopListening())


def req(event: str = "started") -> AnnounceRequest:
    return AnnounceRequest(
        info_hash=IH, peer_id=PID, port=6881, uploaded=0, downloaded=0, left=100, event=event
    )


def test_announce_compact_answer(server: tuple[Tracker, str]) -> None:
    tracker, base = server
    client = HttpTrackerClient(reactor, user_agent="btd-test/1")
    resp = wait(client.announce(f"{base}/announce", req()))
    assert not isinstance(resp, Failure), resp
    assert resp.interval == 900
    assert (resp.complete, resp.incomplete) == (2, 1)
    assert resp.peers == (("127.0.0.1", 6881), ("127.0.0.2", 6882))
    (uri,) = tracker.uris
    params = dict(p.split(b"=", 1) for p in uri.split(b"?", 1)[1].split(b"&"))
    assert unquote_to_bytes(params[b"info_hash"]) == IH
    assert unquote_to_bytes(params[b"peer_id"]) == PID
    assert params[b"event"] == b"started"
    assert tracker.headers[0][b"User-Agent"] == [b"btd-test/1"]


def test_announce_keeps_passkey_query(server: tuple[Tracker, str]) -> None:
    tracker, base = server
    client = HttpTrackerClient(reactor)
    resp = wait(client.announce(f"{base}/p/announce?passkey=s%2Fecret", req("")))
    assert not isinstance(resp, Failure), resp
    assert tracker.uris[0].startswith(b"/p/announce?passkey=s%2Fecret&info_hash=")


def test_scrape(server: tuple[Tracker, str]) -> None:
    tracker, base = server
    client = HttpTrackerClient(reactor)
    assert wait(client.scrape(f"{base}/announce", IH)) == (5, 6, 7)
    assert tracker.uris[0].startswith(b"/scrape?info_hash=")
    assert "no scrape URL" in wait_error(client.scrape(f"{base}/tracker", IH))


def test_http_404(server: tuple[Tracker, str]) -> None:
    _, base = server
    client = HttpTrackerClient(reactor)
    assert wait_error(client.announce(f"{base}/nothing/announce", req())) == (
        "tracker answered HTTP 404"
    )


def test_failure_reason(server: tuple[Tracker, str]) -> None:
    _, base = server
    client = HttpTrackerClient(reactor)
    assert wait_error(client.announce(f"{base}/failure/announce", req())) == (
        "unregistered torrent"
    )


def test_garbage_body(server: tuple[Tracker, str]) -> None:
    _, base = server
    client = HttpTrackerClient(reactor)
    assert "not valid bencode" in wait_error(client.announce(f"{base}/garbage/announce", req()))


def test_streamed_body_over_max_body(server: tuple[Tracker, str]) -> None:
    _, base = server
    client = HttpTrackerClient(reactor)  # default cap: 1 MiB
    message = wait_error(client.announce(f"{base}/big/announce", req()))
    assert message == f"tracker answer is larger than {1 << 20} bytes"


def test_declared_length_over_max_body(server: tuple[Tracker, str]) -> None:
    tracker, base = server
    client = HttpTrackerClient(reactor, max_body=1000)
    message = wait_error(client.announce(f"{base}/biglen/announce", req()), deadline=5)
    assert message == "tracker answer is larger than 1000 bytes"
    (request,) = tracker.hanging
    wait(request.notifyFinish())  # we closed the connection instead of waiting for the body


def test_timeout(server: tuple[Tracker, str]) -> None:
    tracker, base = server
    client = HttpTrackerClient(reactor, timeout=0.5)
    start = time.monotonic()
    message = wait_error(client.announce(f"{base}/hang/announce", req()), deadline=5)
    assert message == "tracker timed out after 0.5 s"
    assert time.monotonic() - start < 4
    (request,) = tracker.hanging
    wait(request.notifyFinish())  # the connection was closed, not leaked


def test_cancel_closes_connection(server: tuple[Tracker, str]) -> None:
    tracker, base = server
    client = HttpTrackerClient(reactor)
    d = client.announce(f"{base}/hang/announce", req())
    end = time.monotonic() + 5
    while not tracker.hanging and time.monotonic() < end:
        reactor.iterate(0.01)  # type: ignore[attr-defined]
    d.cancel()
    assert wait_error(d) == "tracker request cancelled"
    wait(tracker.hanging[0].notifyFinish())


def test_connection_refused() -> None:
    closed_port = free_port()
    client = HttpTrackerClient(reactor, timeout=5)
    message = wait_error(client.announce(f"http://127.0.0.1:{closed_port}/announce", req()))
    assert message.startswith("tracker unreachable: ")
    assert "refused" in message.lower()


def test_unsupported_url_is_a_tracker_error() -> None:
    client = HttpTrackerClient(reactor)
    assert wait_error(client.announce("ftp://127.0.0.1:1/announce", req()))
