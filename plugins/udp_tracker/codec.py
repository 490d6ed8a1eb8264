"""BEP 15 UDP tracker datagrams: build requests, parse answers. Pure, no I/O.

Every datagram is untrusted: anything malformed (too short, unknown action, a peer list
that is not a whole number of entries) raises UdpTrackerError, never another exception.
Matching the transaction id and the sender is the client's job, not the codec's.

BEP 41 URL data (the path and query of ``udp://host:port/path?query``, sent as announce
options) is not sent: the path is ignored, as most clients and trackers do.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from urllib.parse import urlsplit

from btd.core.compact import CompactError, decode_peers, peer_len
from btd.core.errors import TrackerError
from btd.core.tracker.codec import MAX_INTERVAL, MIN_INTERVAL, AnnounceRequest, AnnounceResponse
from btd.core.types import PeerAddress

PROTOCOL_ID = 0x41727101980
"""The magic constant of a connect request."""

ACTION_CONNECT = 0
ACTION_ANNOUNCE = 1
ACTION_SCRAPE = 2
ACTION_ERROR = 3

EVENT_CODES = {"": 0, "completed": 1, "started": 2, "stopped": 3}
MAX_SCRAPE_HASHES = 74
"""Hashes per scrape request (BEP 15: keeps the answer in one ordinary datagram)."""

_HEADER = struct.Struct(">II")  # action, transaction id
_CONNECT_REQ = struct.Struct(">QII")
_CONNECT_RESP = struct.Struct(">IIQ")
_ANNOUNCE_REQ = struct.Struct(">QII20s20sQQQIIIiH")
_ANNOUNCE_RESP = struct.Struct(">IIIII")  # action, tid, interval, leechers, seeders
_SCRAPE_ENTRY = struct.Struct(">III")  # seeders, completed, leechers


class UdpTrackerError(TrackerError):
    """A datagram that is not a valid BEP 15 message, or a URL that is not udp://."""


@dataclass(frozen=True)
class ConnectReply:
    transaction_id: int
    connection_id: int


@dataclass(frozen=True)
class AnnounceReply:
    transaction_id: int
    interval: int
    leechers: int
    seeders: int
    peers: tuple[PeerAddress, ...]

    def to_response(self) -> AnnounceResponse:
        """The scheme-independent answer the announcer understands."""
        return AnnounceResponse(
            interval=max(MIN_INTERVAL, min(self.interval, MAX_INTERVAL)),
            min_interval=None,
            tracker_id=None,
            complete=self.seeders,
            incomplete=self.leechers,
            peers=self.peers,
            warning=None,
        )


@dataclass(frozen=True)
class ScrapeEntry:
    seeders: int
    completed: int
    leechers: int


@dataclass(frozen=True)
class ScrapeReply:
    transaction_id: int
    entries: tuple[ScrapeEntry, ...]


@dataclass(frozen=True)
class ErrorReply:
    transaction_id: int
    message: str


Reply = ConnectReply | AnnounceReply | ScrapeReply | ErrorReply


# -- URLs ---------------------------------------------------------------------------------


def parse_udp_url(url: str) -> tuple[str, int]:
    """(host, port) of a ``udp://host:port[/path]`` URL; IPv6 literals lose their brackets."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise UdpTrackerError(f"bad udp tracker URL {url!r}: {exc}") from None
    if parts.scheme.lower() != "udp":
        raise UdpTrackerError(f"not a udp:// tracker URL: {url!r}")
    if not host:
        raise UdpTrackerError(f"udp tracker URL has no host: {url!r}")
    if port is None or port == 0:
        raise UdpTrackerError(f"udp tracker URL has no port: {url!r}")
    return host, port


# -- requests -----------------------------------------------------------------------------


def _u32(value: int, what: str) -> int:
    if not 0 <= value <= 0xFFFFFFFF:
        raise UdpTrackerError(f"{what} must fit in 32 bits, got {value}")
    return value


def build_connect(transaction_id: int) -> bytes:
    return _CONNECT_REQ.pack(PROTOCOL_ID, ACTION_CONNECT, _u32(transaction_id, "transaction id"))


def build_announce(connection_id: int, transaction_id: int, req: AnnounceRequest) -> bytes:
    """98 bytes; ``ip`` is 0 (the tracker uses the sender's address)."""
    if not 0 <= connection_id <= 0xFFFFFFFFFFFFFFFF:
        raise UdpTrackerError(f"connection id must fit in 64 bits, got {connection_id}")
    cap = (1 << 64) - 1
    return _ANNOUNCE_REQ.pack(
        connection_id,
        ACTION_ANNOUNCE,
        _u32(transaction_id, "transaction id"),
        req.info_hash,
        req.peer_id,
        min(req.downloaded, cap),
        min(req.left, cap),
        min(req.uploaded, cap),
        EVENT_CODES[req.event],
        0,
        req.key & 0xFFFFFFFF,
        min(req.numwant, 0x7FFFFFFF),
        req.port,
    )


def build_scrape(connection_id: int, transaction_id: int, info_hashes: list[bytes]) -> bytes:
    if not 1 <= len(info_hashes) <= MAX_SCRAPE_HASHES:
        raise UdpTrackerError(f"a scrape names 1..{MAX_SCRAPE_HASHES} torrents")
    if any(len(h) != 20 for h in info_hashes):
        raise UdpTrackerError("info hashes must be 20 bytes")
    head = struct.pack(">QII", connection_id, ACTION_SCRAPE, _u32(transaction_id, "tid"))
    return head + b"".join(info_hashes)


# -- answers ------------------------------------------------------------------------------


def parse_header(data: bytes) -> tuple[int, int]:
    """(action, transaction id): enough to find the transaction an answer belongs to."""
    if len(data) < _HEADER.size:
        raise UdpTrackerError(f"datagram too short ({len(data)} bytes)")
    action, tid = _HEADER.unpack_from(data)
    return action, tid


def _peers(blob: bytes, ipv6: bool) -> tuple[PeerAddress, ...]:
    try:
        found = decode_peers(blob, ipv6)
    except CompactError:
        raise UdpTrackerError(
            f"announce answer: peer list of {len(blob)} bytes is not a multiple of {peer_len(ipv6)}"
        ) from None
    return tuple(dict.fromkeys(p for p in found if p[1]))  # port 0 cannot be connected to


def parse_connect(data: bytes) -> ConnectReply:
    if len(data) < _CONNECT_RESP.size:
        raise UdpTrackerError(f"connect answer too short ({len(data)} bytes)")
    action, tid, cid = _CONNECT_RESP.unpack_from(data)
    if action != ACTION_CONNECT:
        raise UdpTrackerError(f"expected a connect answer, got action {action}")
    return ConnectReply(tid, cid)


def parse_announce(data: bytes, *, ipv6: bool = False) -> AnnounceReply:
    """``ipv6``: the request went over IPv6, so peers are 18 bytes (16 + port)."""
    if len(data) < _ANNOUNCE_RESP.size:
        raise UdpTrackerError(f"announce answer too short ({len(data)} bytes)")
    action, tid, interval, leechers, seeders = _ANNOUNCE_RESP.unpack_from(data)
    if action != ACTION_ANNOUNCE:
        raise UdpTrackerError(f"expected an announce answer, got action {action}")
    peers = _peers(data[_ANNOUNCE_RESP.size :], ipv6)
    return AnnounceReply(tid, interval, leechers, seeders, peers)


def parse_scrape(data: bytes) -> ScrapeReply:
    action, tid = parse_header(data)
    if action != ACTION_SCRAPE:
        raise UdpTrackerError(f"expected a scrape answer, got action {action}")
    body = data[_HEADER.size :]
    if len(body) % _SCRAPE_ENTRY.size:
        raise UdpTrackerError(f"scrape answer: {len(body)} bytes is not a multiple of 12")
    entries = tuple(ScrapeEntry(*e) for e in _SCRAPE_ENTRY.iter_unpack(body))
    return ScrapeReply(tid, entries)


def parse_error(data: bytes) -> ErrorReply:
    action, tid = parse_header(data)
    if action != ACTION_ERROR:
        raise UdpTrackerError(f"expected an error answer, got action {action}")
    text = data[_HEADER.size :].rstrip(b"\x00").decode("utf-8", errors="replace").strip()
    return ErrorReply(tid, text or "udp tracker error (no message)")


def parse_reply(data: bytes, *, ipv6: bool = False) -> Reply:
    """Any answer, by its action; unknown actions raise UdpTrackerError."""
    action, _ = parse_header(data)
    if action == ACTION_CONNECT:
        return parse_connect(data)
    if action == ACTION_ANNOUNCE:
        return parse_announce(data, ipv6=ipv6)
    if action == ACTION_SCRAPE:
        return parse_scrape(data)
    if action == ACTION_ERROR:
        return parse_error(data)
    raise UdpTrackerError(f"unknown action {action}")
