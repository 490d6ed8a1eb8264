"""``torrent.list`` rows kept encoded from one list to the next: a list costs what changed.

Of 10,000 loaded torrents, nearly all are paused or seed with nobody connected: between two
lists their rows do not change, yet building and encoding one costs the daemon 3-5 µs (a
10,000-row list held the reactor ~50 ms, more during a download). So each field set asked
keeps, per quiet torrent, its row as JSON text beside what it was made of
(``torrent_status.quiet_key``); a torrent that is not quiet (peers, a check, a move) gets a
fresh row every time and nothing kept.

A list of every torrent (no filter) keeps more: the rows in list order. The next one looks
only at the torrents the session's change log (core/status_log.py) names since then and at
the ones that were not quiet, and sends the rest as they were. Every row is checked against
its key again when torrents came or went, when the queue order moved (if ``queue_position``
is asked) and at least every ``FULL_CHECK_SECONDS``. A filtered list checks each of its rows.

Rows are kept for the last ``FIELD_SETS`` field sets asked (btctl's, the web UI's, all...):
about 0.4 KB a torrent for btctl's 13 fields, 1 KB for all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from btd.core.rpc.json_text import Encoded, dumps_kept
from btd.core.status_log import StatusLog

FIELD_SETS = 4  # field sets (and forms) whose rows are kept, least recently asked dropped first
FULL_CHECK_SECONDS = 30.0  # a whole list checks every row against its key at least this often

Key = Callable[[Any], "tuple[Any, ...] | None"]
Row = Callable[[Any], Any]  # a dict, or a list (the table form)
_ADDED_AT = attrgetter("added_at")


class _Kept:
    """One field set's rows: by torrent (with what each was made of), and the last whole
    list in order (``parts``, the torrents at each place, those built fresh)."""

    __slots__ = ("order", "rows", "swarms", "index", "parts", "live", "epoch", "checked_at")

    def __init__(self, order: int) -> None:
        self.order = order  # the queue's order_changes when made
        self.rows: dict[Any, tuple[Any, bytes]] = {}  # by identity: one added again is another
        self.swarms: list[Any] | None = None  # what the last whole list was made of, unsorted
        self.index: dict[Any, int] = {}
        self.parts: list[bytes] = []
        self.live: list[Any] = []  # rows built fresh last time (not quiet)
        self.epoch = 0  # the status log's change number at the last whole list
        self.checked_at = -math.inf

    def text_of(self, t: Any, row: Row, key: Key) -> tuple[bytes, bool]:
        """The torrent's row, and whether it was built fresh (not quiet: not kept)."""
        made_of = key(t)
        if made_of is None:
            self.rows.pop(t, None)
            return dumps_kept(row(t)), True  # orjson's 4 KB buffers, 10,000 at once, grew the heap
        hit = self.rows.get(t)
        if hit is None or hit[0] != made_of:
            hit = self.rows[t] = (made_of, dumps_kept(row(t)))
        return hit[1], False


class ListRows:
    """The kept rows, per field set (``None``: every field)."""

    def __init__(
        self, queue_changes: Callable[[], int], log: StatusLog, seconds: Callable[[], float]
    ) -> None:
        self._queue_changes = queue_changes  # bumped when positions may have moved
        self._log = log
        self._seconds = seconds
        self._kept: dict[tuple[bool, tuple[str, ...] | None], _Kept] = {}

    def _kept_for(self, fields: list[str] | None, table: bool) -> _Kept:
        name = None if fields is None else tuple(fields)
        order = self._queue_changes() if name is None or "queue_position" in name else 0
        kept = self._kept.pop((table, name), None)
        if kept is None or kept.order != order:
            kept = _Kept(order)
        self._kept[table, name] = kept  # now the most recently asked
        while len(self._kept) > FIELD_SETS:
            del self._kept[next(iter(self._kept))]
        return kept

    def whole(
        self, swarms: list[Any], fields: list[str] | None, row: Row, key: Key, *, table: bool
    ) -> Encoded:
        """Every torrent's row (``swarms``: the session's torrents), oldest added first;
        ``table``: ``row`` gives lists (the table form), kept apart from objects."""
        kept = self._kept_for(fields, table)
        now = self._seconds()
        epoch = self._log.epoch
        if kept.swarms != swarms or now - kept.checked_at >= FULL_CHECK_SECONDS:
            torrents = sorted(swarms, key=_ADDED_AT)
            parts, live = self._check_all(kept, torrents, row, key)
            kept.rows = {t: kept.rows[t] for t in torrents if t in kept.rows}  # the removed go
            kept.index = {t: i for i, t in enumerate(torrents)}
            kept.parts, kept.live, kept.swarms, kept.checked_at = parts, live, swarms, now
        else:
            changed = {*kept.live, *self._log.since(kept.epoch)}
            live = []
            for t in changed:
                i = kept.index.get(t)
                if i is not None:
                    kept.parts[i], fresh = kept.text_of(t, row, key)
                    if fresh:
                        live.append(t)
            kept.live = live
        kept.epoch = epoch
        self._log.forget_before(min(k.epoch for k in self._kept.values() if k.swarms is not None))
        return Encoded(b"[" + b",".join(kept.parts) + b"]")  # not kept: 7 MB for every field

    def rows(
        self, torrents: list[Any], fields: list[str] | None, row: Row, key: Key, *, table: bool
    ) -> Encoded:
        """The rows of ``torrents`` (a filtered list), each checked against its key."""
        parts, _ = self._check_all(self._kept_for(fields, table), torrents, row, key)
        return Encoded(b"[" + b",".join(parts) + b"]")

    @staticmethod
    def _check_all(
        kept: _Kept, torrents: list[Any], row: Row, key: Key
    ) -> tuple[list[bytes], list[Any]]:
        parts: list[bytes] = []
        live: list[Any] = []
        for t in torrents:
            text, fresh = kept.text_of(t, row, key)
            parts.append(text)
            if fresh:
                live.append(t)
        return parts, live

    def kept(self) -> int:
        """Rows kept over all field sets (for tests and stats)."""
        return sum(len(k.rows) for k in self._kept.values())
