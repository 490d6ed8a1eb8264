"""Read-only views of a Torrent as JSON-able dicts (for RPC and btctl)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from btd.core.torrent import Torrent
from btd.core.types import format_address

SUMMARY_FIELDS = (
    "info_hash",
    "name",
    "state",
    "state_detail",
    "progress",
    "size",
    "left",
    "downloaded",
    "uploaded",
    "ratio",
    "download_rate",
    "upload_rate",
    "peers",
    "seeds",
    "eta",
    "save_path",
    "strategy",
    "error",
    "pieces",
    "pieces_have",
    "piece_length",
    "private",
    "added_at",
    "completed_at",
    "check_progress",
    "queue_position",
    "force_start",
    "ratio_limit",
    "seeding_time_limit",
    "idle_seeding_limit",
    "seeding_time",
)


def summary(t: Torrent, fields: list[str] | None = None) -> dict[str, Any]:
    """The ``torrent.list``/``torrent.get`` record; ``fields`` picks a subset (and only
    those are computed: ``btctl list`` over 10,000 torrents asks for a few)."""
    if fields is not None:
        return {name: _FIELDS[name](t) for name in fields}
    size = t.meta.total_length
    left = t.book.bytes_left
    down = t.download_rate() if t.peers else 0.0
    return {
        "info_hash": t.hex,
        "name": t.name,
        "state": t.state,
        "state_detail": t.state_detail,  # e.g. "storage missing: /path ..." (else None)
        "progress": round((size - left) / size, 6) if size else 1.0,
        "size": size,
        "left": left,
        "downloaded": t.downloaded,
        "uploaded": t.uploaded,
        "ratio": round(t.uploaded / t.downloaded, 4) if t.downloaded else 0.0,
        "download_rate": round(down),
        "upload_rate": round(t.upload_rate()) if t.peers else 0,
        "peers": len(t.peers),
        "seeds": sum(1 for p in t.peers if p.has.complete),
        "eta": _eta(left, down),
        "save_path": str(t.options.save_path),
        "strategy": t.options.strategy,
        "error": t.error,
        "pieces": t.num_pieces,
        "pieces_have": t.book.have.count,
        "piece_length": t.meta.piece_length,
        "private": t.meta.private,
        "added_at": t.added_at,
        "completed_at": t.completed_at,
        "check_progress": round(t.check_progress, 4),
        "queue_position": t.queue_position,  # 0 = first (core/queue.py)
        "force_start": t.options.force_start,
        "ratio_limit": t.options.ratio_limit,  # null = the session's, -1 = unlimited
        "seeding_time_limit": t.options.seeding_time_limit,  # minutes, as ratio_limit
        "idle_seeding_limit": t.options.idle_seeding_limit,
        "seeding_time": _seeding_time(t),  # seconds spent seeding (all time)
    }


def _seeding_time(t: Torrent) -> int:
    return round(t.seed_clock.seeding_time(t.clock.seconds()))


def _eta(left: int, down: float) -> int | None:
    return round(left / down) if down > 0 and left else (0 if not left else None)


def _progress(t: Torrent) -> float:
    size, left = t.meta.total_length, t.book.bytes_left
    return round((size - left) / size, 6) if size else 1.0


_FIELDS: dict[str, Callable[[Torrent], Any]] = {
    "info_hash": lambda t: t.hex,
    "name": lambda t: t.name,
    "state": lambda t: t.state,
    "state_detail": lambda t: t.state_detail,
    "progress": _progress,
    "size": lambda t: t.meta.total_length,
    "left": lambda t: t.book.bytes_left,
    "downloaded": lambda t: t.downloaded,
    "uploaded": lambda t: t.uploaded,
    "ratio": lambda t: round(t.uploaded / t.downloaded, 4) if t.downloaded else 0.0,
    "download_rate": lambda t: round(t.download_rate()) if t.peers else 0,
    "upload_rate": lambda t: round(t.upload_rate()) if t.peers else 0,
    "peers": lambda t: len(t.peers),
    "seeds": lambda t: sum(1 for p in t.peers if p.has.complete),
    "eta": lambda t: _eta(t.book.bytes_left, t.download_rate() if t.peers else 0.0),
    "save_path": lambda t: str(t.options.save_path),
    "strategy": lambda t: t.options.strategy,
    "error": lambda t: t.error,
    "pieces": lambda t: t.num_pieces,
    "pieces_have": lambda t: t.book.have.count,
    "piece_length": lambda t: t.meta.piece_length,
    "private": lambda t: t.meta.private,
    "added_at": lambda t: t.added_at,
    "completed_at": lambda t: t.completed_at,
    "check_progress": lambda t: round(t.check_progress, 4),
    "queue_position": lambda t: t.queue_position,
    "force_start": lambda t: t.options.force_start,
    "ratio_limit": lambda t: t.options.ratio_limit,
    "seeding_time_limit": lambda t: t.options.seeding_time_limit,
    "idle_seeding_limit": lambda t: t.options.idle_seeding_limit,
    "seeding_time": _seeding_time,
}
assert tuple(_FIELDS) == SUMMARY_FIELDS


def sources(t: Torrent) -> dict[str, int]:
    """Payload bytes received per peer address, past and present connections."""
    out = dict(t.sources)
    for peer in t.peers:
        if peer.payload_in:
            key = format_address(peer.link.address)
            out[key] = out.get(key, 0) + peer.payload_in
    return out


def files(t: Torrent) -> list[dict[str, Any]]:
    """Per-file progress: bytes of verified pieces that fall in each file."""
    meta = t.meta
    have = t.book.have
    plen = meta.piece_length
    rows = []
    for index, entry in enumerate(meta.files):
        if entry.pad:
            continue
        done = 0
        start, end = entry.offset, entry.offset + entry.length
        if entry.length:
            for piece in range(start // plen, (end - 1) // plen + 1):
                if piece in have:
                    p_start = piece * plen
                    done += min(end, p_start + plen) - max(start, p_start)
        rows.append(
            {
                "index": index,
                "path": "/".join(entry.path),
                "length": entry.length,
                "completed": done,
                "progress": round(done / entry.length, 6) if entry.length else 1.0,
            }
        )
    return rows


def peers(t: Torrent) -> list[dict[str, Any]]:
    return [peer.info() for peer in t.peers]


def disconnects(t: Torrent) -> dict[str, int]:
    """How this torrent's peer connections ended, by reason class (since it was loaded)."""
    return t.candidates.disconnects.as_dict()


def trackers(t: Torrent) -> list[dict[str, Any]]:
    return t.announcer.status()


def pieces_map(t: Torrent) -> str:
    """The pieces we have as hex of the bitfield (for a compact piece map)."""
    return t.book.have.to_bytes().hex()
