"""Transmission's small integer torrent ids, stable across restarts (pure; no Twisted).

Ids are given in the order torrents were added (callers hand torrents over sorted by
``added_at``) and never reused: the next id is a counter kept with the table, so a removed
torrent's id stays dead even after a restart. ``dumps``/``loads`` are the file's form.
"""

from __future__ import annotations

import json
from typing import Any

VERSION = 1


class TorrentIds:
    def __init__(self) -> None:
        self._by_hash: dict[str, int] = {}
        self._by_id: dict[int, str] = {}
        self.next_id = 1
        self.changed = False  # something to save

    def __len__(self) -> int:
        return len(self._by_hash)

    def id_of(self, info_hash: str) -> int:
        """The torrent's id, given now if it has none."""
        found = self._by_hash.get(info_hash)
        if found is not None:
            return found
        tid = self.next_id
        self.next_id += 1
        self._by_hash[info_hash] = tid
        self._by_id[tid] = info_hash
        self.changed = True
        return tid

    def known(self, info_hash: str) -> int | None:
        """The torrent's id if it has one (none is given)."""
        return self._by_hash.get(info_hash)

    def hash_of(self, tid: int) -> str | None:
        return self._by_id.get(tid)

    def forget(self, info_hash: str) -> None:
        tid = self._by_hash.pop(info_hash, None)
        if tid is not None:
            del self._by_id[tid]
            self.changed = True

    def keep_only(self, present: set[str]) -> None:
        """Forget torrents that are gone (removed while the plugin was off)."""
        for info_hash in [h for h in self._by_hash if h not in present]:
            self.forget(info_hash)

    def dumps(self) -> bytes:
        doc = {"version": VERSION, "next_id": self.next_id, "ids": self._by_hash}
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def loads(cls, data: bytes) -> TorrentIds:
        """From the file; ValueError if it is not ours or is damaged."""
        doc: Any = json.loads(data)
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            raise ValueError("not a btd transmission-ids file")
        next_id, ids = doc.get("next_id"), doc.get("ids")
        if not isinstance(next_id, int) or not isinstance(ids, dict):
            raise ValueError("damaged transmission-ids file")
        table = cls()
        for info_hash, tid in ids.items():
            if not isinstance(tid, int) or isinstance(tid, bool) or tid < 1 or tid in table._by_id:
                raise ValueError(f"damaged transmission-ids file (id {tid!r})")
            table._by_hash[info_hash] = tid
            table._by_id[tid] = info_hash
        table.next_id = max(next_id, max(table._by_id, default=0) + 1)
        return table
