"""announce_peer tokens (BEP 5): proof that an announcer got our get_peers answer.

A token is an HMAC of the asker's IP address under a secret that changes every 5
minutes; tokens made with the current or the previous secret are accepted, so a token
lives 5 to 10 minutes. Pure: time comes in as arguments, randomness from ``random_bytes``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable

ROTATE_EVERY = 5 * 60.0
TOKEN_LEN = 8
SECRET_LEN = 20


class TokenManager:
    """Issues and checks tokens; rotates its secret lazily, when asked at a later time."""

    def __init__(
        self,
        now: float,
        *,
        rotate_every: float = ROTATE_EVERY,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._random = random_bytes
        self._every = rotate_every
        self._current = random_bytes(SECRET_LEN)
        self._previous = random_bytes(SECRET_LEN)  # nothing was issued with it
        self._rotated_at = now

    def _rotate(self, now: float) -> None:
        elapsed = now - self._rotated_at
        if elapsed < self._every:
            return
        steps = int(elapsed // self._every)
        if steps == 1:
            self._previous = self._current
        else:  # two periods or more: every token issued so far has expired
            self._previous = self._random(SECRET_LEN)
        self._current = self._random(SECRET_LEN)
        self._rotated_at += steps * self._every

    @staticmethod
    def _make(secret: bytes, ip: str) -> bytes:
        return hmac.new(secret, ip.encode("ascii", "replace"), hashlib.sha1).digest()[:TOKEN_LEN]

    def issue(self, ip: str, now: float) -> bytes:
        self._rotate(now)
        return self._make(self._current, ip)

    def check(self, token: bytes, ip: str, now: float) -> bool:
        self._rotate(now)
        return any(
            hmac.compare_digest(token, self._make(secret, ip))
            for secret in (self._current, self._previous)
        )
