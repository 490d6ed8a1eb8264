"""Fetching .torrent URLs (``torrent.add_url``) against a real twisted.web server on
127.0.0.1: the cap, redirects, magnets, the local-address policy and clear errors."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
from btdtest import wait_fired as wait
from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.internet.error import CannotListenError
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from btd.core.bencode import encode
from btd.core.rpc.errors import INVALID_PARAMS, INVALID_TORRENT, PLUGIN_ERROR, RpcError
from btd.plugins.http.url_fetch import Fetched, FetchError, FetchPolicy, UrlFetcher, add_url_method

TORRENT = encode({b"info": {b"name": b"x", b"length": 1, b"piece length": 16384}})
MAGNET = "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=m"
CHUNK = b"d" + b"x" * 65535


class Indexer(Resource):
    """Stands for Prowlarr/Jackett: records each path asked."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[bytes] = []
        self.chunks_sent = 0
        self.stream_closed = False

    def render_GET(self, request: Any) -> Any:
        path = request.path
        self.paths.append(path)
        if path == b"/x.torrent":
            request.setHeader(b"content-type", b"application/x-bittorrent")
            return TORRENT
        if path.startswith(b"/hop/"):  # /hop/N redirects N times, then the torrent
            n = int(path.rsplit(b"/", 1)[1])
            request.redirect(b"/hop/%d" % (n - 1) if n > 0 else b"/x.torrent")
            return b""
        if path == b"/magnet":
            request.redirect(MAGNET.encode())
            return b""
        if path == b"/page":
            request.setHeader(b"content-type", b"text/html")
            return b"<html>login first</html>"
        if path == b"/huge-length":
            request.setHeader(b"content-length", b"%d" % (1 << 30))
            request.write(b"d")
            return NOT_DONE_YET  # never finished: the client must not wait for it
        if path == b"/stream":  # chunked, no length: 1000 chunks of 64 KiB if all are read
            request.notifyFinish().addErrback(lambda _: setattr(self, "stream_closed", True))
            self._stream(request)
            return NOT_DONE_YET
        if path == b"/silent":
            return NOT_DONE_YET
        request.setResponseCode(404)
        return b"no"

    def _stream(self, request: Any) -> None:
        if self.stream_closed or self.chunks_sent >= 1000:
            if not self.stream_closed:
                request.finish()
            return
        request.write(CHUNK)
        self.chunks_sent += 1
        reactor.callLater(0, self._stream, request)  # type: ignore[attr-defined]


@pytest.fixture(scope="module", autouse=True)
def _threads(reactor_threads: None) -> None:
    """Name resolution runs on the reactor's thread pool (tests/conftest.py)."""


@pytest.fixture()
def indexer() -> Iterator[tuple[Indexer, str]]:
    res = Indexer()
    port = reactor.listenTCP(0, Site(res), interface="127.0.0.1")  # type: ignore[attr-defined]
    yield res, f"http://127.0.0.1:{port.getHost().port}"
    wait(port.stopListening())


def fetched(d: Any) -> Fetched:
    result = wait(d)
    assert isinstance(result, Fetched), result
    return result


def failed(d: Any) -> FetchError:
    result = wait(d)
    assert isinstance(result, Failure), f"expected a failure, got {result!r}"
    assert result.check(FetchError), result.getTraceback()
    return result.value


def test_a_torrent_is_fetched(indexer: tuple[Indexer, str]) -> None:
    _, base = indexer
    assert fetched(UrlFetcher(reactor, allow_local=True).fetch(f"{base}/x.torrent")).metainfo == (
        TORRENT
    )


def test_redirects_are_followed_up_to_the_cap(indexer: tuple[Indexer, str]) -> None:
    res, base = indexer
    fetcher = UrlFetcher(reactor, allow_local=True, redirects=5)
    assert fetched(fetcher.fetch(f"{base}/hop/4")).metainfo == TORRENT  # 5 redirects
    res.paths.clear()
    error = failed(fetcher.fetch(f"{base}/hop/5"))
    assert error.message == "url: more than 5 redirects" and error.code == PLUGIN_ERROR
    assert len(res.paths) == 6 and b"/x.torrent" not in res.paths


def test_a_redirect_to_a_magnet_is_the_magnet(indexer: tuple[Indexer, str]) -> None:
    _, base = indexer
    assert fetched(UrlFetcher(reactor, allow_local=True).fetch(f"{base}/magnet")).magnet == MAGNET


def test_a_big_length_is_refused_unread(indexer: tuple[Indexer, str]) -> None:
    _, base = indexer
    error = failed(UrlFetcher(reactor, allow_local=True).fetch(f"{base}/huge-length"))
    assert error.code == INVALID_TORRENT and "larger than 10000000 bytes" in error.message


def test_a_big_stream_is_cut_at_the_cap(indexer: tuple[Indexer, str]) -> None:
    res, base = indexer
    fetcher = UrlFetcher(reactor, allow_local=True, max_size=1 << 20)
    error = failed(fetcher.fetch(f"{base}/stream"))
    assert "larger than 1048576 bytes" in error.message
    deadline = time.monotonic() + 10  # the server learns of the close on a later turn
    while not res.stream_closed and time.monotonic() < deadline:
        reactor.iterate(0.01)  # type: ignore[attr-defined]
    assert (
        res.stream_closed and res.chunks_sent < 100
    )  # 64 MiB were on offer; ~1 MiB (and socket buffers) read


def test_errors_say_why(indexer: tuple[Indexer, str]) -> None:
    _, base = indexer
    fetcher = UrlFetcher(reactor, allow_local=True)
    error = failed(fetcher.fetch(f"{base}/page"))
    assert error.code == INVALID_TORRENT
    assert error.message == "url: not a .torrent file (the server answered text/html, 24 bytes)"
    assert failed(fetcher.fetch(f"{base}/nothing")).message == "url: the server answered HTTP 404"
    for bad in ("ftp://127.0.0.1/x.torrent", "file:///etc/passwd", "/x.torrent", "", None):
        error = failed(fetcher.fetch(bad))
        assert error.code == INVALID_PARAMS and error.data == {"field": "url"}, bad
    closed = failed(fetcher.fetch("http://127.0.0.1:1/x.torrent"))
    assert closed.message.startswith("url: cannot fetch: ") and closed.code == PLUGIN_ERROR


def test_a_silent_server_times_out(indexer: tuple[Indexer, str]) -> None:
    _, base = indexer
    error = failed(UrlFetcher(reactor, allow_local=True, timeout=0.3).fetch(f"{base}/silent"))
    assert error.message == "url: no answer within 0.3 s"


def test_local_addresses_are_refused_unless_allowed(indexer: tuple[Indexer, str]) -> None:
    res, base = indexer
    port = base.rsplit(":", 1)[1]
    fetcher = UrlFetcher(reactor, allow_local=False)
    for url in (f"{base}/x.torrent", f"http://localhost:{port}/x.torrent"):
        error = failed(fetcher.fetch(url))
        assert error.code == INVALID_PARAMS
        assert "SSRF" in error.message and "fetch_local_urls" in error.message, error.message
    assert res.paths == []  # never asked


def test_link_local_is_never_fetched() -> None:
    fetcher = UrlFetcher(reactor, allow_local=True)
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x"):
        error = failed(fetcher.fetch(url))
        assert "link-local, never fetched" in error.message, url


def test_a_public_server_cannot_redirect_to_the_lan() -> None:
    """The policy of one fetch: what GuardedEndpoints asks of it, hop by hop."""
    policy = FetchPolicy(allow_local=True)
    assert policy.check_url("http://indexer.example/dl/1").refused is None
    assert policy.refused_address("93.184.216.34", True) is None  # the first hop: public
    refused = policy.check_url("http://192.168.1.1/reboot").refused
    assert refused is not None and "redirect from a public address" in refused
    verdict = policy.check_url("http://lan.example/x")  # a name: judged at connect time
    assert verdict.refused is None and not verdict.local_ok
    assert policy.refused_address("10.0.0.1", verdict.local_ok) is not None
    # a first hop on the LAN (Prowlarr) may redirect on the LAN
    policy = FetchPolicy(allow_local=True)
    verdict = policy.check_url("http://prowlarr:9696/1/download")
    assert policy.refused_address("192.168.1.5", verdict.local_ok) is None
    assert policy.check_url("http://192.168.1.6/x.torrent").local_ok
    assert policy.refused_address("169.254.169.254", True) is not None


def test_too_many_at_once(indexer: tuple[Indexer, str]) -> None:
    _, base = indexer
    fetcher = UrlFetcher(reactor, allow_local=True, max_running=1, timeout=0.3)
    first = fetcher.fetch(f"{base}/silent")
    error = failed(fetcher.fetch(f"{base}/x.torrent"))
    assert "1 URLs are being fetched" in error.message
    failed(first)
    assert fetched(fetcher.fetch(f"{base}/x.torrent")).metainfo == TORRENT


def test_add_url_hands_the_torrent_to_torrent_add(indexer: tuple[Indexer, str]) -> None:
    _, base = indexer
    calls: list[dict[str, Any]] = []

    def torrent_add(**params: Any) -> Any:
        calls.append(params)
        return succeed({"info_hash": "ab" * 20, "name": "x", "added": True})

    fetcher = UrlFetcher(reactor, allow_local=True)
    add_url = add_url_method(lambda: fetcher, lambda: {"torrent.add": torrent_add})
    assert wait(add_url(f"{base}/x.torrent", paused=True, labels=["tv"]))["added"] is True
    assert calls[-1] == {
        "metainfo": base64.b64encode(TORRENT).decode(),
        "paused": True,
        "labels": ["tv"],
    }
    wait(add_url(f"{base}/magnet", save_path="/srv"))
    assert calls[-1] == {"magnet": MAGNET, "save_path": "/srv"}
    bad = wait(add_url(f"{base}/x.torrent", metainfo="ZGU="))
    assert isinstance(bad, Failure) and bad.check(RpcError)
    assert bad.value.data == {"field": "metainfo"} and len(calls) == 2


def test_ipv6_literals_and_non_ascii_paths() -> None:
    res = Indexer()
    try:
        port = reactor.listenTCP(0, Site(res), interface="::1")  # type: ignore[attr-defined]
    except CannotListenError:
        pytest.skip("no IPv6 loopback here")
    try:
        fetcher = UrlFetcher(reactor, allow_local=True)
        url = f"http://[::1]:{port.getHost().port}/x.torrent"
        assert fetched(fetcher.fetch(url)).metainfo == TORRENT
        assert (
            "::1 is a local address"
            in failed(UrlFetcher(reactor, allow_local=False).fetch(url)).message
        )
    finally:
        wait(port.stopListening())


def test_a_non_ascii_path_is_encoded(indexer: tuple[Indexer, str]) -> None:
    res, base = indexer
    failed(UrlFetcher(reactor, allow_local=True).fetch(f"{base}/é.torrent?q=ü"))  # 404 here
    assert res.paths == [b"/%C3%A9.torrent"]
