"""A torrent's lifecycle states and the transitions allowed between them.

The values are the strings RPC answers carry in ``state`` (``TorrentState`` is a StrEnum,
so a state serialises as its value). ``Torrent._enter`` is the one place a Torrent changes
state; it checks each move against ``TRANSITIONS``:

======================  ==========================================================
from                    to
======================  ==========================================================
stopped (not started)   checking (start), downloading/seeding (resume, checked
                        before), queued (over the queue's limits), paused (pause)
paused                  checking (start or verify), stopped (resume, shutdown),
                        error (storage missing)
checking                downloading/seeding (check done), queued, paused, stopped,
                        error
downloading             seeding (last piece verified), queued, paused, checking
                        (verify), stopped, error
seeding                 downloading (a skipped file became wanted), queued, paused,
                        checking (verify), stopped, error
queued                  downloading/seeding (the queue let it run), paused,
                        checking (verify), stopped, error
error                   stopped (resume), paused, checking (verify)
======================  ==========================================================

``queued`` is a torrent that would download or seed but waits for a slot of the session's
queue (btd.core.queue): no peers, no announces, nothing scheduled.

``error`` with an ``error`` text beginning ``storage missing:`` is a torrent whose save
path is gone (btd.core.storage_guard); it leaves it through ``stopped`` when the storage is
back, to the state it had.

``metadata`` is the state of a magnet still waiting for its info dictionary
(``MetadataFetch``); it never becomes a Torrent state.
"""

from __future__ import annotations

from enum import StrEnum


class TorrentState(StrEnum):
    """One torrent's lifecycle state (the RPC ``state`` string)."""

    METADATA = "metadata"
    CHECKING = "checking"
    DOWNLOADING = "downloading"
    SEEDING = "seeding"
    PAUSED = "paused"
    ERROR = "error"
    STOPPED = "stopped"
    QUEUED = "queued"


S = TorrentState

ACTIVE = frozenset({S.DOWNLOADING, S.SEEDING})
"""States in which a torrent takes peers, announces and ticks."""

WANTS_TO_RUN = frozenset({S.DOWNLOADING, S.SEEDING, S.QUEUED})
"""States of a torrent that transfers or waits in the queue to (what the queue orders)."""

TRANSITIONS: dict[TorrentState, frozenset[TorrentState]] = {
    S.STOPPED: frozenset({S.CHECKING, S.DOWNLOADING, S.SEEDING, S.QUEUED, S.PAUSED}),
    S.PAUSED: frozenset({S.CHECKING, S.STOPPED, S.ERROR}),
    S.CHECKING: frozenset({S.DOWNLOADING, S.SEEDING, S.QUEUED, S.PAUSED, S.STOPPED, S.ERROR}),
    S.DOWNLOADING: frozenset({S.SEEDING, S.QUEUED, S.PAUSED, S.CHECKING, S.STOPPED, S.ERROR}),
    S.SEEDING: frozenset({S.DOWNLOADING, S.QUEUED, S.PAUSED, S.CHECKING, S.STOPPED, S.ERROR}),
    S.QUEUED: frozenset({S.DOWNLOADING, S.SEEDING, S.PAUSED, S.CHECKING, S.STOPPED, S.ERROR}),
    S.ERROR: frozenset({S.STOPPED, S.PAUSED, S.CHECKING}),
    S.METADATA: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A torrent was asked to move between two states the table does not connect (a bug)."""


def check_transition(old: TorrentState, new: TorrentState) -> None:
    """Raise IllegalTransition unless ``old -> new`` is in ``TRANSITIONS``."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"a torrent cannot go from {old} to {new}")
