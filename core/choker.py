"""Unchoke decisions (pure): who may download from us this round.

The torrent calls ``Choker.rechoke`` every 10 s (a round) with one ChokeCandidate per
connected peer, and passes ``optimistic_due=True`` every 3rd round (30 s).

- Downloading (tit-for-tat, BitTorrent mainline): the ``slots - 1`` interested peers
  that upload to us fastest (``download_rate``) are unchoked, so peers that give get.
  Snubbed peers (nothing received for a while) do not get these slots.
- Seeding (libtorrent's ``fastest_upload`` seed choking): the ``slots - 1`` interested
  peers we upload to fastest (``upload_rate``), to spend upload where it flows.
- Plus one optimistic unchoke in both modes: a random interested peer not already
  unchoked, kept for 3 rounds, so newcomers get a chance to show their rate. Newly
  connected peers are 3x likelier to be chosen (mainline), since they have nothing
  to trade yet.

Only interested peers are unchoked: an uninterested peer cannot use the slot; the
caller may rechoke early when a peer becomes interested. Ties in rate are broken at
random (the candidates are shuffled with the injected rng, then sorted stably).
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

NEW_PEER_WEIGHT = 3


@dataclass(frozen=True, slots=True)
class ChokeCandidate:
    """One connected peer as the choker sees it (rates in bytes/s)."""

    key: Hashable
    interested: bool
    download_rate: float = 0.0  # from them to us
    upload_rate: float = 0.0  # from us to them
    snubbed: bool = False  # sent us nothing for a while despite requests
    new: bool = False  # connected recently (e.g. within the last optimistic period)


class Choker:
    """Keeps the optimistic unchoke between rounds; everything else is recomputed."""

    def __init__(self, slots: int = 4, rng: random.Random | None = None) -> None:
        if slots < 1:
            raise ValueError("at least one unchoke slot is needed")
        self.slots = slots
        self._rng = rng if rng is not None else random.Random()
        self.optimistic: Hashable | None = None

    def rechoke(
        self, candidates: Iterable[ChokeCandidate], *, seeding: bool, optimistic_due: bool
    ) -> frozenset[Hashable]:
        """The keys to unchoke this round (every other peer is choked)."""
        interested = [c for c in candidates if c.interested]
        self._rng.shuffle(interested)  # random tie-break under the stable sort
        by_key = {c.key: c for c in interested}
        keep = None if optimistic_due else by_key.get(self.optimistic)
        regular_pool = [c for c in interested if c is not keep and (seeding or not c.snubbed)]
        if seeding:
            regular_pool.sort(key=lambda c: c.upload_rate, reverse=True)
        else:
            regular_pool.sort(key=lambda c: c.download_rate, reverse=True)
        regular = regular_pool[: self.slots - 1 if self.slots > 1 else 0]
        chosen = {c.key for c in regular}
        if keep is None:
            keep = self._pick_optimistic([c for c in interested if c.key not in chosen])
        self.optimistic = keep.key if keep is not None else None
        if keep is not None:
            chosen.add(keep.key)
        return frozenset(chosen)

    def _pick_optimistic(self, pool: list[ChokeCandidate]) -> ChokeCandidate | None:
        if not pool:
            return None
        weights = [NEW_PEER_WEIGHT if c.new else 1 for c in pool]
        return self._rng.choices(pool, weights=weights)[0]
