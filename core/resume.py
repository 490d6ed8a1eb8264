"""Resume data: what a store keeps so a restart neither re-downloads nor rehashes.

A ``ResumeStore`` keeps each torrent's metainfo and options (written before ``torrent.add``
replies) and its progress: the pieces had, transfer totals and the sizes its files had on
disk when saved. Progress only ever names pieces whose data was flushed (fsynced) before the
save, so a crash loses recent progress but never claims a piece that is not on disk.

``resume_plan`` decides, on start, which stored pieces are trusted as they are and which
must be hashed again (those touching a file whose size changed since the save, or that is
missing or short). Pure: no Twisted, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from btd.core.bitfield import Bitfield
from btd.core.errors import BtdError, ConfigError


@dataclass(frozen=True)
class ResumeProgress:
    """A torrent's progress as saved: ``have`` is the bitfield's bytes (wire form)."""

    have: bytes
    num_pieces: int
    uploaded: int
    downloaded: int
    file_sizes: tuple[int, ...]  # per metainfo file, bytes on disk when saved; -1 = missing
    completed_at: float | None
    saved_at: float


@dataclass(frozen=True)
class StoredTorrent:
    """One torrent as a store gives it back on start."""

    info_hash: str
    metainfo: bytes
    options: dict[str, Any]
    progress: ResumeProgress | None = None


class ResumeStoreError(ConfigError):
    """The resume store cannot be used (not a database, damaged, newer schema).

    A ConfigError so the daemon refuses to start with exit status 78 (EX_CONFIG) instead of
    going on without its torrents; the file is left exactly as it was.
    """


class ResumeStore(Protocol):
    """Blocking methods: the session calls them on the thread pool (``run_blocking``).

    ``save_interval`` (seconds, optional attribute) is how often the session saves the
    progress of torrents that changed; 30 when a store does not say.
    """

    def save_torrent(self, info_hash: str, metainfo: bytes, options: dict[str, Any]) -> None:
        """Durable on return (the add reply waits for it); forgets older progress."""

    def save_torrents(self, items: Sequence[NewTorrent]) -> None:
        """Optional (``save_many`` loops over ``save_torrent`` without it): ``save_torrent``
        for each item, all durable on return, in one transaction (one fsync) where the store
        can; all or nothing (raises having kept none) so a failed batch adds nothing."""

    def save_options(self, info_hash: str, options: dict[str, Any]) -> None: ...

    def save_options_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Optional (``save_options_batch`` loops over ``save_options`` without it):
        ``save_options`` for each ``(info_hash, options)`` in one write; need not be
        synced (the shutdown's record of seeding time)."""

    def save_progress(self, info_hash: str, progress: ResumeProgress) -> None:
        """Record progress; a no-op for a torrent the store does not know (removed)."""

    def save_progress_many(self, items: Sequence[tuple[str, ResumeProgress]]) -> None:
        """Optional (``save_progress_batch`` loops over ``save_progress`` without it):
        ``save_progress`` for each ``(info_hash, progress)``, in one write (one transaction,
        one sync) where the store can: the periodic save records every torrent that changed
        in a round this way. Raises if it could not record them all (the caller then
        treats the whole batch as unsaved); what it did record is whole."""

    def delete(self, info_hash: str) -> None: ...

    def load_all(self) -> tuple[list[StoredTorrent], list[str]]:
        """Every stored torrent, and a message for each entry that could not be read."""

    def close(self) -> None: ...


DEFAULT_SAVE_INTERVAL = 30.0


def storage_root_fields(save_path: Any, dev: int | None) -> dict[str, Any]:
    """The options members that record a torrent's storage root and the device its data is
    on (``st_dev``; btd.core.storage_guard), when known: ``storage_root``, ``storage_dev``."""
    return {} if dev is None else {"storage_root": str(save_path), "storage_dev": dev}


def stored_storage_dev(options: dict[str, Any], save_path: Any) -> int | None:
    """The recorded device of ``save_path``, or None (not recorded, or for another path)."""
    dev = options.get("storage_dev")
    if options.get("storage_root") != str(save_path) or type(dev) is not int or dev < 0:
        return None
    return dev


@dataclass(frozen=True)
class NewTorrent:
    """One torrent of a batch add, as ``save_torrents`` writes it."""

    info_hash: str
    metainfo: bytes
    options: dict[str, Any]


def save_many(store: Any, items: Sequence[NewTorrent]) -> list[Exception | None]:
    """Save a batch of new torrents (blocking): per item, None or why it was not saved.

    A store with ``save_torrents`` writes them together (one failure fails them all); one
    without it is called per item, so one item's failure does not fail the others.
    """
    return _together_or_each(
        getattr(store, "save_torrents", None),
        lambda item: store.save_torrent(item.info_hash, item.metainfo, item.options),
        items,
    )


def save_progress_batch(
    store: Any, items: Sequence[tuple[str, ResumeProgress]]
) -> list[Exception | None]:
    """Record the progress of several torrents (blocking): per item, None or why not.

    A store with ``save_progress_many`` writes them together (one failure fails them all);
    one without it is called per item, so one item's failure does not fail the others.
    """
    return _together_or_each(
        getattr(store, "save_progress_many", None),
        lambda item: store.save_progress(*item),
        items,
    )


def save_options_batch(store: Any, items: Sequence[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Record the options of several torrents (blocking; at shutdown, the seeding clocks of
    core/seeding_goals.py): per item, None or why not. A store with ``save_options_many``
    writes them together; one without it is called per item."""
    return _together_or_each(
        getattr(store, "save_options_many", None),
        lambda item: store.save_options(*item),
        items,
    )


def _together_or_each(
    together: Callable[[Sequence[Any]], None] | None,
    each: Callable[[Any], None],
    items: Sequence[Any],
) -> list[Exception | None]:
    if not items:
        return []
    if together is not None:
        try:
            together(items)
        except Exception as exc:
            return [exc] * len(items)
        return [None] * len(items)
    outcome: list[Exception | None] = []
    for item in items:
        try:
            each(item)
        except Exception as exc:
            outcome.append(exc)
        else:
            outcome.append(None)
    return outcome


def progress_problem(progress: ResumeProgress, num_pieces: int, num_files: int) -> str | None:
    """Why stored progress does not fit this torrent, or None when it does."""
    if progress.num_pieces != num_pieces:
        return f"it has {progress.num_pieces} pieces, the torrent {num_pieces}"
    if len(progress.file_sizes) != num_files:
        return f"it lists {len(progress.file_sizes)} files, the torrent {num_files}"
    try:
        Bitfield.from_bytes(progress.have, num_pieces)
    except BtdError as exc:
        return f"bad piece set: {exc}"
    return None


@dataclass(frozen=True)
class ResumePlan:
    """``trusted`` pieces are had without hashing; ``recheck`` pieces are hashed first."""

    trusted: Bitfield
    recheck: list[int]


def resume_plan(progress: ResumeProgress, files: Iterable[Any], num_pieces: int) -> ResumePlan:
    """Split the stored pieces by whether their files still look as they did when saved.

    ``files`` are ``btd.core.storage.FileStatus`` rows (``check_files()``), in metainfo order.
    A stored piece touching a file that is missing, short or long, or whose size differs from
    the recorded one is rechecked; pieces not stored as had are not hashed at all. Call
    ``progress_problem`` first: this assumes the progress fits.
    """
    stored = Bitfield.from_bytes(progress.have, num_pieces)
    suspect: set[int] = set()
    for f, recorded in zip(files, progress.file_sizes, strict=True):
        if f.pad:
            continue
        if not f.ok or f.size != recorded:
            suspect.update(f.pieces)
    trusted = stored.copy()
    recheck = []
    for index in sorted(suspect):
        if index in stored:
            trusted.discard(index)
            recheck.append(index)
    return ResumePlan(trusted, recheck)
