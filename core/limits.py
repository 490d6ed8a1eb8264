"""Every limit btd enforces against hostile or broken input, with the anchor it follows.

One table for the code (docs/SECURITY.md lists the same values, per threat class). Each
block belongs to one class of issue 13; keep additions to your own block, append-only.
"""

from __future__ import annotations

# --- class 2: storage missing at start (core/storage_guard.py) --------------------------------
STORAGE_RETRY_INTERVAL = 30.0
"""Seconds between probes of the save paths of torrents in ``storage missing``: one stat
(and one directory entry) per distinct missing root per interval, whatever the number of
torrents on it. Anchor: libtorrent and Transmission do not retry at all (the torrent stays
in error, Transmission's "No data found! Ensure your drives are connected", until the user
resumes it). 30 s is the resume-save interval (core/resume.py DEFAULT_SAVE_INTERVAL): a remounted
disk is back in use within one save round. ``btctl resume``/``verify`` retry at once."""
