"""Transmission's RPC (``POST /transmission/rpc``, rpc-version 17) over btd's own methods.

Every call goes through btd's JSON-RPC methods table (``call(name, **params)``), so
validation and errors are btd's; this module only translates names and units. A request
is ``{"method", "arguments", "tag"}``; the answer ``{"result": "success" | message,
"arguments": {...}, "tag"}``. What btd cannot do answers Transmission's error shape,
never a crash. Torrent ids come from ``TorrentIds`` (plugins/http/ids.py).

Size: one table of Transmission methods and their translations; splitting it would scatter
one protocol over several files.
"""

from __future__ import annotations

import collections
import json
import shutil
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger

from btd.core.limits import RPC_MAX_JSON_CONTAINERS
from btd.core.rpc.errors import RpcError
from btd.core.version import __version__
from btd.plugins.http.fields import (
    DETAIL_FIELDS,
    FILE_FIELDS,
    KB,
    PEER_FIELDS,
    PRIORITY,
    TRACKER_FIELDS,
    Record,
    goal_mode,
    goal_value,
    torrent_fields,
)
from btd.plugins.http.ids import TorrentIds

_log = Logger()

RPC_VERSION = 17  # Transmission 4.0
TR_ENCRYPTION = {"require": "required", "prefer": "preferred", "plain": "tolerated"}
"""``session.encryption`` as Transmission names it ("tolerated": plaintext first, MSE taken)."""
BTD_ENCRYPTION = {tr: btd for btd, tr in TR_ENCRYPTION.items()}
RPC_VERSION_MINIMUM = 14  # Transmission 2.80..3.00 clients (transmission-remote 3.00)
RPC_SEMVER = "5.3.0"
VERSION = f"4.0.0 (btd {__version__})"  # clients parse "major.minor" from the front
RECENT_SECONDS = 60.0  # "recently-active": torrents with traffic, and ids removed this long ago

Call = Callable[..., Deferred[Any]]


class TransmissionError(Exception):
    """Answered as ``{"result": message, "arguments": {}}``."""


def _message(exc: BaseException) -> str:
    if isinstance(exc, RpcError):
        return exc.message
    return str(exc) or type(exc).__name__


def _int_list(args: Mapping[str, Any], name: str) -> list[int]:
    value = args.get(name, [])
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value
    ):
        raise TransmissionError(f"{name} must be a list of file indices")
    return value


def _session_goal(args: Mapping[str, Any], enabled: str, key: str, current: Any) -> float:
    """A session goal from Transmission's pair (``...Limited``/``...-enabled`` and the
    value): -1 (unlimited) when switched off; switched on without a value keeps the current
    one (0 if there was none)."""
    limit = _number(args, key) if key in args else None  # checked even when switched off
    if not args.get(enabled, True):
        return -1
    return limit if limit is not None else max(current or 0, 0)


def _number(args: Mapping[str, Any], name: str) -> float:
    value = args[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise TransmissionError(f"{name} must be a number >= 0")
    return value


class TransmissionRpc:
    """One daemon's Transmission RPC: ``handle(body)`` -> Deferred of the reply dict."""

    def __init__(
        self,
        call: Call,
        ids: TorrentIds,
        seconds: Callable[[], float],
        run_blocking: Callable[..., Deferred[Any]],
        session_id: str,
        on_ids_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.call = call
        self.ids = ids
        self.seconds = seconds
        self.run_blocking = run_blocking
        self.session_id = session_id
        self.on_ids_changed = on_ids_changed
        self.removed: collections.deque[tuple[float, int]] = collections.deque(maxlen=1000)
        self.touched: dict[str, float] = {}  # info hash -> its last event, oldest first
        self.methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "session-get": self.session_get,
            "session-set": self.session_set,
            "session-stats": self.session_stats,
            "session-close": self.session_close,
            "torrent-get": self.torrent_get,
            "torrent-add": self.torrent_add,
            "torrent-start": lambda a: self._each(a, self._start),
            "torrent-start-now": lambda a: self._each(a, self._start_now),
            "torrent-stop": lambda a: self._each(
                a, lambda h: self.call("torrent.pause", info_hash=h)
            ),
            "torrent-verify": lambda a: self._each(
                a, lambda h: self.call("torrent.verify", info_hash=h)
            ),
            "torrent-reannounce": lambda a: self._each(
                a, lambda h: self.call("torrent.reannounce", info_hash=h)
            ),
            "torrent-remove": self.torrent_remove,
            "torrent-set": self.torrent_set,
            "torrent-set-location": self.torrent_set_location,
            "queue-move-top": lambda a: self._queue(a, "top"),
            "queue-move-up": lambda a: self._queue(a, "up"),
            "queue-move-down": lambda a: self._queue(a, "down"),
            "queue-move-bottom": lambda a: self._queue(a, "bottom"),
            "free-space": self.free_space,
            "port-test": self.port_test,
        }

    # -- the envelope ---------------------------------------------------------------
    def handle(self, body: bytes) -> Deferred[dict[str, Any]]:
        tag: Any = None
        try:
            if body.count(b"{") + body.count(b"[") > RPC_MAX_JSON_CONTAINERS:
                raise TransmissionError("request has too many JSON objects and arrays")
            try:
                request = json.loads(body)
            except (ValueError, RecursionError):
                raise TransmissionError("request is not JSON") from None
            if not isinstance(request, dict):
                raise TransmissionError("request must be a JSON object")
            tag = request.get("tag")
            method = request.get("method")
            args = request.get("arguments", {})
            if not isinstance(args, dict):
                raise TransmissionError("arguments must be an object")
            fn = self.methods.get(method) if isinstance(method, str) else None
            if fn is None:
                raise TransmissionError(f"method name not recognized: {method!r}")
            d = maybeDeferred(fn, args)
        except TransmissionError as exc:
            return succeed(self._reply(str(exc), {}, tag))
        return d.addCallbacks(
            lambda result: self._reply("success", result or {}, tag),
            lambda failure: self._failed(failure, tag),
        )

    def _reply(self, result: str, args: dict[str, Any], tag: Any) -> dict[str, Any]:
        reply: dict[str, Any] = {"result": result, "arguments": args}
        if tag is not None:
            reply["tag"] = tag
        return reply

    def _failed(self, failure: Any, tag: Any) -> dict[str, Any]:
        exc = failure.value
        if not isinstance(exc, (TransmissionError, RpcError)):
            _log.failure("transmission RPC failed", failure)
        return self._reply(_message(exc), {}, tag)

    # -- torrents and their ids -----------------------------------------------------------
    async def _summaries(self) -> list[tuple[int, dict[str, Any]]]:
        """Every torrent with its id (ids given in the order torrents were added)."""
        rows = await self.call("torrent.list")
        before = self.ids.next_id
        out = [(self.ids.id_of(row["info_hash"]), row) for row in rows]
        if self.ids.next_id != before:
            self.on_ids_changed()
        return out

    def touch(self, info_hash: str) -> None:
        """Something happened to the torrent (an event: paused, started, completed...): it
        is recently active for RECENT_SECONDS, as Transmission's changed torrents are, so a
        client polling ``recently-active`` sees a pause."""
        self.touched.pop(info_hash, None)
        self.touched[info_hash] = self.seconds()

    def _forget_old_touches(self, now: float) -> None:
        while self.touched:
            info_hash, when = next(iter(self.touched.items()))
            if when >= now - RECENT_SECONDS:
                break
            del self.touched[info_hash]

    def _recent(self, row: Mapping[str, Any]) -> bool:
        return (
            bool(row.get("download_rate") or row.get("upload_rate"))
            or row.get("state") in ("checking", "metadata")
            or row["info_hash"] in self.touched
        )

    async def _select(self, args: Mapping[str, Any]) -> list[tuple[int, dict[str, Any]]]:
        """The torrents ``ids`` names: absent = all; an id, a hash, a list of them, or
        ``recently-active`` (traffic, checking, or an event in the last RECENT_SECONDS)."""
        rows = await self._summaries()
        wanted = args.get("ids")
        if wanted is None:
            return rows
        if wanted == "recently-active":
            self._forget_old_touches(self.seconds())
            return [(tid, row) for tid, row in rows if self._recent(row)]
        items = wanted if isinstance(wanted, list) else [wanted]
        ids: set[int] = set()
        hashes: set[str] = set()
        for item in items:
            if isinstance(item, int) and not isinstance(item, bool):
                ids.add(item)
            elif isinstance(item, str) and item.isdigit():
                ids.add(int(item))
            elif isinstance(item, str):
                hashes.add(item.lower())
            else:
                raise TransmissionError(f"ids: not an id or hash: {item!r}")
        return [(t, r) for t, r in rows if t in ids or r["info_hash"] in hashes]

    async def _hashes(self, args: Mapping[str, Any]) -> list[str]:
        return [row["info_hash"] for _, row in await self._select(args)]

    async def _each_async(self, args: Mapping[str, Any], action: Callable[[str], Any]) -> dict:
        for info_hash in await self._hashes(args):
            await maybeDeferred(action, info_hash)
        return {}

    def _each(self, args: Mapping[str, Any], action: Callable[[str], Any]) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._each_async(args, action))

    def _start(self, info_hash: str) -> Deferred[Any]:
        return self.call("torrent.resume", info_hash=info_hash)

    async def _start_now(self, info_hash: str) -> None:
        await self.call("torrent.set", info_hash=info_hash, force_start=True)
        await self.call("torrent.resume", info_hash=info_hash)

    def _queue(self, args: Mapping[str, Any], move: str) -> Deferred[Any]:
        return self._each(args, lambda h: self.call("torrent.queue", info_hash=h, move=move))

    def forget(self, info_hash: str) -> None:
        """A torrent was removed: its id goes to ``removed`` (recently-active) for good."""
        tid = self.ids.known(info_hash)
        if tid is not None:
            self.removed.append((self.seconds(), tid))
            self.touched.pop(info_hash, None)
            self.ids.forget(info_hash)
            self.on_ids_changed()

    # -- torrent-get ------------------------------------------------------------------
    async def _optional(self, method: str, info_hash: str) -> Any:
        try:
            return await self.call(method, info_hash=info_hash)
        except RpcError:  # a magnet without metadata has no files yet; a torrent just gone
            return None

    async def _torrent_get(self, args: Mapping[str, Any]) -> dict[str, Any]:
        fields = args.get("fields")
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise TransmissionError("no fields specified")
        asked = set(fields)
        settings = await self.call("session.get")
        rows = await self._select(args)
        now = self.seconds()
        detail = bool(asked & DETAIL_FIELDS)
        out = []
        for tid, row in rows:
            record = Record(tid, row)
            h = row["info_hash"]
            if detail:
                record.detail = await self._optional("torrent.get", h)
                if record.detail is not None:
                    record.files = record.detail.get("files")
                    record.trackers = record.detail.get("trackers")
            if asked & FILE_FIELDS and record.files is None:
                record.files = await self._optional("torrent.files", h)
            if asked & PEER_FIELDS:
                record.peers = await self._optional("torrent.peers", h)
            if asked & TRACKER_FIELDS and record.trackers is None:
                record.trackers = await self._optional("torrent.trackers", h)
            out.append(torrent_fields(record, fields, settings, now))
        reply: dict[str, Any] = {"torrents": out}
        if args.get("format") == "table":
            names = [f for f in fields if out and f in out[0]] or fields
            reply["torrents"] = [names, *([t.get(n) for n in names] for t in out)]
        if args.get("ids") == "recently-active":
            while self.removed and self.removed[0][0] < now - RECENT_SECONDS:
                self.removed.popleft()
            reply["removed"] = [tid for _, tid in self.removed]
        return reply

    def torrent_get(self, args: dict[str, Any]) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._torrent_get(args))

    # -- torrent-add --------------------------------------------------------------------
    async def _torrent_add(self, args: Mapping[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        method = "torrent.add"
        if "metainfo" in args:
            params["metainfo"] = args["metainfo"]
        elif isinstance(args.get("filename"), str):
            name = args["filename"].strip()
            if name.startswith("magnet:"):
                params["magnet"] = name
            elif name.lower().startswith(("http://", "https://")):
                method, params["url"] = "torrent.add_url", name  # plugins/http/url_fetch.py
            else:
                params["path"] = name
        else:
            raise TransmissionError("no filename or metainfo specified")
        if "download-dir" in args:
            params["save_path"] = args["download-dir"]
        if "paused" in args:
            params["paused"] = bool(args["paused"])
        if "labels" in args:
            params["labels"] = args["labels"]
        if args.get("sequentialDownload"):
            params["strategy"] = "sequential"
        if "files-unwanted" in args:
            params["files_skipped"] = _int_list(args, "files-unwanted")
        priorities = {}
        for name in ("priority-low", "priority-normal", "priority-high"):
            for index in _int_list(args, name):
                priorities[str(index)] = name.removeprefix("priority-")
        if priorities:
            params["file_priorities"] = priorities
        result = await self.call(method, **params)
        info_hash = result["info_hash"]
        tid = self.ids.id_of(info_hash)
        self.on_ids_changed()
        key = "torrent-added" if result.get("added", True) else "torrent-duplicate"
        return {key: {"id": tid, "name": result.get("name") or info_hash, "hashString": info_hash}}

    def torrent_add(self, args: dict[str, Any]) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._torrent_add(args))

    # -- torrent-remove, -set, -set-location -----------------------------------------
    async def _torrent_remove(self, args: Mapping[str, Any]) -> dict[str, Any]:
        delete = bool(args.get("delete-local-data", False))
        for info_hash in await self._hashes(args):
            await self.call("torrent.remove", info_hash=info_hash, delete_data=delete)
            self.forget(info_hash)
        return {}

    def torrent_remove(self, args: dict[str, Any]) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._torrent_remove(args))

    IGNORED_SET = frozenset({"ids"})

    async def _torrent_set(self, args: Mapping[str, Any]) -> dict[str, Any]:
        known = {
            "downloadLimit",
            "downloadLimited",
            "uploadLimit",
            "uploadLimited",
            "seedRatioLimit",
            "seedRatioMode",
            "seedIdleLimit",
            "seedIdleMode",
            "labels",
            "files-wanted",
            "files-unwanted",
            "priority-high",
            "priority-low",
            "priority-normal",
            "location",
            "queuePosition",
            "sequentialDownload",
            "honorsSessionLimits",
            "bandwidthPriority",
        }
        unknown = sorted(set(args) - known - self.IGNORED_SET)
        if unknown:
            raise TransmissionError(f"btd cannot set {', '.join(unknown)}")
        if args.get("honorsSessionLimits") is False:
            raise TransmissionError("btd torrents always honor the session's limits")
        if args.get("bandwidthPriority", 0) != 0:
            raise TransmissionError("btd has no bandwidth priorities")
        for tid_row in await self._select(args):
            await self._set_one(tid_row[1], args)
        return {}

    async def _set_one(self, row: Mapping[str, Any], args: Mapping[str, Any]) -> None:
        h = row["info_hash"]
        settings: dict[str, Any] = {}
        for kind in ("download", "upload"):
            limit, limited = f"{kind}Limit", f"{kind}Limited"
            if limit in args or limited in args:
                on = args.get(limited, True)
                value = round(_number(args, limit) * KB) if limit in args else None
                if on is False:
                    settings[f"{kind}_limit"] = 0
                elif value is not None:
                    settings[f"{kind}_limit"] = value
        for mode_key, limit_key, name in (
            ("seedRatioMode", "seedRatioLimit", "ratio_limit"),
            ("seedIdleMode", "seedIdleLimit", "idle_seeding_limit"),
        ):
            if mode_key in args or limit_key in args:
                current_mode, _ = goal_mode(row.get(name))
                mode = args.get(mode_key, 1 if limit_key in args else current_mode)
                limit = _number(args, limit_key) if limit_key in args else None
                try:
                    settings[name] = goal_value(mode, limit, row.get(name))
                except ValueError as exc:
                    raise TransmissionError(f"{mode_key}: {exc}") from None
        if "labels" in args:
            settings["labels"] = args["labels"]
        if "queuePosition" in args:
            settings["queue_position"] = args["queuePosition"]
        if "sequentialDownload" in args:
            settings["strategy"] = "sequential" if args["sequentialDownload"] else None
        if settings:
            await self.call("torrent.set", info_hash=h, **settings)
        for key, params in (
            ("files-wanted", {"wanted": True}),
            ("files-unwanted", {"wanted": False}),
            ("priority-high", {"priority": "high"}),
            ("priority-low", {"priority": "low"}),
            ("priority-normal", {"priority": "normal"}),
        ):
            indices = _int_list(args, key)
            if key in args and not indices:  # Transmission: an empty list means every file
                files = await self.call("torrent.files", info_hash=h)
                indices = [f["index"] for f in files]
            if indices:
                await self.call("torrent.set_files", info_hash=h, indices=indices, **params)
        if "location" in args:
            await self.call("torrent.move", info_hash=h, path=args["location"])

    def torrent_set(self, args: dict[str, Any]) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._torrent_set(args))

    async def _set_location(self, args: Mapping[str, Any]) -> dict[str, Any]:
        location = args.get("location")
        if not isinstance(location, str):
            raise TransmissionError("no location")
        if not args.get("move", False):
            raise TransmissionError(
                "btd cannot point a torrent at another folder without moving its files: "
                "use move: true"
            )
        for info_hash in await self._hashes(args):
            await self.call("torrent.move", info_hash=info_hash, path=location)
        return {}

    def torrent_set_location(self, args: dict[str, Any]) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._set_location(args))

    # -- the session ----------------------------------------------------------------------
    async def _session_get(self, args: Mapping[str, Any]) -> dict[str, Any]:
        s = await self.call("session.get")
        config = await self.call("session.config")
        stats = await self.call("session.stats")
        plugins = set((config.get("plugins") or {}).keys())
        download_dir = config["session"]["download_dir"]
        ratio_on = (s.get("ratio_limit") or -1) >= 0
        idle = s.get("idle_seeding_limit")
        down_q, seed_q = s.get("max_active_downloads", -1), s.get("max_active_seeds", -1)
        free = await self._free_bytes(download_dir)
        doc: dict[str, Any] = {
            "rpc-version": RPC_VERSION,
            "rpc-version-minimum": RPC_VERSION_MINIMUM,
            "rpc-version-semver": RPC_SEMVER,
            "version": VERSION,
            "session-id": self.session_id,
            "config-dir": config["daemon"]["state_dir"],
            "download-dir": download_dir,
            "download-dir-free-space": free,
            "incomplete-dir": s.get("incomplete_dir") or "",
            "incomplete-dir-enabled": bool(s.get("incomplete_dir")),
            "speed-limit-down": s["download_limit"] // KB,
            "speed-limit-down-enabled": bool(s["download_limit"]),
            "speed-limit-up": s["upload_limit"] // KB,
            "speed-limit-up-enabled": bool(s["upload_limit"]),
            "alt-speed-down": s["alt_download_limit"] // KB,
            "alt-speed-up": s["alt_upload_limit"] // KB,
            "alt-speed-enabled": bool(s["alt_enabled"]),
            "alt-speed-time-enabled": s.get("alt_schedule") is not None,
            "alt-speed-time-begin": 0,
            "alt-speed-time-end": 0,
            "alt-speed-time-day": 127,
            "seedRatioLimit": s["ratio_limit"] if ratio_on else 0.0,
            "seedRatioLimited": ratio_on,
            "idle-seeding-limit": idle if idle is not None and idle >= 0 else 0,
            "idle-seeding-limit-enabled": idle is not None and idle >= 0,
            "peer-limit-global": s["max_connections"],
            "peer-limit-per-torrent": s["max_connections_per_torrent"],
            "peer-port": stats.get("listen_port", 0),
            "peer-port-random-on-start": False,
            "port-forwarding-enabled": False,
            "download-queue-size": max(down_q, 0),
            "download-queue-enabled": down_q >= 0,
            "seed-queue-size": max(seed_q, 0),
            "seed-queue-enabled": seed_q >= 0,
            "queue-stalled-minutes": s.get("stalled_minutes", 0),
            "queue-stalled-enabled": bool(s.get("stalled_minutes")),
            "dht-enabled": "dht" in plugins,
            "pex-enabled": "pex" in plugins,
            "lpd-enabled": False,
            "utp-enabled": "utp" in plugins,
            "encryption": TR_ENCRYPTION.get(s.get("encryption", "prefer"), "preferred"),
            "blocklist-enabled": False,
            "blocklist-size": 0,
            "blocklist-url": "",
            "cache-size-mb": 0,
            "rename-partial-files": False,
            "start-added-torrents": True,
            "trash-original-torrent-files": False,
            "script-torrent-done-enabled": False,
            "script-torrent-done-filename": "",
            "script-torrent-added-enabled": False,
            "script-torrent-added-filename": "",
            "script-torrent-done-seeding-enabled": False,
            "script-torrent-done-seeding-filename": "",
            "default-trackers": "",
            "units": {
                "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"],
                "speed-bytes": KB,
                "size-units": ["kB", "MB", "GB", "TB"],
                "size-bytes": KB,
                "memory-units": ["KiB", "MiB", "GiB", "TiB"],
                "memory-bytes": 1024,
            },
        }
        fields = args.get("fields")
        if isinstance(fields, list):
            doc = {k: v for k, v in doc.items() if k in fields}
        return doc

    def session_get(self, args: dict[str, Any]) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._session_get(args))

    async def _session_set(self, args: Mapping[str, Any]) -> dict[str, Any]:
        s = await self.call("session.get")
        out: dict[str, Any] = {}
        for prefix, name in (
            ("speed-limit-down", "download_limit"),
            ("speed-limit-up", "upload_limit"),
        ):
            on = args.get(f"{prefix}-enabled")
            if on is False:
                out[name] = 0
            elif prefix in args:
                out[name] = round(_number(args, prefix) * KB)
        for key, name in (
            ("alt-speed-down", "alt_download_limit"),
            ("alt-speed-up", "alt_upload_limit"),
        ):
            if key in args:
                out[name] = round(_number(args, key) * KB)
        if "alt-speed-enabled" in args:
            out["alt_enabled"] = bool(args["alt-speed-enabled"])
        for enabled, key, name in (
            ("seedRatioLimited", "seedRatioLimit", "ratio_limit"),
            ("idle-seeding-limit-enabled", "idle-seeding-limit", "idle_seeding_limit"),
        ):
            if enabled in args or key in args:
                out[name] = _session_goal(args, enabled, key, s.get(name))
        for key, name in (
            ("peer-limit-global", "max_connections"),
            ("peer-limit-per-torrent", "max_connections_per_torrent"),
            ("queue-stalled-minutes", "stalled_minutes"),
        ):
            if key in args:
                out[name] = args[key]
        for prefix, name in (
            ("download-queue", "max_active_downloads"),
            ("seed-queue", "max_active_seeds"),
        ):
            on = args.get(f"{prefix}-enabled")
            if on is False:
                out[name] = -1
            elif f"{prefix}-size" in args:
                out[name] = args[f"{prefix}-size"]
        if args.get("queue-stalled-enabled") is False:
            out["stalled_minutes"] = 0
        if "encryption" in args:
            policy = BTD_ENCRYPTION.get(args["encryption"])
            if policy is None:
                raise TransmissionError(f"encryption must be one of {', '.join(BTD_ENCRYPTION)}")
            out["encryption"] = policy
        if "incomplete-dir-enabled" in args or "incomplete-dir" in args:
            if args.get("incomplete-dir-enabled") is False:
                out["incomplete_dir"] = None
            elif "incomplete-dir" in args:
                out["incomplete_dir"] = args["incomplete-dir"]
        handled = {
            "speed-limit-down", "speed-limit-down-enabled", "speed-limit-up",
            "speed-limit-up-enabled", "alt-speed-down", "alt-speed-up", "alt-speed-enabled",
            "seedRatioLimited", "seedRatioLimit", "idle-seeding-limit",
            "idle-seeding-limit-enabled", "peer-limit-global", "peer-limit-per-torrent",
            "queue-stalled-minutes", "queue-stalled-enabled", "download-queue-enabled",
            "download-queue-size", "seed-queue-enabled", "seed-queue-size",
            "incomplete-dir", "incomplete-dir-enabled", "encryption",
        }  # fmt: skip
        unknown = sorted(set(args) - handled)
        if unknown:
            raise TransmissionError(f"btd cannot set {', '.join(unknown)}")
        if out:
            await self.call("session.set", settings=out)
        return {}

    def session_set(self, args: dict[str, Any]) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._session_set(args))

    async def _session_stats(self, args: Mapping[str, Any]) -> dict[str, Any]:
        stats = await self.call("session.stats")
        states = stats.get("states", {})
        total = stats.get("torrents", 0)
        paused = states.get("paused", 0) + states.get("stopped", 0) + states.get("error", 0)
        current = {
            "uploadedBytes": stats.get("uploaded", 0),
            "downloadedBytes": stats.get("downloaded", 0),
            "filesAdded": 0,
            "sessionCount": 1,
            "secondsActive": int(stats.get("uptime", 0)),
        }
        return {
            "activeTorrentCount": total - paused,
            "pausedTorrentCount": paused,
            "torrentCount": total,
            "downloadSpeed": stats.get("download_rate", 0),
            "uploadSpeed": stats.get("upload_rate", 0),
            "cumulative-stats": dict(current),  # btd keeps no totals across restarts
            "current-stats": current,
        }

    def session_stats(self, args: dict[str, Any]) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._session_stats(args))

    def session_close(self, args: dict[str, Any]) -> Deferred[Any]:
        return self.call("session.shutdown").addCallback(lambda _: {})

    # -- the rest ---------------------------------------------------------------------
    def _free_bytes(self, path: str) -> Deferred[int]:
        def free(p: str) -> int:
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return -1

        return self.run_blocking(free, path)

    async def _free_space(self, args: Mapping[str, Any]) -> dict[str, Any]:
        path = args.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise TransmissionError("path must be an absolute path")

        def usage(p: str) -> tuple[int, int]:
            u = shutil.disk_usage(p)
            return u.free, u.total

        try:
            free, total = await self.run_blocking(usage, path)
        except OSError as exc:
            raise TransmissionError(f"{path}: {exc.strerror or exc}") from None
        return {"path": path, "size-bytes": free, "total_size": total}

    def free_space(self, args: dict[str, Any]) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._free_space(args))

    async def _port_test(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """From local state only: btd never asks an outside service about its port."""
        stats = await self.call("session.stats")
        reply: dict[str, Any] = {"port-is-open": bool(stats.get("listen_port"))}
        if isinstance(args.get("ipProtocol"), str):
            reply["ipProtocol"] = args["ipProtocol"]
        return reply

    def port_test(self, args: dict[str, Any]) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._port_test(args))


__all__ = ["PRIORITY", "TransmissionRpc", "TransmissionError"]
