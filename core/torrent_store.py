"""Durable copies of added torrents in the state directory.

``<state_dir>/torrents/<info hash>.torrent`` holds the metainfo exactly as added and
``<info hash>.json`` the options (save path, paused, strategy). Both are written to a
temporary file, fsynced and renamed, so a crash leaves either the old or the new file,
never half of one. This is what makes ``torrent.add`` durable before it replies; the
resume-data plugin adds piece state on top.
"""

from __future__ import annotations

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
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class TorrentStore:
    """Blocking file operations: call them from a worker thread."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "torrents"

    def save(self, info_hash: str, metainfo: bytes | None, options: dict[str, Any]) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o750)
            if metainfo is not None:
                _atomic_write(self.dir / f"{info_hash}.torrent", metainfo)
            _atomic_write(self.dir / f"{info_hash}.json", json.dumps(options).encode())
            dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StorageError(f"cannot save torrent state in {self.dir}: {exc.strerror}") from exc

    def delete(self, info_hash: str) -> None:
        for suffix in (".torrent", ".json"):
            try:
                (self.dir / f"{info_hash}{suffix}").unlink()
            except FileNotFoundError:
                pass

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
