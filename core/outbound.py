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
from collections.abc import Callable
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


# -- URLs a control client asks btd to fetch (plugins/http/url_fetch.py) -----------------------
# Not torrent data: an authenticated client gives the URL (Sonarr handing over a Prowlarr
# link). Local addresses are allowed when the plugin's setting says so; these never are:
# link-local (169.254/16, fe80::/10: cloud metadata services, routers' zeroconf) and the
# metadata addresses clouds put elsewhere (AWS's IPv6 one, Alibaba's).
FETCH_SCHEMES = ("http", "https")
NEVER_FETCHED = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
)


def never_fetched(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in NEVER_FETCHED if net.version == ip.version)


def _fetch_why(what: str, local_setting: str) -> str:
    return (
        f"refused (SSRF protection): {what} is a local address; set {local_setting}: true "
        "to fetch from this machine or the LAN"
    )


def _http_target(url: str, verb: str) -> tuple[Verdict | None, str, str, bool]:
    """An http(s) URL btd is to fetch from, judged as written: (a refusal, or None and its
    query, host and whether the host is local). Link-local hosts are never ``verb``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return Verdict(f"refused: {url[:80]!r} is not a valid URL", False), "", "", False
    if parts.scheme.lower() not in FETCH_SCHEMES:
        why = f"refused: only http and https URLs are {verb}, got {url[:80]!r}"
        return Verdict(why, False), "", host, False
    if not host:
        return Verdict(f"refused: {url[:80]!r} names no host", False), "", host, False
    ip = parse_ip(host)
    if ip is not None and never_fetched(ip):
        why = f"refused (SSRF protection): {host} is link-local, never {verb}"
        return Verdict(why, False), "", host, False
    local = (ip is not None and is_local(ip)) or (ip is None and _local_name(host))
    return None, parts.query, host, local


def check_fetch_url(url: str, *, allow_local: bool, setting: str) -> Verdict:
    """The policy for a URL to fetch as written; ``allow_local`` from ``setting``."""
    refused, _query, host, local = _http_target(url, "fetched")
    if refused is not None:
        return refused
    if local and not allow_local:
        return Verdict(_fetch_why(host, setting), False)
    return Verdict(None, allow_local)


def refused_fetch_address(address: str, local_ok: bool, setting: str) -> str | None:
    """Why a fetch must not use a connection to ``address`` (what its host resolved to)."""
    return _refused_address(address, local_ok, lambda what: _fetch_why(what, setting))


def _refused_address(address: str, local_ok: bool, why: Callable[[str], str]) -> str | None:
    """The connect-time check of fetches and web seeds: never link-local or metadata
    addresses; a local one only when ``local_ok`` (``why`` says which option allows it)."""
    ip = parse_ip(address)
    if ip is None:
        return None
    if never_fetched(ip):
        return f"refused (SSRF protection): the host resolves to {ip.compressed}, link-local"
    if not local_ok and is_local(ip):
        return why(f"the host resolves to {ip.compressed}, which")
    return None


# -- web seeds (BEP 19 ``url-list``; plugins/web_seed/) -------------------------------------------
# Torrent data, like tracker URLs, but there is no path a web seed must have (it is any file
# server), so a local address needs the torrent's ``allow_local_trackers`` whatever the path;
# even then a local web seed with a query string is refused (libtorrent's ssrf_mitigation),
# and link-local and cloud metadata addresses are never asked.
WEB_SEED_OPTION = OPTION


def _seed_why(what: str) -> str:
    return (
        f"refused (SSRF protection): {what} is a local address; add the torrent with "
        f"{WEB_SEED_OPTION} to use a local web seed"
    )


def check_web_seed_url(url: str, *, allow_local: bool) -> Verdict:
    """The policy for a web seed URL (or a redirect's target) as written."""
    refused, query, host, local = _http_target(url, "asked")
    if refused is not None:
        return refused
    if local and not allow_local:
        return Verdict(_seed_why(host), False)
    if local and query:
        return Verdict(
            "refused (SSRF protection): a local web seed may not have a query string", False
        )
    return Verdict(None, allow_local and not query)


def refused_web_seed_address(address: str, local_ok: bool) -> str | None:
    """Why a web seed request must not use a connection to ``address`` (what its host
    name resolved to), or None."""
    return _refused_address(address, local_ok, _seed_why)
