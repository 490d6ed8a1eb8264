"""The tables behind a strategy's SwarmView (see core/picking.py for the contract).

- ``Availability``: how many connected peers have each piece, kept incrementally from
  BITFIELD/HAVE/HAVE_ALL, plus a rarity order (pieces grouped into buckets by count)
  so rarest-first never sorts the whole torrent per call.
- ``TorrentSwarm``: the SwarmView of one torrent, built from its PieceBook, its
  Availability and the per-piece priorities (from the file selection,
  core/file_selection.py), with the pieces of each priority level when there are
  several.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from btd.core.bitfield import Bitfield, BitIndexError
from btd.core.picking import NORMAL, Bucket
from btd.core.pieces import PieceBook


class Availability:
    """Per-piece peer counts, with the pieces we still want kept in rarity order.

    ``count(i) = partial[i] + seeds``: peers that sent HAVE_ALL (or whose bitfield is
    full, at the caller's choice) are only counted in ``seeds``, so they cost O(1) to
    add and remove and do not change the relative order. A caller that adds a peer
    with ``add_bitfield`` must remove it with ``remove_bitfield`` of the same set (its
    bitfield plus the HAVEs that were added with ``add_have``).

    Rarity order (the layout libtorrent's piece picker uses): ``_order`` holds the
    ranked pieces sorted by partial count; bucket ``c`` is
    ``_order[_start[c]:_start[c+1]]`` and ``_pos[i]`` is piece i's place (-1 once
    retired). A count moving by one swaps the piece with its bucket's edge and moves
    that edge: O(1). ``retire`` (we have it, or it is not wanted) and ``restore`` cost
    O(number of buckets), i.e. O(peers).
    """

    __slots__ = ("_count", "_order", "_pos", "_start", "num_pieces", "seeds")

    def __init__(self, num_pieces: int) -> None:
        self.num_pieces = num_pieces
        self.seeds = 0
        self._count = [0] * num_pieces
        self._order = list(range(num_pieces))
        self._pos = list(range(num_pieces))
        self._start = [0, num_pieces]

    def count(self, index: int) -> int:
        """How many connected peers have the piece."""
        if not 0 <= index < self.num_pieces:
            raise BitIndexError(f"piece index {index} out of range 0..{self.num_pieces - 1}")
        return self._count[index] + self.seeds

    def add_all(self) -> None:
        """A peer that has every piece (HAVE_ALL, or a full bitfield) connected."""
        self.seeds += 1

    def remove_all(self) -> None:
        if self.seeds <= 0:
            raise ValueError("no seed to remove")
        self.seeds -= 1

    def add_have(self, index: int) -> None:
        if not 0 <= index < self.num_pieces:
            raise BitIndexError(f"piece index {index} out of range 0..{self.num_pieces - 1}")
        self._inc(index)

    def add_bitfield(self, bf: Bitfield) -> None:
        """A peer's pieces: O(pieces it has)."""
        self._check_size(bf)
        inc = self._inc
        for i in bf:
            inc(i)

    def remove_bitfield(self, bf: Bitfield) -> None:
        """Undo ``add_bitfield``; removing what was never added is a ValueError (a bug)."""
        self._check_size(bf)
        dec = self._dec
        for i in bf:
            dec(i)

    def _check_size(self, bf: Bitfield) -> None:
        if bf.size != self.num_pieces:
            raise ValueError(f"bitfield of {bf.size} pieces for a torrent of {self.num_pieces}")

    def _inc(self, i: int) -> None:
        c = self._count[i]
        self._count[i] = c + 1
        p = self._pos[i]
        if p < 0:
            return
        start = self._start
        order = self._order
        if c + 2 >= len(start):
            start.append(len(order))
        last = start[c + 1] - 1
        if p != last:
            other = order[last]
            order[last] = i
            order[p] = other
            self._pos[other] = p
            self._pos[i] = last
        start[c + 1] = last

    def _dec(self, i: int) -> None:
        c = self._count[i]
        if c <= 0:
            raise ValueError(f"piece {i}: removing a peer that was not added")
        self._count[i] = c - 1
        p = self._pos[i]
        if p < 0:
            return
        start = self._start
        order = self._order
        first = start[c]
        if p != first:
            other = order[first]
            order[first] = i
            order[p] = other
            self._pos[other] = p
            self._pos[i] = first
        start[c] = first + 1

    def ranked(self, index: int) -> bool:
        """The piece is in the rarity order (not retired)."""
        return self._pos[index] >= 0

    def retire(self, index: int) -> None:
        """Take a piece out of the rarity order (we have it, or it is not wanted)."""
        pos, order, start = self._pos, self._order, self._start
        p = pos[index]
        if p < 0:
            return
        c = self._count[index]
        h = start[c + 1] - 1  # move the piece to the end of its bucket: the hole
        if p != h:
            other = order[h]
            order[p] = other
            pos[other] = p
        # Each higher bucket moves its last element into the hole before its first.
        top = len(start) - 1
        for b in range(c + 1, top):
            last = start[b + 1] - 1
            if last >= start[b]:
                x = order[last]
                order[h] = x
                pos[x] = h
                h = last
            start[b] -= 1
        start[top] -= 1
        order.pop()
        pos[index] = -1

    def restore(self, index: int) -> None:
        """Put a retired piece back in the rarity order."""
        pos, order, start = self._pos, self._order, self._start
        if pos[index] >= 0:
            return
        c = self._count[index]
        while len(start) < c + 2:
            start.append(len(order))
        order.append(index)
        h = len(order) - 1
        top = len(start) - 1
        start[top] += 1
        for b in range(top - 1, c, -1):
            first = start[b]
            if first < h:
                x = order[first]
                order[h] = x
                pos[x] = h
                h = first
            start[b] = first + 1
        order[h] = index
        pos[index] = h

    def rarity_buckets(self) -> Iterator[Bucket]:
        """Non-empty buckets of ranked pieces, fewest peers first."""
        start = self._start
        order = self._order
        for c in range(len(start) - 1):
            lo, hi = start[c], start[c + 1]
            if lo < hi:
                yield order, lo, hi

    def check(self) -> None:
        """Assert the internal invariants (tests)."""
        order, pos, start, count = self._order, self._pos, self._start, self._count
        assert start[0] == 0 and start[-1] == len(order)
        assert all(start[c] <= start[c + 1] for c in range(len(start) - 1))
        for c in range(len(start) - 1):
            for p in range(start[c], start[c + 1]):
                assert count[order[p]] == c and pos[order[p]] == p
        assert sum(1 for p in pos if p >= 0) == len(order)


class TorrentSwarm:
    """The SwarmView of one torrent: its PieceBook, Availability and priorities.

    It keeps the Availability's rarity order to the pieces we still want: it retires
    pieces when the book reports them had and when their priority drops to 0, and it
    tells the book which pieces are wanted (for ``in_endgame``).
    """

    def __init__(
        self, book: PieceBook, availability: Availability, priorities: Sequence[int] | None = None
    ) -> None:
        n = book.num_pieces
        if availability.num_pieces != n:
            raise ValueError("availability and piece book disagree on the piece count")
        self._book = book
        self._avail = availability
        self._prio = bytearray([NORMAL]) * n if priorities is None else bytearray(priorities)
        if len(self._prio) != n:
            raise ValueError(f"{len(self._prio)} priorities for {n} pieces")
        self._levels: tuple[int, ...] = (NORMAL,)
        self._at: dict[int, list[int]] | None = None  # pieces per level (mixed levels only)
        for i in range(n):
            if self._prio[i] == 0:
                book.set_wanted(i, False)
                availability.retire(i)
        for i in book.have:
            availability.retire(i)
        book.subscribe_have(availability.retire)
        self._index_levels()

    @property
    def num_pieces(self) -> int:
        return self._book.num_pieces

    @property
    def num_have(self) -> int:
        return self._book.have.count

    def availability(self, index: int) -> int:
        return self._avail.count(index)

    def have(self, index: int) -> bool:
        return index in self._book.have

    def in_progress(self, index: int) -> bool:
        return self._book.in_progress(index)

    def priority(self, index: int) -> int:
        return self._prio[index]

    def set_priority(self, index: int, priority: int) -> None:
        """Change a piece's priority (0..255; 0 = skip)."""
        self._set(index, priority)
        self._index_levels()

    def set_priorities(self, priorities: Sequence[int]) -> list[int]:
        """Take a priority per piece (a file selection changed); the pieces that changed."""
        if len(priorities) != len(self._prio):
            raise ValueError(f"{len(priorities)} priorities for {len(self._prio)} pieces")
        old = self._prio
        changed = [i for i in range(len(old)) if old[i] != priorities[i]]
        for i in changed:
            self._set(i, priorities[i])
        self._index_levels()
        return changed

    def _set(self, index: int, priority: int) -> None:
        if not 0 <= priority <= 255:
            raise ValueError(f"priority {priority} out of range 0..255")
        self._prio[index] = priority
        self._book.set_wanted(index, priority > 0)
        if priority == 0:
            self._avail.retire(index)
        elif index not in self._book.have:
            self._avail.restore(index)

    def _index_levels(self) -> None:
        """The distinct priorities > 0, and (only when there are several) their pieces."""
        prio = self._prio
        present = {p for p in set(prio) if p}  # C speed: set() of a bytearray
        self._levels = tuple(sorted(present, reverse=True)) or (NORMAL,)
        if len(present) <= 1:
            self._at = None
            return
        at: dict[int, list[int]] = {p: [] for p in present}
        for i, p in enumerate(prio):
            if p:
                at[p].append(i)
        self._at = at

    def priority_levels(self) -> Sequence[int]:
        return self._levels

    def pieces_at(self, level: int) -> Sequence[int]:
        if self._at is None:
            return range(self.num_pieces) if level == self._levels[0] else ()
        return self._at.get(level, ())

    def rarity_buckets(self) -> Iterator[Bucket]:
        return self._avail.rarity_buckets()
