"""Resume data in one SQLite file (``resume_sqlite``): the embedded default store.

``<state_dir>/resume.sqlite`` (setting ``path``) holds two tables: ``torrents`` (metainfo
exactly as added, options JSON, added_at) and ``progress`` (pieces had as bitfield bytes,
totals, file sizes on disk, completed_at, saved_at). WAL mode; ``synchronous=FULL`` for what
a reply waits for (adding, options, removing: fsynced before the call returns) and
``synchronous=NORMAL`` for progress, which survives a crash of btd but may lose the last
saves on a power cut (never wrong: a progress row only names pieces fsynced before it).

A file that is not a btd resume store (not SQLite, ``PRAGMA integrity_check`` fails, a newer
schema, tables of something else) is refused with ResumeStoreError naming the file: the
daemon does not start (exit 78) and the file is never written to, so nothing is lost.

The connection is shared by the pool's worker threads (``check_same_thread=False``), one
statement at a time behind a lock.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
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

if TYPE_CHECKING:
    from btd.core.config_schema import Config

__version__ = "1.0"

_log = Logger(namespace="btd.plugins.resume_sqlite")

PLUGIN = "resume_sqlite"
FILENAME = "resume.sqlite"
SCHEMA_VERSION = 1
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


def _moved_aside_hint(path: Path) -> str:
    return (
        f"btd will not start with it and has not changed it; move it aside "
        f"(mv {path} {path}.broken) to start with no torrents, or restore a backup"
    )


class SqliteResumeStore:
    """The ResumeStore protocol on SQLite. Blocking: call from the thread pool."""

    def __init__(
        self,
        path: Path,
        *,
        save_interval: float = DEFAULT_SAVE_INTERVAL,
        initial: Callable[[], Iterable[StoredTorrent]] | None = None,
    ) -> None:
        """``initial`` gives the torrents a NEW store starts with (in the same transaction
        as its schema: a failed import leaves no schema, so the next start tries again)."""
        self.path = Path(path)
        self.save_interval = save_interval
        self._lock = threading.Lock()
        self.created: list[StoredTorrent] | None = None  # set when the schema was made now
        self._initial = initial
        self._db = self._open()

    # -- opening -----------------------------------------------------------------------------
    def _refuse(self, why: str) -> ResumeStoreError:
        return ResumeStoreError(
            f"resume store {self.path} {why}; {_moved_aside_hint(self.path)}",
            key=f"plugins.{PLUGIN}",
        )

    def _open(self) -> sqlite3.Connection:
        """Open, check (read-only statements first), then create the schema if it is new."""
        existed = self.path.exists()
        if not existed:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            except OSError as exc:
                raise StorageError(f"cannot create {self.path.parent}: {exc.strerror}") from exc
        try:
            # mode=rw for an existing file: never create or truncate one that vanished meanwhile
            uri = f"file:{_quote(self.path)}?mode={'rw' if existed else 'rwc'}"
            db = sqlite3.connect(
                uri, uri=True, check_same_thread=False, isolation_level=None, timeout=10
            )
        except sqlite3.Error as exc:
            raise self._refuse(f"cannot be opened ({exc})") from exc
        try:
            self._check(db, existed)
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise self._refuse(f"cannot use write-ahead logging (journal mode {mode})")
            db.execute("PRAGMA synchronous=NORMAL")
            if self._version(db) == 0:
                initial = list(self._initial()) if self._initial is not None else []
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
                self.created = initial
            if not existed:
                os.chmod(self.path, 0o640)
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _version(db: sqlite3.Connection) -> int:
        return int(db.execute("PRAGMA user_version").fetchone()[0])

    def _check(self, db: sqlite3.Connection, existed: bool) -> None:
        """Only reads: a file we refuse is left byte for byte as it was."""
        try:
            version = self._version(db)  # the first read: "file is not a database" here
            if version > SCHEMA_VERSION:
                raise self._refuse(
                    f"has schema version {version}, newer than this btd understands "
                    f"({SCHEMA_VERSION}); it was written by a newer btd"
                )
            if existed:
                rows = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
                if rows != ["ok"]:
                    raise self._refuse("is damaged: " + "; ".join(map(str, rows[:5])))
            tables = {
                r[0]
                for r in db.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
                )
            }
        except sqlite3.DatabaseError as exc:
            raise self._refuse(f"is not a usable SQLite database ({exc})") from exc
        if version == 0 and tables:
            raise self._refuse(f"is not a btd resume store (it has tables {sorted(tables)})")
        if version == SCHEMA_VERSION and not {"torrents", "progress"} <= tables:
            raise self._refuse("is missing its tables")

    # -- writing -----------------------------------------------------------------------------
    def _write(self, statements: list[tuple[str, tuple[Any, ...]]], *, durable: bool) -> None:
        """One transaction; ``durable`` fsyncs it before returning (synchronous=FULL)."""
        with self._lock:
            db = self._db
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

    def save_torrent(self, info_hash: str, metainfo: bytes, options: dict[str, Any]) -> None:
        self._write(
            [
                _torrent_row(info_hash, metainfo, options),
                ("DELETE FROM progress WHERE info_hash = ?", (info_hash,)),  # another add's
            ],
            durable=True,
        )

    def save_torrents(self, items: Sequence[NewTorrent]) -> None:
        """A batch add: every item in ONE transaction, fsynced once (all or nothing)."""
        statements = []
        for item in items:
            statements.append(_torrent_row(item.info_hash, item.metainfo, item.options))
            statements.append(("DELETE FROM progress WHERE info_hash = ?", (item.info_hash,)))
        self._write(statements, durable=True)

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

    def save_progress(self, info_hash: str, progress: ResumeProgress) -> None:
        self._write([_progress_row(info_hash, progress)], durable=False)

    def save_progress_many(self, items: Sequence[tuple[str, ResumeProgress]]) -> None:
        """A round of progress saves in ONE transaction (all or nothing)."""
        self._write([_progress_row(h, progress) for h, progress in items], durable=False)

    def delete(self, info_hash: str) -> None:
        self._write(
            [
                ("DELETE FROM progress WHERE info_hash = ?", (info_hash,)),
                ("DELETE FROM torrents WHERE info_hash = ?", (info_hash,)),
            ],
            durable=True,
        )

    # -- reading -----------------------------------------------------------------------------
    def load_all(self) -> tuple[list[StoredTorrent], list[str]]:
        """Every torrent; a row that cannot be read is reported and skipped, never deleted."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT t.info_hash, t.metainfo, t.options, p.have, p.num_pieces,"
                    " p.uploaded, p.downloaded, p.file_sizes, p.completed_at, p.saved_at,"
                    " p.info_hash FROM torrents t LEFT JOIN progress p USING (info_hash)"
                    " ORDER BY t.added_at, t.info_hash"
                ).fetchall()
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
                    progress = _progress(row[3:10])
                except (ValueError, TypeError) as exc:
                    problems.append(f"{where}: progress ignored ({exc}); its files are rechecked")
            found.append(StoredTorrent(info_hash, row[1], options, progress))
        return found, problems

    def close(self) -> None:
        with self._lock:
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


def _progress(row: tuple[Any, ...]) -> ResumeProgress:
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


def files_fallback(state_dir: Path) -> Callable[[], list[StoredTorrent]]:
    """What the files fallback kept (``<state_dir>/torrents/``): a new store starts with it.

    So enabling the plugin does not make the torrents added before vanish. The files are
    left as they were: disabling the plugin again finds them (without later changes).
    """

    def load() -> list[StoredTorrent]:
        from btd.core.torrent_store import TorrentStore

        found, problems = TorrentStore(state_dir).load_all()
        for problem in problems:
            _log.warn("not imported: {problem}", problem=problem)
        return found

    return load


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
    """The store the settings name, created (from the files fallback) if missing."""
    s = settings(config)
    state_dir = Path(config.daemon.state_dir)
    store = SqliteResumeStore(
        s["path"], save_interval=s["interval"], initial=files_fallback(state_dir)
    )
    if store.created is not None:
        _log.info(
            "created {path} with {n} torrent(s) from {dir}",
            path=str(store.path),
            n=len(store.created),
            dir=str(state_dir / "torrents"),
        )
    return store
