"""Compact peer addresses: 6 bytes (IPv4 + port) or 18 bytes (IPv6 + port), big-endian.

The one codec behind BEP 23 (HTTP tracker ``peers``/``peers6``), BEP 7, BEP 15 (UDP tracker
answers), BEP 11 (``ut_pex`` lists) and BEP 5 (DHT ``values`` and node info). Pure and
strict: a blob that is not a whole number of entries, a host that is not an IP literal or a
port outside 0..65535 raise CompactError (a ValueError); callers turn it into their own
protocol's error. Entries are returned as sent (port 0 and duplicates included): what to
keep is the caller's choice.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from btd.core.types import PeerAddress

V4_LEN = 6
V6_LEN = 18


class CompactError(ValueError):
    """Not a compact peer (list), or an address that has no compact form."""


def peer_len(ipv6: bool = False) -> int:
    """Bytes per entry: 6 for IPv4, 18 for IPv6."""
    return V6_LEN if ipv6 else V4_LEN


def decode_peer(data: bytes) -> PeerAddress:
    """One entry, its family from its length (6 or 18 bytes)."""
    if len(data) not in (V4_LEN, V6_LEN):
        raise CompactError(f"a compact peer is {V4_LEN} or {V6_LEN} bytes, not {len(data)}")
    ip = ipaddress.ip_address(bytes(data[:-2]))
    return ip.compressed, int.from_bytes(data[-2:], "big")


def decode_peers(blob: bytes, ipv6: bool = False) -> list[PeerAddress]:
    """Every entry of a compact list, in order; CompactError if it has a partial entry."""
    size = peer_len(ipv6)
    if len(blob) % size:
        raise CompactError(f"{len(blob)} bytes is not a multiple of {size}")
    make = ipaddress.IPv6Address if ipv6 else ipaddress.IPv4Address
    view = memoryview(blob)
    return [
        (
            make(bytes(view[i : i + size - 2])).compressed,
            int.from_bytes(view[i + size - 2 : i + size], "big"),
        )
        for i in range(0, len(blob), size)
    ]


def encode_peer(host: str, port: int) -> bytes:
    """``host`` (an IPv4 or IPv6 literal) and ``port`` as 6 or 18 bytes."""
    if isinstance(port, bool) or not 0 <= port <= 0xFFFF:
        raise CompactError(f"port out of range: {port}")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise CompactError(f"not an IP address: {host!r}") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        raise CompactError(f"a scoped address has no compact form: {host!r}")
    return ip.packed + port.to_bytes(2, "big")


def encode_peers(peers: Iterable[PeerAddress], ipv6: bool = False) -> bytes:
    """Entries of one family back to back (``peers`` or ``peers6``); CompactError otherwise."""
    size = peer_len(ipv6)
    out = bytearray()
    for host, port in peers:
        entry = encode_peer(host, port)
        if len(entry) != size:
            raise CompactError(f"{host!r} is not an IPv{6 if ipv6 else 4} address")
        out += entry
    return bytes(out)
