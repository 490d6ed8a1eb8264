"""Resume data in one SQLite file (``resume_sqlite``): the embedded default store.

``<state_dir>/resume.sqlite`` (setting ``path``) holds two tables: ``torrents`` (metainfo
exactly as added, options JSON, added_at) and ``progress`` (pieces had as bitfield bytes,
totals, file sizes on disk, completed_at, saved_at). WAL mode; ``synchronous=FULL`` for what
a reply waits for (adding, options, removing: fsynced before the call returns) and
``synchronous=NORMAL`` for progress, which survives a crash of btd but may lose the last
saves on a power cut (never wrong: a progress row only names pieces fsynced before it).

Every added torrent also keeps its copy, ``<state_dir>/torrents/<hash>.torrent`` and
``.json`` (core/torrent_store.py), written before its record and removed before it: the
source of truth to rebuild from. A batch add (``save_torrents``) writes its records first
and the copies after the reply (``write_copies``, one pool job the session queues: 10,000
copies are 20,000 files, seconds of work the reply need not wait for); a copy not written
yet is made at the next start (a record without a copy gets one) or by ``close``. Opening only peeks (constant time, on the reactor); the
rest runs on the first call, which the session makes from the thread pool (``load_all``):
``PRAGMA integrity_check``, then for a damaged file (or one that is not a database) the
salvage of core/resume_recovery.py (moved aside, every readable row kept, every copy
without a record rebuilt with no progress so its data is rechecked); a 0-byte or missing
store whose copies exist is rebuilt the same way. What happened is ``report`` (a
StoreReport), which the session reports loudly. A newer schema or another program's
database is still refused (ResumeStoreError, exit 78) and left untouched.

The connection is shared by the pool's worker threads (``check_same_thread=False``), one
statement at a time behind a lock.

Size: one class, the ResumeStore protocol on SQLite with its opening (peek, check, create,
recover) kept together so the order of those steps reads in one place; reading a damaged
file and rebuilding from copies are core/resume_salvage.py and core/resume_recovery.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from btd.core.errors import ConfigError, StorageError
from btd.core.plugin import hookimpl
from btd.core.plugin_config import check_keys, plugin_settings
from btd.core.resume import (
    DEFAULT_SAVE_INTERVAL,
    NewTorrent,
    ResumeProgress,
    ResumeStoreError,
    StoredTorrent,
)
from btd.core.resume_recovery import (
    StoreReport,
    from_copies,
    progress_from_row,
    reconcile,
    recover,
)
from btd.core.resume_salvage import integrity_problems, move_aside, ro_uri
from btd.core.torrent_store import TorrentStore

if TYPE_CHECKING:
    from btd.core.config_schema import Config

__version__ = "1.1"

_log = Logger(namespace="btd.plugins.resume_sqlite")

PLUGIN = "resume_sqlite"
FILENAME = "resume.sqlite"
SCHEMA_VERSION = 1
COPIES_CHUNK = 1000  # copies written per hold of the copies lock (a delete waits for one)
SETTINGS = ("path", "interval")

_ADD = (
    "INSERT OR REPLACE INTO torrents (info_hash, metainfo, options, added_at) VALUES (?, ?, ?, ?)"
)
_SCHEMA = (
    """CREATE TABLE torrents (
        info_hash TEXT PRIMARY KEY NOT NULL,
        metainfo BLOB NOT NULL,
        options TEXT NOT NULL,
        added_at REAL NOT NULL
    )""",
    """CREATE TABLE progress (
        info_hash TEXT PRIMARY KEY NOT NULL,
        have BLOB NOT NULL,
        num_pieces INTEGER NOT NULL,
        uploaded INTEGER NOT NULL,
        downloaded INTEGER NOT NULL,
        file_sizes TEXT NOT NULL,
        completed_at REAL,
        saved_at REAL NOT NULL
    )""",
)


class SqliteResumeStore:
    """The ResumeStore protocol on SQLite. Blocking: call from the thread pool.

    ``copies`` is the state directory whose ``torrents/`` keeps a copy of every torrent
    (None: no copies, nothing to rebuild from; tests)."""

    def __init__(
        self,
        path: Path,
        *,
        save_interval: float = DEFAULT_SAVE_INTERVAL,
        copies: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.save_interval = save_interval
        self._lock = threading.Lock()
        self.copies = TorrentStore(copies) if copies is not None else None
        self.report: StoreReport | None = None  # what was wrong at start, once prepared
        self.created: int | None = None  # torrents a new store started with
        self._db: sqlite3.Connection | None = None
        self._reconciled = False
        # copies of a batch's records not written yet (write_copies); the lock orders them
        # with deletes and options saves, so a removed torrent's copy is never written
        self._copies_lock = threading.Lock()
        self._pending_copies: dict[str, NewTorrent] = {}
        self._found, self._why = self._peek()

    # -- opening -----------------------------------------------------------------------------
    def _refuse(self, why: str) -> ResumeStoreError:
        return ResumeStoreError(
            f"resume store {self.path} {why}; btd will not start with it and has not "
            f"changed it: move it aside or restore a backup",
            key=f"plugins.{PLUGIN}",
        )

    def _peek(self) -> tuple[str, str]:
        """What the file is, reading its first page only (the reactor may call this):
        ``ok``, ``missing``, ``empty`` or ``damaged`` (and why); refuses what is not ours."""
        if not self.path.exists():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            except OSError as exc:
                raise StorageError(f"cannot create {self.path.parent}: {exc.strerror}") from exc
            return "missing", ""
        if not os.access(self.path, os.R_OK | os.W_OK):
            raise self._refuse("cannot be read and written by btd (permissions)")
        if self.path.stat().st_size == 0:
            return "empty", "0 bytes"
        sides = [self.path.with_name(self.path.name + s) for s in ("-wal", "-shm")]
        before = {p for p in sides if p.exists()}
        try:
            db = sqlite3.connect(ro_uri(self.path), uri=True, timeout=10)
        except sqlite3.Error as exc:
            raise self._refuse(f"cannot be opened ({exc})") from exc
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            tables = {
                r[0]
                for r in db.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
                )
            }
        except sqlite3.DatabaseError as exc:
            return "damaged", f"not a usable SQLite database: {exc}"
        finally:
            db.close()
            for side in set(sides) - before:  # made by this read: the file is left as it was
                if side.exists() and (side.name.endswith("-shm") or not side.stat().st_size):
                    side.unlink()
        ours = {"torrents", "progress"} <= tables
        if version > SCHEMA_VERSION:
            raise self._refuse(
                f"has schema version {version}, newer than this btd understands "
                f"({SCHEMA_VERSION}); it was written by a newer btd"
            )
        if version == 0 and not ours:
            if tables:
                raise self._refuse(f"is not a btd resume store (it has tables {sorted(tables)})")
            return "empty", "no tables"
        if version == 0 or not ours:
            return "damaged", "its schema is damaged"
        return "ok", ""

    def _ready(self) -> sqlite3.Connection:
        """The connection, preparing the store on first use (call with the lock held)."""
        if self._db is None:
            self._db = self._prepare()
        return self._db

    def _prepare(self) -> sqlite3.Connection:
        """Check, recover or create: the work that grows with the file (the thread pool)."""
        found, why = self._found, self._why
        if found == "ok":
            problems = integrity_problems(self.path)
            if problems:
                found, why = "damaged", "; ".join(problems)
        if found == "damaged":
            initial = self._salvaged(why)
        elif found == "ok":
            db = self._connect(existed=True)
            self._found = "ok"
            return db
        else:
            initial = self._from_copies(found, why)
        db = self._connect(existed=False)
        try:
            db.execute("PRAGMA synchronous=FULL")
            with _transaction(db):
                for statement in _SCHEMA:
                    db.execute(statement)
                for item in initial:
                    db.execute(*_torrent_row(item.info_hash, item.metainfo, item.options))
                    if item.progress is not None:
                        db.execute(*_progress_row(item.info_hash, item.progress))
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            db.close()
            raise
        self.created = len(initial)
        self._found = "ok"
        return db

    def _connect(self, *, existed: bool) -> sqlite3.Connection:
        try:
            # mode=rw for an existing file: never create or truncate one that vanished meanwhile
            uri = f"file:{_quote(self.path)}?mode={'rw' if existed else 'rwc'}"
            db = sqlite3.connect(
                uri, uri=True, check_same_thread=False, isolation_level=None, timeout=10
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the resume store {self.path}: {exc}") from exc
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StorageError(
                    f"resume store {self.path} cannot use write-ahead logging (mode {mode})"
                )
            db.execute("PRAGMA synchronous=NORMAL")
            if not existed:
                os.chmod(self.path, 0o640)
        except sqlite3.Error as exc:
            db.close()
            raise StorageError(f"cannot open the resume store {self.path}: {exc}") from exc
        except BaseException:
            db.close()
            raise
        return db

    def _from_copies(self, found: str, why: str) -> list[StoredTorrent]:
        """A new store (the file is missing, 0 bytes or has no tables) starts with the copies
        (core/resume_recovery.py: moving in from the files fallback, or a loss reported)."""
        if self.copies is None:
            return []
        self.report, items, problems = from_copies(self.path, self.copies, found, why)
        for problem in problems:
            _log.error("not rebuilt: {problem}", problem=problem)
        if items and self.report is None:
            _log.info(
                "creating {path} with {n} torrent(s) from {dir}",
                path=str(self.path),
                n=len(items),
                dir=str(self.copies.dir),
            )
        return items

    def _salvaged(self, why: str) -> list[StoredTorrent]:
        """Move the damaged file aside and take back every row and copy that is readable."""
        try:
            moved = move_aside(self.path)
        except OSError as exc:
            raise StorageError(
                f"resume store {self.path} is damaged ({why}) and cannot be moved aside: "
                f"{exc.strerror or exc}"
            ) from exc
        self.report, items = recover(self.path, moved, why, self.copies)
        return items

    # -- writing -----------------------------------------------------------------------------
    def _write(self, statements: list[tuple[str, tuple[Any, ...]]], *, durable: bool) -> None:
        """One transaction; ``durable`` fsyncs it before returning (synchronous=FULL)."""
        with self._lock:
            db = self._ready()
            try:
                if durable:
                    db.execute("PRAGMA synchronous=FULL")
                try:
                    with _transaction(db):
                        for sql, args in statements:
                            db.execute(sql, args)
                finally:
                    if durable:
                        db.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot write the resume store {self.path}: {exc}") from exc

    def _add(self, items: Sequence[NewTorrent]) -> None:
        """The copies first (durable), then the records; a failed record drops the copies."""
        if self.copies is not None:
            self.copies.save_torrents(items, sync=False)  # the row below is the durable one
        statements = []
        for item in items:
            statements.append(_torrent_row(item.info_hash, item.metainfo, item.options))
            statements.append(("DELETE FROM progress WHERE info_hash = ?", (item.info_hash,)))
        try:
            self._write(statements, durable=True)
        except BaseException:
            if self.copies is not None:
                for item in items:
                    try:
                        self.copies.delete(item.info_hash)
                    except StorageError:
                        pass  # the error reported is the first one
            raise

    def save_torrent(self, info_hash: str, metainfo: bytes, options: dict[str, Any]) -> None:
        self._add([NewTorrent(info_hash, metainfo, options)])

    def save_torrents(self, items: Sequence[NewTorrent]) -> None:
        """A batch add: every record in ONE transaction, fsynced once (all or nothing); the
        copies wait for ``write_copies`` (the record is the durable one)."""
        if self.copies is None:
            self._add(items)
            return
        statements = []
        for item in items:
            statements.append(_torrent_row(item.info_hash, item.metainfo, item.options))
            statements.append(("DELETE FROM progress WHERE info_hash = ?", (item.info_hash,)))
        self._write(statements, durable=True)
        with self._copies_lock:
            for item in items:
                self._pending_copies[item.info_hash] = item

    def write_copies(self) -> None:
        """Write the copies a batch add left for later, COPIES_CHUNK at a time."""
        copies = self.copies
        while copies is not None:
            with self._copies_lock:
                if not self._pending_copies:
                    return
                chunk = []
                for info_hash in list(self._pending_copies)[:COPIES_CHUNK]:
                    chunk.append(self._pending_copies.pop(info_hash))
                try:
                    copies.save_torrents(chunk, sync=False)
                except StorageError as exc:  # the records hold them; the next start retries
                    _log.warn("torrent copies not written: {e}", e=str(exc))
                    return

    def save_options(self, info_hash: str, options: dict[str, Any]) -> None:
        self._write(
            [
                (
                    "UPDATE torrents SET options = ? WHERE info_hash = ?",
                    (json.dumps(options), info_hash),
                )
            ],
            durable=True,
        )
        if self.copies is None:
            return
        with self._copies_lock:
            pending = self._pending_copies.get(info_hash)
            if pending is not None:  # written later, with these options
                self._pending_copies[info_hash] = NewTorrent(info_hash, pending.metainfo, options)
                return
            if not (self.copies.dir / f"{info_hash}.torrent").exists():
                return
            try:
                self.copies.save_options(info_hash, options, sync=False)
            except StorageError as exc:  # the record has them; the copy is for rebuilding
                _log.warn("the copy's options are stale: {e}", e=str(exc))

    def save_options_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Several torrents' options in ONE transaction, not synced (shutdown: their
        seeding time). The copies are left as they are: rewriting thousands of files would
        slow every stop, and a copy's seeding time only matters for a rebuilt store."""
        statements = [
            ("UPDATE torrents SET options = ? WHERE info_hash = ?", (json.dumps(o), h))
            for h, o in items
        ]
        self._write(statements, durable=False)

    def save_progress(self, info_hash: str, progress: ResumeProgress) -> None:
        self._write([_progress_row(info_hash, progress)], durable=False)

    def save_progress_many(self, items: Sequence[tuple[str, ResumeProgress]]) -> None:
        """A round of progress saves in ONE transaction (all or nothing)."""
        self._write([_progress_row(h, progress) for h, progress in items], durable=False)

    def delete(self, info_hash: str) -> None:
        """The copy first: a removal cut short never leaves a copy to be rebuilt from."""
        if self.copies is not None:
            with self._copies_lock:
                self._pending_copies.pop(info_hash, None)
                self.copies.delete(info_hash)
        self._write(
            [
                ("DELETE FROM progress WHERE info_hash = ?", (info_hash,)),
                ("DELETE FROM torrents WHERE info_hash = ?", (info_hash,)),
            ],
            durable=True,
        )

    # -- reading -----------------------------------------------------------------------------
    def load_all(self) -> tuple[list[StoredTorrent], list[str]]:
        """Every torrent; a row that cannot be read is reported and skipped, never deleted.

        The first call prepares the store (integrity check, recovery) and matches records
        with copies: a record without a copy gets one, a copy without a record comes back."""
        with self._lock:
            try:
                rows = (
                    self._ready()
                    .execute(
                        "SELECT t.info_hash, t.metainfo, t.options, p.have, p.num_pieces,"
                        " p.uploaded, p.downloaded, p.file_sizes, p.completed_at, p.saved_at,"
                        " p.info_hash FROM torrents t LEFT JOIN progress p USING (info_hash)"
                        " ORDER BY t.added_at, t.info_hash"
                    )
                    .fetchall()
                )
            except sqlite3.Error as exc:
                raise StorageError(f"cannot read the resume store {self.path}: {exc}") from exc
        found: list[StoredTorrent] = []
        problems: list[str] = []
        for row in rows:
            info_hash = row[0]
            where = f"{self.path}: torrent {info_hash}"
            try:
                if not isinstance(info_hash, str) or len(info_hash) != 40:
                    raise ValueError("bad info hash")
                if not isinstance(row[1], bytes) or not row[1]:
                    raise ValueError("no metainfo")
                options = json.loads(row[2]) if isinstance(row[2], str) else None
                if not isinstance(options, dict):
                    raise ValueError("options are not a JSON object")
            except ValueError as exc:  # json's JSONDecodeError is one
                problems.append(f"{where}: {exc}")
                continue
            progress = None
            if row[10] is not None:
                try:
                    progress = progress_from_row(row[3:10])
                except (ValueError, TypeError) as exc:
                    problems.append(f"{where}: progress ignored ({exc}); its files are rechecked")
            found.append(StoredTorrent(info_hash, row[1], options, progress))
        if self.copies is not None and not self._reconciled:
            self._reconciled = True
            recorded = {row[0] for row in rows}
            found.extend(self._reconcile(found, recorded, problems))
        return found, problems

    def _reconcile(
        self, found: list[StoredTorrent], recorded: set[str], problems: list[str]
    ) -> list[StoredTorrent]:
        """Copies for records without one; records (no progress: rechecked) for copies
        without one (core/resume_recovery.py ``reconcile``)."""
        copies = self.copies
        assert copies is not None
        back, set_aside, trouble = reconcile(copies, found, recorded)
        problems.extend(trouble)
        if set_aside:
            _log.info(
                "{n} torrent copies from before copies were kept, without a record: "
                "renamed .unrecorded in {dir}",
                n=set_aside,
                dir=str(copies.dir),
            )
        if not back:
            return []
        try:
            self._write(
                [_torrent_row(t.info_hash, t.metainfo, t.options) for t in back], durable=True
            )
        except StorageError as exc:
            problems.append(str(exc))
        if self.report is None:
            self.report = StoreReport("unrecorded", str(self.path))
        self.report.rebuilt_hashes.extend(t.info_hash for t in back)
        return back

    def close(self) -> None:
        self.write_copies()
        with self._lock:
            if self._db is None:
                return
            try:
                self._db.close()
            except sqlite3.Error:
                pass


def _torrent_row(
    info_hash: str, metainfo: bytes, options: dict[str, Any]
) -> tuple[str, tuple[Any, ...]]:
    added_at = options.get("added_at")
    if isinstance(added_at, bool) or not isinstance(added_at, (int, float)):
        added_at = time.time()
    return _ADD, (info_hash, sqlite3.Binary(metainfo), json.dumps(options), float(added_at))


def _progress_row(info_hash: str, progress: ResumeProgress) -> tuple[str, tuple[Any, ...]]:
    """A progress row, written only while the torrent is stored (not once removed)."""
    sql = (
        "INSERT OR REPLACE INTO progress (info_hash, have, num_pieces, uploaded, downloaded,"
        " file_sizes, completed_at, saved_at) SELECT ?, ?, ?, ?, ?, ?, ?, ?"
        " WHERE EXISTS (SELECT 1 FROM torrents WHERE info_hash = ?)"
    )
    args = (
        info_hash,
        sqlite3.Binary(progress.have),
        progress.num_pieces,
        progress.uploaded,
        progress.downloaded,
        json.dumps(list(progress.file_sizes)),
        progress.completed_at,
        progress.saved_at,
        info_hash,
    )
    return sql, args


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")


def _quote(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path.resolve()), safe="/")


# -- settings and hooks -----------------------------------------------------------------------
def settings(config: Any) -> dict[str, Any]:
    """This plugin's settings from ``config``, validated (ConfigError names the key)."""
    raw = plugin_settings(config, PLUGIN)
    check_keys(raw, SETTINGS, f"plugins.{PLUGIN}")
    path = raw.get("path")
    if path is None:
        resolved = Path(config.daemon.state_dir) / FILENAME
    else:
        if not isinstance(path, str) or not path:
            raise ConfigError("must be a path (a string)", key=f"plugins.{PLUGIN}.path")
        resolved = Path(os.path.expanduser(path))
        if not resolved.is_absolute():
            raise ConfigError(
                f"must be an absolute path, not {path!r}", key=f"plugins.{PLUGIN}.path"
            )
    interval = raw.get("interval", DEFAULT_SAVE_INTERVAL)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval >= 1:
        raise ConfigError("must be a number of seconds >= 1", key=f"plugins.{PLUGIN}.interval")
    return {"path": resolved, "interval": float(interval)}


class ResumeSqlitePlugin:
    """The plugin (stateless: the session owns the store it opens)."""

    @hookimpl
    def btd_configure(self, config: Config) -> None:
        """Settings: ``path`` (the SQLite file, absolute; default ``<state_dir>/resume.sqlite``),
        ``interval`` (seconds between saves of changed progress; default 30, >= 1)."""
        settings(config)

    @hookimpl
    def btd_resume_store(self, config: Config) -> SqliteResumeStore:
        """Open (or create) the store; ResumeStoreError if the file is not one we can use."""
        return open_store(config)


def open_store(config: Config) -> SqliteResumeStore:
    """The store the settings name, its copies in ``<state_dir>/torrents/``. Only peeks at
    the file: checking, recovering or creating it happens on the first ``load_all``."""
    s = settings(config)
    return SqliteResumeStore(
        s["path"], save_interval=s["interval"], copies=Path(config.daemon.state_dir)
    )
