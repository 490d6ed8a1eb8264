"""Rarest-first piece strategy (the default, ``rarest-first``).

Pieces few peers have are started first, so rare pieces spread before their holders
leave and every peer has something to trade. Ties between equally rare pieces are
broken at random (a random rotation of the rarity bucket), so peers downloading from
the same swarm do not all start the same piece.

While we have fewer than ``random_start`` pieces (4, as libtorrent does) pieces are
picked at random among those the peer has: a common piece arrives faster than a rare
one (more sources), and any complete piece gives us something to upload.

Cost per call: the rarity buckets are walked from the rarest, which finds pieces at
once when the peer has most of what we lack. If the walk looks at more pieces than
the peer has (a peer with few pieces), the peer's own pieces are scanned instead, so
a call costs about O(min(pieces we lack, pieces the peer has)) and never sorts.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from itertools import chain
from typing import TYPE_CHECKING

from btd.core.bitfield import Bitfield
from btd.core.errors import ConfigError
from btd.core.picking import PiecePicker, SwarmView
from btd.core.plugin import hookimpl
from btd.core.plugin_config import check_keys, plugin_settings

if TYPE_CHECKING:
    from btd.core.config_schema import Config

NAME = "rarest-first"
PLUGIN = "rarest_first"
RANDOM_START = 4


class RarestFirst:
    """Rarest available piece first, random tie-break; random pieces to start with."""

    def __init__(self, rng: random.Random | None = None, random_start: int = RANDOM_START) -> None:
        self._rng = rng if rng is not None else random.Random()
        self.random_start = random_start

    def choose(self, peer_has: Bitfield, view: SwarmView, count: int) -> list[int]:
        out: list[int] = []
        if count <= 0 or not peer_has.count:
            return out
        levels = view.priority_levels()
        if len(levels) == 1:  # the common case: priorities do not matter
            self._choose(peer_has, view, count, out, None)
            return out
        for level in levels:  # higher priority first, rarest first within a level
            self._choose(peer_has, view, count, out, level)
            if len(out) >= count:
                break
        return out

    def _choose(
        self, peer_has: Bitfield, view: SwarmView, count: int, out: list[int], level: int | None
    ) -> None:
        if view.num_have < self.random_start:
            self._random(peer_has, view, count, out, level)
            if len(out) >= count:
                return
        if not self._walk(peer_has, view, count, out, level):
            self._scan_peer(peer_has, view, count, out, level)

    @staticmethod
    def _eligible(i: int, view: SwarmView, level: int | None = None) -> bool:
        if view.have(i) or view.in_progress(i):
            return False
        p = view.priority(i)
        return p > 0 if level is None else p == level

    @staticmethod
    def _candidates(peer_has: Bitfield, view: SwarmView, level: int | None) -> Iterable[int]:
        """Pieces to look at: the peer's, or the level's when there are fewer of those."""
        if level is None:
            return peer_has
        at = view.pieces_at(level)
        return at if len(at) < peer_has.count else peer_has

    def _random(
        self, peer_has: Bitfield, view: SwarmView, count: int, out: list[int], level: int | None
    ) -> None:
        n = view.num_pieces
        rng = self._rng
        if level is not None or peer_has.count * 8 < n:  # probing would mostly miss
            found = [
                i
                for i in self._candidates(peer_has, view, level)
                if i in peer_has and i not in out and self._eligible(i, view, level)
            ]
            out.extend(rng.sample(found, min(count - len(out), len(found))))
            return
        for _ in range(4 * count + 16):
            i = rng.randrange(n)
            if i in peer_has and i not in out and self._eligible(i, view):
                out.append(i)
                if len(out) >= count:
                    return

    def _walk(
        self, peer_has: Bitfield, view: SwarmView, count: int, out: list[int], level: int | None
    ) -> bool:
        """Rarest buckets first; False if it gave up (looked at more than the peer has)."""
        budget = peer_has.count + 64
        rng = self._rng
        in_progress = view.in_progress
        priority = view.priority
        for seq, lo, hi in view.rarity_buckets():
            m = hi - lo
            turn = rng.randrange(m) if m > 1 else 0
            for p in chain(range(lo + turn, hi), range(lo, lo + turn)):
                i = seq[p]
                if (
                    i in peer_has
                    and not in_progress(i)
                    and i not in out
                    and (level is None or priority(i) == level)
                ):
                    out.append(i)
                    if len(out) >= count:
                        return True
                budget -= 1
                if budget <= 0:
                    return False
        return True

    def _scan_peer(
        self, peer_has: Bitfield, view: SwarmView, count: int, out: list[int], level: int | None
    ) -> None:
        """Rarest among the peer's own pieces (a peer with few pieces), or the level's."""
        rand = self._rng.random
        avail = view.availability
        taken = set(out)
        best = heapq.nsmallest(
            count - len(out),
            (
                (avail(i), rand(), i)
                for i in self._candidates(peer_has, view, level)
                if i in peer_has and i not in taken and self._eligible(i, view, level)
            ),
        )
        out.extend(i for _, _, i in best)


class RarestFirstPlugin:
    """The ``rarest_first`` plugin: its setting, and a fresh picker per torrent."""

    def __init__(self) -> None:
        self.random_start = RANDOM_START

    @hookimpl
    def btd_configure(self, config: Config) -> None:
        """Settings: ``random_start`` (pieces picked at random before rarest-first; default 4)."""
        raw = plugin_settings(config, PLUGIN)
        check_keys(raw, ("random_start",), f"plugins.{PLUGIN}")
        value = raw.get("random_start", RANDOM_START)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError("must be an integer >= 0", key=f"plugins.{PLUGIN}.random_start")
        self.random_start = value

    @hookimpl
    def btd_piece_picker(self, name: str, view: SwarmView) -> PiecePicker | None:
        if name != NAME:
            return None
        return RarestFirst(random_start=self.random_start)
