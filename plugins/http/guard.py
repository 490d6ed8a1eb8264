"""What a request must pass before any resource sees it (pure; no Twisted).

- ``host_allowed``: the Host header names this daemon (DNS rebinding: a web page on
  evil.example that re-resolves to 127.0.0.1 still sends ``Host: evil.example``).
- ``basic_credentials``: the user and password of an ``Authorization: Basic`` header.
- ``LoginLimiter``: failed logins per client address, a token bucket driven by a clock
  (``seconds()``), so guessing is slow and the slow hash cannot be made to run unbounded.
"""

from __future__ import annotations

import base64
import binascii
import collections
import math
from collections.abc import Callable, Collection

from btd.core.limits import HTTP_LOGIN_BURST, HTTP_LOGIN_CLIENTS, HTTP_LOGIN_RATE


def host_name(header: str | None) -> str | None:
    """The name part of a Host header, lower case (``[::1]:9091`` -> ``::1``), or None."""
    if not header:
        return None
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        if end < 0:
            return None
        rest = header[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return header[1:end]
    name, sep, port = header.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name
    return header if ":" not in header else None


def host_allowed(header: str | None, allowed: Collection[str]) -> bool:
    name = host_name(header)
    return name is not None and name.rstrip(".") in allowed


def basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    """``(username, password bytes)`` from ``Basic base64(user:password)``, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = raw.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


class LoginLimiter:
    """Failed logins allowed per client: ``burst`` at once, then one per 1/``rate`` s.

    ``allowed(client)`` is asked before a password is checked; ``failed(client)`` takes a
    token. At most ``max_clients`` addresses are remembered (the oldest forgotten first).
    """

    def __init__(
        self,
        seconds: Callable[[], float],
        *,
        rate: float = HTTP_LOGIN_RATE,
        burst: float = HTTP_LOGIN_BURST,
        max_clients: int = HTTP_LOGIN_CLIENTS,
    ) -> None:
        self._seconds = seconds
        self.rate, self.burst, self.max_clients = rate, burst, max_clients
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def _tokens(self, client: str) -> float:
        tokens, at = self._buckets.get(client, (self.burst, self._seconds()))
        return min(self.burst, tokens + (self._seconds() - at) * self.rate)

    def allowed(self, client: str) -> bool:
        return self._tokens(client) >= 1

    def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try again (0 if now)."""
        missing = 1 - self._tokens(client)
        return 0 if missing <= 0 else math.ceil(round(missing / self.rate, 6))

    def failed(self, client: str) -> None:
        tokens = self._tokens(client) - 1
        self._buckets.pop(client, None)
        self._buckets[client] = (max(tokens, 0.0), self._seconds())
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
