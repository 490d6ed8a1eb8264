"""btd's own web UI: the page at ``/``, its assets at ``/ui/NAME``, and its login.

Only the files named in ``FILES`` (shipped in the package's ``web/`` folder) are served,
by name: no URL is mapped onto the file system, so ``..`` or any other name is 404. Each
answer carries a strict Content-Security-Policy (scripts and styles from this origin only,
nothing inline, no framing).

``POST /login`` (JSON or a form: ``username``, ``password``) checks the password like HTTP
Basic does (the same failed-login bucket, 429) and sets the session cookie
(plugins/http/ui_sessions.py); ``GET /session`` tells the page whether it is logged in and
gives it the CSRF token its state-changing calls must carry; ``POST /logout`` ends it.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from typing import Any
from urllib.parse import parse_qs

from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger
from twisted.web import http, resource, server

from btd.core.limits import HTTP_LOGIN_BODY
from btd.plugins.http.door import GuardedRequest
from btd.plugins.http.ui_sessions import COOKIE

_log = Logger()

FILES = {
    "index.html": b"text/html; charset=utf-8",
    "app.js": b"text/javascript; charset=utf-8",
    "app.css": b"text/css; charset=utf-8",
    "icon.svg": b"image/svg+xml",
}
CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    b"frame-ancestors 'none'"
)
_cache: dict[str, tuple[bytes, bytes]] = {}


def packaged(name: str) -> tuple[bytes, bytes]:
    """``(content, ETag)`` of a shipped file (read once: a few tens of KiB in all)."""
    if name not in _cache:
        data = importlib.resources.files("btd.plugins.http").joinpath("web", name).read_bytes()
        _cache[name] = data, b'"' + hashlib.sha256(data).hexdigest()[:32].encode() + b'"'
    return _cache[name]


def _not_found(request: server.Request) -> bytes:
    request.setResponseCode(404)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return b"not found\n"


def serve_file(request: server.Request, name: str) -> bytes:
    if name not in FILES:
        return _not_found(request)
    data, etag = packaged(name)
    request.setHeader(b"content-type", FILES[name])
    request.setHeader(b"cache-control", b"no-cache")  # revalidated: an upgrade shows at once
    request.setHeader(b"content-security-policy", CSP)
    request.setHeader(b"referrer-policy", b"no-referrer")
    if request.setETag(etag) == http.CACHED:
        return b""
    return data


class UiPage(resource.Resource):
    """``/``: the page."""

    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:
        if request.postpath not in ([], [b""]):
            return _not_found(request)
        return serve_file(request, "index.html")


class UiAssets(resource.Resource):
    """``/ui/NAME``: the page's script, style and icon; nothing else."""

    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:
        if len(request.postpath) != 1:
            return _not_found(request)
        return serve_file(request, request.postpath[0].decode("latin-1"))


def _json(request: server.Request, value: Any, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(value).encode()


def _session_state(request: GuardedRequest) -> dict[str, Any]:
    auth = request.door.settings.auth
    session = request.ui_session
    return {
        "auth": auth,
        "logged_in": not auth or session is not None,
        "user": session.user if session is not None else None,
        "csrf": session.csrf if session is not None else None,
    }


class SessionInfo(resource.Resource):
    """``GET /session``: ``{"auth", "logged_in", "user", "csrf"}`` for the page."""

    isLeaf = True

    def render_GET(self, request: GuardedRequest) -> bytes:
        return _json(request, _session_state(request))


def _credentials(request: server.Request, body: bytes) -> tuple[str, str] | None:
    ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    try:
        if ctype == b"application/json":
            data = json.loads(body)
            if not isinstance(data, dict):
                return None
            user, password = data.get("username"), data.get("password")
        elif ctype == b"application/x-www-form-urlencoded":
            form = parse_qs(body.decode("utf-8"), strict_parsing=False)
            user = form.get("username", [None])[0]
            password = form.get("password", [None])[0]
        else:
            return None
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(user, str) or not isinstance(password, str):
        return None
    return user, password


class Login(resource.Resource):
    """``POST /login``: a password for a session cookie (see module doc)."""

    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:
        request.setResponseCode(405)
        request.setHeader(b"allow", b"POST")
        return b"POST username and password here (JSON or a form)\n"

    def render_POST(self, request: GuardedRequest) -> Any:
        door = request.door
        if not door.settings.auth:
            return _json(request, _session_state(request))
        body = request.content.read(HTTP_LOGIN_BODY + 1) if request.content is not None else b""
        if len(body) > HTTP_LOGIN_BODY:
            return _json(request, {"error": f"at most {HTTP_LOGIN_BODY} bytes"}, 413)
        creds = _credentials(request, body)
        if creds is None:
            return _json(request, {"error": "send username and password, as JSON or a form"}, 400)
        user, password = creds
        form = not (request.getHeader(b"content-type") or b"").startswith(b"application/json")
        client = request.client_address()
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def answer(verdict: str) -> None:
            if gone:
                return
            if verdict == "ok":
                token, session = door.sessions.create(user)
                request.addCookie(
                    COOKIE,
                    token,
                    path=b"/",
                    max_age=str(int(door.sessions.max_age)),
                    httpOnly=True,
                    sameSite="strict",
                    secure=door.settings.tls,
                )
                request.ui_session, request.ui_token = session, token
                if form:  # a plain HTML form: back to the page
                    request.setResponseCode(303)
                    request.setHeader(b"location", b"/")
                    request.finish()
                    return
                request.write(_json(request, _session_state(request)))
            elif verdict == "limited":
                wait = door.limiter.retry_after(client)
                request.setHeader(b"retry-after", str(wait).encode())
                request.write(_json(request, {"error": "too many failed logins; try later"}, 429))
            else:
                request.write(_json(request, {"error": "wrong user name or password"}, 401))
            request.finish()

        d = maybeDeferred(door.verify, user, password.encode("utf-8"), client)
        d.addCallback(answer)
        d.addErrback(lambda f: _log.failure("http: login failed", f))
        return server.NOT_DONE_YET


class Logout(resource.Resource):
    """``POST /logout``: the cookie's session ends (its CSRF token with it)."""

    isLeaf = True

    def render_POST(self, request: GuardedRequest) -> bytes:
        request.door.sessions.end(request.ui_token)
        request.addCookie(COOKIE, b"", path=b"/", max_age="0", httpOnly=True, sameSite="strict")
        request.ui_session = request.ui_token = None
        return _json(request, _session_state(request))


def add_ui(root: resource.Resource) -> None:
    """Hang the UI's resources on ``root``."""
    root.putChild(b"", UiPage())
    root.putChild(b"ui", UiAssets())
    root.putChild(b"session", SessionInfo())
    root.putChild(b"login", Login())
    root.putChild(b"logout", Logout())
