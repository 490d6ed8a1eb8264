"""Magnet links still waiting for metadata, durable in ``<state_dir>/magnets.json``.

A magnet that ``torrent.add`` accepted survives a restart like a .torrent does; once its
metadata arrives it becomes an ordinary torrent in the resume store and leaves this file.
Blocking: call from the thread pool. Writes go to a temporary file, fsync, rename.

A file that is not a JSON object (damaged on disk) is moved aside to
``magnets.json.damaged-<UTC time>`` (never deleted) by ``load_all``, which keeps every
entry still readable in it (each ``"<info hash>": {...}`` decoded on its own, so damage
costs only the entries it touches) and reports what it did.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from btd.core.errors import StorageError


class MagnetStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "magnets.json"
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StorageError(f"cannot read {self.path}: {exc}") from exc
        if not isinstance(data, dict):
            raise StorageError(f"{self.path}: not a JSON object")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            with open(tmp, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise StorageError(f"cannot save {self.path}: {exc.strerror}") from exc

    def save(self, info_hash: str, uri: str, options: dict[str, Any]) -> None:
        with self._lock:
            data = self._read()
            data[info_hash] = {"uri": uri, "options": options}
            self._write(data)

    def delete(self, info_hash: str) -> None:
        with self._lock:
            data = self._read()
            if data.pop(info_hash, None) is not None:
                self._write(data)

    def load_all(self) -> tuple[list[tuple[str, str, dict[str, Any]]], list[str]]:
        """``(info_hash, uri, options)`` for each stored magnet, and problems to report."""
        problems: list[str] = []
        try:
            data = self._read()
        except StorageError as exc:
            try:
                data = self._recover()
            except (OSError, StorageError) as again:
                return [], [f"{exc}; not recovered: {again}"]
            problems.append(
                f"{exc}: moved aside to {self._aside}; {len(data)} magnet(s) recovered from it"
            )
        found = []
        for info_hash, entry in sorted(data.items()):
            if not isinstance(entry, dict) or not isinstance(entry.get("uri"), str):
                problems.append(f"{self.path}: entry {info_hash} is malformed")
                continue
            options = entry.get("options") if isinstance(entry.get("options"), dict) else {}
            found.append((info_hash, entry["uri"], options))
        return found, problems

    _ENTRY = re.compile(r'"([0-9a-fA-F]{40})"\s*:\s*(?=\{)')

    def _recover(self) -> dict[str, Any]:
        """Move the damaged file aside and write back the entries still readable in it."""
        with self._lock:
            raw = self.path.read_bytes().decode("utf-8", errors="replace")
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
            n = 1
            while aside.exists():
                n += 1
                aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{n}")
            os.replace(self.path, aside)
            self._aside = aside
            data: dict[str, Any] = {}
            decoder = json.JSONDecoder()
            for match in self._ENTRY.finditer(raw):
                try:
                    entry, _ = decoder.raw_decode(raw, match.end())
                except ValueError:
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("uri"), str):
                    data[match.group(1).lower()] = entry
            self._write(data)
            return data
