"""Durable copies of added torrents in the state directory.

``<state_dir>/torrents/<info hash>.torrent`` holds the metainfo exactly as added and
``<info hash>.json`` the options (save path, paused, strategy). Both are written to a
temporary file, fsynced and renamed, so a crash leaves either the old or the new file,
never half of one. This is what makes ``torrent.add`` durable before it replies; the
resume-data plugin adds piece state on top.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from btd.core.errors import StorageError


@dataclass(frozen=True)
class StoredTorrent:
    info_hash: str
    metainfo: bytes
    options: dict[str, Any]


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
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

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "torrents"

    def save(self, info_hash: str, metainfo: bytes | None, options: dict[str, Any]) -> None:
        """Write the options and (when given, i.e. on add) the metainfo.

        The options go first and the .torrent last: ``load_all`` only looks at .torrent
        files, so a torrent is never found without its options. A failed add removes what
        it wrote, so the torrent does not come back on the next start.
        """
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o750)
            _atomic_write(self.dir / f"{info_hash}.json", json.dumps(options).encode())
            if metainfo is not None:
                _atomic_write(self.dir / f"{info_hash}.torrent", metainfo)
            dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
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
            for suffix in (".torrent", ".json"):
                _unlink(self.dir / f"{info_hash}{suffix}")
        except OSError as exc:
            why = exc.strerror or exc
            raise StorageError(f"cannot delete torrent state in {self.dir}: {why}") from exc

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
            found.append(StoredTorrent(info_hash, metainfo, options))
        return found, problems
