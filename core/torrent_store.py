"""Durable copies of added torrents in the state directory: the fallback ResumeStore.

``<state_dir>/torrents/<info hash>.torrent`` holds the metainfo exactly as added,
``<info hash>.json`` the options (save path, paused, strategy) and ``<info hash>.resume`` the
progress (a small JSON: pieces had, totals, file sizes). Each is written to a temporary
file, fsynced and renamed, so a crash leaves either the old or the new file, never half of
one. This is what makes ``torrent.add`` durable before it replies. The session uses it when
no plugin answers ``btd_resume_store`` (the ``resume_sqlite`` plugin keeps the same data in
one SQLite file). A progress file that cannot be read is reported and ignored: the torrent
then loads as if it had none (its existing files are rechecked).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from btd.core.durable import fsync_dir
from btd.core.errors import StorageError
from btd.core.resume import DEFAULT_SAVE_INTERVAL, NewTorrent, ResumeProgress, StoredTorrent

__all__ = ["StoredTorrent", "TorrentStore", "progress_from_json", "progress_to_json"]

_SUFFIXES = (".torrent", ".json", ".resume")


def progress_to_json(progress: ResumeProgress) -> dict[str, Any]:
    return {
        "have": progress.have.hex(),
        "num_pieces": progress.num_pieces,
        "uploaded": progress.uploaded,
        "downloaded": progress.downloaded,
        "file_sizes": list(progress.file_sizes),
        "completed_at": progress.completed_at,
        "saved_at": progress.saved_at,
    }


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise ValueError(f"{name} is not a count")
    return value


def _time(value: Any, name: str, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} is not a time")
    return float(value)


def progress_from_json(raw: Any) -> ResumeProgress:
    """The inverse of ``progress_to_json``; ValueError for anything malformed."""
    if not isinstance(raw, dict):
        raise ValueError("progress is not a JSON object")
    try:
        have = bytes.fromhex(raw["have"])
        sizes = raw["file_sizes"]
        if not isinstance(sizes, list):
            raise ValueError("file_sizes is not a list")
        return ResumeProgress(
            have=have,
            num_pieces=_int(raw["num_pieces"], "num_pieces"),
            uploaded=_int(raw["uploaded"], "uploaded"),
            downloaded=_int(raw["downloaded"], "downloaded"),
            file_sizes=tuple(_int(v, "a file size") for v in sizes),
            completed_at=_time(raw.get("completed_at"), "completed_at", optional=True),
            saved_at=_time(raw["saved_at"], "saved_at") or 0.0,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"progress is incomplete: {exc}") from exc


def _write_file(path: Path, data: bytes, *, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        view = memoryview(data)
        while view:  # os.write may write less than asked
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    fsync_dir(folder)


def _sync_folder_fs(folder: Path, files: list[Path]) -> None:
    """Make ``files`` durable: one ``syncfs(2)`` of the folder's file system (Linux), or,
    where there is none, an fsync of each file."""
    syncfs = _syncfs()
    if syncfs is not None:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if syncfs(dir_fd) == 0:
                return
        finally:
            os.close(dir_fd)
    for path in files:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _syncfs() -> Any:
    """libc's ``syncfs``, or None (not Linux, no libc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


def _atomic_write(path: Path, data: bytes, *, sync: bool = True) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        _write_file(tmp, data, sync=sync)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            _unlink(tmp)
        raise


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


class TorrentStore:
    """Blocking file operations: call them from a worker thread."""

    save_interval = DEFAULT_SAVE_INTERVAL

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "torrents"

    # -- the ResumeStore protocol ---------------------------------------------------------------
    def save_torrent(self, info_hash: str, metainfo: bytes, options: dict[str, Any]) -> None:
        """A new torrent: its metainfo and options, durable on return; older progress goes."""
        try:
            _unlink(self.dir / f"{info_hash}.resume")  # it may describe other files
        except OSError as exc:
            why = exc.strerror or exc
            raise StorageError(f"cannot save torrent state in {self.dir}: {why}") from exc
        self.save(info_hash, metainfo, options)

    def save_torrents(self, items: Sequence[NewTorrent], *, sync: bool = True) -> None:
        """A batch add, all or nothing: every file written unsynced, ONE ``syncfs`` (else an
        fsync per file), then the renames (options before metainfo) and one folder fsync.

        ``sync=False`` (the SQLite store's copies, whose durable record is the SQLite row):
        no syncfs, no folder fsync; each file still appears whole or not at all (a rename),
        and the kernel writes it back within seconds."""
        written: list[Path] = []
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o750)
            for item in items:
                _unlink(self.dir / f"{item.info_hash}.resume")  # it may describe other files
            staged: list[tuple[Path, Path]] = []
            for item in items:
                for suffix, data in (
                    (".json", json.dumps(item.options).encode()),
                    (".torrent", item.metainfo),
                ):
                    final = self.dir / f"{item.info_hash}{suffix}"
                    tmp = final.with_name(final.name + ".tmp")
                    written.append(tmp)
                    _write_file(tmp, data, sync=False)
                    staged.append((tmp, final))
            if sync:
                _sync_folder_fs(self.dir, [tmp for tmp, _ in staged])
            for tmp, final in staged:
                os.replace(tmp, final)
                written.append(final)
            if sync:
                _fsync_dir(self.dir)
        except OSError as exc:
            for path in written:
                with contextlib.suppress(OSError):
                    _unlink(path)
            why = exc.strerror or exc
            raise StorageError(f"cannot save torrent state in {self.dir}: {why}") from exc

    def save_options(self, info_hash: str, options: dict[str, Any], *, sync: bool = True) -> None:
        self.save(info_hash, None, options, sync=sync)

    def save_options_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Several torrents' options, unsynced (shutdown: their seeding time); each file
        appears whole or not at all."""
        for info_hash, options in items:
            if (self.dir / f"{info_hash}.torrent").exists():
                self.save(info_hash, None, options, sync=False)

    def save_progress(self, info_hash: str, progress: ResumeProgress) -> None:
        """Write ``<hash>.resume`` (the folder is not fsynced: losing it costs only a recheck)."""
        if not (self.dir / f"{info_hash}.torrent").exists():
            return  # removed meanwhile: do not leave progress behind
        try:
            data = json.dumps(progress_to_json(progress)).encode()
            _atomic_write(self.dir / f"{info_hash}.resume", data)
        except OSError as exc:
            why = exc.strerror or exc
            raise StorageError(f"cannot save progress in {self.dir}: {why}") from exc

    def save_progress_many(self, items: Sequence[tuple[str, ResumeProgress]]) -> None:
        """A round of progress saves: every ``.resume`` written unsynced, ONE ``syncfs`` (else
        an fsync per file), then the renames. Torrents removed meanwhile are skipped. On an
        error the files not yet renamed are dropped (those renamed are whole and current)."""
        staged: list[tuple[Path, Path]] = []
        renamed = 0
        try:
            for info_hash, progress in items:
                if not (self.dir / f"{info_hash}.torrent").exists():
                    continue  # removed meanwhile: do not leave progress behind
                final = self.dir / f"{info_hash}.resume"
                tmp = final.with_name(final.name + ".tmp")
                staged.append((tmp, final))
                _write_file(tmp, json.dumps(progress_to_json(progress)).encode(), sync=False)
            if not staged:
                return
            _sync_folder_fs(self.dir, [tmp for tmp, _ in staged])
            for tmp, final in staged:
                os.replace(tmp, final)
                renamed += 1
        except OSError as exc:
            for tmp, _ in staged[renamed:]:
                with contextlib.suppress(OSError):
                    _unlink(tmp)
            why = exc.strerror or exc
            raise StorageError(f"cannot save progress in {self.dir}: {why}") from exc

    def close(self) -> None:
        """Nothing is held open."""

    def save(
        self, info_hash: str, metainfo: bytes | None, options: dict[str, Any], *, sync: bool = True
    ) -> None:
        """Write the options and (when given, i.e. on add) the metainfo.

        The options go first and the .torrent last: ``load_all`` only looks at .torrent
        files, so a torrent is never found without its options. A failed add removes what
        it wrote, so the torrent does not come back on the next start.
        """
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o750)
            _atomic_write(self.dir / f"{info_hash}.json", json.dumps(options).encode(), sync=sync)
            if metainfo is not None:
                _atomic_write(self.dir / f"{info_hash}.torrent", metainfo, sync=sync)
            if sync:
                _fsync_dir(self.dir)
        except OSError as exc:
            if metainfo is not None:
                for suffix in (".torrent", ".json"):
                    try:
                        _unlink(self.dir / f"{info_hash}{suffix}")
                    except OSError:
                        pass  # best effort; the error reported is the first one
            why = exc.strerror or exc
            raise StorageError(f"cannot save torrent state in {self.dir}: {why}") from exc

    def delete(self, info_hash: str) -> None:
        """Forget a removed torrent (files already gone are fine)."""
        try:
            for suffix in _SUFFIXES:
                _unlink(self.dir / f"{info_hash}{suffix}")
        except OSError as exc:
            why = exc.strerror or exc
            raise StorageError(f"cannot delete torrent state in {self.dir}: {why}") from exc

    def hashes(self) -> set[str]:
        """The info hashes with a stored .torrent (a directory listing, nothing read)."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return set()
        return {n[:-8] for n in names if n.endswith(".torrent") and len(n) == 48}

    def load(self, info_hash: str, *, progress: bool = True) -> StoredTorrent:
        """One stored torrent (OSError, ValueError if it cannot be read); its progress only
        when asked for and readable."""
        path = self.dir / f"{info_hash}.torrent"
        metainfo = path.read_bytes()
        options_path = path.with_suffix(".json")
        options = json.loads(options_path.read_text()) if options_path.exists() else {}
        if not isinstance(options, dict):
            raise ValueError("options are not a JSON object")
        stored = None
        if progress:
            try:
                stored = progress_from_json(json.loads(path.with_suffix(".resume").read_text()))
            except (OSError, ValueError):
                stored = None
        return StoredTorrent(info_hash, metainfo, options, stored)

    def load_all(self) -> tuple[list[StoredTorrent], list[str]]:
        """Every stored torrent, and a message for each file that could not be read."""
        found: list[StoredTorrent] = []
        problems: list[str] = []
        if not self.dir.is_dir():
            return found, problems
        for path in sorted(self.dir.glob("*.torrent")):
            info_hash = path.stem
            try:
                metainfo = path.read_bytes()
                options_path = path.with_suffix(".json")
                options = json.loads(options_path.read_text()) if options_path.exists() else {}
                if not isinstance(options, dict):
                    raise ValueError("options are not a JSON object")
            except (OSError, ValueError) as exc:
                problems.append(f"{path}: {exc}")
                continue
            progress = None
            progress_path = path.with_suffix(".resume")
            try:
                if progress_path.exists():
                    progress = progress_from_json(json.loads(progress_path.read_text()))
            except (OSError, ValueError) as exc:
                problems.append(f"{progress_path}: {exc} (ignored: its files will be rechecked)")
            found.append(StoredTorrent(info_hash, metainfo, options, progress))
        return found, problems
