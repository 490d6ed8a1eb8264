"""btd's torrent records as Transmission's ``torrent-get`` fields (pure; no Twisted).

A ``Record`` is what btd's own RPC methods answered for one torrent (``torrent.list``'s
summary, and ``torrent.files``/``peers``/``trackers``/``get`` when a field needs them);
``torrent_fields`` answers the fields asked for, by Transmission 4.0's names (rpc-version
17). Unknown names are left out, as Transmission does. Speeds are bytes/s; Transmission's
limits are kB/s (1000 bytes).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

KB = 1000  # Transmission's speed unit (``units.speed-bytes``)

# Transmission's tr_torrent_activity
STOPPED, CHECK_WAIT, CHECKING, DOWNLOAD_WAIT, DOWNLOADING, SEED_WAIT, SEEDING = range(7)
ERROR_NONE, ERROR_LOCAL = 0, 3
ETA_NOT_AVAILABLE = -1

PRIORITY = {"low": -1, "normal": 0, "high": 1}
PRIORITY_NAME = {v: k for k, v in PRIORITY.items()}

FILE_FIELDS = frozenset(
    {"files", "fileStats", "priorities", "wanted", "file-count", "fileCount", "primary-mime-type"}
)
PEER_FIELDS = frozenset({"peers"})
TRACKER_FIELDS = frozenset({"trackers", "trackerStats", "trackerList", "magnetLink"})
DETAIL_FIELDS = frozenset({"comment", "creator", "pieces", "corruptEver", "isPrivate"})


def status_code(state: str, left: int | None) -> int:
    """Transmission's status (0 stopped .. 6 seeding) for a btd state."""
    if state == "checking":
        return CHECKING
    if state == "queued":
        return SEED_WAIT if left == 0 else DOWNLOAD_WAIT
    if state in ("downloading", "metadata"):
        return DOWNLOADING
    if state == "seeding":
        return SEEDING
    return STOPPED  # paused, stopped, error


def goal_mode(value: float | None) -> tuple[int, float]:
    """(mode, limit) of a btd goal: null = the session's (0), -1 = unlimited (2), else 1."""
    if value is None:
        return 0, 0.0
    if value < 0:
        return 2, 0.0
    return 1, value


def goal_value(mode: Any, limit: Any, current: float | None) -> float | None:
    """btd's goal for Transmission's (mode, limit): ValueError for a bad pair."""
    if mode == 0:
        return None
    if mode == 2:
        return -1
    if mode == 1:
        value = current if limit is None else limit
        if value is None or value < 0:
            raise ValueError("a limit >= 0 is needed with mode 1")
        return value
    raise ValueError(f"mode must be 0, 1 or 2, got {mode!r}")


@dataclass
class Record:
    tid: int
    summary: Mapping[str, Any]
    files: list[dict[str, Any]] | None = None
    peers: list[dict[str, Any]] | None = None
    trackers: list[dict[str, Any]] | None = None
    detail: Mapping[str, Any] | None = None


def magnet_link(info_hash: str, name: str, trackers: Iterable[Mapping[str, Any]]) -> str:
    parts = [f"magnet:?xt=urn:btih:{info_hash}", f"dn={quote(name, safe='')}"]
    parts += [f"tr={quote(str(t.get('url', '')), safe='')}" for t in trackers]
    return "&".join(parts)


def tracker_list(trackers: Iterable[Mapping[str, Any]]) -> str:
    """Announce URLs one a line, tiers apart by a blank line (Transmission's trackerList)."""
    lines: list[str] = []
    tier = None
    for t in trackers:
        if tier is not None and t.get("tier") != tier:
            lines.append("")
        tier = t.get("tier")
        lines.append(str(t.get("url", "")))
    return "\n".join(lines)


def _host(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0]


def _tracker(i: int, t: Mapping[str, Any]) -> dict[str, Any]:
    url = str(t.get("url", ""))
    scrape = url.replace("/announce", "/scrape") if "/announce" in url else ""
    host = _host(url)
    return {"announce": url, "id": i, "scrape": scrape, "tier": t.get("tier", 0), "sitename": host}


def _tracker_stat(i: int, t: Mapping[str, Any], now: float) -> dict[str, Any]:
    error = t.get("last_error")
    status = t.get("status")
    nxt = t.get("next_announce")
    seeders, leechers = t.get("seeders"), t.get("leechers")
    return {
        **_tracker(i, t),
        "host": _host(str(t.get("url", ""))),
        "announceState": 1 if nxt is not None else 0,  # 1 = waiting
        "downloadCount": -1,
        "hasAnnounced": status not in (None, "", "pending", "not contacted"),
        "hasScraped": False,
        "isBackup": False,
        "lastAnnouncePeerCount": t.get("peers_last") or 0,
        "lastAnnounceResult": error or t.get("last_warning") or ("Success" if status else ""),
        "lastAnnounceStartTime": 0,
        "lastAnnounceSucceeded": not error and bool(status),
        "lastAnnounceTime": 0,
        "lastAnnounceTimedOut": bool(error and "timed out" in str(error)),
        "lastScrapeResult": "",
        "lastScrapeStartTime": 0,
        "lastScrapeSucceeded": False,
        "lastScrapeTime": 0,
        "lastScrapeTimedOut": False,
        "leecherCount": -1 if leechers is None else leechers,
        "nextAnnounceTime": 0 if nxt is None else int(now + nxt),
        "nextScrapeTime": 0,
        "scrapeState": 0,
        "seederCount": -1 if seeders is None else seeders,
    }


def _flags(p: Mapping[str, Any]) -> str:
    flags = ""
    if p.get("download_rate") and not p.get("peer_choking"):
        flags += "D"
    elif p.get("am_interested"):
        flags += "d"
    if p.get("upload_rate") and not p.get("am_choking"):
        flags += "U"
    elif p.get("peer_interested"):
        flags += "u"
    return flags


def _peer(p: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "address": p.get("address"),
        "port": p.get("port"),
        "clientName": p.get("client") or "",
        "clientIsChoked": bool(p.get("am_choking")),
        "clientIsInterested": bool(p.get("am_interested")),
        "peerIsChoked": bool(p.get("peer_choking")),
        "peerIsInterested": bool(p.get("peer_interested")),
        "flagStr": _flags(p),
        "isDownloadingFrom": bool(p.get("download_rate")),
        "isUploadingTo": bool(p.get("upload_rate")),
        "isEncrypted": False,
        "isIncoming": False,
        "isUTP": False,
        "progress": p.get("progress", 0.0),
        "rateToClient": p.get("download_rate", 0),
        "rateToPeer": p.get("upload_rate", 0),
        "bytes_to_client": p.get("downloaded", 0),
        "bytes_to_peer": p.get("uploaded", 0),
    }


def _files(r: Record) -> list[dict[str, Any]]:
    return [
        {
            "name": f["path"],  # btd's paths start with the torrent's folder, as here
            "length": f["length"],
            "bytesCompleted": f["completed"],
        }
        for f in r.files or []
    ]


def _file_stats(r: Record) -> list[dict[str, Any]]:
    return [
        {
            "bytesCompleted": f["completed"],
            "wanted": bool(f["wanted"]),
            "priority": PRIORITY.get(f["priority"], 0),
        }
        for f in r.files or []
    ]


def _num(value: Any, default: float = 0) -> Any:
    return default if value is None else value


def _pieces(r: Record) -> str:
    hexmap = (r.detail or {}).get("piece_map") or ""
    try:
        return base64.b64encode(bytes.fromhex(hexmap)).decode("ascii")
    except ValueError:
        return ""


def _field_table(session: Mapping[str, Any], now: float) -> dict[str, Callable[[Record], Any]]:
    def s(r: Record, key: str, default: Any = 0) -> Any:
        return _num(r.summary.get(key), default)

    def have(r: Record) -> int:
        return max(0, s(r, "wanted") - s(r, "left"))

    def error_string(r: Record) -> str:
        return r.summary.get("error") or ""

    def ratio_mode(r: Record) -> tuple[int, float]:
        mode, limit = goal_mode(r.summary.get("ratio_limit"))
        if mode == 0:
            session_limit = session.get("ratio_limit", -1)
            limit = session_limit if session_limit is not None and session_limit >= 0 else 0.0
        return mode, limit

    def idle_mode(r: Record) -> tuple[int, float]:
        mode, limit = goal_mode(r.summary.get("idle_seeding_limit"))
        if mode == 0:
            session_limit = session.get("idle_seeding_limit", -1)
            limit = session_limit if session_limit is not None and session_limit >= 0 else 0
        return mode, int(limit)

    def eta(r: Record) -> int:
        value = r.summary.get("eta")
        if value is None or r.summary.get("state") not in ("downloading", "metadata"):
            return ETA_NOT_AVAILABLE
        return int(value)

    def finished(r: Record) -> bool:
        """Done and stopped (Sonarr removes such torrents when their seeding goal is met)."""
        return (
            r.summary.get("left") == 0
            and r.summary.get("state") in ("paused", "stopped")
            and r.summary.get("completed_at") is not None
        )

    def percent(r: Record) -> float:
        return float(s(r, "progress", 0.0))

    def wanted_count(r: Record) -> int:
        return len(r.files or [])

    return {
        "id": lambda r: r.tid,
        "hashString": lambda r: r.summary.get("info_hash"),
        "name": lambda r: r.summary.get("name") or r.summary.get("info_hash"),
        "status": lambda r: status_code(r.summary.get("state", ""), r.summary.get("left")),
        "error": lambda r: ERROR_LOCAL if r.summary.get("error") else ERROR_NONE,
        "errorString": error_string,
        "totalSize": lambda r: s(r, "size"),
        "sizeWhenDone": lambda r: s(r, "wanted", s(r, "size")),
        "leftUntilDone": lambda r: s(r, "left"),
        "haveValid": have,
        "haveUnchecked": lambda r: 0,
        "desiredAvailable": lambda r: s(r, "left"),
        "percentDone": percent,
        "percentComplete": percent,
        "metadataPercentComplete": lambda r: (
            r.summary.get("metadata_progress", 0.0) if r.summary.get("state") == "metadata" else 1.0
        ),
        "recheckProgress": lambda r: s(r, "check_progress", 0.0),
        "isFinished": finished,
        "isStalled": lambda r: False,
        "isPrivate": lambda r: bool(r.summary.get("private")),
        "eta": eta,
        "etaIdle": lambda r: ETA_NOT_AVAILABLE,
        "rateDownload": lambda r: s(r, "download_rate"),
        "rateUpload": lambda r: s(r, "upload_rate"),
        "downloadedEver": lambda r: s(r, "downloaded"),
        "uploadedEver": lambda r: s(r, "uploaded"),
        "corruptEver": lambda r: (r.detail or {}).get("wasted", 0),
        "uploadRatio": lambda r: float(s(r, "ratio", 0.0)),
        "downloadDir": lambda r: r.summary.get("save_path"),
        "addedDate": lambda r: int(s(r, "added_at")),
        "startDate": lambda r: int(s(r, "added_at")),
        "doneDate": lambda r: int(s(r, "completed_at")),
        "activityDate": lambda r: (
            int(now) if s(r, "download_rate") or s(r, "upload_rate") else int(s(r, "added_at"))
        ),
        "editDate": lambda r: 0,
        "dateCreated": lambda r: 0,
        "secondsSeeding": lambda r: int(s(r, "seeding_time")),
        "secondsDownloading": lambda r: 0,
        "seedRatioMode": lambda r: ratio_mode(r)[0],
        "seedRatioLimit": lambda r: ratio_mode(r)[1],
        "seedIdleMode": lambda r: idle_mode(r)[0],
        "seedIdleLimit": lambda r: idle_mode(r)[1],
        "downloadLimit": lambda r: s(r, "download_limit") // KB,
        "downloadLimited": lambda r: bool(s(r, "download_limit")),
        "uploadLimit": lambda r: s(r, "upload_limit") // KB,
        "uploadLimited": lambda r: bool(s(r, "upload_limit")),
        "honorsSessionLimits": lambda r: True,
        "bandwidthPriority": lambda r: 0,
        "peer-limit": lambda r: session.get("max_connections_per_torrent", 0),
        "maxConnectedPeers": lambda r: session.get("max_connections_per_torrent", 0),
        "peersConnected": lambda r: s(r, "peers"),
        "peersSendingToUs": lambda r: s(r, "seeds") if s(r, "download_rate") else 0,
        "peersGettingFromUs": lambda r: s(r, "peers") if s(r, "upload_rate") else 0,
        "peersFrom": lambda r: {
            "fromCache": 0,
            "fromDht": 0,
            "fromIncoming": 0,
            "fromLpd": 0,
            "fromLtep": 0,
            "fromPex": 0,
            "fromTracker": s(r, "peers"),
        },
        "webseeds": lambda r: [],
        "webseedsSendingToUs": lambda r: 0,
        "pieceCount": lambda r: s(r, "pieces"),
        "pieceSize": lambda r: s(r, "piece_length"),
        "pieces": _pieces,
        "queuePosition": lambda r: s(r, "queue_position"),
        "labels": lambda r: list(r.summary.get("labels") or []),
        "group": lambda r: "",
        "sequentialDownload": lambda r: r.summary.get("strategy") == "sequential",
        "comment": lambda r: (r.detail or {}).get("comment") or "",
        "creator": lambda r: (r.detail or {}).get("created_by") or "",
        "torrentFile": lambda r: "",
        "manualAnnounceTime": lambda r: -1,
        "files": _files,
        "fileStats": _file_stats,
        "file-count": wanted_count,
        "fileCount": wanted_count,
        "priorities": lambda r: [PRIORITY.get(f["priority"], 0) for f in r.files or []],
        "wanted": lambda r: [1 if f["wanted"] else 0 for f in r.files or []],
        "primary-mime-type": lambda r: "application/octet-stream",
        "peers": lambda r: [_peer(p) for p in r.peers or []],
        "trackers": lambda r: [_tracker(i, t) for i, t in enumerate(r.trackers or [])],
        "trackerStats": lambda r: [
            _tracker_stat(i, t, now) for i, t in enumerate(r.trackers or [])
        ],
        "trackerList": lambda r: tracker_list(r.trackers or []),
        "magnetLink": lambda r: magnet_link(
            str(r.summary.get("info_hash")), str(r.summary.get("name") or ""), r.trackers or []
        ),
    }


FIELDS = frozenset(_field_table({}, 0.0))


def torrent_fields(
    record: Record, fields: Iterable[str], session: Mapping[str, Any], now: float
) -> dict[str, Any]:
    """The fields asked for (known ones only) of one torrent."""
    table = _field_table(session, now)
    return {name: table[name](record) for name in fields if name in table}
