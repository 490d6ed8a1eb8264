"""HTTP tracker announce/scrape codec (BEP 3, 7, 23, 48): pure, no I/O.

Trackers are untrusted: every malformed answer becomes a TrackerError with a
clear message, never another exception, so one bad tracker cannot break a torrent.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from btd.core.bencode import decode
from btd.core.compact import CompactError, decode_peers, peer_len
from btd.core.errors import BencodeError, TrackerError
from btd.core.limits import TRACKER_MESSAGE_MAX
from btd.core.types import PeerAddress

EVENTS = ("", "started", "completed", "stopped")
DEFAULT_INTERVAL = 1800
"""Used when a tracker omits ``interval`` (libtorrent's default)."""
MIN_INTERVAL = 60
"""Trackers may not ask for announces more often than this (libtorrent clamps too)."""
MAX_INTERVAL = 7 * 24 * 3600
"""Absurd intervals are capped so the timer stays meaningful."""

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@dataclass(frozen=True)
class AnnounceRequest:
    """What we tell a tracker in one announce."""

    info_hash: bytes
    peer_id: bytes
    port: int
    uploaded: int
    downloaded: int
    left: int
    event: str
    numwant: int = 50
    key: int = 0
    tracker_id: bytes | None = None
    compact: bool = True
    allow_local: bool = False
    """Not sent: the torrent's ``allow_local_trackers``, for the outbound policy
    (core/outbound.py) the client applies to the addresses it connects to."""

    def __post_init__(self) -> None:
        if len(self.info_hash) != 20:
            raise TrackerError(f"info hash must be 20 bytes, got {len(self.info_hash)}")
        if len(self.peer_id) != 20:
            raise TrackerError(f"peer id must be 20 bytes, got {len(self.peer_id)}")
        if not 0 <= self.port <= 0xFFFF:
            raise TrackerError(f"port out of range: {self.port}")
        if self.event not in EVENTS:
            raise TrackerError(f"unknown announce event {self.event!r}")
        if min(self.uploaded, self.downloaded, self.left, self.numwant) < 0:
            raise TrackerError("announce counters must not be negative")


@dataclass(frozen=True)
class AnnounceResponse:
    """A tracker's successful answer; ``interval`` is already clamped."""

    interval: int
    min_interval: int | None
    tracker_id: bytes | None
    complete: int | None
    incomplete: int | None
    peers: tuple[PeerAddress, ...]
    warning: str | None


# ESC [ ... final byte (CSI), ESC ] ... BEL or ESC \ (OSC), any other ESC x; then C0/C1 controls
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def clean_message(text: str, limit: int = TRACKER_MESSAGE_MAX) -> str:
    """A tracker's text made fit for one log line and ``torrent.trackers``: terminal escape
    sequences removed, other control characters (newlines too) turned into one space, cut
    to ``limit`` characters (with "..." when cut). Linear in the text's length."""
    text = text[: limit * 8]  # a 1 MB message is not worth scanning whole
    text = _CONTROLS.sub(" ", _ESCAPES.sub("", text)).strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def percent_encode(data: bytes) -> str:
    """Byte-exact %XX encoding: every byte outside RFC 3986's unreserved set is escaped."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in data)


def _append_query(base_url: str, params: list[tuple[str, str]]) -> str:
    """Append already-encoded params, keeping any query (e.g. a passkey) the URL has."""
    url, _, _fragment = base_url.partition("#")
    query = "&".join(f"{k}={v}" for k, v in params)
    if "?" not in url:
        return f"{url}?{query}"
    if url.endswith(("?", "&")):
        return url + query
    return f"{url}&{query}"


def build_announce_url(base_url: str, req: AnnounceRequest) -> str:
    """The GET URL for one announce to ``base_url``."""
    params = [
        ("info_hash", percent_encode(req.info_hash)),
        ("peer_id", percent_encode(req.peer_id)),
        ("port", str(req.port)),
        ("uploaded", str(req.uploaded)),
        ("downloaded", str(req.downloaded)),
        ("left", str(req.left)),
    ]
    if req.compact:
        params += [("compact", "1"), ("no_peer_id", "1")]
    else:
        params.append(("compact", "0"))
    params += [("numwant", str(req.numwant)), ("key", f"{req.key & 0xFFFFFFFF:08X}")]
    if req.event:
        params.append(("event", req.event))
    if req.tracker_id is not None:
        params.append(("trackerid", percent_encode(req.tracker_id)))
    return _append_query(base_url, params)


def _text(value: bytes) -> str:
    return clean_message(value[: TRACKER_MESSAGE_MAX * 8].decode("utf-8", errors="replace"))


def _decode_dict(body: bytes, what: str) -> dict[bytes, Any]:
    try:
        data = decode(body)
    except BencodeError as exc:
        raise TrackerError(f"tracker {what} is not valid bencode: {exc}") from None
    except Exception as exc:  # defensive: a tracker body must never crash the caller
        raise TrackerError(f"tracker {what} could not be decoded: {exc!r}") from None
    if not isinstance(data, dict):
        raise TrackerError(f"tracker {what} is not a dictionary")
    failure = data.get(b"failure reason")
    if failure is not None:
        if isinstance(failure, bytes):
            raise TrackerError(_text(failure) or "tracker failure (empty reason)")
        raise TrackerError(f"tracker failure (reason of type {type(failure).__name__})")
    return data


def _opt_int(data: dict[bytes, Any], key: bytes) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TrackerError(f"tracker answer: {key.decode()!r} must be an integer")
    if value < 0:
        raise TrackerError(f"tracker answer: {key.decode()!r} is negative ({value})")
    return value


def _opt_bytes(data: dict[bytes, Any], key: bytes) -> bytes | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, bytes):
        raise TrackerError(f"tracker answer: {key.decode()!r} must be a string")
    return value


def _compact_peers(blob: bytes, family: int) -> list[PeerAddress]:
    try:
        return decode_peers(blob, ipv6=family == 6)
    except CompactError:
        key = "peers" if family == 4 else "peers6"
        raise TrackerError(
            f"tracker answer: compact {key!r} length {len(blob)} "
            f"is not a multiple of {peer_len(family == 6)}"
        ) from None


def _dict_peers(entries: list[Any]) -> list[PeerAddress]:
    """BEP 3 dictionary model; entries with a bad ip or port are skipped, not fatal."""
    peers: list[PeerAddress] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        ip, port = entry.get(b"ip"), entry.get(b"port")
        if not isinstance(ip, bytes) or not isinstance(port, int) or isinstance(port, bool):
            continue
        if not 0 < port <= 0xFFFF:
            continue
        try:
            addr = ipaddress.ip_address(ip.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            continue
        peers.append((addr.compressed, port))
    return peers


def _peers(data: dict[bytes, Any]) -> tuple[PeerAddress, ...]:
    found: list[PeerAddress] = []
    raw = data.get(b"peers")
    if isinstance(raw, bytes):
        found += _compact_peers(raw, 4)
    elif isinstance(raw, list):
        found += _dict_peers(raw)
    elif raw is not None:
        raise TrackerError("tracker answer: 'peers' must be a string or a list")
    raw6 = data.get(b"peers6")
    if isinstance(raw6, bytes):
        found += _compact_peers(raw6, 6)
    elif raw6 is not None:
        raise TrackerError("tracker answer: 'peers6' must be a string")
    # Port 0 cannot be connected to; duplicates waste connection attempts.
    return tuple(dict.fromkeys(p for p in found if p[1] != 0))


def parse_announce_response(body: bytes) -> AnnounceResponse:
    """Decode an announce answer; raises TrackerError for a failure reason or garbage."""
    data = _decode_dict(body, "announce answer")
    interval = _opt_int(data, b"interval")
    min_interval = _opt_int(data, b"min interval")
    if min_interval is not None:
        min_interval = min(min_interval, MAX_INTERVAL)
    interval = DEFAULT_INTERVAL if interval is None else interval
    interval = max(MIN_INTERVAL, min(interval, MAX_INTERVAL))
    warning = _opt_bytes(data, b"warning message")
    return AnnounceResponse(
        interval=interval,
        min_interval=min_interval,
        tracker_id=_opt_bytes(data, b"tracker id"),
        complete=_opt_int(data, b"complete"),
        incomplete=_opt_int(data, b"incomplete"),
        peers=_peers(data),
        warning=None if warning is None else _text(warning),
    )


def build_scrape_url(announce_url: str) -> str | None:
    """The scrape URL by convention (BEP 48): last path segment 'announce...' -> 'scrape...'.

    A URL that already names a scrape path is returned as is; None if there is none.
    """
    try:
        parts = urlsplit(announce_url)
    except ValueError:
        return None
    head, sep, last = parts.path.rpartition("/")
    if not sep:
        return None
    if last.startswith("scrape"):
        return urlunsplit(parts._replace(fragment=""))
    if not last.startswith("announce"):
        return None
    path = f"{head}/scrape{last[len('announce') :]}"
    return urlunsplit(parts._replace(path=path, fragment=""))


def build_scrape_request_url(scrape_url: str, info_hash: bytes) -> str:
    """The GET URL that scrapes one torrent."""
    return _append_query(scrape_url, [("info_hash", percent_encode(info_hash))])


def parse_scrape_response(body: bytes, info_hash: bytes) -> tuple[int, int, int]:
    """(complete, incomplete, downloaded) for ``info_hash`` from a scrape answer."""
    data = _decode_dict(body, "scrape answer")
    files = data.get(b"files")
    if not isinstance(files, dict):
        raise TrackerError("tracker scrape answer has no 'files' dictionary")
    entry = files.get(info_hash)
    if entry is None:
        raise TrackerError("tracker scrape answer does not list this torrent")
    if not isinstance(entry, dict):
        raise TrackerError("tracker scrape answer: the torrent's entry is not a dictionary")
    complete = _opt_int(entry, b"complete")
    incomplete = _opt_int(entry, b"incomplete")
    downloaded = _opt_int(entry, b"downloaded")
    return (complete or 0, incomplete or 0, downloaded or 0)
