"""Magnet URIs (BEP 9): ``magnet:?xt=urn:btih:<hash>&dn=<name>&tr=<tracker>&x.pe=<peer>``.

Pure parsing. The info hash may be 40 hex digits or 32 base32 characters. A BitTorrent v2
magnet (BEP 52) gives ``xt=urn:btmh:1220<64 hex>``, a multihash of the SHA-256 info hash;
a hybrid's gives both. The swarm is the btih, or the first 20 bytes of the btmh hash. Bad magnets raise
MetainfoError with a message naming the parameter, like a bad .torrent does: a malformed
%-escape is refused (not kept as text), ``dn`` is bounded (``MAX_MAGNET_NAME``) and loses
its control characters (``%00``, terminal escapes): it is shown and logged.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from btd.core.errors import MetainfoError
from btd.core.limits import MAX_MAGNET_NAME
from btd.core.types import PeerAddress

MAX_MAGNET_LENGTH = 64 * 1024
TRACKER_SCHEMES = ("http", "https", "udp")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Magnet:
    """What a magnet link tells: the info hash (the swarm's 20 bytes), the v2 info hash
    of a btmh magnet, and optionally a name, trackers and peers."""

    info_hash: bytes
    name: str | None = None
    trackers: tuple[str, ...] = ()
    peers: tuple[PeerAddress, ...] = ()
    info_hash_v2: bytes | None = None
    v1: bool = True  # it gave a btih (False: a btmh-only magnet)

    @property
    def hex(self) -> str:
        return self.info_hash.hex()

    @property
    def metadata_hash(self) -> bytes:
        """What the info dictionary must hash to: the btih (SHA-1) if given, else the btmh
        hash (SHA-256)."""
        if self.v1 or self.info_hash_v2 is None:
            return self.info_hash
        return self.info_hash_v2

    def to_uri(self) -> str:
        params = [("xt", f"urn:btih:{self.hex}")] if self.v1 else []
        if self.info_hash_v2 is not None:
            params.append(("xt", f"urn:btmh:1220{self.info_hash_v2.hex()}"))
        if self.name:
            params.append(("dn", self.name))
        params += [("tr", t) for t in self.trackers]
        params += [("x.pe", _format_peer(p)) for p in self.peers]
        # ":" and "/" are fine in a query (RFC 3986): "xt=urn:btih:..." stays readable
        return "magnet:?" + urllib.parse.urlencode(params, safe=":/", quote_via=urllib.parse.quote)


def _format_peer(peer: PeerAddress) -> str:
    host, port = peer
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_info_hash(value: str) -> bytes:
    """``urn:btih:`` value: 40 hex or 32 base32 characters -> 20 bytes."""
    if len(value) == 40:
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise MetainfoError(f"xt: {value!r} is not 40 hex digits") from None
    if len(value) == 32:
        try:
            return base64.b32decode(value.upper())
        except (binascii.Error, ValueError):
            raise MetainfoError(f"xt: {value!r} is not valid base32") from None
    raise MetainfoError(f"xt: an info hash has 40 hex or 32 base32 characters, got {len(value)}")


def parse_btmh(value: str) -> bytes:
    """``urn:btmh:`` value: the multihash ``1220`` (SHA-256, 32 bytes) + 64 hex -> 32 bytes."""
    if not value.lower().startswith("1220"):
        raise MetainfoError(f"xt: btmh {value[:8]!r}... is not a SHA-256 multihash (1220...)")
    if len(value) != 68:
        raise MetainfoError(f"xt: a btmh hash has 68 hex digits (1220 + 64), got {len(value)}")
    try:
        return bytes.fromhex(value[4:])
    except ValueError:
        raise MetainfoError(f"xt: btmh {value!r} is not hex") from None


def parse_peer(value: str) -> PeerAddress:
    """``x.pe``: ``host:port`` or ``[v6]:port`` with an IP literal (hostnames are refused)."""
    host, sep, port_text = value.rpartition(":")
    if not sep:
        raise MetainfoError(f"x.pe: {value!r} is not host:port")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ip = ipaddress.ip_address(host)
        port = int(port_text)
    except ValueError:
        raise MetainfoError(f"x.pe: {value!r} is not an IP address and port") from None
    if not 0 < port < 65536:
        raise MetainfoError(f"x.pe: port {port} out of range")
    return (str(ip), port)


def _display_name(value: str) -> str | None:
    """``dn``: bounded, without control characters (it is shown and logged)."""
    if len(value) > MAX_MAGNET_NAME:
        raise MetainfoError(f"dn: {len(value)} characters; the limit is {MAX_MAGNET_NAME}")
    return _CONTROL.sub("", value) or None


def parse_magnet(uri: str) -> Magnet:
    """A magnet URI -> Magnet; MetainfoError for anything we cannot use."""
    uri = uri.strip()
    if len(uri) > MAX_MAGNET_LENGTH:
        raise MetainfoError("magnet link longer than 64 KiB")
    if not uri.lower().startswith("magnet:?"):
        raise MetainfoError("not a magnet link (it must start with 'magnet:?')")
    bad = _BAD_ESCAPE.search(uri)
    if bad is not None:
        near = uri[bad.start() : bad.start() + 3]
        raise MetainfoError(f"malformed magnet link: {near!r} is not a %-escape (%XX)")
    try:
        params = urllib.parse.parse_qsl(
            uri[len("magnet:?") :], keep_blank_values=True, strict_parsing=False, errors="strict"
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise MetainfoError(f"malformed magnet link: {exc}") from None
    info_hash: bytes | None = None
    info_hash_v2: bytes | None = None
    name: str | None = None
    trackers: list[str] = []
    peers: list[PeerAddress] = []
    for key, value in params:
        base = key.split(".", 1)[0] if key.startswith(("xt.", "tr.")) else key
        if base == "xt":
            if value.lower().startswith("urn:btmh:"):
                v2 = parse_btmh(value[len("urn:btmh:") :])
                if info_hash_v2 is not None and v2 != info_hash_v2:
                    raise MetainfoError("xt: two different BitTorrent v2 info hashes")
                info_hash_v2 = v2
                continue
            if not value.lower().startswith("urn:btih:"):
                continue  # other hash kinds are not ours
            parsed = parse_info_hash(value[len("urn:btih:") :])
            if info_hash is not None and parsed != info_hash:
                raise MetainfoError("xt: two different BitTorrent info hashes")
            info_hash = parsed
        elif base == "dn":
            name = _display_name(value)
        elif base == "tr":
            try:
                scheme = urllib.parse.urlsplit(value).scheme.lower()
            except ValueError:  # e.g. a malformed IPv6 host: ignored like an unknown scheme
                continue
            if scheme in TRACKER_SCHEMES and value not in trackers:
                trackers.append(value)
        elif base == "x.pe":
            peers.append(parse_peer(value))
    if info_hash is None and info_hash_v2 is None:
        raise MetainfoError("xt: the magnet link has no urn:btih or urn:btmh info hash")
    v1 = info_hash is not None
    swarm = info_hash if info_hash is not None else info_hash_v2[:20]  # type: ignore[index]
    return Magnet(swarm, name, tuple(trackers), tuple(peers), info_hash_v2, v1)
