"""The ``ut_pex`` message (BEP 11): a bencoded dict of compact peer lists.

``added`` / ``dropped`` hold IPv4 peers (6 bytes each: address, port), ``added6`` /
``dropped6`` IPv6 peers (18 bytes each); ``added.f`` / ``added6.f`` one flag byte per added
peer. Decoding is strict (a length that is not a whole number of entries, a flag string of
the wrong length or a field of the wrong type is a ProtocolError) and bounded: a message is
at most 64 KiB and only the first ``MAX_ENTRIES`` added and dropped peers are kept, the limit
clients agreed on (the rest is ignored, not an error). Pure: no Twisted.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from btd.core import bencode
from btd.core.compact import V4_LEN, V6_LEN, CompactError, decode_peers, encode_peer
from btd.core.errors import BencodeError, ProtocolError
from btd.core.types import PeerAddress

MAX_MESSAGE = 64 * 1024
MAX_ENTRIES = 50  # added (and dropped) peers per message, IPv4 and IPv6 together

FLAG_ENCRYPTION = 0x01  # prefers encryption
FLAG_SEED = 0x02  # seed / upload only
FLAG_UTP = 0x04
FLAG_HOLEPUNCH = 0x08
FLAG_REACHABLE = 0x10  # outgoing-connectable: the sender reached it

_V4, _V6 = V4_LEN, V6_LEN


@dataclass(frozen=True, slots=True)
class PexPeer:
    """One added peer: its listen address and BEP 11 flags."""

    host: str
    port: int
    flags: int = 0

    @property
    def address(self) -> PeerAddress:
        return (self.host, self.port)


@dataclass(frozen=True, slots=True)
class PexMessage:
    """A decoded (or to-be-encoded) ``ut_pex`` message."""

    added: tuple[PexPeer, ...] = ()
    dropped: tuple[PeerAddress, ...] = ()


def normalize_host(host: str) -> tuple[str, int] | None:
    """``(canonical address, 4 | 6)`` for an IP literal (v4-mapped IPv6 counts as IPv4)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped), 4
        if ip.scope_id:
            return None
        return ip.compressed, 6
    return str(ip), 4


def _compact(host: str, port: int) -> tuple[bytes, int]:
    norm = normalize_host(host)
    if norm is None:
        raise ValueError(f"not an IP address: {host!r}")
    if not 0 < port < 65536:
        raise ValueError(f"port out of range: {port}")
    text, family = norm
    return encode_peer(text, port), family


def encode_pex(msg: PexMessage) -> bytes:
    """The message payload; ValueError for a non-IP host, a bad port or too many peers.

    Every key is written, empty lists as empty strings (libtorrent does the same).
    """
    if len(msg.added) > MAX_ENTRIES or len(msg.dropped) > MAX_ENTRIES:
        raise ValueError(f"at most {MAX_ENTRIES} added and {MAX_ENTRIES} dropped peers")
    out = {k: bytearray() for k in (b"added", b"added.f", b"added6", b"added6.f")}
    dropped = {4: bytearray(), 6: bytearray()}
    for peer in msg.added:
        if not 0 <= peer.flags < 256:
            raise ValueError(f"flags out of range: {peer.flags}")
        packed, family = _compact(peer.host, peer.port)
        key = b"added" if family == 4 else b"added6"
        out[key] += packed
        out[key + b".f"].append(peer.flags)
    for host, port in msg.dropped:
        packed, family = _compact(host, port)
        dropped[family] += packed
    return bencode.encode(
        {
            **{k: bytes(v) for k, v in out.items()},
            b"dropped": bytes(dropped[4]),
            b"dropped6": bytes(dropped[6]),
        }
    )


def _field(d: dict[bytes, Any], key: bytes) -> bytes:
    value = d.get(key, b"")
    if type(value) is not bytes:
        raise ProtocolError(f"ut_pex {key.decode()!r} is a {type(value).__name__}, not a string")
    return value


def _entries(data: bytes, size: int, key: str) -> list[PeerAddress]:
    try:
        return decode_peers(data, ipv6=size == _V6)
    except CompactError:
        raise ProtocolError(
            f"ut_pex {key!r} is {len(data)} bytes, not a multiple of {size}"
        ) from None


def _added(d: dict[bytes, Any], key: bytes, size: int) -> list[PexPeer]:
    peers = _entries(_field(d, key), size, key.decode())
    flags_key = key + b".f"
    if flags_key in d:
        flags = _field(d, flags_key)
        if len(flags) != len(peers):
            raise ProtocolError(
                f"ut_pex {flags_key.decode()!r} has {len(flags)} flags for {len(peers)} peers"
            )
    else:
        flags = bytes(len(peers))  # BEP 11: the flags are optional
    return [PexPeer(h, p, f) for (h, p), f in zip(peers, flags)]


def decode_pex(payload: bytes) -> PexMessage:
    """Parse a ``ut_pex`` payload; ProtocolError if malformed. Keeps the first 50 of each list.

    Entries are returned as they were sent (port 0 included): what to use is the caller's
    choice.
    """
    if len(payload) > MAX_MESSAGE:
        raise ProtocolError(f"ut_pex message of {len(payload)} bytes (limit {MAX_MESSAGE})")
    try:
        d = bencode.decode(bytes(payload), max_depth=8, max_tokens=4096, max_size=MAX_MESSAGE)
    except BencodeError as exc:
        raise ProtocolError(f"ut_pex message is not valid bencode: {exc}") from exc
    if type(d) is not dict:
        raise ProtocolError(f"ut_pex message is a {type(d).__name__}, not a dict")
    added = _added(d, b"added", _V4) + _added(d, b"added6", _V6)
    dropped = _entries(_field(d, b"dropped"), _V4, "dropped") + _entries(
        _field(d, b"dropped6"), _V6, "dropped6"
    )
    return PexMessage(tuple(added[:MAX_ENTRIES]), tuple(dropped[:MAX_ENTRIES]))
