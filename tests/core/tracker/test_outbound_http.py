"""The outbound policy on real sockets: a tiny HTTP service on loopback records whether btd's
HTTP tracker client reached it (issue 13 class 4, SSRF).

A host name that resolves to 127.0.0.1 is made with a reactor whose name resolver knows
``tracker.test`` (the connection is real; only the name lookup is ours), so the check of
the resolved address at connect time is exercised without touching /etc/hosts or DNS.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from btdtest import wait_fired as wait
from named_reactor import NamedReactor
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.util import redirectTo

from btd.core.bencode import encode
from btd.core.errors import TrackerError
from btd.core.tracker.codec import AnnounceRequest
from btd.core.tracker.http import HttpTrackerClient

OK = encode({b"interval": 900, b"peers": b""})


class LocalService(Resource):
    """Stands for Transmission's RPC, a router page...: records every request it gets."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[bytes] = []

    def render_GET(self, request: Any) -> bytes:
        self.paths.append(request.path)
        if request.path == b"/redirect/announce":
            return redirectTo(b"/transmission/rpc", request)
        return OK


@pytest.fixture(scope="module", autouse=True)
def _threads(reactor_threads: None) -> None:
    """Name resolution needs the reactor's thread pool (see tests/conftest.py)."""


@pytest.fixture
def service() -> Iterator[tuple[LocalService, int]]:
    svc = LocalService()
    port = reactor.listenTCP(0, Site(svc), interface="127.0.0.1")  # type: ignore[attr-defined]
    yield svc, port.getHost().port
    wait(port.stopListening())


def req(allow_local: bool = False) -> AnnounceRequest:
    return AnnounceRequest(
        info_hash=b"\x01" * 20,
        peer_id=b"-BT0100-" + b"x" * 12,
        port=6881,
        uploaded=0,
        downloaded=0,
        left=1,
        event="started",
        allow_local=allow_local,
    )


def error_of(d: Deferred[Any]) -> str:
    result = wait(d)
    assert isinstance(result, Failure), f"expected a refusal, got {result!r}"
    assert result.check(TrackerError), result.getTraceback()
    return str(result.value)


def test_a_local_service_is_not_asked(service: tuple[LocalService, int]) -> None:
    svc, port = service
    client = HttpTrackerClient(reactor)
    error = error_of(client.announce(f"http://127.0.0.1:{port}/transmission/rpc", req()))
    assert "SSRF" in error and "allow_local_trackers" in error
    assert svc.paths == []


def test_a_name_that_resolves_to_loopback_is_caught_at_connect_time(
    service: tuple[LocalService, int],
) -> None:
    svc, port = service
    client = HttpTrackerClient(NamedReactor({"tracker.test": "127.0.0.1"}))
    error = error_of(client.announce(f"http://tracker.test:{port}/transmission/rpc", req()))
    assert "resolves to 127.0.0.1" in error
    assert svc.paths == []  # connected, refused before a byte of the request was written
    # the same name with a tracker's path is a tracker on this machine: asked (libtorrent)
    assert not isinstance(
        wait(client.announce(f"http://tracker.test:{port}/announce", req())), Failure
    )
    assert svc.paths == [b"/announce"]


def test_the_torrent_option_allows_local_services(service: tuple[LocalService, int]) -> None:
    svc, port = service
    client = HttpTrackerClient(NamedReactor({"tracker.test": "127.0.0.1"}))
    for url in (f"http://127.0.0.1:{port}/tracker", f"http://tracker.test:{port}/t"):
        assert not isinstance(wait(client.announce(url, req(allow_local=True))), Failure)
    assert svc.paths == [b"/tracker", b"/t"]


def test_a_tracker_path_on_loopback_is_asked(service: tuple[LocalService, int]) -> None:
    svc, port = service
    client = HttpTrackerClient(reactor)
    assert not isinstance(
        wait(client.announce(f"http://127.0.0.1:{port}/announce", req())), Failure
    )
    assert not isinstance(
        wait(client.announce(f"http://127.0.0.1:{port}/x/announce.php?pk=1", req())), Failure
    )
    assert svc.paths == [b"/announce", b"/x/announce.php"]


def test_a_redirect_to_a_local_service_is_not_followed(service: tuple[LocalService, int]) -> None:
    svc, port = service
    client = HttpTrackerClient(reactor)
    error = error_of(client.announce(f"http://127.0.0.1:{port}/redirect/announce", req()))
    assert "SSRF" in error
    assert svc.paths == [b"/redirect/announce"]  # /transmission/rpc never asked


def test_ipv6_literal_tracker_urls_work() -> None:
    svc = LocalService()
    try:
        port = reactor.listenTCP(0, Site(svc), interface="::1")  # type: ignore[attr-defined]
    except CannotListenError:
        pytest.skip("no IPv6 loopback here")
    try:
        client = HttpTrackerClient(reactor)
        url = f"http://[::1]:{port.getHost().port}/announce"
        assert not isinstance(wait(client.announce(url, req())), Failure)
        assert svc.paths == [b"/announce"]
        error = error_of(client.announce(f"http://[::1]:{port.getHost().port}/rpc", req()))
        assert "::1 is a local address" in error
        assert svc.paths == [b"/announce"]
    finally:
        wait(port.stopListening())
