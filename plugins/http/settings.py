"""``plugins.http`` settings: checked once, before anything listens (pure; no Twisted).

The security rules live here so they are tested without a socket: a bind address other
than loopback is refused unless ``username`` and ``password_hash`` are both set, TLS
needs both ``tls_certificate`` and ``tls_key``, ``web_root`` must be an existing
readable folder, and ``fetch_local_urls`` (may a URL given to ``torrent-add`` be on this
machine or the LAN) is a boolean. ``endpoint`` turns the settings into a Twisted server endpoint string.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from btd.core.errors import ConfigError
from btd.core.plugin_config import check_keys
from btd.plugins.http.passwords import check_hash

PLUGIN = "http"
KEYS = (
    "bind",
    "port",
    "username",
    "password_hash",
    "allowed_hosts",
    "web_root",
    "fetch_local_urls",
    "tls_certificate",
    "tls_key",
)
DEFAULT_BIND = "127.0.0.1"
DEFAULT_PORT = 9091  # Transmission's: what Sonarr, Radarr and transmission-remote assume
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class HttpSettings:
    bind: str = DEFAULT_BIND
    port: int = DEFAULT_PORT
    username: str | None = None
    password_hash: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    web_root: Path | None = None
    fetch_local_urls: bool = True
    tls_certificate: Path | None = None
    tls_key: Path | None = None

    @property
    def auth(self) -> bool:
        return self.username is not None

    @property
    def tls(self) -> bool:
        return self.tls_certificate is not None

    def host_names(self) -> frozenset[str]:
        """Host header names accepted (lower case, no port): DNS rebinding stops here."""
        names = {*LOCAL_HOSTS, *(h.lower() for h in self.allowed_hosts)}
        if not is_any_address(self.bind):
            names.add(self.bind.lower())
        return frozenset(names)

    def endpoint(self) -> str:
        """The Twisted server endpoint string (``tcp:`` or ``ssl:``), escaped."""
        parts = [
            "ssl" if self.tls else "tcp",
            str(self.port),
            f"interface={_escape(self.bind)}",
        ]
        if self.tls:
            parts.append(f"privateKey={_escape(str(self.tls_key))}")
            parts.append(f"certKey={_escape(str(self.tls_certificate))}")
        return ":".join(parts)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def is_any_address(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return False


def _key(name: str) -> str:
    return f"plugins.{PLUGIN}.{name}"


def _optional_str(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"must be a non-empty string or null, got {value!r}", key=_key(name))
    return value


def _optional_path(raw: Mapping[str, Any], name: str, *, folder: bool) -> Path | None:
    value = _optional_str(raw, name)
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise ConfigError(f"must be an absolute path, got {value!r}", key=_key(name))
    if folder and not path.is_dir():
        raise ConfigError(f"{path} is not a folder", key=_key(name))
    if folder and not os.access(path, os.R_OK | os.X_OK):
        raise ConfigError(f"{path} is not readable by this user", key=_key(name))
    if not folder and not path.is_file():
        raise ConfigError(f"{path} is not a readable file", key=_key(name))
    return path


def parse_settings(raw: Mapping[str, Any] | None) -> HttpSettings:
    """Validate ``plugins.http``; ConfigError names the exact bad key."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"must be a mapping, got {type(raw).__name__}", key=f"plugins.{PLUGIN}")
    check_keys(raw, KEYS, f"plugins.{PLUGIN}")
    bind = raw.get("bind", DEFAULT_BIND)
    try:
        bind = str(ipaddress.ip_address(bind)) if isinstance(bind, str) else None
    except ValueError:
        bind = None
    if bind is None:
        raise ConfigError(
            f"must be an IPv4 or IPv6 address, got {raw.get('bind')!r}", key=_key("bind")
        )
    port = raw.get("port", DEFAULT_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"must be a port number 0..65535, got {port!r}", key=_key("port"))
    username = _optional_str(raw, "username")
    if username is not None and ":" in username:
        raise ConfigError("must not contain ':' (HTTP Basic)", key=_key("username"))
    password_hash = _optional_str(raw, "password_hash")
    if password_hash is not None:
        try:
            check_hash(password_hash)
        except ValueError as exc:
            raise ConfigError(
                f"{exc}; make one with `btd --hash-password`", key=_key("password_hash")
            ) from None
    if (username is None) != (password_hash is None):
        missing = "password_hash" if password_hash is None else "username"
        raise ConfigError("is needed too: set both username and password_hash", key=_key(missing))
    if not is_loopback(bind) and username is None:
        raise ConfigError(
            f"{bind} is not a loopback address: set plugins.http.username and "
            "plugins.http.password_hash (`btd --hash-password`) to listen there",
            key=_key("bind"),
        )
    hosts = raw.get("allowed_hosts", [])
    if isinstance(hosts, (str, bytes)) or not isinstance(hosts, (list, tuple)):
        raise ConfigError("must be a list of host names", key=_key("allowed_hosts"))
    for i, host in enumerate(hosts):
        if not isinstance(host, str) or not host or any(c in host for c in " /\t\r\n@"):
            raise ConfigError(
                f"must be a host name, got {host!r}", key=f"{_key('allowed_hosts')}[{i}]"
            )
    fetch_local = raw.get("fetch_local_urls", True)
    if not isinstance(fetch_local, bool):
        raise ConfigError(
            f"must be true or false, got {fetch_local!r}", key=_key("fetch_local_urls")
        )
    cert = _optional_path(raw, "tls_certificate", folder=False)
    key = _optional_path(raw, "tls_key", folder=False)
    if (cert is None) != (key is None):
        missing = "tls_key" if key is None else "tls_certificate"
        raise ConfigError("is needed too: set both tls_certificate and tls_key", key=_key(missing))
    return HttpSettings(
        bind=bind,
        port=port,
        username=username,
        password_hash=password_hash,
        allowed_hosts=tuple(h.lower().strip("[]") for h in hosts),
        web_root=_optional_path(raw, "web_root", folder=True),
        fetch_local_urls=fetch_local,
        tls_certificate=cert,
        tls_key=key,
    )
