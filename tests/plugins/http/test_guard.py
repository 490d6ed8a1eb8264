"""Pure parts of the front door: password hashes, Host names, Basic credentials, the
failed-login token bucket (driven by task.Clock)."""

from __future__ import annotations

import base64

import pytest
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from btd.plugins.http.door import Door
from btd.plugins.http.guard import LoginLimiter, basic_credentials, host_allowed, host_name
from btd.plugins.http.passwords import check_hash, hash_password, verify_password
from btd.plugins.http.settings import parse_settings


def test_hash_is_salted_and_verifies() -> None:
    a, b = hash_password("pw"), hash_password("pw")
    assert a != b and a.startswith("scrypt$16384$8$1$")
    assert verify_password(b"pw", a) and verify_password(b"pw", b)
    assert not verify_password(b"pW", a)
    assert not verify_password(b"x" * 5000, a)


@pytest.mark.parametrize(
    "bad",
    [
        "pw",
        "scrypt$16384$8$1$c2FsdA",
        "bcrypt$16384$8$1$c2FsdHNhbHQ$" + "A" * 43,
        "scrypt$3$8$1$c2FsdHNhbHQ$" + "A" * 43,  # n not a power of two
        f"scrypt${1 << 24}$8$1$c2FsdHNhbHQ$" + "A" * 43,  # too costly
        "scrypt$16384$8$1$c2FsdHNhbHQ$AAAA",  # short hash
    ],
)
def test_bad_hashes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        check_hash(bad)


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost:9091", "localhost"),
        ("LOCALHOST", "localhost"),
        ("[::1]:9091", "::1"),
        ("[::1]", "::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]x", None),
        ("::1", None),  # a bare IPv6 literal is not a Host header
        ("", None),
        (None, None),
    ],
)
def test_host_name(header: str | None, name: str | None) -> None:
    assert host_name(header) == name


def test_host_allowed_against_rebinding() -> None:
    allowed = {"localhost", "127.0.0.1", "::1"}
    assert host_allowed("localhost:9091", allowed)
    assert host_allowed("localhost.:9091", allowed)
    assert not host_allowed("evil.example:9091", allowed)
    assert not host_allowed("localhost.evil.example", allowed)
    assert not host_allowed(None, allowed)


def test_basic_credentials() -> None:
    token = base64.b64encode(b"me:pass:word").decode()
    assert basic_credentials(f"Basic {token}") == ("me", b"pass:word")
    assert basic_credentials(f"basic  {token}") == ("me", b"pass:word")
    assert basic_credentials("Bearer x") is None
    assert basic_credentials("Basic !!!") is None
    assert basic_credentials("Basic " + base64.b64encode(b"nocolon").decode()) is None
    assert basic_credentials(None) is None


def test_login_limiter_token_bucket() -> None:
    clock = Clock()
    limiter = LoginLimiter(clock.seconds, rate=0.1, burst=3, max_clients=2)
    for _ in range(3):
        assert limiter.allowed("a")
        limiter.failed("a")
    assert not limiter.allowed("a") and limiter.retry_after("a") == 10
    assert limiter.allowed("b")  # per client
    clock.advance(9.9)
    assert not limiter.allowed("a")
    clock.advance(0.2)
    assert limiter.allowed("a")
    limiter.failed("a")
    assert not limiter.allowed("a")
    clock.advance(1000)
    assert limiter.allowed("a") and limiter._tokens("a") == 3  # never above the burst
    limiter.failed("b")
    limiter.failed("c")  # a third client: the oldest ("a") is forgotten
    assert set(limiter._buckets) == {"b", "c"}


def test_door_checks_limits_and_remembers_good_credentials() -> None:
    clock = Clock()
    verified: list[bytes] = []

    def run_blocking(fn, *args):  # type: ignore[no-untyped-def]
        verified.append(args[0])
        return succeed(fn(*args))

    settings = parse_settings({"username": "me", "password_hash": hash_password("pw")})
    door = Door(settings, clock.seconds, run_blocking)

    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def result(value):  # type: ignore[no-untyped-def]
        out: list[str] = []
        if isinstance(value, str):
            return value
        value.addCallback(out.append)
        return out[0]

    assert result(door.check(None, "1.2.3.4")) == "denied"
    assert result(door.check(basic("me", "pw"), "1.2.3.4")) == "ok"
    assert result(door.check(basic("me", "pw"), "1.2.3.4")) == "ok"
    assert verified == [b"pw"]  # the second time from the cache, not the slow hash
    for _ in range(5):
        assert result(door.check(basic("me", "guess"), "6.6.6.6")) == "denied"
    assert result(door.check(basic("me", "pw"), "6.6.6.6")) == "ok"  # cached: still in
    assert result(door.check(basic("me", "guess"), "6.6.6.6")) == "limited"
    assert result(door.check(basic("you", "pw"), "5.5.5.5")) == "denied"  # wrong user
    assert len(verified) == 7
    clock.advance(10)
    assert result(door.check(basic("me", "guess"), "6.6.6.6")) == "denied"
    assert door.origin_allowed(None) and door.origin_allowed("http://localhost:9091")
    assert not door.origin_allowed("http://evil.example")
