"""``torrent.list`` rows of quiet torrents, kept encoded from one list to the next.

Of 10,000 loaded torrents, nearly all are paused or seed with nobody connected: between two
lists their rows do not change, yet building and encoding one costs the daemon 3-5 µs (a
10,000-row list held the reactor ~50 ms, more during a download). A quiet torrent's row is
kept as JSON text beside what it was made of (``torrent_status.quiet_key``); the next list
of the same fields sends the text again while that is unchanged, and the queue order has not
moved if the fields include ``queue_position``. A torrent that is not quiet (peers, a check, a
move) gets a fresh row every time and nothing kept.

Rows are kept for the last ``FIELD_SETS`` field sets asked (btctl's, the web UI's, all):
about 0.3 KB a torrent for btctl's 13 fields, 1 KB for all. A list of every torrent (no
filter) keeps only the torrents it listed, so a removed torrent's row goes with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from btd.core.rpc.json_text import Encoded, dumps

FIELD_SETS = 3  # field sets whose rows are kept (least recently asked dropped first)

Key = Callable[[Any], "tuple[Any, ...] | None"]


class ListRows:
    """The kept rows, per field set (``None``: every field)."""

    def __init__(self, queue_changes: Callable[[], int]) -> None:
        self._queue_changes = queue_changes  # bumped when positions may have moved
        self._kept: dict[tuple[str, ...] | None, tuple[int, dict[Any, tuple[Any, bytes]]]] = {}

    def rows(
        self,
        torrents: list[Any],
        fields: list[str] | None,
        row: Callable[[Any], dict[str, Any]],
        key: Key,
        *,
        whole: bool,
    ) -> Encoded:
        """The JSON list of each torrent's row: the kept text while its ``key`` is
        unchanged (None: not quiet, built fresh and not kept), else ``row``'s, kept.
        ``whole``: ``torrents`` is every torrent (the others' rows are dropped)."""
        name = None if fields is None else tuple(fields)
        order = self._queue_changes() if name is None or "queue_position" in name else 0
        seen, kept = self._kept.pop(name, (order, {}))
        if seen != order:
            kept = {}
        self._kept[name] = (order, kept)  # now the most recently asked
        while len(self._kept) > FIELD_SETS:
            del self._kept[next(iter(self._kept))]
        parts: list[bytes] = []
        live = 0
        for t in torrents:
            made_of = key(t)
            if made_of is None:
                kept.pop(t, None)
                parts.append(dumps(row(t)))
                live += 1
                continue
            hit = kept.get(t)  # by identity: a torrent removed and added again is another
            if hit is None or hit[0] != made_of:
                hit = kept[t] = (made_of, dumps(row(t)))
            parts.append(hit[1])
        if whole and len(kept) > len(parts) - live:  # some were removed
            listed = set(torrents)
            for gone in [t for t in kept if t not in listed]:
                del kept[gone]
        return Encoded(b"[" + b",".join(parts) + b"]")

    def kept(self) -> int:
        """Rows kept over all field sets (for tests and stats)."""
        return sum(len(rows) for _, rows in self._kept.values())
