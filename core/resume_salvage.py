"""Reading what is left of a damaged SQLite resume store, without writing to it.

Python's sqlite3 has no ``.recover``. First SQL: rows are walked in rowid order on a
read-only connection (which never checkpoints the WAL or writes the file), a row whose
payload is damaged is skipped alone, and a damaged stretch of the b-tree is jumped over by a
binary search for where it can be read again. Then the pages: a lost interior page hides
every leaf under it from SQL, so every table-leaf page not on the freelist is read on its
own (core/sqlite_pages.py) for rows SQL did not reach, told apart by their shape. A damaged
page thus costs the rows on it, not its neighbours. The info hashes the old store still
names (its primary-key index, its progress table) tell which torrents are lost for good.
Time-bounded (core/limits.py). No Twisted: blocking file work, called from the thread pool.
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
from btd.core.sqlite_pages import freelist, header_geometry, leaf_records

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
    scanned: set[str] = field(default_factory=set)  # torrents found by the page scan only
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
            # a truncated file has fewer pages than its header says: SQLite reads it only
            # with writable_schema on (harmless here: the connection is read-only)
            db.execute("PRAGMA writable_schema=ON")
            db.execute("SELECT name FROM sqlite_master").fetchall()
        except sqlite3.DatabaseError as exc:  # SQL cannot read it: the pages may still
            out.why = f"unreadable to SQLite: {exc}"
            db.close()
            _scan(path, out, lambda: clock() > deadline)
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
    _scan(path, out, lambda: clock() > deadline)
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


def _scan(path: Path, out: Salvage, late: Callable[[], bool]) -> None:
    """Rows the b-tree walk could not reach, read page by page (core/sqlite_pages.py): a
    lost interior page hides every leaf under it from SQL, not from this. Rows are told
    apart by their shape; of two versions of a row the later (higher rowid) wins."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        size = os.fstat(fd).st_size
        geometry = header_geometry(os.pread(fd, 100, 0)) or (4096, 4096)
        page_size, usable = geometry
        count = size // page_size

        def read_page(n: int) -> bytes | None:
            if not 1 <= n <= count:
                return None
            return os.pread(fd, page_size, (n - 1) * page_size)

        page1 = read_page(1) or b""
        skip = freelist(page1, read_page, count) if len(page1) >= 100 else set()
        found: dict[str, tuple[int, tuple[Any, ...]]] = {}
        progress: dict[str, tuple[int, tuple[Any, ...]]] = {}
        for n in range(2, count + 1):
            if n in skip:
                continue
            if n % 256 == 0 and late():
                break
            for rowid, values in leaf_records(read_page(n) or b"", usable, read_page):
                into = found if _torrent_shaped(values) else None
                if into is None and _progress_shaped(values):
                    into = progress
                if into is not None and rowid > into.get(values[0], (-(2**63), ()))[0]:
                    into[values[0]] = (rowid, tuple(values))
    except OSError:
        return
    finally:
        os.close(fd)
    for h, (_, row) in found.items():
        if h not in out.torrents:
            out.torrents[h] = row
            out.scanned.add(h)
    for h, (_, row) in progress.items():
        out.progress.setdefault(h, row)


def _hash_shaped(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) == 40 and all(c in "0123456789abcdef" for c in value)
    )


def _torrent_shaped(values: list[Any]) -> bool:
    """(info_hash, metainfo, options, added_at)."""
    return (
        len(values) == 4
        and _hash_shaped(values[0])
        and isinstance(values[1], bytes)
        and isinstance(values[2], str)
        and isinstance(values[3], (int, float))
    )


def _progress_shaped(values: list[Any]) -> bool:
    """(info_hash, have, num_pieces, uploaded, downloaded, file_sizes, completed_at, saved_at)."""
    return (
        len(values) == 8
        and _hash_shaped(values[0])
        and isinstance(values[1], bytes)
        and all(isinstance(v, int) for v in values[2:5])
        and isinstance(values[5], str)
        and (values[6] is None or isinstance(values[6], (int, float)))
        and isinstance(values[7], (int, float))
    )
