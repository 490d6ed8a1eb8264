"""Which torrents' list rows may have changed, and since when: the session's change log.

A torrent tells it (``touch``) whenever something its ``torrent.list`` row is made of
changes while it has no peers: its state, options, pieces, errors, and a peer coming or
going (while it has peers, its row is rebuilt at every list anyway). A list asks what changed
since its last time (``since``) and so costs what changed, not the number of torrents
(core/rpc/list_rows.py). Each torrent is in the log once, at its last change: walking it from
the newest end stops at the first older entry, and old entries are dropped from the other end.

Pure: no Twisted.
"""

from __future__ import annotations

from typing import Any


class StatusLog:
    """Torrents in the order of their last change, each with its change number."""

    def __init__(self) -> None:
        self.epoch = 0  # the number of the last change
        self._last: dict[Any, int] = {}  # torrent -> the number of its last change (oldest first)

    def __len__(self) -> int:
        return len(self._last)

    def touch(self, torrent: Any) -> None:
        """Something of the torrent's row changed (it moves to the newest end)."""
        self.epoch += 1
        self._last.pop(torrent, None)
        self._last[torrent] = self.epoch

    def since(self, epoch: int) -> list[Any]:
        """The torrents changed after change number ``epoch``, newest first."""
        out = []
        for torrent in reversed(self._last):
            if self._last[torrent] <= epoch:
                break
            out.append(torrent)
        return out

    def forget_before(self, epoch: int) -> None:
        """Drop the entries of changes up to ``epoch`` (no reader needs them any more)."""
        last = self._last
        while last:
            oldest = next(iter(last))
            if last[oldest] > epoch:
                break
            del last[oldest]

    def forget(self, torrent: Any) -> None:
        """The torrent left the session."""
        self._last.pop(torrent, None)
