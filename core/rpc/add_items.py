"""What ``torrent.add`` is given: reading and checking .torrent sources, and the batch form.

The single form (``metainfo`` | ``path`` | ``magnet``) checks its source on the reactor
(``check_source``) and reads and parses it on the thread pool (``load_source``). The batch form
(``torrents: [{...}, ...]``, at most ``MAX_BATCH`` items) checks, decodes, reads and parses
its items on the thread pool, ``CHUNK`` at a time, so the reactor never parses a big batch;
then ``Session.add_many`` adds the .torrents together (one store write) and the magnets go
one by one. Each item gets its own result, in order: the usual add result, or
``{"error": {code, message, data}}`` (``data.index`` is the item's position), so one bad
item never fails the others.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from btd.core.batch_add import BatchItem
from btd.core.errors import MetainfoError, StorageError
from btd.core.file_selection import FileSelection, FileSelectionError
from btd.core.limits import TORRENT_FILE_MAX
from btd.core.metainfo import Metainfo, parse_metainfo
from btd.core.rpc.dispatch import internal_error, require
from btd.core.rpc.errors import INVALID_TORRENT, STORAGE, RpcError, invalid_params
from btd.core.torrent_data import SavePathError
from btd.core.torrent_settings import ADD_KEYS, SettingError, check_absolute_path, check_add

_log = Logger()

MAX_TORRENT_FILE = TORRENT_FILE_MAX  # core/limits.py
MAX_BATCH = 10_000  # items in one torrent.add call (the 16 MiB frame bounds them too)
CHUNK = 100  # items parsed per thread-pool job
SOURCE_KEYS = ("metainfo", "path", "magnet")  # the rest of an item are its options
ITEM_KEYS = SOURCE_KEYS + ADD_KEYS


def absolute(field: str, value: str) -> Path:
    """An absolute path (``~`` expanded); NUL bytes and unknown users are bad params."""
    try:
        return Path(check_absolute_path(value))
    except ValueError as exc:
        raise invalid_params(field, str(exc)) from None


def add_options(raw: dict[str, Any]) -> dict[str, Any]:
    """The options of one ``torrent.add`` (single form or item), checked; -32602 naming the
    first bad one."""
    try:
        return check_add(raw)
    except SettingError as exc:
        raise invalid_params(exc.name, str(exc)) from None


def _read_torrent_file(file: Path) -> bytes:
    """At most 10 MB of a regular file; FIFOs, devices and directories never block or flood."""
    too_big = RpcError(INVALID_TORRENT, f"{file}: larger than 10 MB", {"field": "path"})
    fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RpcError(INVALID_TORRENT, f"{file}: not a regular file", {"field": "path"})
        if st.st_size > MAX_TORRENT_FILE:
            raise too_big
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_TORRENT_FILE + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_TORRENT_FILE:
        raise too_big
    return data


def check_source(metainfo: Any, path: Any) -> tuple[str | None, Path | None]:
    """Exactly one of base64 ``metainfo`` or an absolute ``path``, checked (cheap: on the
    reactor); ``load_source`` then does the work."""
    if (metainfo is None) == (path is None):
        raise invalid_params("metainfo", "give exactly one of metainfo (base64) or path")
    if metainfo is not None:
        require("metainfo", metainfo, str)
        return metainfo, None
    require("path", path, str)
    return None, absolute("path", path)


def read_metainfo(metainfo: str | None, file: Path | None) -> bytes:
    """The .torrent bytes from base64 ``metainfo`` or a ``file`` the daemon reads (blocking)."""
    if metainfo is not None:
        try:
            return base64.b64decode(metainfo, validate=True)
        except (binascii.Error, ValueError):
            raise invalid_params("metainfo", "not valid base64") from None
    assert file is not None
    try:
        return _read_torrent_file(file)
    except OSError as exc:
        raise RpcError(
            INVALID_TORRENT, f"cannot read {file}: {exc.strerror}", {"field": "path"}
        ) from None


def refused(exc: MetainfoError, file: Path | None) -> RpcError:
    """Why a .torrent was refused. One read from a ``path`` never quotes the parser: the
    daemon may read files its caller may not (``/etc/shadow``: "unexpected byte b'r'"
    gave its first byte away), so its detail is not echoed, only that it is no .torrent."""
    if file is None:
        return RpcError(INVALID_TORRENT, f"invalid torrent: {exc}", {"field": "metainfo"})
    return RpcError(
        INVALID_TORRENT,
        f"invalid torrent: {file} is not a usable .torrent file "
        "(the daemon does not quote files it reads; give its content as metainfo to see why)",
        {"field": "path"},
    )


def load_source(metainfo: str | None, file: Path | None) -> tuple[bytes, Metainfo]:
    """Decode or read, then parse (blocking: the thread pool; a .torrent with 200,000
    files takes seconds to parse): the bytes and their Metainfo, or the RpcError."""
    data = read_metainfo(metainfo, file)
    try:
        return data, parse_metainfo(data)
    except MetainfoError as exc:
        raise refused(exc, file) from None


def storage_error(failure: Any) -> Any:
    """An errback: the store's or the save path's failure as the RPC error it answers."""
    if failure.check(SavePathError):
        raise RpcError(STORAGE, failure.getErrorMessage(), {"field": "save_path"})
    if failure.check(StorageError):
        raise RpcError(STORAGE, failure.getErrorMessage())
    return failure


# -- the batch form ---------------------------------------------------------------------------
@dataclass(frozen=True)
class MagnetItem:
    uri: str
    options: dict[str, Any]  # checked (core/torrent_settings.py)


def prepare(raw: Any) -> BatchItem | MagnetItem:
    """One batch item checked and parsed (blocking: a ``path`` is read); RpcError if bad."""
    if not isinstance(raw, dict):
        raise invalid_params("torrents", "each item must be an object")
    unknown = sorted(k for k in raw if k not in ITEM_KEYS)
    if unknown:
        raise invalid_params(str(unknown[0]), f"unknown parameter; known: {list(ITEM_KEYS)}")
    options = add_options({k: v for k, v in raw.items() if k not in SOURCE_KEYS})
    magnet, metainfo, path = raw.get("magnet"), raw.get("metainfo"), raw.get("path")
    if magnet is not None:
        require("magnet", magnet, str)
        if metainfo is not None or path is not None:
            raise invalid_params("magnet", "give one of metainfo, path or magnet")
        for name in ("files_skipped", "file_priorities"):
            if options.get(name):
                raise invalid_params(
                    name, "not with a magnet: use torrent.set_files once it has metadata"
                )
        return MagnetItem(magnet, options)
    data, meta = load_source(*check_source(metainfo, path))
    if options.get("files_skipped") or options.get("file_priorities"):
        try:
            FileSelection(meta.files, meta.piece_length, meta.total_length).load_options(options)
        except FileSelectionError as exc:
            raise invalid_params(exc.field, str(exc)) from None
    return BatchItem(meta, data, options)


def prepare_chunk(raws: list[Any]) -> list[BatchItem | MagnetItem | RpcError]:
    """``prepare`` over a chunk (a pool job); a bad item is its RpcError, in its place."""
    out: list[BatchItem | MagnetItem | RpcError] = []
    for raw in raws:
        try:
            out.append(prepare(raw))
        except RpcError as exc:
            out.append(exc)
    return out


def check_batch(torrents: Any) -> list[Any]:
    require("torrents", torrents, list)
    if len(torrents) > MAX_BATCH:
        raise invalid_params(
            "torrents", f"at most {MAX_BATCH} items in one call, got {len(torrents)}; split it"
        )
    return list(torrents)


def as_rpc_error(exc: BaseException) -> RpcError:
    """Why one item was refused, as the error the single form would answer."""
    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, SavePathError):
        return RpcError(STORAGE, str(exc), {"field": "save_path"})
    if isinstance(exc, StorageError):
        return RpcError(STORAGE, str(exc))
    if isinstance(exc, MetainfoError):
        return RpcError(INVALID_TORRENT, f"invalid magnet: {exc}", {"field": "magnet"})
    if isinstance(exc, ValueError):  # unknown strategy
        return invalid_params("strategy", str(exc))
    _log.error("adding a batch item failed: {e!r}", e=exc)
    return RpcError(*internal_error(exc))


def error_object(exc: BaseException, index: int) -> dict[str, Any]:
    err = as_rpc_error(exc)
    data = dict(err.data) if isinstance(err.data, dict) else {}
    return {"error": {"code": err.code, "message": err.message, "data": {**data, "index": index}}}


def add_batch(session: Any, raws: list[Any]) -> defer.Deferred[list[dict[str, Any]]]:
    """``torrent.add(torrents=raws)``: one result per item, in order."""
    return defer.Deferred.fromCoroutine(_add_batch(session, raws))


async def _add_batch(session: Any, raws: list[Any]) -> list[dict[str, Any]]:
    chunks = [raws[i : i + CHUNK] for i in range(0, len(raws), CHUNK)]
    parsed_chunks = await defer.gatherResults(
        [session.run_blocking(prepare_chunk, chunk) for chunk in chunks], consumeErrors=True
    )
    parsed = [item for chunk in parsed_chunks for item in chunk]
    del raws, chunks, parsed_chunks  # the request's items (base64 text) are not needed now
    results: list[dict[str, Any] | None] = [None] * len(parsed)
    torrents: list[tuple[int, BatchItem]] = []
    magnets: list[tuple[int, MagnetItem]] = []
    for index, item in enumerate(parsed):
        if isinstance(item, BatchItem):
            torrents.append((index, item))
        elif isinstance(item, MagnetItem):
            magnets.append((index, item))
        else:
            results[index] = error_object(item, index)
    if torrents:
        added = await session.add_many([item for _, item in torrents])
        for (index, _), outcome in zip(torrents, added, strict=True):
            ok = isinstance(outcome, dict)
            results[index] = outcome if ok else error_object(outcome, index)
    for index, magnet in magnets:  # the magnet store is one file: one at a time
        try:
            results[index] = await session.add_magnet(magnet.uri, **magnet.options)
        except Exception as exc:
            results[index] = error_object(exc, index)
    return [
        r if r is not None else error_object(RuntimeError("not handled"), i)
        for i, r in enumerate(results)
    ]
