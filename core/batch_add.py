"""Adding many parsed torrents at once (``torrent.add`` with ``torrents``): one store write.

The control layer parses every item off the reactor (core/rpc/add_items.py); this takes
the parsed ones and, ``SLICE`` items per reactor turn so a big batch never blocks the
reactor: skips those already there (or given twice), builds the Torrents, checks each
distinct save path once (one pool job), writes all the new torrents to the resume store
in ONE call (``save_many``: one transaction and one fsync with the SQLite store), and only
then makes them visible and starts them; the SQLite store's copies of the .torrents are
written after that, on the pool (``write_copies``). The results come back in the order given: an add
result, or the exception that refused that item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.task import deferLater
from twisted.logger import Logger

from btd.core.metainfo import Metainfo
from btd.core.resume import NewTorrent, save_many
from btd.core.torrent_data import check_save_path

_log = Logger()

SLICE = 100  # items handled per reactor turn


@dataclass(frozen=True)
class BatchItem:
    """One parsed .torrent of a batch, with its ``torrent.add`` options."""

    meta: Metainfo
    data: bytes
    options: dict[str, Any] = field(default_factory=dict)  # checked (core/torrent_settings.py)


@dataclass(frozen=True)
class BatchEnv:
    """What a batch needs of the session (callables: no Session pointer)."""

    clock: Any
    run_blocking: Callable[..., defer.Deferred[Any]]
    known: Callable[[bytes], Any]  # the torrent there (or being stored) with this hash, or None
    make: Callable[[Metainfo, dict[str, Any]], Any]  # a Torrent (ValueError: unknown strategy)
    adding: dict[bytes, Any]  # info hash -> Torrent being stored (``known`` finds these)
    options_json: Callable[[Any], dict[str, Any]]  # what the store keeps of its options
    saver: Any  # the session's ResumeSaver (orders store jobs per torrent)
    store: Any
    admit: Callable[[Any], None]  # stored: visible, announced, started


Result = dict[str, Any] | Exception


def check_save_paths(paths: Iterable[Path]) -> dict[Path, Exception | None]:
    """``check_save_path`` of each distinct path (blocking): None, or why it cannot be used."""
    found: dict[Path, Exception | None] = {}
    for path in paths:
        try:
            check_save_path(path)
        except Exception as exc:
            found[path] = exc
        else:
            found[path] = None
    return found


def _present(meta: Metainfo, torrent: Any) -> dict[str, Any]:
    return {
        "info_hash": meta.hex,
        "name": meta.name,
        "added": False,
        "save_path": str(torrent.options.save_path),
    }


def add_batch(env: BatchEnv, items: list[BatchItem]) -> defer.Deferred[list[Result]]:
    """Add ``items``; every one accepted is durable before the Deferred fires."""
    return defer.Deferred.fromCoroutine(_add_batch(env, items))


async def _add_batch(env: BatchEnv, items: list[BatchItem]) -> list[Result]:
    results: list[Result | None] = [None] * len(items)
    first: dict[bytes, int] = {}  # info hash -> index of its first item in this batch
    twins: list[tuple[int, int]] = []  # (index, index of the same torrent's first item)
    fresh: list[tuple[int, Any, BatchItem]] = []  # (index, Torrent, its item)
    busy: list[defer.Deferred[Any]] = []
    for n, (index, item) in enumerate(enumerate(items)):
        if n and n % SLICE == 0:
            await _next_turn(env.clock)
        h = item.meta.info_hash
        if h in first:
            twins.append((index, first[h]))
            continue
        existing = env.known(h)
        if existing is not None:
            results[index] = _present(item.meta, existing)
            continue
        try:
            torrent = env.make(item.meta, item.options)
        except ValueError as exc:  # unknown strategy
            results[index] = exc
            continue
        first[h] = index
        env.adding[h] = torrent
        if env.saver.busy(h):  # a store job still running (a removal just before) ends first
            busy.append(env.saver.job(h, _nothing))
        env.saver.forget(h)
        fresh.append((index, torrent, item))

    # each distinct save path once, off the reactor
    paths = {t.options.save_path for _, t, _ in fresh}
    checked = await env.run_blocking(check_save_paths, paths) if paths else {}
    # The store rows are made now, after every Torrent: what they hold until the store has
    # written them is not scattered among the torrents' long-lived objects (freed, it would
    # leave holes in CPython's small-object pools that the torrents keep pinned).
    storing: list[tuple[int, Any]] = []
    rows: list[NewTorrent] = []
    for index, torrent, item in fresh:
        problem = checked.get(torrent.options.save_path)
        if problem is not None:
            env.adding.pop(torrent.info_hash, None)
            results[index] = problem
        else:
            storing.append((index, torrent))
            rows.append(NewTorrent(torrent.hex, item.data, env.options_json(torrent)))
    del fresh
    if busy:
        await defer.DeferredList(busy, consumeErrors=True)
    outcome = await env.run_blocking(save_many, env.store, rows) if rows else []
    added = 0

    for n, ((index, torrent), problem) in enumerate(zip(storing, outcome, strict=True)):
        if n and n % SLICE == 0:
            await _next_turn(env.clock)
        if problem is not None:
            env.adding.pop(torrent.info_hash, None)
            results[index] = problem
            continue
        env.adding.pop(torrent.info_hash, None)
        env.admit(torrent)
        added += 1
        results[index] = {"info_hash": torrent.hex, "name": torrent.name, "added": True}

    for index, first_index in twins:  # the same torrent twice: as the first one went
        went = results[first_index]
        meta = items[index].meta
        results[index] = (
            _present(meta, env.known(meta.info_hash)) if isinstance(went, dict) else went
        )
    _log.info("added {n} of {total} torrent(s) in a batch", n=added, total=len(items))
    _write_copies_later(env)
    return [r if r is not None else RuntimeError("not handled") for r in results]


def _write_copies_later(env: BatchEnv) -> None:
    """A store that left the batch's copies for later (the SQLite store's ``write_copies``)
    writes them now, on the pool, after the reply."""
    write = getattr(env.store, "write_copies", None)
    if write is not None:
        d = env.run_blocking(write)
        d.addErrback(lambda f: _log.error("writing torrent copies failed: {e}", e=f.value))


def _nothing() -> None:
    """A store job that only waits for the ones before it."""


def _next_turn(clock: Any) -> defer.Deferred[None]:
    """Let the reactor run everything else that is ready, then go on."""
    return deferLater(clock, 0, lambda: None)
