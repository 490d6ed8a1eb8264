"""The web UI's resources and its login, through the real DoorSite over a StringTransport:
packaged files served by name with strict headers, the session cookie (expiry on a
task.Clock), CSRF on cookie-authenticated changes, and the failed-login bucket on /login."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web import resource, server

from btd.core.limits import HTTP_LOGIN_BURST, HTTP_UI_IDLE, HTTP_UI_MAX_AGE
from btd.plugins.http.door import Door, DoorSite, is_public
from btd.plugins.http.passwords import hash_password
from btd.plugins.http.settings import HttpSettings, parse_settings
from btd.plugins.http.ui import FILES, add_ui
from btd.plugins.http.ui_sessions import UiSessions

WEB = Path(__file__).resolve().parents[3] / "plugins" / "http" / "web"
USER, PASSWORD = "me", "pw"
HASH = hash_password(PASSWORD)


class Recorder(resource.Resource):
    """Stands in for /rpc: records what reached it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bytes] = []

    def render(self, request: server.Request) -> bytes:
        self.seen.append(request.method)
        return b"reached"


class Web:
    """A DoorSite with the UI and a recording /rpc, driven in memory."""

    def __init__(self, settings: HttpSettings) -> None:
        self.clock = Clock()
        self.rpc = Recorder()
        root = resource.Resource()
        add_ui(root)
        root.putChild(b"rpc", self.rpc)
        self.door = Door(settings, self.clock.seconds, lambda f, *a: succeed(f(*a)))
        self.site = DoorSite(root, self.door, reactor=self.clock)

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        client: str = "127.0.0.1",
    ) -> tuple[int, dict[str, list[str]], bytes]:
        address = IPv4Address("TCP", client, 40000)
        channel = self.site.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        channel.makeConnection(transport)
        lines = [f"{method} {path} HTTP/1.0", "Host: 127.0.0.1:9091"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        channel.dataReceived("\r\n".join(lines).encode() + b"\r\n\r\n" + body)
        raw = transport.value()
        channel.connectionLost(None)
        head, _, payload = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        found: dict[str, list[str]] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            found.setdefault(name.strip().lower(), []).append(value.strip())
        return int(status_line.split()[1]), found, payload

    def login(self, password: str = PASSWORD, client: str = "127.0.0.1") -> Any:
        body = json.dumps({"username": USER, "password": password}).encode()
        return self.request(
            "POST", "/login", body, {"Content-Type": "application/json"}, client=client
        )

    def logged_in(self) -> tuple[str, str]:
        """(Cookie header value, CSRF token) of a fresh login."""
        status, headers, body = self.login()
        assert status == 200
        cookie = headers["set-cookie"][0].split(";")[0]
        return cookie, json.loads(body)["csrf"]


@pytest.fixture()
def web() -> Web:
    return Web(parse_settings({"username": USER, "password_hash": HASH}))


@pytest.fixture()
def open_web() -> Web:
    return Web(parse_settings({}))


# -- the packaged files -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "ctype", "name"),
    [
        ("/", "text/html; charset=utf-8", "index.html"),
        ("/ui/app.js", "text/javascript; charset=utf-8", "app.js"),
        ("/ui/app.css", "text/css; charset=utf-8", "app.css"),
        ("/ui/icon.svg", "image/svg+xml", "icon.svg"),
    ],
)
def test_files_served_by_name_with_strict_headers(
    open_web: Web, path: str, ctype: str, name: str
) -> None:
    status, headers, body = open_web.request("GET", path)
    assert status == 200 and headers["content-type"] == [ctype]
    assert body == (WEB / name).read_bytes()
    csp = headers["content-security-policy"][0]
    assert "default-src 'self'" in csp and "script-src 'self';" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert headers["x-content-type-options"] == ["nosniff"]
    assert headers["x-frame-options"] == ["DENY"]
    assert headers["cache-control"] == ["no-cache"]
    etag = headers["etag"][0]
    status, _, body = open_web.request("GET", path, headers={"If-None-Match": etag})
    assert status == 304 and body == b""


@pytest.mark.parametrize(
    "path",
    [
        "/ui/nothing.js",
        "/ui/../pyproject.toml",
        "/ui/%2e%2e/ui.py",
        "/ui/%2e%2e%2fui.py",
        "/ui/web/app.js",
        "/ui/",
        "/ui",
        "/ui/app.js/x",
        "/index.html",
        "/app.js",
        "/x/../ui/app.js",
    ],
)
def test_anything_else_is_404(open_web: Web, path: str) -> None:
    status, _, body = open_web.request("GET", path)
    assert status == 404, path
    assert b"<!doctype" not in body and b"use strict" not in body


def test_every_shipped_file_is_listed_and_the_page_has_no_inline_code() -> None:
    assert sorted(p.name for p in WEB.iterdir()) == sorted(FILES)
    page = (WEB / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)  # no inline script
    assert not re.search(r"\son[a-z]+\s*=", page)  # no inline handlers
    assert "<style" not in page and "style=" not in page
    for text in (page, (WEB / "app.js").read_text(), (WEB / "app.css").read_text()):
        assert not re.search(r"(src|href|url)\s*[=(]\s*[\"']?(https?:)?//", text)  # no CDN


# -- login, cookie, CSRF ------------------------------------------------------------------------
def test_page_and_session_are_open_the_rest_needs_a_login(web: Web) -> None:
    assert web.request("GET", "/")[0] == 200
    status, _, body = web.request("GET", "/session")
    assert status == 200
    assert json.loads(body) == {"auth": True, "logged_in": False, "user": None, "csrf": None}
    status, headers, _ = web.request("POST", "/rpc")
    assert status == 401 and headers["www-authenticate"][0].startswith("Basic")
    status, headers, _ = web.request("POST", "/rpc", headers={"X-Btd-Csrf": ""})
    assert status == 401 and "www-authenticate" not in headers  # the page: no browser dialog
    assert web.request("POST", "/logout")[0] == 401
    assert web.rpc.seen == []


def test_login_sets_a_strict_cookie_and_gives_the_csrf_token(web: Web) -> None:
    status, headers, body = web.login("wrong")
    assert status == 401 and "set-cookie" not in headers
    assert json.loads(body)["error"] == "wrong user name or password"
    status, headers, body = web.login()
    assert status == 200
    (cookie,) = headers["set-cookie"]
    parts = [p.strip() for p in cookie.split(";")]
    name, _, token = parts[0].partition("=")
    assert name == "btd_session" and len(base64.urlsafe_b64decode(token + "=")) == 32
    assert {"HttpOnly", "SameSite=strict", "Path=/", f"Max-Age={int(HTTP_UI_MAX_AGE)}"} <= set(
        parts
    )
    assert "Secure" not in parts
    reply = json.loads(body)
    assert reply["logged_in"] and reply["user"] == USER and len(reply["csrf"]) >= 43
    status, _, body = web.request("GET", "/session", headers={"Cookie": parts[0]})
    assert json.loads(body)["csrf"] == reply["csrf"]


def test_secure_cookie_under_tls() -> None:
    settings = HttpSettings(
        username=USER, password_hash=HASH, tls_certificate=Path("c"), tls_key=Path("k")
    )
    _, headers, _ = Web(settings).login()
    assert "Secure" in [p.strip() for p in headers["set-cookie"][0].split(";")]


def test_form_login_redirects_to_the_page(web: Web) -> None:
    body = f"username={USER}&password={PASSWORD}".encode()
    status, headers, _ = web.request(
        "POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 303 and headers["location"] == ["/"] and "set-cookie" in headers


@pytest.mark.parametrize(
    ("body", "ctype"),
    [(b"{}", "application/json"), (b"[1]", "application/json"), (b"x", "text/plain")],
)
def test_login_without_fields_is_400(web: Web, body: bytes, ctype: str) -> None:
    assert web.request("POST", "/login", body, {"Content-Type": ctype})[0] == 400


def test_cookie_changes_need_the_csrf_token(web: Web) -> None:
    cookie, csrf = web.logged_in()
    assert web.request("POST", "/rpc", headers={"Cookie": cookie})[0] == 403
    wrong = {"Cookie": cookie, "X-Btd-Csrf": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")}
    assert web.request("POST", "/rpc", headers=wrong)[0] == 403
    assert web.rpc.seen == []
    assert web.request("POST", "/rpc", headers={"Cookie": cookie, "X-Btd-Csrf": csrf})[0] == 200
    assert web.request("GET", "/rpc", headers={"Cookie": cookie})[0] == 200  # reads: no token
    assert web.rpc.seen == [b"POST", b"GET"]
    cross = {"Cookie": cookie, "X-Btd-Csrf": csrf, "Origin": "http://evil.example"}
    assert web.request("POST", "/rpc", headers=cross)[0] == 403  # the Origin check stays
    assert web.rpc.seen == [b"POST", b"GET"]


def test_basic_auth_and_no_auth_need_no_csrf_token(web: Web, open_web: Web) -> None:
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert web.request("POST", "/rpc", headers={"Authorization": basic})[0] == 200
    cookie, _ = web.logged_in()  # Basic wins over a cookie: a script's header is enough
    assert web.request("POST", "/rpc", headers={"Authorization": basic, "Cookie": cookie})[0] == 200
    assert open_web.request("POST", "/rpc")[0] == 200
    assert open_web.request("POST", "/rpc", headers={"Origin": "http://evil.example"})[0] == 403
    status, _, body = open_web.request("GET", "/session")
    assert json.loads(body) == {"auth": False, "logged_in": True, "user": None, "csrf": None}


def test_logout_ends_the_session(web: Web) -> None:
    cookie, csrf = web.logged_in()
    status, headers, _ = web.request("POST", "/logout", headers={"Cookie": cookie})
    assert status == 403  # a change like any other: the token is needed
    status, headers, _ = web.request(
        "POST", "/logout", headers={"Cookie": cookie, "X-Btd-Csrf": csrf}
    )
    assert status == 200 and "Max-Age=0" in headers["set-cookie"][0]
    status, headers, _ = web.request("POST", "/rpc", headers={"Cookie": cookie, "X-Btd-Csrf": csrf})
    assert status == 401 and "www-authenticate" not in headers
    assert len(web.door.sessions) == 0
    # Transmission's web client with the stale cookie: the browser must still be asked.
    status, headers, _ = web.request("GET", "/transmission/rpc", headers={"Cookie": cookie})
    assert status == 401 and headers["www-authenticate"][0].startswith("Basic")


def test_sessions_expire_when_idle_and_at_their_age(web: Web) -> None:
    cookie, csrf = web.logged_in()
    ok = {"Cookie": cookie, "X-Btd-Csrf": csrf}
    web.clock.advance(HTTP_UI_IDLE - 1)
    assert web.request("POST", "/rpc", headers=ok)[0] == 200  # used: the idle clock restarts
    web.clock.advance(HTTP_UI_IDLE - 1)
    assert web.request("POST", "/rpc", headers=ok)[0] == 200
    web.clock.advance(HTTP_UI_IDLE + 1)
    assert web.request("POST", "/rpc", headers=ok)[0] == 401

    cookie, csrf = web.logged_in()
    ok = {"Cookie": cookie, "X-Btd-Csrf": csrf}
    steps = int(HTTP_UI_MAX_AGE // (HTTP_UI_IDLE / 2))
    for _ in range(steps):  # used all along: still ends at its age
        web.clock.advance(HTTP_UI_IDLE / 2)
        assert web.request("GET", "/rpc", headers=ok)[0] == 200
    web.clock.advance(HTTP_UI_IDLE / 2)
    assert web.request("GET", "/rpc", headers=ok)[0] == 401


def test_failed_logins_are_rate_limited(web: Web) -> None:
    for _ in range(HTTP_LOGIN_BURST):
        assert web.login("guess", client="6.6.6.6")[0] == 401
    status, headers, _ = web.login(client="6.6.6.6")  # even the right one is not checked
    assert status == 429 and headers["retry-after"] == ["10"] and "set-cookie" not in headers
    assert web.login(client="7.7.7.7")[0] == 200  # per client
    web.clock.advance(10)
    assert web.login(client="6.6.6.6")[0] == 200


def test_login_body_is_capped(web: Web) -> None:
    body = json.dumps({"username": USER, "password": "x" * 5000}).encode()
    assert web.request("POST", "/login", body, {"Content-Type": "application/json"})[0] == 413


def test_no_user_configured_the_page_works_without_login(open_web: Web) -> None:
    status, _, body = open_web.login()
    assert status == 200 and json.loads(body)["auth"] is False


@pytest.mark.parametrize(
    ("path", "public"),
    [
        (b"/", True),
        (b"/ui/app.js", True),
        (b"/%75i/app.js", True),
        (b"/session", True),
        (b"/login", True),
        (b"/logout", False),
        (b"/rpc", False),
        (b"/events", False),
        (b"/session/x", False),
        (b"/transmission/rpc", False),
        (b"//rpc", True),  # routed to the page's child b"": a 404 there
    ],
)
def test_public_paths(path: bytes, public: bool) -> None:
    assert is_public(path) is public


def test_double_slash_reaches_nothing_but_the_page(web: Web) -> None:
    assert web.request("POST", "//rpc")[0] in (404, 405)
    assert web.rpc.seen == []


def test_session_store_is_bounded_and_tokens_are_random() -> None:
    clock = Clock()
    sessions = UiSessions(clock.seconds, max_count=3)
    tokens = [sessions.create("me")[0] for _ in range(4)]
    assert len(set(tokens)) == 4 and len(sessions) == 3
    assert sessions.find(tokens[0]) is None  # the oldest went
    assert sessions.find(tokens[1]) is not None
    sessions.create("me")  # pushes out tokens[2], the one used longest ago
    assert sessions.find(tokens[2]) is None and sessions.find(tokens[1]) is not None
    assert sessions.find("") is None and sessions.find(None) is None
    assert not sessions.end("nope") and sessions.end(tokens[1])
