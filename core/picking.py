"""The piece-picking contract: what a strategy sees (SwarmView) and must do (PiecePicker).

Strategies are plugins (``btd_piece_picker``); this module is the contract only, what a
plugin author reads. The implementation (``Availability``, ``TorrentSwarm``) is in
core/availability.py.

Division of labour: the PieceBook first continues in-progress pieces the peer has and
only asks the picker for NEW pieces to start; a picker therefore skips pieces that are
in progress, pieces we have and pieces of priority 0, and returns at most ``count``
pieces the peer has, best first: pieces of a higher priority level before lower ones
(``priority_levels``), its own order within a level.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from btd.core.bitfield import Bitfield

NORMAL = 4
"""The priority of a piece of a wanted file at ``normal`` (libtorrent's value)."""

Bucket = tuple[Sequence[int], int, int]
"""``(seq, lo, hi)``: the pieces ``seq[lo:hi]`` (read-only; do not copy on the hot path)."""


class SwarmView(Protocol):
    """What a strategy may see of one torrent (read-only)."""

    @property
    def num_pieces(self) -> int: ...

    @property
    def num_have(self) -> int:
        """How many pieces we have verified."""
        ...

    def availability(self, index: int) -> int:
        """How many connected peers have the piece (seeds included)."""
        ...

    def have(self, index: int) -> bool:
        """We have the piece, verified."""
        ...

    def in_progress(self, index: int) -> bool:
        """Some block of the piece is requested or received, or it is being verified."""
        ...

    def priority(self, index: int) -> int:
        """0 = do not download (only skipped files); 1 low, 4 normal, 7 high."""
        ...

    def priority_levels(self) -> Sequence[int]:
        """The distinct priorities > 0 of the torrent's pieces, highest first.

        One level (the common case: ``(4,)``) means priorities do not matter. With
        several, a strategy starts pieces of a higher level before those of a lower one
        and applies its own order within a level.
        """
        ...

    def pieces_at(self, level: int) -> Sequence[int]:
        """Every piece of priority ``level`` (had ones included), in index order."""
        ...

    def rarity_buckets(self) -> Iterator[Bucket]:
        """Pieces we lack with priority > 0, grouped by availability, rarest group first.

        Within a group the order is arbitrary (a strategy breaks ties itself). Pieces in
        progress do appear; the strategy skips them. Do not mutate the sequences.
        """
        ...


class PiecePicker(Protocol):
    """A piece strategy for one torrent (made by ``btd_piece_picker``)."""

    def choose(self, peer_has: Bitfield, view: SwarmView, count: int) -> list[int]:
        """At most ``count`` NEW pieces worth starting from a peer that has ``peer_has``.

        Best first. Never a piece we have, one in progress, one of priority 0, or one
        the peer lacks. Called once per piece started (not per block): it may cost
        more than O(1), but should not scan the whole torrent when it can avoid it.
        """
        ...
