"""notify_webhook: settings, the back-off schedule on a Clock, and real POSTs to an
in-process twisted.web server on 127.0.0.1.

pytest has no Twisted plugin here, so ``spin`` turns the global reactor with
``reactor.iterate`` until a condition holds (bounded by a deadline; no sleeping).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet import defer, reactor
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from btd.core.errors import ConfigError
from btd.core.events import EVENT_KINDS, TorrentEvent
from btd.core.plugin import make_plugin_manager
from btd.plugins.notify_webhook import (
    MAX_PENDING,
    Target,
    WebhookSender,
    event_body,
    parse_settings,
)

IH = "cd" * 20
HOSTILE = 'it\'s "quoted"; $(touch pwned) `x`\n\u00e9\u2603'


def event(kind: str = "completed", name: str = "debian.iso", **data: Any) -> TorrentEvent:
    return TorrentEvent(kind, IH, name, "/srv/dl", dict(data))


class Logs:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.logger = Logger(namespace="test", observer=self.events.append)

    def text(self) -> str:
        return "\n".join(formatEvent(e) for e in self.events)


# -- settings --------------------------------------------------------------------------


def test_settings_defaults_and_full() -> None:
    assert parse_settings(None) == ()
    first, second = parse_settings(
        {
            "urls": [
                {"url": "http://127.0.0.1:8080/hook"},
                {"url": "https://example.org/x?a=1", "events": ["completed"], "timeout": 2,
                 "retries": 0, "backoff": 0.5, "headers": {"Authorization": "Bearer t", "X-N": 1}},
            ]
        }
    )  # fmt: skip
    assert first == Target("http://127.0.0.1:8080/hook", frozenset(EVENT_KINDS), 10.0, 3, 1.0, ())
    assert second == Target("https://example.org/x?a=1", frozenset({"completed"}), 2.0, 0, 0.5,
                            (("Authorization", "Bearer t"), ("X-N", "1")))  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "key", "words"),
    [
        ({"urls": [{"url": "ftp://example.org/"}]}, "urls[0].url", "http:// or https://"),
        ({"urls": [{"url": "http:///nohost"}]}, "urls[0].url", "with a host"),
        ({"urls": [{"url": "http://h:99999/"}]}, "urls[0].url", "not a valid URL"),
        ({"urls": [{"url": "http://h/a b"}]}, "urls[0].url", "spaces"),
        ({"urls": [{"url": 5}]}, "urls[0].url", "http://"),
        ({"urls": [{}]}, "urls[0].url", "required"),
        ({"urls": [{"url": "http://h/", "events": ["nope"]}]}, "urls[0].events[0]", "unknown event"),
        ({"urls": [{"url": "http://h/", "timeout": -1}]}, "urls[0].timeout", "> 0"),
        ({"urls": [{"url": "http://h/", "retries": -1}]}, "urls[0].retries", ">= 0"),
        ({"urls": [{"url": "http://h/", "retries": 1.5}]}, "urls[0].retries", ">= 0"),
        ({"urls": [{"url": "http://h/", "backoff": 0}]}, "urls[0].backoff", "> 0"),
        ({"urls": [{"url": "http://h/", "headers": {"Bad Name": "x"}}]},
         "urls[0].headers.Bad Name", "header name"),
        ({"urls": [{"url": "http://h/", "headers": {"X": "a\r\nInjected: 1"}}]},
         "urls[0].headers.X", "line breaks"),
        ({"urls": [{"url": "http://h/", "method": "GET"}]}, "urls[0].method", "unknown key"),
        ({"urls": "http://h/"}, "urls", "a list"),
        ({"url": "http://h/"}, "url", "unknown key"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_key(raw: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(raw)
    assert info.value.key == f"plugins.notify_webhook.{key}"
    assert words in info.value.reason


def test_configure_through_the_plugin_manager() -> None:
    raw = {"urls": [{"url": "gopher://h/"}]}
    host = make_plugin_manager({"notify_webhook": raw})
    with pytest.raises(ConfigError) as info:
        host.configure(SimpleNamespace(plugins={"notify_webhook": raw}))
    assert info.value.key == "plugins.notify_webhook.urls[0].url"


def test_event_body() -> None:
    body = json.loads(event_body(event("error", name=HOSTILE, message="x"), 1700000000.5))
    assert body == {"event": "error", "info_hash": IH, "name": HOSTILE, "save_path": "/srv/dl",
                    "data": {"message": "x"}, "time": 1700000000.5}  # fmt: skip


# -- back-off schedule on a Clock ---------------------------------------------------------


class FakePost:
    """Answers attempts from a script: an int status or an exception; records the times."""

    def __init__(self, clock: Clock, script: list[Any]) -> None:
        self.clock = clock
        self.script = list(script)
        self.calls: list[tuple[float, str, dict[str, str], bytes, float]] = []
        self.hanging: list[defer.Deferred[int]] = []

    def __call__(self, url: str, headers: Any, body: bytes, timeout: float) -> defer.Deferred[int]:
        self.calls.append((self.clock.seconds(), url, dict(headers), body, timeout))
        answer = self.script.pop(0) if self.script else 200
        if answer == "hang":
            d: defer.Deferred[int] = defer.Deferred()
            self.hanging.append(d)
            return d
        if isinstance(answer, Exception):
            return defer.fail(answer)
        return defer.succeed(answer)

    def times(self) -> list[float]:
        return [c[0] for c in self.calls]


def sender(script: list[Any], **target: Any) -> tuple[WebhookSender, Clock, FakePost, Logs]:
    clock = Clock()
    post = FakePost(clock, script)
    logs = Logs()
    t = Target(**{"url": "http://127.0.0.1:1/hook", **target})
    s = WebhookSender((t,), clock, post=post, wall=lambda: 42.0, log=logs.logger)
    return s, clock, post, logs


def test_backoff_schedule_on_connection_errors_and_5xx() -> None:
    refused = ConnectionRefusedError()
    s, clock, post, logs = sender([refused, 500, 503, refused], retries=3, backoff=1.0)
    s.notify(event())
    for _ in range(20):
        clock.advance(0.5)
    assert post.times() == [0.0, 1.0, 3.0, 7.0]  # 1 s, 2 s, 4 s between attempts
    assert not s.pending
    assert "giving up after 4 attempt(s)" in logs.text()


def test_backoff_base_is_configurable_and_success_stops_retrying() -> None:
    s, clock, post, logs = sender([502, 502, 204], retries=5, backoff=0.25)
    s.notify(event())
    clock.advance(0.25)
    clock.advance(0.5)
    clock.advance(10)
    assert post.times() == [0.0, 0.25, 0.75]
    assert not s.pending and "giving up" not in logs.text()


def test_4xx_is_not_retried() -> None:
    s, clock, post, logs = sender([404], retries=3)
    s.notify(event())
    clock.advance(100)
    assert post.times() == [0.0]
    assert "HTTP 404 (not retried after 1 attempt(s))" in logs.text()


def test_request_shape_and_matching() -> None:
    s, _, post, _ = sender([], events=frozenset({"completed"}), timeout=3.0,
                               headers=(("Authorization", "Bearer t"),))  # fmt: skip
    s.notify(event("paused"))
    assert post.calls == []
    s.notify(event("completed", name=HOSTILE))
    ((_, url, headers, body, timeout),) = post.calls
    assert (url, timeout) == ("http://127.0.0.1:1/hook", 3.0)
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer t"
    assert headers["User-Agent"].startswith("btd/")
    assert json.loads(body)["name"] == HOSTILE and json.loads(body)["time"] == 42.0


def test_events_before_start_are_sent_on_start() -> None:
    clock = Clock()
    post = FakePost(clock, [])
    s = WebhookSender((Target("http://127.0.0.1:1/"),), post=post, log=Logs().logger)
    s.notify(event("added"))
    assert post.calls == []
    s.start(clock)
    assert [json.loads(c[3])["event"] for c in post.calls] == ["added"]


def test_deliveries_in_progress_are_bounded() -> None:
    s, _, post, logs = sender(["hang"] * (MAX_PENDING + 5))
    for _ in range(MAX_PENDING + 5):
        s.notify(event())
    assert len(post.calls) == MAX_PENDING == len(s.pending)
    assert logs.text().count("dropped") == 5


def test_stop_waits_for_posts_in_flight() -> None:
    s, clock, post, _ = sender(["hang"])
    s.notify(event())
    done: list[Any] = []
    s.stop(5).addBoth(done.append)
    s.notify(event())  # stopping: nothing new is sent
    assert not done and len(post.calls) == 1
    post.hanging[0].callback(200)
    assert done == [None] and not clock.getDelayedCalls()


def test_stop_gives_up_after_its_bound() -> None:
    s, clock, post, logs = sender(["hang", 500], retries=3)
    s.notify(event())
    s.notify(event("paused"))  # second delivery: 500, then waits 1 s to retry
    done: list[Any] = []
    s.stop(5).addBoth(done.append)
    assert not done
    clock.advance(1)  # the retry finds the sender stopping and gives up
    assert len(post.calls) == 3
    clock.advance(4)
    assert done == [None] and not s.pending
    assert "abandoned" in logs.text()
    assert not clock.getDelayedCalls()


def test_stop_cancels_a_pending_retry_wait() -> None:
    s, clock, post, logs = sender([500], retries=3, backoff=60)
    s.notify(event())
    done: list[Any] = []
    s.stop(5).addBoth(done.append)
    clock.advance(5)
    assert done == [None] and len(post.calls) == 1
    assert "abandoned: btd is stopping" in logs.text()


# -- real HTTP on 127.0.0.1 ---------------------------------------------------------------


def spin(until: Any, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not until() and time.monotonic() < end:
        reactor.iterate(0.01)  # type: ignore[attr-defined]
    assert until(), f"condition not reached within {deadline} s"


class Hook(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[SimpleNamespace] = []
        self.hanging: list[Any] = []
        self.flaky = 1  # /flaky answers 500 this many times, then 200

    def render_POST(self, request: Any) -> Any:
        self.posts.append(SimpleNamespace(
            path=request.path, body=request.content.read(),
            type=request.getHeader(b"content-type"), auth=request.getHeader(b"authorization"),
        ))  # fmt: skip
        if request.path == b"/ok":
            request.setResponseCode(204)
            return b""
        if request.path == b"/flaky":
            if self.flaky:
                self.flaky -= 1
                request.setResponseCode(500)
                return b"try later"
            return b"ok"
        if request.path == b"/hang":
            self.hanging.append(request)
            return NOT_DONE_YET
        request.setResponseCode(404)
        return b"no such hook"


@pytest.fixture(scope="module", autouse=True)
def _threads(reactor_threads: None) -> None:
    """Name resolution needs the reactor's thread pool (see tests/conftest.py)."""


@pytest.fixture
def server() -> Iterator[tuple[Hook, str]]:
    hook = Hook()
    port = reactor.listenTCP(0, Site(hook), interface="127.0.0.1")  # type: ignore[attr-defined]
    yield hook, f"http://127.0.0.1:{port.getHost().port}"
    for request in hook.hanging:
        if not request.finished and not request._disconnected:
            request.finish()
    done: list[Any] = []
    port.stopListening().addBoth(done.append)
    spin(lambda: bool(done))


def real_sender(*targets: Target) -> tuple[WebhookSender, Logs]:
    logs = Logs()
    s = WebhookSender(targets, log=logs.logger)
    s.start(reactor)
    return s, logs


def test_real_post_success(server: tuple[Hook, str]) -> None:
    hook, base = server
    s, logs = real_sender(Target(f"{base}/ok", headers=(("Authorization", "Bearer t"),)))
    s.notify(event("completed", name=HOSTILE, size=3))
    spin(lambda: not s.pending)
    (post,) = hook.posts
    assert post.path == b"/ok" and post.type == b"application/json" and post.auth == b"Bearer t"
    body = json.loads(post.body.decode("utf-8"))
    assert (body["event"], body["info_hash"], body["name"]) == ("completed", IH, HOSTILE)
    assert body["data"] == {"size": 3} and abs(body["time"] - time.time()) < 60
    assert "failed" not in logs.text()


def test_real_500_then_success_is_retried(server: tuple[Hook, str]) -> None:
    hook, base = server
    s, logs = real_sender(Target(f"{base}/flaky", retries=3, backoff=0.05))
    s.notify(event())
    spin(lambda: not s.pending)
    assert [p.path for p in hook.posts] == [b"/flaky", b"/flaky"]
    assert hook.posts[0].body == hook.posts[1].body  # the same document again
    assert "HTTP 500; retry in 0.05 s (3 left)" in logs.text()
    assert "giving up" not in logs.text()


def test_real_404_is_not_retried(server: tuple[Hook, str]) -> None:
    hook, base = server
    s, logs = real_sender(Target(f"{base}/missing", retries=3, backoff=0.05))
    s.notify(event())
    spin(lambda: not s.pending)
    assert len(hook.posts) == 1
    assert "HTTP 404 (not retried after 1 attempt(s))" in logs.text()


def test_real_timeout(server: tuple[Hook, str]) -> None:
    hook, base = server
    s, logs = real_sender(Target(f"{base}/hang", timeout=1.0, retries=1, backoff=0.05))
    start = time.monotonic()
    s.notify(event())
    spin(lambda: not s.pending)
    assert time.monotonic() - start < 8
    assert len(hook.posts) == 2
    assert "timed out after 1 s (giving up after 2 attempt(s))" in logs.text()


def test_real_stop_abandons_a_hanging_post(server: tuple[Hook, str]) -> None:
    hook, base = server
    s, logs = real_sender(Target(f"{base}/hang", timeout=30))
    s.notify(event())
    spin(lambda: bool(hook.posts))
    done: list[Any] = []
    s.stop(0.2).addBoth(done.append)
    spin(lambda: bool(done))
    assert done == [None] and not s.pending
    assert "abandoned: btd is stopping" in logs.text()
    spin(lambda: hook.hanging[0]._disconnected)  # the connection was closed


def test_real_connection_refused() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s, logs = real_sender(Target(f"http://127.0.0.1:{port}/x", retries=1, backoff=0.05))
    s.notify(event())
    spin(lambda: not s.pending)
    text = logs.text()
    assert "retry in 0.05 s" in text and "giving up after 2 attempt(s)" in text
    assert "refused" in text.lower()
