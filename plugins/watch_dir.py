"""Watch folders (``watch_dir``): .torrent and .magnet files dropped into a folder are added.

A file is taken only once it is complete: at once when inotify reports it closed after
writing (IN_CLOSE_WRITE) or renamed into place (IN_MOVED_TO), otherwise when a periodic
scan sees the same size, mtime and inode twice in a row. The scan also finds files that
were there before btd started and is the whole mechanism where inotify is missing.

A ``.magnet`` file holds one magnet link (text, surrounding whitespace ignored); it is added
through ``session.add_magnet`` and waits for its metadata like ``btctl add magnet:...``.

Once added (or already present) the file is moved to ``<folder>/added/`` or deleted, so a
folder holds only what is still to do. A file that is not a usable torrent is renamed
``<name>.invalid`` (reason in ``<name>.invalid.txt``) and never tried again; a failure of
btd itself (state directory full) leaves the file where it is for a later retry.
Hidden files, empty files, symlinks and subfolders are never touched.

Size: about 470 lines, because ``FolderWatcher`` is one folder's whole life (inotify, the
scan, retries, moving files aside); the blocking file work is in watch_dir_files.py.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from btd.core.config_schema import Invalid, expand_path
from btd.core.errors import ConfigError, MetainfoError, StorageError
from btd.core.metainfo import parse_metainfo
from btd.core.plugin import hookimpl
from btd.core.plugin_config import check_keys, plugin_settings
from btd.plugins.watch_dir_files import (
    MAX_MAGNET_SIZE,
    MAX_TORRENT_SIZE,
    BadTorrentFile,
    NotACandidate,
    Signature,
    delete_file,
    is_magnet,
    list_candidates,
    magnet_text,
    mark_invalid,
    move_to_added,
    read_torrent,
    wanted_name,
)

if TYPE_CHECKING:
    from btd.core.config_schema import Config
    from btd.core.hookspecs import SessionView

PLUGIN = "watch_dir"
RETRY_AFTER = 60.0  # seconds before a file btd failed to store is tried again
FOLDER_KEYS = ("path", "save_path", "paused", "strategy", "on_added", "interval")
ON_ADDED = ("move", "delete")

_log = Logger(namespace="btd.plugins.watch_dir")


# -- settings ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FolderSpec:
    """One watched folder and the options its torrents are added with."""

    path: Path
    save_path: Path | None = None
    paused: bool = False
    strategy: str | None = None
    on_added: str = "move"
    interval: float = 2.0


def _path(value: Any, key: str) -> Path:
    try:
        return expand_path(value, os.environ)
    except Invalid as exc:
        raise ConfigError(exc.message + (f", got {value!r}" if exc.show_value else ""), key=key)


def parse_folder(raw: Any, key: str) -> FolderSpec:
    """One ``folders[i]`` mapping; ConfigError names ``plugins.watch_dir.folders[i].<key>``."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"must be a mapping with at least path:, got {raw!r}", key=key)
    check_keys(raw, FOLDER_KEYS, key)
    if "path" not in raw:
        raise ConfigError("required: the folder to watch (an absolute path)", key=f"{key}.path")
    spec: dict[str, Any] = {"path": _path(raw["path"], f"{key}.path")}
    if raw.get("save_path") is not None:
        spec["save_path"] = _path(raw["save_path"], f"{key}.save_path")
    if "paused" in raw:
        if not isinstance(raw["paused"], bool):
            raise ConfigError(f"must be true or false, got {raw['paused']!r}", key=f"{key}.paused")
        spec["paused"] = raw["paused"]
    if raw.get("strategy") is not None:
        strategy = raw["strategy"]
        if not isinstance(strategy, str) or not strategy.strip():
            raise ConfigError(f"must be a strategy name, got {strategy!r}", key=f"{key}.strategy")
        spec["strategy"] = strategy
    if "on_added" in raw:
        if raw["on_added"] not in ON_ADDED:
            raise ConfigError(
                f"must be move or delete, got {raw['on_added']!r}", key=f"{key}.on_added"
            )
        spec["on_added"] = raw["on_added"]
    if "interval" in raw:
        interval = raw["interval"]
        if (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or not (0 < interval <= 3600)
        ):
            raise ConfigError(
                f"must be a number of seconds in (0, 3600], got {interval!r}", key=f"{key}.interval"
            )
        spec["interval"] = float(interval)
    return FolderSpec(**spec)


def parse_settings(raw: Mapping[str, Any] | None) -> tuple[FolderSpec, ...]:
    """The plugin's YAML mapping -> the folders to watch (validated, paths absolute)."""
    base = f"plugins.{PLUGIN}"
    raw = raw or {}
    check_keys(raw, ("folders",), base)
    folders = raw.get("folders")
    if not isinstance(folders, (list, tuple)):
        raise ConfigError(
            f"required: a list of folders ({{path: /abs/dir}}), got {folders!r}",
            key=f"{base}.folders",
        )
    specs: list[FolderSpec] = []
    for i, item in enumerate(folders):
        spec = parse_folder(item, f"{base}.folders[{i}]")
        for j, other in enumerate(specs):
            if other.path == spec.path:
                raise ConfigError(
                    f"the same folder as folders[{j}]", key=f"{base}.folders[{i}].path"
                )
        specs.append(spec)
    return tuple(specs)


# -- one folder -----------------------------------------------------------------------------------
class FolderWatcher:
    """Finds complete .torrent/.magnet files in one folder; ``session.add``/``add_magnet``.

    ``session`` needs ``add``, ``add_magnet``, ``run_blocking``, ``reactor`` (IReactorTime;
    inotify is used only when it is also an IReactorFDSet on Linux) and optionally
    ``stopping``.
    """

    def __init__(
        self,
        spec: FolderSpec,
        session: Any,
        *,
        inotify: bool | None = None,
        log: Logger | None = None,
    ) -> None:
        self.spec = spec
        self.session = session
        self.clock = session.reactor
        self.log = log or _log
        self._want_inotify = _inotify_possible(self.clock) if inotify is None else inotify
        self._notifier: Any = None
        self._loop: LoopingCall | None = None
        self._last: dict[str, Signature] = {}  # the previous scan
        self._busy: dict[str, defer.Deferred[None]] = {}  # takes in flight
        self._skip: dict[str, Signature] = {}  # not retried until the file changes
        self._retry_at: dict[str, float] = {}  # btd failed to store it: try again later
        self._links_told: set[str] = set()
        self._scan_error: str | None = None
        self._inotify_warned = False
        self.stopped = False

    @property
    def path(self) -> Path:
        return self.spec.path

    def start(self) -> defer.Deferred[None]:
        """Create the folder if missing, then watch (inotify) and scan every ``interval``."""
        d = self.session.run_blocking(_ensure_folder, self.path)

        def created(made: bool) -> None:
            if made:
                self.log.info("watch folder {path} did not exist; created it", path=str(self.path))

        def not_created(failure: Any) -> None:
            self.log.error(
                "watch folder {path} is missing and cannot be created: {e}",
                path=str(self.path),
                e=failure.getErrorMessage(),
            )

        def watch(_: object) -> None:
            if self.stopped:
                return
            self._start_inotify()
            how = "inotify and " if self._notifier is not None else ""
            self.log.info(
                "watching {path} for .torrent and .magnet files ({how}a scan every {s:g} s)",
                path=str(self.path),
                how=how,
                s=self.spec.interval,
            )
            self._loop = LoopingCall(self.scan)
            self._loop.clock = self.clock
            self._loop.start(self.spec.interval, now=True)

        return d.addCallbacks(created, not_created).addCallback(watch)

    def stop(self) -> defer.Deferred[Any]:
        """Stop watching; the Deferred fires when the takes in flight are done."""
        self.stopped = True
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._stop_inotify()
        return defer.DeferredList(list(self._busy.values()), consumeErrors=True)

    # -- detection ----------------------------------------------------------------------------
    def _start_inotify(self) -> None:
        if not self._want_inotify or self._notifier is not None:
            return
        from twisted.internet import inotify
        from twisted.python.filepath import FilePath

        notifier = None
        try:
            notifier = inotify.INotify(reactor=self.clock)
            notifier.startReading()
            notifier.watch(
                FilePath(str(self.path)),
                mask=inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_TO,
                callbacks=[self._inotify_event],
            )
        except Exception as exc:  # no inotify instances left, folder missing: scans still run
            if not self._inotify_warned:
                self.log.warn(
                    "watch folder {path}: inotify unavailable ({e}); scans only",
                    path=str(self.path),
                    e=str(exc),
                )
            self._inotify_warned = True
            if notifier is not None:
                with contextlib.suppress(Exception):
                    notifier.loseConnection()
            return
        self._notifier = notifier
        self._inotify_warned = False

    def _stop_inotify(self) -> None:
        if self._notifier is not None:
            notifier, self._notifier = self._notifier, None
            with contextlib.suppress(Exception):
                notifier.loseConnection()

    def _inotify_event(self, _watch: Any, filepath: Any, mask: int) -> None:
        from twisted.internet import inotify

        if mask & (inotify.IN_DELETE_SELF | inotify.IN_IGNORED):
            self._notifier = None  # Twisted dropped it; re-watched once a scan succeeds
            return
        if mask & (inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_TO):
            self.notice(os.fsdecode(filepath.basename()))

    def notice(self, name: str) -> None:
        """The file is known complete (closed after writing, or renamed into place)."""
        if wanted_name(name):
            self._skip.pop(name, None)  # rewritten: worth another try
            self.take(name)

    def scan(self) -> defer.Deferred[None]:
        """One listing; a file unchanged since the previous one is taken. Never fails."""
        d = self.session.run_blocking(list_candidates, self.path)
        d.addCallbacks(self._scanned, self._scan_failed)
        d.addErrback(
            lambda f: self.log.failure("watch folder {path}: scan failed", f, path=str(self.path))
        )
        return d  # a failed Deferred would stop the LoopingCall

    def _scan_failed(self, failure: Any) -> None:
        message = failure.getErrorMessage()
        if self._scan_error != message:
            self.log.warn("cannot read watch folder {path}: {e}", path=str(self.path), e=message)
        self._scan_error = message
        self._last = {}

    def _scanned(self, result: tuple[dict[str, Signature], list[str]]) -> None:
        found, links = result
        if self._scan_error is not None:
            self.log.info("watch folder {path} is readable again", path=str(self.path))
            self._scan_error = None
        self._start_inotify()  # again if the folder was deleted and made anew
        for name in links:
            if name not in self._links_told:
                self.log.info(
                    "watch folder {path}: {name} is a symlink; ignored",
                    path=str(self.path),
                    name=name,
                )
        self._links_told = set(links)
        previous, self._last = self._last, found
        for key in [k for k, sig in self._skip.items() if found.get(k) != sig]:
            del self._skip[key]  # changed or gone: worth another look
        for name, sig in found.items():
            if previous.get(name) == sig:
                self.take(name)

    # -- taking a file ---------------------------------------------------------------------------
    def take(self, name: str) -> None:
        if self.stopped or getattr(self.session, "stopping", False) or name in self._busy:
            return
        if name in self._skip:  # until a scan or inotify sees it change
            return
        if self.clock.seconds() < self._retry_at.get(name, 0.0):
            return
        self._retry_at.pop(name, None)
        d = self._take(name)
        self._busy[name] = d
        d.addBoth(lambda _: self._done(name))

    def _done(self, name: str) -> None:
        self._busy.pop(name, None)

    @defer.inlineCallbacks
    def _take(self, name: str) -> Any:
        folder, where = self.path, str(self.path)
        magnet = is_magnet(name)
        limit = MAX_MAGNET_SIZE if magnet else MAX_TORRENT_SIZE
        try:
            data, sig = yield self.session.run_blocking(read_torrent, folder, name, limit)
            uri = magnet_text(data) if magnet else None
            # parsed here, on the pool: a .torrent of 100,000 files must not stall the reactor
            meta = None if magnet else (yield self.session.run_blocking(parse_metainfo, data))
        except (FileNotFoundError, NotACandidate):
            return  # gone already (taken by a racing event), or not a plain file
        except BadTorrentFile as exc:
            yield self._reject(name, str(exc))
            return
        except MetainfoError as exc:
            yield self._reject(name, f"not a valid torrent: {exc}")
            return
        except Exception as exc:
            self.log.error(
                "watch folder {path}: reading {name} failed: {e}", path=where, name=name, e=str(exc)
            )
            return
        spec = self.spec
        options = {
            "save_path": str(spec.save_path) if spec.save_path is not None else None,
            "paused": spec.paused,
            "strategy": spec.strategy,
        }
        try:
            if uri is not None:
                added = self.session.add_magnet(uri, **options)
            else:
                added = self.session.add(data, meta=meta, **options)
        except MetainfoError as exc:
            what = "magnet link" if magnet else "torrent"
            yield self._reject(name, f"not a valid {what}: {exc}")
            return
        except ValueError as exc:  # the folder's strategy is unknown: a setting, not the file
            self.log.error(
                "watch folder {path}: {name} left in place: {e}", path=where, name=name, e=str(exc)
            )
            self._skip[name] = sig
            return
        try:
            result = yield added
        except Exception as exc:
            kind = "storing" if isinstance(exc, StorageError) else "adding"
            self.log.error(
                "watch folder {path}: {kind} {name} failed ({e}); "
                "left in place, retried in {s:.0f} s",
                path=where,
                kind=kind,
                name=name,
                e=str(exc),
                s=RETRY_AFTER,
            )
            self._retry_at[name] = self.clock.seconds() + RETRY_AFTER
            return
        done = move_to_added if spec.on_added == "move" else delete_file
        try:
            target = yield self.session.run_blocking(done, folder, name)
        except Exception as exc:
            self.log.error(
                "watch folder {path}: {name} was added but cannot be {verb}: {e}",
                path=where,
                name=name,
                e=str(exc),
                verb="moved" if spec.on_added == "move" else "deleted",
            )
            self._skip[name] = sig  # do not re-add it every scan; it is already present
            return
        self.log.info(
            "watch folder {path}: {name} {how} as {hash} ({what})",
            path=where,
            name=name,
            hash=result.get("info_hash"),
            how="added" if result.get("added") else "already present",
            what=f"moved to {target}" if spec.on_added == "move" else "deleted",
        )

    @defer.inlineCallbacks
    def _reject(self, name: str, reason: str) -> Any:
        where = str(self.path)
        try:
            target = yield self.session.run_blocking(mark_invalid, self.path, name, reason)
        except Exception as exc:
            self.log.error(
                "watch folder {path}: {name} is unusable ({reason}) and cannot be renamed: {e}",
                path=where,
                name=name,
                reason=reason,
                e=str(exc),
            )
            sig = self._last.get(name)
            if sig is not None:
                self._skip[name] = sig
            return
        self.log.error(
            "watch folder {path}: {name} is unusable ({reason}); renamed to {new}",
            path=where,
            name=name,
            reason=reason,
            new=target.name,
        )


def _ensure_folder(path: Path) -> bool:
    """True if the folder had to be created."""
    if path.is_dir():
        return False
    path.mkdir(parents=True, exist_ok=True)
    return True


def _inotify_possible(reactor: Any) -> bool:
    from twisted.internet.interfaces import IReactorFDSet
    from twisted.python.runtime import platform

    return platform.supportsINotify() and IReactorFDSet.providedBy(reactor)


# -- hooks -----------------------------------------------------------------------------------------
class WatchDirPlugin:
    """The plugin: the folders to watch and their watchers (one instance per manager)."""

    def __init__(self) -> None:
        self.folders: tuple[FolderSpec, ...] = ()
        self.watchers: list[FolderWatcher] = []

    @hookimpl
    def btd_configure(self, config: Config) -> None:
        """Settings: ``folders`` (list of ``{path, save_path, paused, strategy, on_added,
        interval}``)."""
        self.folders = parse_settings(plugin_settings(config, PLUGIN))

    @hookimpl
    def btd_session_started(self, session: SessionView) -> None:
        for spec in self.folders:
            watcher = FolderWatcher(spec, session)
            self.watchers.append(watcher)
            watcher.start()

    @hookimpl
    def btd_session_stopping(self, session: SessionView) -> defer.Deferred[Any] | None:
        if not self.watchers:
            return None
        stopping = [w.stop() for w in self.watchers]
        self.watchers.clear()
        return defer.DeferredList(stopping, consumeErrors=True)
