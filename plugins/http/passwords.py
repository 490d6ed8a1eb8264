"""Salted password hashes for ``plugins.http.password_hash`` (pure; no Twisted).

Format: ``scrypt$<n>$<r>$<p>$<salt>$<hash>``, salt (16 random bytes) and hash (32 bytes)
in unpadded URL-safe base64; n, r, p are scrypt's cost parameters (RFC 7914), written in
the hash so stronger ones can come later without breaking old hashes. ``btd
--hash-password`` makes one; the YAML only ever holds the hash, never the password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from btd.core.limits import HTTP_SCRYPT_N, HTTP_SCRYPT_P, HTTP_SCRYPT_R

SCHEME = "scrypt"
SALT_BYTES = 16
HASH_BYTES = 32
MAX_N = 1 << 20  # a hash asking for more would take the daemon seconds per login
MAX_PASSWORD = 1024  # bytes of a password looked at: more is refused


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + (1 << 20), dklen=HASH_BYTES
    )


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A new hash of ``password`` with a fresh random salt (or ``salt``, for tests)."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    n, r, p = HTTP_SCRYPT_N, HTTP_SCRYPT_R, HTTP_SCRYPT_P
    digest = _derive(password.encode("utf-8"), salt, n, r, p)
    return f"{SCHEME}${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def check_hash(text: str) -> tuple[int, int, int, bytes, bytes]:
    """The parts of a stored hash; ValueError saying what is wrong."""
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise ValueError("is not a btd password hash (scrypt$n$r$p$salt$hash)")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise ValueError("is not a btd password hash (bad number or base64)") from None
    if n < 2 or n & (n - 1) or n > MAX_N or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise ValueError(f"has unusable scrypt parameters n={n} r={r} p={p}")
    if len(salt) < 8 or len(digest) != HASH_BYTES:
        raise ValueError("has a salt or hash of the wrong length")
    return n, r, p, salt, digest


def verify_password(password: bytes, stored: str) -> bool:
    """True if ``password`` matches ``stored`` (constant-time compare). Slow on purpose:
    call it off the reactor thread."""
    if len(password) > MAX_PASSWORD:
        return False
    n, r, p, salt, digest = check_hash(stored)
    return hmac.compare_digest(_derive(password, salt, n, r, p), digest)
