"""Every limit btd enforces against hostile or broken input, in one table, with its anchor.

Each helper of issue 13 keeps its own block below (append-only, one block per class of
docs/SECURITY.md); the anchor comment names the reference the value follows. Pure: no I/O.
"""

from __future__ import annotations

# -- class 3: one fragile resume file (core/resume_recovery.py, plugins/resume_sqlite.py) ------
# Anchor: none of the reference clients salvages a damaged store (libtorrent keeps one
# .fastresume per torrent, Transmission one .resume per torrent); the values bound the
# work a damaged file can make the start-up thread do.
RESUME_SALVAGE_SECONDS = 60.0  # wall time spent reading rows out of a damaged store
RESUME_INTEGRITY_ERRORS = 5  # integrity_check lines kept in the report (the rest counted)
