"""BEP 10 extension protocol: the extension handshake and the per-peer id tables.

Each side names the extended-message ids it wants to *receive* in its handshake's ``m``
dict, so we send ``name`` to a peer with the peer's id and read incoming extended messages
with our own ids. Decoding is lenient like libtorrent: a known key with a wrong type is
ignored, but a payload that is not a bencoded dict (or whose ``m`` is not a dict) is a
ProtocolError.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from btd.core import bencode
from btd.core.errors import BencodeError, ProtocolError
from btd.core.wire.messages import EXTENDED_HANDSHAKE_ID, Extended

MAX_EXTENSION_ID = 255

_KNOWN_KEYS = frozenset(
    {b"m", b"v", b"p", b"reqq", b"metadata_size", b"yourip", b"ipv4", b"ipv6", b"upload_only"}
)


@dataclass(frozen=True, slots=True)
class ExtensionHandshake:
    """The dictionary sent as extended message 0.

    ``m`` maps extension names to the ids the sender wants to receive them on (0 = the
    sender disables that extension, meaningful in a later, updating handshake). ``extra``
    keeps any keys btd does not interpret (raw bytes keys, decoded values) for plugins.
    """

    m: dict[str, int] = field(default_factory=dict)
    v: str | None = None
    p: int | None = None
    reqq: int | None = None
    metadata_size: int | None = None
    yourip: bytes | None = None
    ipv4: bytes | None = None
    ipv6: bytes | None = None
    upload_only: bool = False
    extra: dict[bytes, Any] = field(default_factory=dict)


def encode_extension_handshake(h: ExtensionHandshake) -> Extended:
    """Build the extended message 0 carrying ``h``."""
    d: dict[bytes, Any] = dict(h.extra)
    d[b"m"] = {name.encode("utf-8"): int(ext_id) for name, ext_id in h.m.items()}
    if h.v is not None:
        d[b"v"] = h.v.encode("utf-8")
    if h.p is not None:
        d[b"p"] = h.p
    if h.reqq is not None:
        d[b"reqq"] = h.reqq
    if h.metadata_size is not None:
        d[b"metadata_size"] = h.metadata_size
    if h.yourip is not None:
        d[b"yourip"] = h.yourip
    if h.ipv4 is not None:
        d[b"ipv4"] = h.ipv4
    if h.ipv6 is not None:
        d[b"ipv6"] = h.ipv6
    if h.upload_only:
        d[b"upload_only"] = 1
    return Extended(EXTENDED_HANDSHAKE_ID, bencode.encode(d))


def _int_or_none(value: Any, low: int, high: int | None = None) -> int | None:
    if type(value) is not int or value < low or (high is not None and value > high):
        return None
    return value


def _bytes_of_len(value: Any, *sizes: int) -> bytes | None:
    if type(value) is bytes and len(value) in sizes:
        return value
    return None


def decode_extension_handshake(payload: bytes) -> ExtensionHandshake:
    """Parse the payload of extended message 0; ProtocolError if it is not a dict."""
    try:
        d = bencode.decode(bytes(payload), max_depth=32, max_tokens=100_000)
    except BencodeError as e:
        raise ProtocolError(f"extension handshake is not valid bencode: {e}") from e
    if type(d) is not dict:
        raise ProtocolError(f"extension handshake is a {type(d).__name__}, not a dict")
    raw_m = d.get(b"m", {})
    if type(raw_m) is not dict:
        raise ProtocolError(f"extension handshake 'm' is a {type(raw_m).__name__}, not a dict")
    m: dict[str, int] = {}
    for key, value in raw_m.items():
        ext_id = _int_or_none(value, 0, MAX_EXTENSION_ID)
        if ext_id is None:
            continue
        try:
            name = key.decode("utf-8")
        except UnicodeDecodeError:
            continue
        m[name] = ext_id
    v = d.get(b"v")
    return ExtensionHandshake(
        m=m,
        v=v.decode("utf-8", "replace") if type(v) is bytes else None,
        p=_int_or_none(d.get(b"p"), 1, 65535),
        reqq=_int_or_none(d.get(b"reqq"), 1),
        metadata_size=_int_or_none(d.get(b"metadata_size"), 0),
        yourip=_bytes_of_len(d.get(b"yourip"), 4, 16),
        ipv4=_bytes_of_len(d.get(b"ipv4"), 4),
        ipv6=_bytes_of_len(d.get(b"ipv6"), 16),
        upload_only=type(d.get(b"upload_only")) is int and d[b"upload_only"] != 0,
        extra={k: val for k, val in d.items() if k not in _KNOWN_KEYS},
    )


class ExtensionRegistry:
    """Our extension name->id table and the peer's, for one connection.

    ``local`` is what we advertise (the ids the peer must use when sending to us);
    ``remote`` is what the peer advertised (the ids we must use when sending to it).
    """

    __slots__ = ("_local", "_by_local_id", "_remote")

    def __init__(self, local: Mapping[str, int]) -> None:
        by_id: dict[int, str] = {}
        for name, ext_id in local.items():
            if not name:
                raise ValueError("extension name must not be empty")
            if type(ext_id) is not int or not 1 <= ext_id <= MAX_EXTENSION_ID:
                raise ValueError(f"extension {name!r}: id {ext_id!r} not in 1..255")
            if ext_id in by_id:
                raise ValueError(f"extension id {ext_id} given to {by_id[ext_id]!r} and {name!r}")
            by_id[ext_id] = name
        self._local = dict(local)
        self._by_local_id = by_id
        self._remote: dict[str, int] = {}

    @classmethod
    def from_names(cls, names: Iterable[str]) -> ExtensionRegistry:
        """Number our extensions 1, 2, ... in the given order."""
        return cls({name: i for i, name in enumerate(names, start=1)})

    @property
    def local(self) -> Mapping[str, int]:
        """Our ``m`` dict (put it in our extension handshake)."""
        return MappingProxyType(self._local)

    @property
    def remote(self) -> Mapping[str, int]:
        """The peer's enabled extensions and their ids."""
        return MappingProxyType(self._remote)

    def update_remote(self, m: Mapping[str, int]) -> None:
        """Apply a peer handshake's ``m``: later handshakes add, change, or (id 0) disable."""
        for name, ext_id in m.items():
            if ext_id == 0:
                self._remote.pop(name, None)
            else:
                self._remote[name] = ext_id

    def incoming_name(self, ext_id: int) -> str | None:
        """Which of our extensions an incoming extended message id names (None: unknown)."""
        return self._by_local_id.get(ext_id)

    def outgoing_id(self, name: str) -> int | None:
        """The id to send ``name`` messages to the peer with; None if it does not support it."""
        return self._remote.get(name)

    def peer_supports(self, name: str) -> bool:
        return name in self._remote
