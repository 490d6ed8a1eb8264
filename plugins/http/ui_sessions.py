"""Web UI logins: the session cookies and their CSRF tokens (pure; no Twisted).

A login makes a ``UiSession``: a random 256-bit cookie token and a random 256-bit CSRF
token, held in memory only (a restart logs everyone out). Tokens are looked up by their
SHA-256, so the time a lookup takes says nothing about a stored token. A session ends when
unused for ``idle`` seconds, ``max_age`` seconds after the login, at logout, or when
``max_count`` newer ones push it out (the one used longest ago goes first).
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from btd.core.limits import HTTP_UI_IDLE, HTTP_UI_MAX_AGE, HTTP_UI_SESSIONS

COOKIE = b"btd_session"
CSRF_HEADER = b"x-btd-csrf"
SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS"})


@dataclass
class UiSession:
    csrf: str
    user: str
    created: float
    used: float

    def csrf_ok(self, header: str | None) -> bool:
        return header is not None and hmac.compare_digest(header.encode(), self.csrf.encode())


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


class UiSessions:
    """The logged-in browsers: ``create`` at login, ``find`` per request, ``end`` at logout."""

    def __init__(
        self,
        seconds: Callable[[], float],
        *,
        idle: float = HTTP_UI_IDLE,
        max_age: float = HTTP_UI_MAX_AGE,
        max_count: int = HTTP_UI_SESSIONS,
    ) -> None:
        self._seconds = seconds
        self.idle, self.max_age, self.max_count = idle, max_age, max_count
        self._sessions: collections.OrderedDict[bytes, UiSession] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, user: str) -> tuple[str, UiSession]:
        """A new session: ``(cookie token, session)``."""
        now = self._seconds()
        token = secrets.token_urlsafe(32)
        session = UiSession(secrets.token_urlsafe(32), user, now, now)
        self._sessions[_key(token)] = session
        while len(self._sessions) > self.max_count:
            self._sessions.popitem(last=False)
        return token, session

    def find(self, token: str | None) -> UiSession | None:
        """The live session of a cookie token (its idle clock restarts), or None."""
        if not token:
            return None
        key = _key(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self._seconds()
        if now - session.used > self.idle or now - session.created > self.max_age:
            del self._sessions[key]
            return None
        session.used = now
        self._sessions.move_to_end(key)
        return session

    def end(self, token: str | None) -> bool:
        """Log the cookie token out; False when it was not a live session."""
        return bool(token) and self._sessions.pop(_key(str(token)), None) is not None
