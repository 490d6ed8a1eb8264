"""Read-only views of a Torrent as JSON-able dicts (for RPC and btctl)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from btd.core.torrent import Torrent
from btd.core.torrent_state import TorrentState
from btd.core.types import format_address

SUMMARY_FIELDS = (
    "info_hash",
    "name",
    "state",
    "state_detail",
    "progress",
    "size",
    "wanted",
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
    "download_limit",
    "upload_limit",
    "error",
    "pieces",
    "pieces_have",
    "piece_length",
    "private",
    "info_hash_v2",
    "added_at",
    "completed_at",
    "check_progress",
    "move_progress",
    "labels",
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
    meta, book, options = t.meta, t.book, t.options
    size = meta.total_length
    wanted = book.wanted_bytes
    left = book.wanted_left
    peers = t.peers
    down = t.download_rate() if peers else 0.0
    return {
        "info_hash": t.hex,
        "name": t.name,
        "state": t.state,
        "state_detail": t.state_detail,  # e.g. "storage missing: /path ..." (else None)
        "progress": _ratio_done(wanted, left),
        "size": size,
        "wanted": wanted,
        "left": left,
        "downloaded": t.downloaded,
        "uploaded": t.uploaded,
        "ratio": round(t.uploaded / t.downloaded, 4) if t.downloaded else 0.0,
        "download_rate": round(down),
        "upload_rate": round(t.upload_rate()) if peers else 0,
        "peers": len(peers),
        "seeds": _seeds(t) if peers else 0,  # no generator per idle torrent
        "eta": _eta(left, down),
        "save_path": str(options.save_path),
        "strategy": options.strategy,
        "download_limit": options.download_limit,  # bytes/s, 0 = unlimited
        "upload_limit": options.upload_limit,
        "error": t.error,
        "pieces": t.num_pieces,
        "pieces_have": book.have.count,
        "piece_length": meta.piece_length,
        "private": meta.private,
        "info_hash_v2": _v2(meta),
        "added_at": t.added_at,
        "completed_at": t.completed_at,
        "check_progress": round(t.check_progress, 4),
        "move_progress": _move_progress(t),
        "labels": list(options.labels) if options.labels else [],
        "queue_position": t.queue_position,  # 0 = first (core/queue.py)
        "force_start": options.force_start,
        "ratio_limit": options.ratio_limit,  # null = the session's, -1 = unlimited
        "seeding_time_limit": options.seeding_time_limit,  # minutes, as ratio_limit
        "idle_seeding_limit": options.idle_seeding_limit,
        "seeding_time": _seeding_time(t),  # seconds spent seeding (all time)
    }


def row_builder(fields: list[str] | None = None) -> Callable[[Torrent], dict[str, Any]]:
    """:func:`summary` for many torrents: the field getters looked up once, not per row."""
    if fields is None:
        return summary
    getters = tuple((name, _FIELDS[name]) for name in fields)
    return lambda t: {name: get(t) for name, get in getters}


def quiet_key(fields: list[str] | None) -> Callable[[Any], tuple[Any, ...] | None]:
    """What a quiet torrent's row of ``fields`` is made of, besides the queue order and what
    never changes: while it is equal, a row built earlier is still true (core/rpc/list_rows.py).

    None when the torrent is not quiet: it has peers (rates and counters change at any
    moment), it is checking or moving its files, or it seeds and ``seeding_time`` (which grows
    with time) is asked. Otherwise ``status_changes`` (Torrent.row_changed: its state, options,
    pieces, errors, peers coming and going), its counters, and its check's progress if asked.
    """
    clocked = fields is None or "seeding_time" in fields
    checked = fields is None or "check_progress" in fields
    torrent, checking, seeding = Torrent, TorrentState.CHECKING, TorrentState.SEEDING

    def key(t: Any) -> tuple[Any, ...] | None:
        if type(t) is not torrent:
            return None  # a magnet waiting for metadata (few; its row is built each time)
        state = t.state
        if t.peers or state is checking or t.move_task is not None:
            return None
        if clocked and state is seeding:
            return None
        made_of = (t.status_changes, t.downloaded, t.uploaded)
        return (*made_of, t.data.progress) if checked else made_of

    return key


def _v2(meta: Any) -> str | None:
    """A hybrid torrent's v2 info hash (64 hex), else None."""
    return meta.info_hash_v2.hex() if meta.info_hash_v2 is not None else None


def _seeds(t: Torrent) -> int:
    return sum(1 for p in t.peers if p.has.complete)


def _move_progress(t: Torrent) -> float | None:
    """0..1 while its files are being moved (core/mover.py), else None."""
    return None if t.move_task is None else round(t.move_task.progress, 4)


def _seeding_time(t: Torrent) -> int:
    return round(t.seed_clock.seeding_time(t.clock.seconds()))


def _eta(left: int, down: float) -> int | None:
    return round(left / down) if down > 0 and left else (0 if not left else None)


def _progress(t: Torrent) -> float:
    """Over the wanted pieces (all of them unless files are skipped)."""
    book = t.book
    return _ratio_done(book.wanted_bytes, book.wanted_left)


def _ratio_done(wanted: int, left: int) -> float:
    """0..1 to six places; the common ends without ``round`` (slow, and 10,000 per list)."""
    if not left or not wanted:
        return 1.0
    if left == wanted:
        return 0.0
    return round((wanted - left) / wanted, 6)


_FIELDS: dict[str, Callable[[Torrent], Any]] = {
    "info_hash": lambda t: t.hex,
    "name": lambda t: t.name,
    "state": lambda t: t.state,
    "state_detail": lambda t: t.state_detail,
    "progress": _progress,
    "size": lambda t: t.meta.total_length,
    "wanted": lambda t: t.book.wanted_bytes,
    "left": lambda t: t.book.wanted_left,
    "downloaded": lambda t: t.downloaded,
    "uploaded": lambda t: t.uploaded,
    "ratio": lambda t: round(t.uploaded / t.downloaded, 4) if t.downloaded else 0.0,
    "download_rate": lambda t: round(t.download_rate()) if t.peers else 0,
    "upload_rate": lambda t: round(t.upload_rate()) if t.peers else 0,
    "peers": lambda t: len(t.peers),
    "seeds": lambda t: _seeds(t) if t.peers else 0,
    "eta": lambda t: _eta(t.book.wanted_left, t.download_rate() if t.peers else 0.0),
    "save_path": lambda t: str(t.options.save_path),
    "strategy": lambda t: t.options.strategy,
    "download_limit": lambda t: t.options.download_limit,
    "upload_limit": lambda t: t.options.upload_limit,
    "error": lambda t: t.error,
    "pieces": lambda t: t.num_pieces,
    "pieces_have": lambda t: t.book.have.count,
    "piece_length": lambda t: t.meta.piece_length,
    "private": lambda t: t.meta.private,
    "info_hash_v2": lambda t: _v2(t.meta),
    "added_at": lambda t: t.added_at,
    "completed_at": lambda t: t.completed_at,
    "check_progress": lambda t: round(t.check_progress, 4),
    "move_progress": _move_progress,
    "labels": lambda t: list(t.options.labels),
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


def files(t: Torrent, start: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
    """Per-file progress: bytes of verified pieces that fall in each file (of the files
    ``start`` to ``stop``: the RPC layer builds a huge list in slices); whether the file is
    wanted and its priority (``low``, ``normal``, ``high``)."""
    meta = t.meta
    sel = t.selection
    have = t.book.have
    plen = meta.piece_length
    rows = []
    for index, entry in enumerate(meta.files[start:stop], start):
        if entry.pad:
            continue
        done = 0
        lo, hi = entry.offset, entry.offset + entry.length
        if entry.length:
            for piece in range(lo // plen, (hi - 1) // plen + 1):
                if piece in have:
                    p_start = piece * plen
                    done += min(hi, p_start + plen) - max(lo, p_start)
        rows.append(
            {
                "index": index,
                "path": "/".join(entry.path),
                "length": entry.length,
                "completed": done,
                "progress": round(done / entry.length, 6) if entry.length else 1.0,
                "wanted": bool(sel.wanted[index]),
                "priority": sel.priority_name(index),
            }
        )
    return rows


def peers(t: Torrent) -> list[dict[str, Any]]:
    """Each connected peer's ``info()``, and ``v2``: its handshake named the torrent's v2
    swarm (a v2-only torrent's one id, a hybrid's truncated v2 hash; BEP 52)."""
    v2_id = t.swarm_ids[-1] if t.v2 else None
    out = []
    for peer in t.peers:
        info = peer.info()
        info["v2"] = v2_id is not None and getattr(peer.link, "swarm_id", None) == v2_id
        out.append(info)
    return out


def disconnects(t: Torrent) -> dict[str, int]:
    """How this torrent's peer connections ended, by reason class (since it was loaded)."""
    return t.candidates.disconnects.as_dict()


def trackers(t: Torrent) -> list[dict[str, Any]]:
    return t.announcer.status()


def pieces_map(t: Torrent) -> str:
    """The pieces we have as hex of the bitfield (for a compact piece map)."""
    return t.book.have.to_bytes().hex()
