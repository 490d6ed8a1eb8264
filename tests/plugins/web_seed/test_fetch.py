"""Range requests against a real twisted.web server on 127.0.0.1: exact ranges, servers
that ignore Range, lie about it, send too much or too little, redirect, are busy, are
silent; the outbound policy before any request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from btdtest import wait_fired as wait
from named_reactor import NamedReactor
from twisted.internet import reactor
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from btd.plugins.web_seed.fetch import RangeFetcher, WebSeedError

BODY = bytes(range(256)) * 400  # 102400 bytes


class Files(Resource):
    """A file server with misbehaving corners; records every path and Range asked."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[bytes, bytes | None]] = []

    def render_GET(self, request: Any) -> Any:  # noqa: N802
        path = request.path
        rng = request.getHeader(b"range")
        self.asked.append((path, rng))
        if path == b"/file":  # a single range, as static.File answers it
            first, last = (int(x) for x in rng.decode().removeprefix("bytes=").split("-"))
            request.setResponseCode(206)
            request.setHeader(b"content-range", f"bytes {first}-{last}/{len(BODY)}".encode())
            return BODY[first : last + 1]
        if path == b"/whole":  # ignores Range
            return BODY
        if path == b"/liar":  # 206 for another range
            request.setResponseCode(206)
            request.setHeader(b"content-range", b"bytes 0-9/102400")
            return BODY[:10]
        if path == b"/chunked-more":  # 206 with the right header, then more bytes than asked
            request.setResponseCode(206)
            first, last = rng.decode().removeprefix("bytes=").split("-")
            request.setHeader(b"content-range", f"bytes {first}-{last}/102400".encode())
            request.write(BODY)  # no Content-Length: chunked, the whole body
            request.finish()
            return NOT_DONE_YET
        if path == b"/short":
            request.setResponseCode(206)
            first, last = rng.decode().removeprefix("bytes=").split("-")
            request.setHeader(b"content-range", f"bytes {first}-{last}/102400".encode())
            request.setHeader(b"content-length", str(int(last) - int(first) + 1).encode())
            request.write(BODY[:100])
            request.channel.transport.loseConnection()
            return NOT_DONE_YET
        if path == b"/busy":
            request.setResponseCode(503)
            request.setHeader(b"retry-after", b"12")
            return b"later"
        if path.startswith(b"/hop/"):
            n = int(path.rsplit(b"/", 1)[1])
            request.redirect(b"/hop/%d" % (n - 1) if n > 0 else b"/file")
            return b""
        if path == b"/silent":
            return NOT_DONE_YET
        if path == b"/stall":  # the headers and a few bytes, then nothing
            request.setResponseCode(206)
            request.setHeader(b"content-range", b"bytes 0-999/102400")
            request.setHeader(b"content-length", b"1000")
            request.write(BODY[:10])
            return NOT_DONE_YET
        request.setResponseCode(404)
        return b"no"


@pytest.fixture(scope="module", autouse=True)
def _threads(reactor_threads: None) -> None:
    """Name resolution runs on the reactor's thread pool (tests/conftest.py)."""


@pytest.fixture()
def server() -> Iterator[tuple[Files, str]]:
    res = Files()
    port = reactor.listenTCP(0, Site(res), interface="127.0.0.1")  # type: ignore[attr-defined]
    yield res, f"http://127.0.0.1:{port.getHost().port}"
    wait(port.stopListening())


def fetch(url: str, offset: int, length: int, **kw: Any) -> tuple[bytes, Any]:
    got = bytearray()
    fetcher = RangeFetcher(reactor, allow_local=kw.pop("allow_local", True), **kw)
    result = wait(fetcher.get(url, offset, length, got.extend).done)
    wait(fetcher.close())
    return bytes(got), result


def failed(url: str, offset: int, length: int, **kw: Any) -> tuple[bytes, WebSeedError]:
    got, result = fetch(url, offset, length, **kw)
    assert isinstance(result, Failure) and result.check(WebSeedError), result
    return got, result.value


def test_a_range_is_fetched_exactly(server: tuple[Files, str]) -> None:
    res, base = server
    got, result = fetch(f"{base}/file", 1000, 50_000)
    assert result is None and got == BODY[1000:51000]
    assert res.asked == [(b"/file", b"bytes=1000-50999")]


def test_a_whole_file_answer_is_cut_at_the_range_from_the_start(server: tuple[Files, str]) -> None:
    _, base = server
    got, result = fetch(f"{base}/whole", 0, 5000)
    assert result is None and got == BODY[:5000]


def test_a_whole_file_answer_further_in_is_refused_unread(server: tuple[Files, str]) -> None:
    _, base = server
    got, error = failed(f"{base}/whole", 100, 10)
    assert got == b"" and error.permanent and "ignores Range" in str(error)


def test_another_range_than_asked_is_refused(server: tuple[Files, str]) -> None:
    _, base = server
    got, error = failed(f"{base}/liar", 500, 10)
    assert got == b"" and error.permanent and "bytes 0-9/102400" in str(error)


def test_more_bytes_than_asked_are_cut(server: tuple[Files, str]) -> None:
    _, base = server
    got, result = fetch(f"{base}/chunked-more", 0, 3000)
    assert result is None and got == BODY[:3000]


def test_an_answer_cut_short_is_a_passing_failure(server: tuple[Files, str]) -> None:
    _, base = server
    got, error = failed(f"{base}/short", 0, 5000)
    assert got == BODY[:100] and not error.permanent and "after 100 of 5000 bytes" in str(error)


def test_a_missing_file_is_final_and_a_busy_server_says_when(server: tuple[Files, str]) -> None:
    _, base = server
    _, error = failed(f"{base}/nothing", 0, 10)
    assert error.permanent and str(error) == "HTTP 404"
    _, error = failed(f"{base}/busy", 0, 10)
    assert not error.permanent and error.retry_after == 12.0


def test_redirects_are_followed_up_to_the_cap(server: tuple[Files, str]) -> None:
    res, base = server
    got, result = fetch(f"{base}/hop/4", 10, 20)
    assert result is None and got == BODY[10:30]
    _, error = failed(f"{base}/hop/5", 10, 20)
    assert error.permanent and "too many redirects" in str(error)


def test_a_silent_server_times_out(server: tuple[Files, str]) -> None:
    _, base = server
    _, error = failed(f"{base}/silent", 0, 10, timeout=0.3)
    assert not error.permanent and "no data for 0.3 s" in str(error)


def test_a_local_seed_without_the_option_is_never_asked(server: tuple[Files, str]) -> None:
    res, base = server
    _, error = failed(f"{base}/file", 0, 10, allow_local=False)
    assert error.permanent and "SSRF" in str(error)
    assert res.asked == []


def test_a_name_that_resolves_to_a_local_address_is_caught_at_connect_time(
    server: tuple[Files, str],
) -> None:
    res, base = server
    url = base.replace("127.0.0.1", "mirror.test") + "/file"
    named = NamedReactor({"mirror.test": "127.0.0.1"})
    for allow_local in (False, True):
        got = bytearray()
        fetcher = RangeFetcher(named, allow_local=allow_local)
        result = wait(fetcher.get(url, 0, 10, got.extend).done)
        wait(fetcher.close())
        if not allow_local:
            assert isinstance(result, Failure) and result.check(WebSeedError)
            assert result.value.permanent and "resolves to 127.0.0.1" in str(result.value)
            assert res.asked == []  # connected, refused before a byte was written
        else:
            assert result is None and got == BODY[:10]
    assert res.asked == [(b"/file", b"bytes=0-9")]


def test_pause_and_resume(server: tuple[Files, str]) -> None:
    _, base = server
    got = bytearray()
    fetcher = RangeFetcher(reactor, allow_local=True)
    request = fetcher.get(f"{base}/file", 0, len(BODY), got.extend)
    request.pause()
    request.resume()
    assert wait(request.done) is None and got == BODY
    wait(fetcher.close())


def test_connections_dropped_by_a_cancel_or_an_error_are_not_reused(
    server: tuple[Files, str],
) -> None:
    _, base = server
    got = bytearray()
    fetcher = RangeFetcher(reactor, allow_local=True, timeout=5)
    stalled = fetcher.get(f"{base}/stall", 0, 1000, got.extend)
    missing = fetcher.get(f"{base}/nothing", 0, 10, got.extend)
    assert isinstance(wait(missing.done), Failure)
    stalled.cancel("not wanted any more")
    assert isinstance(wait(stalled.done), Failure)
    for i in range(4):  # each on a pooled connection or a new one, never a dead one
        got.clear()
        assert wait(fetcher.get(f"{base}/file", i * 1000, 5000, got.extend).done) is None
        assert got == BODY[i * 1000 : i * 1000 + 5000]
    wait(fetcher.close())
