"""Outbound policy: which tracker (or other web) URLs btd may send requests to (pure).

A .torrent or a magnet is written by a stranger, and its tracker URLs make btd send
requests: without a policy ``http://127.0.0.1:9091/transmission/rpc?...`` turns btd into a
tool against services that trust the local host (SSRF). The rule, libtorrent's
``ssrf_mitigation`` widened from loopback to every non-public address:

- a URL whose host is, or resolves to, a local address (loopback, link-local, private
  RFC 1918, shared 100.64/10, ULA, unspecified, multicast, IPv4-mapped forms of these) is
  used only when its path contains ``/announce`` (what a tracker looks like; or ``/scrape``,
  its BEP 48 twin, which is derived from it), or when the
  torrent was added with ``allow_local_trackers`` (the local user said so);
- a public address may have any path (real trackers use ``/ann``, passkeys, ...).

``check_url`` judges the URL as written (an IP literal or ``localhost`` is refused before
any socket exists); ``refused_address`` judges the address a host name resolved to, at
connect time, so a public-looking name that points at 127.0.0.1 (or DNS rebinding) is
caught too. Both say why in a sentence that ends up in ``torrent.trackers``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

TRACKER_PATH = "/announce"
TRACKER_PATHS = (TRACKER_PATH, "/scrape")
OPTION = "allow_local_trackers"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Verdict:
    """What the policy says of one URL: ``refused`` (why) or None, and whether a local
    address is acceptable for it when its host name resolves to one."""

    refused: str | None
    local_ok: bool


def is_local(ip: IPAddress) -> bool:
    """True for every address that is not a public unicast one (see the module doc)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def parse_ip(host: str) -> IPAddress | None:
    """An IP literal (``[v6]`` brackets and a ``%zone`` allowed), or None for a name."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _local_name(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")  # RFC 6761


def _why(what: str) -> str:
    return (
        f"refused (SSRF protection): {what} is a local address and the path has no "
        f"{TRACKER_PATH}; add the torrent with {OPTION} to use it"
    )


def check_url(url: str, *, allow_local: bool = False) -> Verdict:
    """The policy for ``url`` as written; ``allow_local`` is the torrent's option."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return Verdict(f"refused: {url!r} is not a valid URL", False)
    local_ok = allow_local or any(p in parts.path for p in TRACKER_PATHS)
    if local_ok:
        return Verdict(None, True)
    ip = parse_ip(host)
    if (ip is not None and is_local(ip)) or (ip is None and _local_name(host)):
        return Verdict(_why(host), False)
    return Verdict(None, False)


def refused_address(address: str, local_ok: bool) -> str | None:
    """Why a connection to ``address`` (what a host name resolved to) must not be used,
    or None when it may (``local_ok`` from the URL's Verdict)."""
    if local_ok:
        return None
    ip = parse_ip(address)
    if ip is None or not is_local(ip):
        return None
    return _why(f"the host resolves to {ip.compressed}, which")
