"""Sequential piece strategy (``sequential``): lowest index first, for streaming.

Pieces are started in index order within a read-ahead window: the ``window`` pieces
we still want that follow the first piece we lack. A peer that has none of them gets
nothing new (it may still help finish started pieces), which keeps the download close
to the play position; a larger window trades strict order for fewer idle peers.
Not a BEP; rarest-first is better for the swarm, so use it only where order matters.

The picker keeps a cursor at the lowest piece we lack (pieces are never un-had), so a
call costs O(window) plus any run of priority-0 pieces in the way, not O(torrent).
With file priorities (several ``priority_levels``) the same order holds within each
level, highest level first, each with its own window.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from itertools import islice
from typing import TYPE_CHECKING

from btd.core.bitfield import Bitfield
from btd.core.errors import ConfigError
from btd.core.picking import PiecePicker, SwarmView
from btd.core.plugin import hookimpl
from btd.core.plugin_config import check_keys, plugin_settings

if TYPE_CHECKING:
    from btd.core.config_schema import Config

NAME = "sequential"
PLUGIN = "sequential"
WINDOW = 64


class Sequential:
    """Pieces in index order from the first one we lack, within ``window`` wanted pieces."""

    def __init__(self, window: int = WINDOW) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self._cursor = 0

    def choose(self, peer_has: Bitfield, view: SwarmView, count: int) -> list[int]:
        out: list[int] = []
        n = view.num_pieces
        have = view.have
        c = self._cursor
        while c < n and have(c):
            c += 1
        self._cursor = c
        if count <= 0:
            return out
        levels = view.priority_levels()
        if len(levels) == 1:
            self._in_order(range(c, n), peer_has, view, count, out)
            return out
        for level in levels:  # higher priority first; index order within a level
            at = view.pieces_at(level)
            self._in_order(islice(at, bisect_left(at, c), None), peer_has, view, count, out)
            if len(out) >= count:
                break
        return out

    def _in_order(
        self, pieces: Iterable[int], peer_has: Bitfield, view: SwarmView, count: int, out: list[int]
    ) -> None:
        have = view.have
        wanted = 0
        for i in pieces:
            if have(i) or view.priority(i) <= 0:
                continue  # a skipped file does not use up the window
            wanted += 1
            if i in peer_has and not view.in_progress(i) and i not in out:
                out.append(i)
                if len(out) >= count:
                    break
            if wanted >= self.window:
                break


class SequentialPlugin:
    """The ``sequential`` plugin: its setting, and a fresh picker per torrent."""

    def __init__(self) -> None:
        self.window = WINDOW

    @hookimpl
    def btd_configure(self, config: Config) -> None:
        """Settings: ``window`` (how many wanted pieces ahead may be started; default 64)."""
        raw = plugin_settings(config, PLUGIN)
        check_keys(raw, ("window",), f"plugins.{PLUGIN}")
        value = raw.get("window", WINDOW)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError("must be an integer >= 1", key=f"plugins.{PLUGIN}.window")
        self.window = value

    @hookimpl
    def btd_piece_picker(self, name: str, view: SwarmView) -> PiecePicker | None:
        if name != NAME:
            return None
        return Sequential(window=self.window)
