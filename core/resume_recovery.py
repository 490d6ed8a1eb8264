"""What to do with a resume store found damaged, empty or missing, and the report of it.

A damaged store is moved aside (core/resume_salvage.py reads what is left of it); the new
store gets every torrent that can still be proved: its salvaged record, with its progress
when that was readable, or else its copy (``<state_dir>/torrents/<hash>.torrent`` and
``.json``, core/torrent_store.py) with no progress, so its data is rechecked. A healthy
store is matched with its copies once per start (``reconcile``). ``StoreReport`` is what
the store tells the session: the problem, the counts and one sentence for people. No
Twisted: blocking file work, called from the thread pool.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from btd.core.errors import MetainfoError, StorageError
from btd.core.metainfo import parse_metainfo
from btd.core.resume import NewTorrent, ResumeProgress, StoredTorrent
from btd.core.resume_salvage import salvage
from btd.core.torrent_store import TorrentStore

MARKER = ".resume-sqlite"  # in the copies' folder: a SQLite store keeps these copies

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
        if h in got.scanned and copies is not None and h not in have_copy:
            continue  # read off a page, no copy: maybe a row of a torrent removed since
        item = _from_row(h, row, got.progress.get(h), copies if h in have_copy else None)
        if item is None:
            report.unreadable_rows += 1
            continue
        items[h] = item
        report.recovered_hashes.append(h)
        if item.progress is None:
            report.progress_lost += 1
    for h in sorted(have_copy - items.keys()):
        copy = _copy(copies, h)  # type: ignore[arg-type]
        if copy is not None:
            items[h] = copy
            report.rebuilt_hashes.append(h)
    report.lost = sorted(got.named - items.keys())
    return report, sorted(items.values(), key=added_order)


def _from_row(
    h: str, row: tuple[Any, ...], prow: tuple[Any, ...] | None, copies: TorrentStore | None
) -> StoredTorrent | None:
    """A salvaged record, or None if it does not hold up. The copy's metainfo wins (it is
    the source of truth); without one, the record's must hash to its info hash."""
    copy = _copy(copies, h) if copies is not None else None
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


def _copy(copies: TorrentStore, h: str) -> StoredTorrent | None:
    """The copy of ``h`` with no progress, if it reads whole and hashes to ``h`` (a copy is
    not fsynced: a crash can leave one short; the record is the durable one)."""
    try:
        copy = copies.load(h, progress=False)
        if parse_metainfo(copy.metainfo).hex != h:
            return None
    except (OSError, ValueError, MetainfoError):
        return None
    return copy


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


# -- a new store, and copies matched with records ---------------------------------------------
def from_copies(
    path: Path, copies: TorrentStore, found: str, why: str
) -> tuple[StoreReport | None, list[StoredTorrent], list[str]]:
    """What a new store (``found``: missing, or empty: 0 bytes or no tables) starts with:
    (the report, None when nothing was lost; the torrents; copies that could not be read).

    With no sign of an earlier SQLite store (no file, no marker) this is the move from the
    files fallback: its progress is kept and nothing is reported. Otherwise the store was
    lost: every copy comes back with no progress (rechecked), reported."""
    marked = (copies.dir / MARKER).exists()
    hashes = sorted(copies.hashes())
    migrating = found == "missing" and not marked
    items, problems = [], []
    for h in hashes:
        try:
            items.append(copies.load(h, progress=migrating))
        except (OSError, ValueError) as exc:
            problems.append(f"{copies.dir / h}.torrent: {exc}")
    if migrating or not (hashes or marked):
        return None, sorted(items, key=added_order), problems
    report = StoreReport(found, str(path), why, rebuilt_hashes=[t.info_hash for t in items])
    return report, sorted(items, key=added_order), problems


def reconcile(
    copies: TorrentStore, found: list[StoredTorrent], recorded: set[str]
) -> tuple[list[StoredTorrent], int, list[str]]:
    """Match a store's records (``found``; ``recorded``: every info hash with a row) with
    the copies, once per start: a record without a copy gets one; a copy without a record
    (an add cut short after its copy was written) is returned to be recorded again, with
    no progress. Copies beside a store that never kept them (no marker: from before copies)
    may be of torrents removed since: renamed ``.unrecorded``, not brought back (never
    deleted). Then the marker is written. Returns (copies to record, copies set aside,
    problems)."""
    try:
        on_disk = copies.hashes()
        marked = (copies.dir / MARKER).exists()
        missing = [t for t in found if t.info_hash not in on_disk]
        if missing:
            copies.save_torrents(
                [NewTorrent(t.info_hash, t.metainfo, t.options) for t in missing], sync=False
            )
        orphans = sorted(on_disk - recorded)
        back: list[StoredTorrent] = []
        problems: list[str] = []
        if orphans and not marked:
            for h in orphans:
                copy = copies.dir / f"{h}.torrent"
                os.replace(copy, copy.with_name(copy.name + ".unrecorded"))
        else:
            for h in orphans:
                try:
                    back.append(copies.load(h, progress=False))
                except (OSError, ValueError) as exc:
                    problems.append(f"{copies.dir / h}.torrent: {exc}")
        copies.dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        (copies.dir / MARKER).touch()
    except (OSError, StorageError) as exc:
        return [], 0, [f"cannot keep the .torrent copies in {copies.dir}: {exc}"]
    return back, len(orphans) if not marked else 0, problems
