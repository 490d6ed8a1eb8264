"""The long-lived objects of thousands of torrents kept out of the cyclic collector's way.

CPython's full collection walks every tracked object: about 80 per loaded torrent, so
0.3-0.6 s with 10,000 loaded, run whenever the survivors since the last one reach a
quarter of the heap. Adding or loading 10,000 torrents paid that some twenty times; once
loaded, a save round or a big ``torrent.list`` could still set one off and stall the
reactor for half a second. ``gc.freeze()`` (O(1): the young generations join the
permanent one) after the torrents are built takes them out of every later collection.

The price is that a cycle in the frozen part is never collected: a removed torrent's
objects would stay. So removals are counted, and once they reach a tenth of what was
frozen (at least ``MIN_REMOVED``) everything is unfrozen and collected once: a bulk
removal costs one full collection, a single one nothing.
"""

from __future__ import annotations

import gc

FREEZE_EVERY = 500  # torrents built between two freezes (each freeze is O(1))
MIN_REMOVED = 100  # removals before a thaw is considered (a tenth of the frozen torrents)


class HeapFreezer:
    """Session-wide; off unless ``enabled`` (the daemon turns it on: a test process
    must not freeze its own objects)."""

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self.built_since = 0  # torrents built since the last freeze
        self.frozen_torrents = 0  # torrents built before the last freeze, not removed
        self.removed = 0  # frozen ones removed since the last thaw
        self.freezes = 0
        self.thaws = 0

    def built(self) -> None:
        """A Torrent was built (added, or loaded at start): every ``FREEZE_EVERY``, the
        heap so far is frozen."""
        if not self.enabled:
            return
        self.built_since += 1
        if self.built_since >= FREEZE_EVERY:
            self.freeze()

    def freeze(self) -> None:
        """Freeze now, if torrents were built since the last time."""
        if not self.enabled or not self.built_since:
            return
        gc.freeze()
        self.freezes += 1
        self.frozen_torrents += self.built_since
        self.built_since = 0

    def removed_one(self) -> None:
        """A torrent left: thaw and collect once enough of the frozen ones have."""
        if not self.enabled or not self.frozen_torrents:
            return
        self.removed += 1
        if self.removed >= max(MIN_REMOVED, self.frozen_torrents // 10):
            gc.unfreeze()
            gc.collect()
            self.thaws += 1
            self.removed = 0
            self.frozen_torrents = 0
