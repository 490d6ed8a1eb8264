"""The front door: every HTTP request passes here before any resource sees it.

``GuardedRequest`` refuses a body over the cap as soon as its length is known (413, never
read), a Host header that does not name this daemon (421, DNS rebinding), an ``Origin``
from another site (403), and, when a user is configured, a request without good HTTP Basic
credentials (401; 429 once the client's failed logins are used up). Passwords are checked
on the thread pool (the hash is slow on purpose); good credentials are remembered
(HTTP_AUTH_CACHE) so a logged-in client does not pay again.

A web UI session cookie (plugins/http/ui_sessions.py) is the other way in: a request it
authenticates that changes state (not GET/HEAD/OPTIONS) must also carry the session's
CSRF token in ``X-Btd-Csrf`` (403 otherwise). Basic auth, and no user configured, need no
token. The UI's page, its assets, ``/session`` and ``/login`` are open (``is_public``):
the page must load to show its login form.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web import server

from btd.core.limits import HTTP_AUTH_CACHE, HTTP_IDLE_TIMEOUT, HTTP_MAX_BODY
from btd.plugins.http.guard import LoginLimiter, basic_credentials, host_allowed
from btd.plugins.http.passwords import verify_password
from btd.plugins.http.settings import HttpSettings
from btd.plugins.http.ui_sessions import COOKIE, CSRF_HEADER, SAFE_METHODS, UiSession, UiSessions

_log = Logger()

REALM = b'Basic realm="btd", charset="UTF-8"'


def is_public(path: bytes) -> bool:
    """The paths open without a login: the UI's page and assets, ``/session``, ``/login``.

    Judged on the segments twisted.web routes by (each %-unquoted), so no spelling of a
    path can look public here and reach another resource.
    """
    segments = [unquote_to_bytes(s) for s in path[1:].split(b"/")]
    return segments[0] in (b"", b"ui") or segments in ([b"session"], [b"login"])


class Door:
    """What the requests of one Site consult: the settings and the login state."""

    def __init__(
        self,
        settings: HttpSettings,
        seconds: Callable[[], float],
        run_blocking: Callable[..., Deferred[Any]],
        max_body: int = HTTP_MAX_BODY,
    ) -> None:
        self.settings = settings
        self.hosts = settings.host_names()
        self.limiter = LoginLimiter(seconds)
        self.sessions = UiSessions(seconds)
        self.run_blocking = run_blocking
        self.max_body = max_body
        self._good: collections.OrderedDict[bytes, None] = collections.OrderedDict()

    def origin_allowed(self, origin: str | None) -> bool:
        """No Origin (not a browser, or same-origin GET) or one naming this daemon."""
        if origin is None:
            return True
        try:
            host = urlsplit(origin).hostname
        except ValueError:
            return False
        return host is not None and host in self.hosts

    def check(self, header: str | None, client: str) -> Deferred[str] | str:
        """``"ok"``, ``"denied"`` or ``"limited"``, at once or (password checked) later."""
        if not self.settings.auth:
            return "ok"
        creds = basic_credentials(header)
        if creds is None:
            return "limited" if not self.limiter.allowed(client) else "denied"
        return self.verify(creds[0], creds[1], client)

    def verify(self, user: str, password: bytes, client: str) -> Deferred[str] | str:
        """A user name and password (Basic, or the UI's login form): as ``check``."""
        key = hashlib.sha256(user.encode() + b"\0" + password).digest()
        if key in self._good:
            self._good.move_to_end(key)
            return "ok"
        if not self.limiter.allowed(client):
            return "limited"
        same_user = hmac.compare_digest(user.encode(), str(self.settings.username).encode())

        def verified(ok: bool) -> str:
            if ok and same_user:
                self._good[key] = None
                while len(self._good) > HTTP_AUTH_CACHE:
                    self._good.popitem(last=False)
                return "ok"
            self.limiter.failed(client)
            _log.warn("http: failed login from {client}", client=client)
            return "denied"

        stored = str(self.settings.password_hash)
        return self.run_blocking(verify_password, password, stored).addCallback(verified)


class GuardedRequest(server.Request):
    """A Request that passes the Door first (see module doc)."""

    _refused = False
    _received = 0
    ui_session: UiSession | None = None  # the UI login that authenticated this request
    ui_token: str | None = None  # its cookie token

    @property
    def door(self) -> Door:
        return self.channel.site.door  # type: ignore[no-any-return]

    # -- the body cap: before a byte of it is kept ---------------------------------------
    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.door.max_body:
            self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" after our 413
            self._refuse_body()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.door.max_body:  # a chunked body that does not end
            self._refuse_body()
            return
        super().handleContentChunk(data)

    def _refuse_body(self) -> None:
        self._refused = True
        text = f"request body larger than {self.door.max_body} bytes\n".encode()
        transport = self.channel.transport
        transport.write(
            b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            + f"Content-Length: {len(text)}\r\n\r\n".encode()
            + text
        )
        transport.loseConnection()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            return
        super().requestReceived(command, path, version)

    # -- Host, Origin and credentials -------------------------------------------------------
    def _header(self, name: bytes) -> str | None:
        value = self.getHeader(name)
        if value is None:
            return None
        return value.decode("latin-1") if isinstance(value, bytes) else value

    def _fail(self, code: int, text: str, headers: dict[bytes, bytes] | None = None) -> None:
        self.setResponseCode(code)
        self.setHeader(b"content-type", b"text/plain; charset=utf-8")
        for name, value in (headers or {}).items():
            self.setHeader(name, value)
        self.write(text.encode() + b"\n")
        self.finish()

    def client_address(self) -> str:
        return getattr(self.getClientAddress(), "host", None) or "unix"

    def process(self) -> None:
        door = self.door
        self.setHeader(b"x-content-type-options", b"nosniff")
        self.setHeader(b"x-frame-options", b"DENY")
        if not host_allowed(self._header(b"host"), door.hosts):
            self._fail(421, "this server does not answer to that Host name")
            return
        if not door.origin_allowed(self._header(b"origin")):
            self._fail(403, "cross-site request refused")
            return
        if not door.settings.auth:
            super().process()
            return
        authorization = self._header(b"authorization")
        cookie = self.getCookie(COOKIE)
        public = is_public(self.path)
        if authorization is None and cookie is not None:
            token = cookie.decode("latin-1")
            session = door.sessions.find(token)
            if session is not None:
                unsafe = self.method not in SAFE_METHODS
                if unsafe and not public and not session.csrf_ok(self._header(CSRF_HEADER)):
                    self._fail(403, "missing or wrong X-Btd-Csrf header (GET /session has it)")
                    return
                self.ui_session, self.ui_token = session, token
                super().process()
                return
        if public:
            super().process()
            return
        address = self.client_address()
        verdict = door.check(authorization, address)
        if isinstance(verdict, Deferred):
            gone: list[bool] = []
            self.notifyFinish().addErrback(lambda _: gone.append(True))
            verdict.addCallback(lambda v: None if gone else self._admit(v, address))
            verdict.addErrback(lambda f: _log.failure("http: login check failed", f))
        else:
            self._admit(verdict, address)

    def _admit(self, verdict: str, address: str) -> None:
        if verdict == "ok":
            super().process()
        elif verdict == "limited":
            wait = self.door.limiter.retry_after(address)
            self._fail(
                429, "too many failed logins; try later", {b"retry-after": str(wait).encode()}
            )
        elif self.getHeader(CSRF_HEADER) is not None or (
            self.getCookie(COOKIE) is not None and not self.path.startswith(b"/transmission")
        ):
            # the web UI's own calls (its login expired): no browser password dialog; under
            # /transmission/ (Transmission's web client, its RPC) the browser still asks
            self._fail(401, "authentication required")
        else:
            self._fail(401, "authentication required", {b"www-authenticate": REALM})


class DoorSite(server.Site):
    """A Site whose requests are GuardedRequests checked by ``door``."""

    requestFactory = GuardedRequest

    def __init__(self, resource: Any, door: Door, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", HTTP_IDLE_TIMEOUT)
        super().__init__(resource, **kwargs)
        self.door = door
        self.displayTracebacks = False
        self.noisy = False

    def log(self, request: Any) -> None:
        """No access log: requests at debug level would be noise; errors are logged."""
