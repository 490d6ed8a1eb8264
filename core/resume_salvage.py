"""Reading what is left of a damaged SQLite resume store, without writing to it.

Python's sqlite3 has no ``.recover``: rows are walked in rowid order on a read-only
connection (which never checkpoints the WAL or writes the file), a row whose payload is
damaged is skipped alone, and a damaged b-tree page is jumped over by a binary search for
where the tree can be read again, so a damaged page costs the rows on it, not its
neighbours. The info hashes the old store still names (its primary-key index, its progress
table) tell which torrents are lost for good. Time-bounded (core/limits.py). No Twisted:
blocking file work, called from the thread pool.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from btd.core.limits import RESUME_INTEGRITY_ERRORS, RESUME_SALVAGE_SECONDS

TORRENT_COLUMNS = "info_hash, metainfo, options, added_at"
PROGRESS_COLUMNS = (
    "info_hash, have, num_pieces, uploaded, downloaded, file_sizes, completed_at, saved_at"
)


# what each problem means, for the one-line message
def ro_uri(path: Path) -> str:
    """A read-only URI: such a connection never checkpoints the WAL or writes the file."""
    return f"file:{quote(str(path.resolve()), safe='/')}?mode=ro"


def integrity_problems(path: Path) -> list[str]:
    """``PRAGMA integrity_check`` on a read-only connection: [] when the file is whole."""
    try:
        db = sqlite3.connect(ro_uri(path), uri=True, timeout=10)
    except sqlite3.Error as exc:
        return [f"cannot be opened: {exc}"]
    try:
        rows = [str(r[0]) for r in db.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        db.close()
    if rows == ["ok"]:
        return []
    extra = len(rows) - RESUME_INTEGRITY_ERRORS
    return rows[:RESUME_INTEGRITY_ERRORS] + ([f"{extra} more"] if extra > 0 else [])


def move_aside(path: Path, now: Callable[[], float] = time.time) -> Path:
    """Rename the store (and its -wal, -shm) to ``<name>.damaged-<UTC time>``; never over
    an earlier one."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now()))
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    for suffix in ("-wal", "-shm"):  # the log first: the file is renamed last
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    os.replace(path, target)
    return target


@dataclass
class Salvage:
    """Rows read back from a damaged store, keyed by info hash (the later row wins)."""

    torrents: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    progress: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    named: set[str] = field(default_factory=set)  # every info hash the old store still names
    unreadable: int = 0  # rows (or stretches of rowids) that could not be read
    why: str = ""


def salvage(path: Path, clock: Callable[[], float] = time.monotonic) -> Salvage:
    """Every row of ``torrents`` and ``progress`` still readable in the store at ``path``."""
    out = Salvage()
    try:
        db = sqlite3.connect(ro_uri(path), uri=True, timeout=10)
    except sqlite3.Error as exc:
        out.why = f"cannot be opened: {exc}"
        return out
    deadline = clock() + RESUME_SALVAGE_SECONDS
    try:
        try:
            db.execute("SELECT name FROM sqlite_master").fetchall()
        except sqlite3.DatabaseError as exc:  # not a database: only the copies are left
            out.why = f"nothing readable: {exc}"
            return out
        for table, columns, into in (
            ("torrents", TORRENT_COLUMNS, out.torrents),
            ("progress", PROGRESS_COLUMNS, out.progress),
        ):
            try:
                rows, bad = _walk(db, table, columns, lambda: clock() > deadline)
            except sqlite3.DatabaseError as exc:  # not even the schema can be read
                out.why = out.why or str(exc)
                continue
            out.unreadable += bad
            for row in rows:
                if isinstance(row[0], str):
                    into[row[0]] = row
                    out.named.add(row[0])
                else:
                    out.unreadable += 1
        out.named.update(_index_keys(db))
    finally:
        db.close()
    if clock() > deadline:
        out.why = f"salvage stopped after {RESUME_SALVAGE_SECONDS:g} s"
    return out


def _walk(
    db: sqlite3.Connection, table: str, columns: str, late: Callable[[], bool]
) -> tuple[list[tuple[Any, ...]], int]:
    """The readable rows of ``table`` in rowid order, and how many rows or stretches were
    stepped over. A row whose payload is damaged is skipped by its rowid (read alone); a
    damaged b-tree page is jumped over (``_past_damage``)."""
    rows: list[tuple[Any, ...]] = []
    bad = 0
    last = -(2**63)
    while not late():
        try:
            cursor = db.execute(
                f"SELECT rowid, {columns} FROM {table} WHERE rowid > ? ORDER BY rowid",  # noqa: S608
                (last,),
            )
            for row in cursor:
                rows.append(row[1:])
                last = row[0]
                if late():
                    break
            return rows, bad
        except sqlite3.DatabaseError:
            bad += 1
            ok, nxt = _seek(db, table, last)
            if ok and nxt is None:
                break
            if not ok:  # the b-tree itself is damaged after ``last``: jump past it
                nxt = _past_damage(db, table, last, late)
                if nxt is None:
                    break
            assert nxt is not None
            row = _row(db, table, columns, nxt)  # the row alone (its payload may be bad)
            if row is not None:
                rows.append(row)
                if ok:
                    bad -= 1  # the scan's error was a later row's
            last = nxt
    return rows, bad


def _seek(db: sqlite3.Connection, table: str, after: int) -> tuple[bool, int | None]:
    """(the b-tree could be walked, the first rowid after ``after`` or None)."""
    try:
        row = db.execute(
            f"SELECT rowid FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT 1",  # noqa: S608
            (after,),
        ).fetchone()
    except sqlite3.DatabaseError:
        return False, None
    return True, None if row is None else int(row[0])


def _past_damage(
    db: sqlite3.Connection, table: str, last: int, late: Callable[[], bool]
) -> int | None:
    """The rowid after which the b-tree can be walked again, past a damaged stretch that
    begins after ``last``: probes at doubling distances until a seek works, then a binary
    search back to where it starts working. O(log gap) seeks; None: nothing after works."""
    top = 2**63 - 1
    failed, step = last, 1
    while True:
        if late() or last + step >= top:
            return None
        probe = last + step
        if _seek(db, table, probe)[0]:
            break
        failed, step = probe, step * 2
    good = probe
    while good - failed > 1:  # seeks fail after ``failed``, work after ``good``
        mid = (failed + good) // 2
        if _seek(db, table, mid)[0]:
            good = mid
        else:
            failed = mid
    return good


def _row(db: sqlite3.Connection, table: str, columns: str, rowid: int) -> tuple[Any, ...] | None:
    try:
        return db.execute(
            f"SELECT {columns} FROM {table} WHERE rowid = ?",  # noqa: S608
            (rowid,),
        ).fetchone()
    except sqlite3.DatabaseError:
        return None


def _index_keys(db: sqlite3.Connection) -> set[str]:
    """The info hashes of the torrents table's primary-key index (a separate b-tree, so it
    may name torrents whose rows are gone): read from both ends up to any damage."""
    keys: set[str] = set()
    for order in ("ASC", "DESC"):
        try:
            for (key,) in db.execute(
                "SELECT info_hash FROM torrents INDEXED BY sqlite_autoindex_torrents_1"
                f" ORDER BY info_hash {order}"
            ):
                if isinstance(key, str) and len(key) == 40:
                    keys.add(key)
        except sqlite3.DatabaseError:
            continue
    return keys
