"""Fakes of the web_seed plugin's HTTP side (plugins/web_seed/fetch.py) for the tests of
its link and its bookkeeping, around the torrent of tests/torrent_harness.py."""

from __future__ import annotations

from typing import Any

from torrent_harness import CONTENT, FILE_SIZES, TORRENT_NAME
from twisted.internet import defer

from btd.plugins.web_seed.fetch import WebSeedError

BASE = "http://ws.example/seed/"
FILE_START = {f"{BASE}{TORRENT_NAME}/a.bin": 0, f"{BASE}{TORRENT_NAME}/b.bin": FILE_SIZES[0][1]}


class FakeRequest:
    def __init__(self, url: str, offset: int, length: int, sink: Any) -> None:
        self.url, self.offset, self.length, self.sink = url, offset, length, sink
        self.done: defer.Deferred[None] = defer.Deferred()
        self.paused = False
        self.cancelled = False

    def serve(self, data: bytes = CONTENT, *, upto: int | None = None) -> None:
        """Give the asked bytes of the file (from ``data``, the torrent's stream)."""
        start = FILE_START[self.url] + self.offset
        self.sink(data[start : start + (self.length if upto is None else upto)])
        if upto is None and not self.done.called:
            self.done.callback(None)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def cancel(self) -> None:
        self.cancelled = True
        if not self.done.called:
            self.done.errback(WebSeedError("cancelled"))


class FakeFetcher:
    def __init__(self) -> None:
        self.requests: list[FakeRequest] = []
        self.closed = False

    def get(self, url: str, offset: int, length: int, sink: Any) -> FakeRequest:
        request = FakeRequest(url, offset, length, sink)
        self.requests.append(request)
        return request

    def open(self) -> list[FakeRequest]:
        return [r for r in self.requests if not r.done.called]

    def close(self) -> None:
        self.closed = True
