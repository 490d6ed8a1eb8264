"""BEP 6 allowed-fast set: the pieces a choked peer may still request from us.

The set depends only on the info hash and the peer's network (its /24 for IPv4), so a peer
cannot farm more free pieces by reconnecting from neighbouring addresses.
"""

from __future__ import annotations

import hashlib
import ipaddress

_IPV6_PREFIX_BYTES = 6  # /48, as libtorrent does (BEP 6 only specifies IPv4)


def _masked_address(ip: str) -> bytes:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError as e:
        raise ValueError(f"allowed-fast set: not an IP address: {ip!r}") from e
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    raw = addr.packed
    if len(raw) == 4:
        return raw[:3] + b"\x00"  # ip & 0xffffff00
    return raw[:_IPV6_PREFIX_BYTES] + bytes(16 - _IPV6_PREFIX_BYTES)


def allowed_fast_set(info_hash: bytes, ip: str, num_pieces: int, k: int = 10) -> list[int]:
    """The first ``k`` allowed-fast piece indexes for a peer at ``ip`` (BEP 6 algorithm).

    Returned in generation order; ``k`` is capped at ``num_pieces`` (the BEP's loop would
    never end otherwise). IPv4-mapped IPv6 addresses count as IPv4.
    """
    if len(info_hash) != 20:
        raise ValueError(f"info_hash must be 20 bytes, got {len(info_hash)}")
    k = min(k, num_pieces)
    if k <= 0:
        return []
    x = _masked_address(ip) + bytes(info_hash)
    result: list[int] = []
    seen: set[int] = set()
    while len(result) < k:
        x = hashlib.sha1(x).digest()
        for i in range(0, 20, 4):
            if len(result) >= k:
                break
            index = int.from_bytes(x[i : i + 4], "big") % num_pieces
            if index not in seen:
                seen.add(index)
                result.append(index)
    return result
