"""plugins.http settings: the loopback-or-password rule, keys named in errors, endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from btd.core.errors import ConfigError
from btd.plugins.http.passwords import hash_password
from btd.plugins.http.settings import HttpSettings, parse_settings

HASH = hash_password("pw", salt=b"0123456789abcdef")


def error_key(raw: dict) -> str | None:
    with pytest.raises(ConfigError) as info:
        parse_settings(raw)
    return info.value.key


def test_defaults_are_loopback_without_auth() -> None:
    s = parse_settings({})
    assert (s.bind, s.port, s.auth, s.tls) == ("127.0.0.1", 9091, False, False)
    assert s.endpoint() == "tcp:9091:interface=127.0.0.1"
    assert parse_settings(None) == HttpSettings()


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "192.168.1.2"])
def test_non_loopback_needs_a_password(bind: str) -> None:
    assert error_key({"bind": bind}) == "plugins.http.bind"
    s = parse_settings({"bind": bind, "username": "me", "password_hash": HASH})
    assert s.auth and s.bind == bind


def test_loopback_v6_is_fine_and_escaped_in_the_endpoint() -> None:
    s = parse_settings({"bind": "::1", "port": 0})
    assert s.endpoint() == "tcp:0:interface=\\:\\:1"


def test_each_bad_key_is_named() -> None:
    assert error_key({"bnd": "127.0.0.1"}) == "plugins.http.bnd"
    assert error_key({"bind": "localhost"}) == "plugins.http.bind"
    assert error_key({"port": 70000}) == "plugins.http.port"
    assert error_key({"port": True}) == "plugins.http.port"
    assert error_key({"username": "me"}) == "plugins.http.password_hash"
    assert error_key({"password_hash": HASH}) == "plugins.http.username"
    assert error_key({"username": "a:b", "password_hash": HASH}) == "plugins.http.username"
    assert error_key({"username": "me", "password_hash": "plain"}) == "plugins.http.password_hash"
    assert error_key({"allowed_hosts": "x"}) == "plugins.http.allowed_hosts"
    assert error_key({"allowed_hosts": ["a b"]}) == "plugins.http.allowed_hosts[0]"
    assert error_key({"web_root": "relative"}) == "plugins.http.web_root"
    assert error_key({"web_root": "/nonexistent/folder"}) == "plugins.http.web_root"
    assert error_key({"fetch_local_urls": "yes"}) == "plugins.http.fetch_local_urls"


def test_web_root_and_fetch_local_urls(tmp_path: Path) -> None:
    assert parse_settings({}).fetch_local_urls is True
    got = parse_settings({"web_root": str(tmp_path), "fetch_local_urls": False})
    assert got.web_root == tmp_path and got.fetch_local_urls is False
    (tmp_path / "index.html").write_text("x")
    assert error_key({"web_root": str(tmp_path / "index.html")}) == "plugins.http.web_root"


def test_tls_needs_both_files(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("y")
    assert error_key({"tls_certificate": str(cert)}) == "plugins.http.tls_key"
    assert error_key({"tls_key": str(key)}) == "plugins.http.tls_certificate"
    s = parse_settings({"tls_certificate": str(cert), "tls_key": str(key)})
    assert s.endpoint() == f"ssl:9091:interface=127.0.0.1:privateKey={key}:certKey={cert}"


def test_host_names() -> None:
    s = parse_settings(
        {"bind": "10.0.0.5", "username": "u", "password_hash": HASH, "allowed_hosts": ["NAS.lan"]}
    )
    assert s.host_names() == {"localhost", "127.0.0.1", "::1", "10.0.0.5", "nas.lan"}
    any_address = parse_settings({"bind": "0.0.0.0", "username": "u", "password_hash": HASH})
    assert "0.0.0.0" not in any_address.host_names()
