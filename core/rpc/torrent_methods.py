"""``torrent.*`` and ``session.stats``: the engine's JSON-RPC methods.

Torrents are named by their 40-hex info hash or any unique prefix of it. Every bad
parameter answers -32602 with ``data.field``; an unknown torrent NOT_FOUND, an ambiguous
prefix AMBIGUOUS, a refused .torrent INVALID_TORRENT, a disk problem STORAGE (a save path
that cannot be written: STORAGE with ``data.field`` ``save_path``).
"""

from __future__ import annotations

import ipaddress
from operator import attrgetter
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.task import deferLater

from btd.core import session_status
from btd.core import torrent_status as status
from btd.core.errors import MetainfoError
from btd.core.file_selection import FileSelectionError, check_indices, check_priority
from btd.core.labels import check_label
from btd.core.metadata_fetch import MetadataFetch
from btd.core.metainfo import Metainfo
from btd.core.move_files import MoveRefused
from btd.core.queue import MOVES as QUEUE_MOVES
from btd.core.rpc.add_items import (
    MAX_BATCH,
    MAX_TORRENT_FILE,
    add_batch,
    add_options,
    check_batch,
    check_source,
    load_source,
    storage_error,
)
from btd.core.rpc.dispatch import require
from btd.core.rpc.errors import (
    AMBIGUOUS,
    INVALID_TORRENT,
    NO_METADATA,
    NOT_FOUND,
    SHUTTING_DOWN,
    STORAGE,
    RpcError,
    invalid_params,
)
from btd.core.rpc.json_text import Encoded
from btd.core.rpc.list_rows import ListRows
from btd.core.session import Session
from btd.core.swarm import TorrentNotFound
from btd.core.torrent import Torrent
from btd.core.torrent_settings import (
    SettingError,
    apply_settings,
    check_absolute_path,
    current_settings,
)
from btd.core.torrent_state import TorrentState

__all__ = ["MAX_BATCH", "MAX_TORRENT_FILE", "torrent_methods"]

NO_FILES_YET = "not with a magnet: use torrent.set_files once it has metadata"
STATES = tuple(s.value for s in TorrentState)
LIST_FORMATS = ("objects", "table")  # torrent.list: a list of objects, or fields + value rows


FILES_SLICE = 2000  # file rows built per reactor turn (~5 ms) for a torrent with many files


def files_in_slices(t: Torrent, clock: Any) -> list[dict[str, Any]] | defer.Deferred[Any]:
    """``status.files``, at once for a usual torrent; ``FILES_SLICE`` rows per reactor turn
    for one with 200,000 files (building them all at once froze the daemon for 0.5 s)."""
    total = len(t.meta.files)
    if total <= FILES_SLICE:
        return status.files(t)

    async def build() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for start in range(0, total, FILES_SLICE):
            if start:
                await deferLater(clock, 0, lambda: None)
            rows.extend(status.files(t, start, start + FILES_SLICE))
        return rows

    return defer.Deferred.fromCoroutine(build())


_ADDED_AT = attrgetter("added_at")


def _pick(values: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    return values if fields is None else {name: values[name] for name in fields}


def torrent_methods(session: Session) -> dict[str, Any]:
    """Build the methods around one session (explicit dict, no global registry)."""

    def find_any(info_hash: Any) -> Any:
        """A torrent, or a magnet still waiting for its metadata."""
        require("info_hash", info_hash, str)
        try:
            return session.find(info_hash)
        except TorrentNotFound as exc:
            code = AMBIGUOUS if exc.ambiguous else NOT_FOUND
            raise RpcError(code, str(exc), {"field": "info_hash", "value": info_hash}) from None

    def find(info_hash: Any) -> Torrent:
        """A torrent with metadata: what most methods need."""
        t = find_any(info_hash)
        if isinstance(t, MetadataFetch):
            raise RpcError(
                NO_METADATA,
                f"{t.hex} is a magnet still waiting for its metadata",
                {"field": "info_hash", "value": info_hash},
            )
        return t

    def add(
        metainfo: str | None = None,
        path: str | None = None,
        magnet: str | None = None,
        torrents: list[Any] | None = None,
        **options: Any,
    ) -> defer.Deferred[Any]:
        """Add a torrent from base64 metainfo, a .torrent path the daemon can read, or a
        magnet, with options (``save_path``, ``paused``, ``strategy``, ...: the add-time
        settings of core/torrent_settings.py); or many at once: ``torrents``, a list of such
        objects (one result each)."""
        if session.stopping:
            raise RpcError(SHUTTING_DOWN, "the daemon is shutting down")
        if torrents is not None:
            beside = {"metainfo": metainfo, "path": path, "magnet": magnet, **options}
            given = [n for n, v in beside.items() if v not in (None, False)]
            if given:
                raise invalid_params(given[0], "give it in each item of torrents, not beside it")
            return add_batch(session, check_batch(torrents))
        checked = add_options(options)
        if magnet is not None:
            require("magnet", magnet, str)
            if metainfo is not None or path is not None:
                raise invalid_params("magnet", "give one of metainfo, path or magnet")
            for name in ("files_skipped", "file_priorities"):
                if checked.get(name):
                    raise invalid_params(name, NO_FILES_YET)
            try:
                d = session.add_magnet(magnet, **checked)
            except MetainfoError as exc:
                raise RpcError(
                    INVALID_TORRENT, f"invalid magnet: {exc}", {"field": "magnet"}
                ) from None
            except ValueError as exc:  # unknown strategy
                raise invalid_params("strategy", str(exc)) from None
            return d.addErrback(storage_error)
        source = check_source(metainfo, path)

        def loaded(result: tuple[bytes, Metainfo]) -> defer.Deferred[Any]:
            data, meta = result
            try:
                return session.add(data, meta=meta, **checked)
            except FileSelectionError as exc:  # a file index past the torrent's files
                raise invalid_params(exc.field, str(exc)) from None
            except ValueError as exc:  # unknown strategy
                raise invalid_params("strategy", str(exc)) from None

        # read and parsed off the reactor: a .torrent may list 200,000 files
        d = session.run_blocking(load_source, *source)
        return d.addCallback(loaded).addErrback(storage_error)

    def check_list(fields: Any, state: Any, label: Any, form: Any) -> str | None:
        """``torrent.list``'s parameters checked; the label as compared."""
        if fields is not None:
            require("fields", fields, list)
            unknown = [f for f in fields if f not in status.SUMMARY_FIELDS]
            if unknown or not all(isinstance(f, str) for f in fields):
                raise invalid_params(
                    "fields", f"unknown field(s) {unknown}; known: {list(status.SUMMARY_FIELDS)}"
                )
        if form not in LIST_FORMATS:
            raise invalid_params("format", f"must be one of {list(LIST_FORMATS)}")
        if state is not None:
            require("state", state, str)
            if state not in STATES:
                raise invalid_params("state", f"must be one of {list(STATES)}")
        if label is not None:
            try:
                return check_label(label)
            except ValueError as exc:
                raise invalid_params("label", str(exc)) from None
        return None

    def listed(state: str | None, label: str | None) -> list[Torrent | MetadataFetch]:
        """The torrents a ``torrent.list`` names, oldest first."""
        return [
            t
            for t in sorted(session.swarms(), key=_ADDED_AT)
            if (state is None or t.state == state) and (label is None or label in t.options.labels)
        ]

    def list_row(fields: list[str] | None, table: bool = False) -> Any:
        """A torrent's row of ``fields``: an object, or (``table``) the values in order."""
        row = status.row_builder(fields)
        if table:
            names = fields or status.SUMMARY_FIELDS
            return lambda t: [
                *map((t.summary() if isinstance(t, MetadataFetch) else row(t)).get, names)
            ]
        return lambda t: _pick(t.summary(), fields) if isinstance(t, MetadataFetch) else row(t)

    def as_asked(fields: list[str] | None, table: bool, rows: Any) -> Any:
        """The rows, or in the table form with the field names first."""
        return {"fields": list(fields or status.SUMMARY_FIELDS), "rows": rows} if table else rows

    def list_(
        fields: list[str] | None = None,
        state: str | None = None,
        label: str | None = None,
        format: str = "objects",  # noqa: A002 (the parameter's name on the wire)
    ) -> list[dict[str, Any]] | dict[str, Any]:
        """Every torrent's summary; ``fields`` picks keys, ``state`` and ``label`` filter;
        ``format`` ``table``: ``{"fields": [...], "rows": [[...], ...]}`` (a third the bytes)."""
        label = check_list(fields, state, label, format)
        table = format == "table"
        return as_asked(fields, table, [*map(list_row(fields, table), listed(state, label))])

    kept_rows = ListRows(
        lambda: session.queue.order_changes, session.status_log, session.clock.seconds
    )

    def list_encoded(
        fields: list[str] | None = None,
        state: str | None = None,
        label: str | None = None,
        format: str = "objects",  # noqa: A002
    ) -> Encoded | dict[str, Any]:
        """:func:`list_` for the wire: rows kept from the last list where nothing they are
        made of changed (core/rpc/list_rows.py)."""
        label = check_list(fields, state, label, format)
        table = format == "table"
        row, key = list_row(fields, table), status.quiet_key(fields)
        if state is None and label is None:
            rows = kept_rows.whole(session.swarms(), fields, row, key, table=table)
        else:
            rows = kept_rows.rows(listed(state, label), fields, row, key, table=table)
        return as_asked(fields, table, rows)

    list_.wire_form = list_encoded  # type: ignore[attr-defined]

    def get(info_hash: str) -> dict[str, Any] | defer.Deferred[dict[str, Any]]:
        """One torrent: summary, files, trackers and the piece map."""
        t = find_any(info_hash)
        if isinstance(t, MetadataFetch):
            return {
                **t.summary(),
                "files": [],
                "trackers": t.announcer.status(),
                "piece_map": "",
                "sources": {},
                "banned": list(t.banned),
                "disconnects": t.candidates.disconnects.as_dict(),
                "wasted": 0,
                "comment": None,
                "created_by": None,
            }
        reply = {
            **status.summary(t),
            "files": [],
            "trackers": status.trackers(t),
            "piece_map": status.pieces_map(t),
            "sources": status.sources(t),
            "banned": list(t.banned),
            "disconnects": status.disconnects(t),
            "wasted": t.wasted,
            "comment": t.meta.comment,
            "created_by": t.meta.created_by,
        }
        rows = files_in_slices(t, session.clock)
        if isinstance(rows, defer.Deferred):
            return rows.addCallback(lambda rows: {**reply, "files": rows})
        reply["files"] = rows
        return reply

    def pause(info_hash: str) -> defer.Deferred[dict[str, Any]]:
        """Stop transferring (peers closed, trackers told); state is kept."""
        t = find(info_hash)
        return t.pause().addCallback(lambda _: {"info_hash": t.hex, "state": t.state})

    def resume(info_hash: str) -> dict[str, Any]:
        """Start a paused (or failed) torrent again."""
        t = find(info_hash)
        t.resume()
        return {"info_hash": t.hex, "state": t.state}

    def remove(info_hash: str, delete_data: bool = False) -> defer.Deferred[dict[str, Any]]:
        """Remove the torrent; with ``delete_data`` its downloaded files go too."""
        require("delete_data", delete_data, bool)
        t = find_any(info_hash)
        if isinstance(t, MetadataFetch):  # nothing downloaded yet: no data to delete
            return session.magnets.remove(t).addErrback(storage_error)
        return session.remove(t, delete_data).addErrback(storage_error)

    def verify(info_hash: str) -> dict[str, Any]:
        """Recheck every piece against the data on disk (runs in the background)."""
        t = find(info_hash)
        if t.move_task is not None:
            raise RpcError(
                STORAGE,
                f"{t.hex} is being moved: verify it when the move ends",
                {"field": "info_hash"},
            )
        t.verify()
        return {"info_hash": t.hex, "state": t.state}

    def peers(info_hash: str) -> list[dict[str, Any]]:
        """Connected peers with their client, flags and rates."""
        return status.peers(find(info_hash))

    def files(info_hash: str) -> list[dict[str, Any]] | defer.Deferred[Any]:
        """Files with their length, progress, ``wanted`` and ``priority``."""
        return files_in_slices(find(info_hash), session.clock)

    def set_files(
        info_hash: str,
        indices: list[int],
        wanted: bool | None = None,
        priority: str | None = None,
    ) -> defer.Deferred[list[dict[str, Any]]]:
        """Want or skip files (0-based ``indices``) and/or set their priority; answers the
        files once data of files wanted again has left the part file."""
        t = find(info_hash)
        require("wanted", wanted, bool, optional=True)
        try:
            chosen = check_indices("indices", indices, len(t.meta.files))
            level = None if priority is None else check_priority("priority", priority)
        except FileSelectionError as exc:
            raise invalid_params(exc.field, str(exc)) from None
        if wanted is None and level is None:
            raise invalid_params("wanted", "give wanted, priority or both")
        d = t.set_files(chosen, wanted=wanted, priority=level)
        session.save_options(t)
        return d.addCallback(lambda _: status.files(t))

    def trackers(info_hash: str) -> list[dict[str, Any]]:
        """Trackers with their tier, status, last error and next announce."""
        return find_any(info_hash).announcer.status()

    def add_peer(info_hash: str, address: str, port: int) -> dict[str, Any]:
        """Give the torrent a peer to connect to (tests, trackerless set-ups)."""
        t = find_any(info_hash)
        require("address", address, str)
        require("port", port, int)
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise invalid_params("address", "must be an IPv4 or IPv6 address") from None
        if not 0 < port < 65536:
            raise invalid_params("port", "must be 1..65535")
        added = t.add_peers([(str(ip), port)], retry=True)  # the user asks: dial it now
        return {"info_hash": t.hex, "added": bool(added)}

    def reannounce(info_hash: str) -> dict[str, Any]:
        """Announce to the trackers now (within their ``min interval``)."""
        t = find_any(info_hash)
        delay = t.announcer.reannounce()
        if delay is None:
            why = "it has no usable tracker" if t.active else f"it is {t.state}"
            message = f"not announcing: {why}"
        elif delay > 0:
            message = f"announcing in {delay:.0f} s, when the tracker's min interval ends"
        else:
            message = "announcing now"
        return {
            "info_hash": t.hex,
            "announce_in": None if delay is None else round(delay, 3),
            "message": message,
        }

    def set_(info_hash: str, **settings: Any) -> dict[str, Any]:
        """Change a torrent's settings (``strategy``, ...: the settable ones of
        core/torrent_settings.py); all are checked before any changes."""
        t = find(info_hash)
        try:
            changed = apply_settings(t, settings)
        except SettingError as exc:
            raise invalid_params(exc.name, str(exc)) from None
        if changed:
            session.save_options(t)
        return {"info_hash": t.hex, **current_settings(t)}

    def queue(info_hash: str, move: Any) -> dict[str, Any]:
        """Move a torrent in the session's queue: ``top``, ``up``, ``down`` or ``bottom``."""
        t = find(info_hash)
        if move not in QUEUE_MOVES:
            raise invalid_params("move", f"must be one of {list(QUEUE_MOVES)}")
        position = t.queue_move(move)
        return {"info_hash": t.hex, "queue_position": position, "state": t.state}

    def move(info_hash: str, path: str) -> defer.Deferred[dict[str, Any]]:
        """Move the torrent's files to the folder ``path`` (absolute), off the reactor; the
        reply comes once the move has started (events ``moving``, ``moved``). Refused with
        nothing changed (STORAGE, ``data.field``) while it downloads or checks, or when the
        target holds other files of the same names or a symlink is on the way."""
        t = find(info_hash)
        try:
            target = check_absolute_path(path)
        except ValueError as exc:
            raise invalid_params("path", str(exc)) from None

        def refused(failure: Any) -> Any:
            if failure.check(MoveRefused):
                raise RpcError(
                    STORAGE,
                    f"not moved: {failure.getErrorMessage()}",
                    {"field": failure.value.field, "value": target},
                )
            return failure

        return defer.maybeDeferred(session.mover.move, t, Path(target)).addErrback(refused)

    def stats() -> dict[str, Any]:
        """Totals over all torrents: counts by state, rates, bytes, peers."""
        return session_status.stats(session)

    return {
        "torrent.add": add,
        "torrent.list": list_,
        "torrent.get": get,
        "torrent.pause": pause,
        "torrent.resume": resume,
        "torrent.remove": remove,
        "torrent.verify": verify,
        "torrent.peers": peers,
        "torrent.files": files,
        "torrent.set_files": set_files,
        "torrent.trackers": trackers,
        "torrent.add_peer": add_peer,
        "torrent.reannounce": reannounce,
        "torrent.set": set_,
        "torrent.move": move,
        "torrent.queue": queue,
        "session.stats": stats,
    }
