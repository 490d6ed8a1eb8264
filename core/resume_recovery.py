"""Salvaging a damaged SQLite resume store, and the report of what was lost.

A store that fails ``PRAGMA integrity_check`` (or is not a database at all) is moved aside
to ``<name>.damaged-<UTC time>`` with its ``-wal`` and ``-shm`` (never deleted, never written:
it is read through a read-only connection), then every row still readable is copied out of
it, row by row: a damaged page costs the rows on it, not its neighbours. Python's sqlite3
has no ``.recover``, so rows are walked in rowid order and an unreadable stretch is stepped
over by a binary search for where the b-tree can be read again (time bounded by
``core/limits.py``). The info hashes the old store still
names (its primary-key index, its progress table) tell which torrents are lost for good.

``StoreReport`` is what the store tells the session: the problem, the counts and one sentence
for people. No Twisted: blocking file work, called from the thread pool.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from btd.core.errors import MetainfoError
from btd.core.limits import RESUME_INTEGRITY_ERRORS, RESUME_SALVAGE_SECONDS
from btd.core.metainfo import parse_metainfo
from btd.core.resume import ResumeProgress, StoredTorrent
from btd.core.torrent_store import TorrentStore

TORRENT_COLUMNS = "info_hash, metainfo, options, added_at"
PROGRESS_COLUMNS = (
    "info_hash, have, num_pieces, uploaded, downloaded, file_sizes, completed_at, saved_at"
)

# what each problem means, for the one-line message
_WHAT = {
    "damaged": "was damaged",
    "empty": "was empty",
    "missing": "was missing",
    "unrecorded": "had no record of some torrents whose .torrent copies were kept",
    "unreadable": "could not be read: no stored torrent was loaded",
}


@dataclass
class StoreReport:
    """What was wrong with the store at start and what became of its torrents.

    ``recovered_hashes``: records read back from the old store (with their progress when it
    was readable); ``rebuilt_hashes``: torrents brought back from their .torrent copy with no
    progress (their data is rechecked); ``lost``: info hashes the old store named that
    neither gave back.
    """

    problem: str  # damaged | empty | missing | unrecorded | unreadable
    path: str
    why: str = ""
    moved_to: str | None = None
    recovered_hashes: list[str] = field(default_factory=list)
    rebuilt_hashes: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    unreadable_rows: int = 0
    progress_lost: int = 0  # recovered records whose progress could not be read

    @property
    def recovered(self) -> int:
        return len(self.recovered_hashes)

    @property
    def rebuilt(self) -> int:
        return len(self.rebuilt_hashes)

    @property
    def serious(self) -> bool:
        """Damage or loss (critical), not just copies without a record (a warning)."""
        return self.problem != "unrecorded"

    @property
    def message(self) -> str:
        parts = [f"resume store {self.path} {_WHAT.get(self.problem, self.problem)}"]
        if self.why:
            parts[0] += f" ({self.why})"
        if self.moved_to:
            parts.append(f"kept as {self.moved_to}")
        if self.problem == "unreadable":
            return "; ".join(parts)
        counts = f"{self.recovered} torrent(s) recovered"
        if self.progress_lost:
            counts += f" ({self.progress_lost} without progress: rechecking)"
        counts += f", {self.rebuilt} rebuilt from .torrent copies (rechecking)"
        counts += f", {len(self.lost)} lost"
        if self.lost:
            counts += " (" + ", ".join(h[:8] for h in self.lost[:10])
            counts += ", ...)" if len(self.lost) > 10 else ")"
        parts.append(counts)
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "path": self.path,
            "why": self.why,
            "moved_to": self.moved_to,
            "recovered": self.recovered,
            "rebuilt": self.rebuilt,
            "progress_lost": self.progress_lost,
            "lost": list(self.lost),
            "unreadable_rows": self.unreadable_rows,
            "message": self.message,
        }


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


# -- from salvaged rows and copies to the torrents of the new store ----------------------------
def recover(
    path: Path, moved: Path, why: str, copies: TorrentStore | None
) -> tuple[StoreReport, list[StoredTorrent]]:
    """Salvage ``moved`` (the damaged store, moved aside) and bring back every torrent that
    can be proved: its record (with its progress when readable) or its copy (no progress,
    rechecked). Oldest added first, as the store lists them."""
    got = salvage(moved)
    report = StoreReport(
        "damaged",
        str(path),
        why if not got.why else f"{why}; {got.why}",
        moved_to=str(moved),
        unreadable_rows=got.unreadable,
    )
    have_copy = copies.hashes() if copies is not None else set()
    items: dict[str, StoredTorrent] = {}
    for h, row in got.torrents.items():
        item = _from_row(h, row, got.progress.get(h), copies if h in have_copy else None)
        if item is None:
            report.unreadable_rows += 1
            continue
        items[h] = item
        report.recovered_hashes.append(h)
        if item.progress is None:
            report.progress_lost += 1
    for h in sorted(have_copy - items.keys()):
        try:
            items[h] = copies.load(h, progress=False)  # type: ignore[union-attr]
        except (OSError, ValueError) as exc:
            report.why += f"; copy {h} unreadable: {exc}"
            continue
        report.rebuilt_hashes.append(h)
    report.lost = sorted(got.named - items.keys())
    return report, sorted(items.values(), key=added_order)


def _from_row(
    h: str, row: tuple[Any, ...], prow: tuple[Any, ...] | None, copies: TorrentStore | None
) -> StoredTorrent | None:
    """A salvaged record, or None if it does not hold up. The copy's metainfo wins (it is
    the source of truth); without one, the record's must hash to its info hash."""
    copy = None
    if copies is not None:
        try:
            copy = copies.load(h, progress=False)
        except (OSError, ValueError):
            copy = None
    if copy is not None:
        metainfo = copy.metainfo
    else:
        metainfo = row[1]
        try:
            if not isinstance(metainfo, bytes) or parse_metainfo(metainfo).hex != h:
                return None
        except MetainfoError:
            return None
    try:
        options = json.loads(row[2]) if isinstance(row[2], str) else None
    except ValueError:
        options = None
    if not isinstance(options, dict):
        if copy is None:
            return None
        options = copy.options
    progress = None
    if prow is not None:
        try:
            progress = progress_from_row(prow[1:])
        except (ValueError, TypeError):
            progress = None
    return StoredTorrent(h, metainfo, options, progress)


def added_order(item: StoredTorrent) -> tuple[float, str]:
    """The store's order: oldest added first (then by info hash)."""
    added = item.options.get("added_at")
    ok = isinstance(added, (int, float)) and not isinstance(added, bool)
    return (float(added) if ok else 0.0, item.info_hash)


def progress_from_row(row: tuple[Any, ...]) -> ResumeProgress:
    """A ``progress`` row (without its info hash) as ResumeProgress; ValueError if malformed."""
    have, num_pieces, uploaded, downloaded, sizes_json, completed_at, saved_at = row
    sizes = json.loads(sizes_json)
    ints = (num_pieces, uploaded, downloaded)
    if not isinstance(have, bytes) or not all(isinstance(v, int) and v >= 0 for v in ints):
        raise ValueError("malformed progress")
    if not isinstance(sizes, list) or not all(isinstance(v, int) for v in sizes):
        raise ValueError("malformed file sizes")
    return ResumeProgress(
        have=have,
        num_pieces=num_pieces,
        uploaded=uploaded,
        downloaded=downloaded,
        file_sizes=tuple(sizes),
        completed_at=None if completed_at is None else float(completed_at),
        saved_at=float(saved_at),
    )
