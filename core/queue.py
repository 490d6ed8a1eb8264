"""The session's queue: which torrents may download or seed at once, in queue order.

ONE component for the whole session (qBittorrent's and Transmission's queue):
``max_active_downloads``, ``max_active_seeds`` and ``max_active_torrents`` (-1 = unlimited,
0 = none) bound how many torrents transfer; the others that want to wait in state
``queued``. Every torrent has a place in one order (``queue_position``, 0 = first); its
stored form is an order key (a float, ``TorrentOptions.queue_position``), so moving one
torrent rewrites one resume record, not every record behind it. Forced torrents
(``force_start``) run and are not counted; with ``stalled_minutes`` > 0 a running torrent
that moved no payload for that long is not counted either (qBittorrent's "do not count
slow torrents") and a queued one takes the slot.

Cost: the decision runs on events (a state change, a completion, a move, a limit change),
coalesced into one call on the session's scheduler, and while stall exclusion is on, every
CHECK_EVERY seconds; it walks the wanting torrents of a limited kind in order only until
the last running one, and otherwise touches the queued torrents only. The order is kept
sorted (bisect), ranks are computed once per change of the order (lazily, for listings).
Nothing here runs per block or per tick.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from btd.core.torrent_state import ACTIVE, WANTS_TO_RUN, TorrentState

S = TorrentState
CHECK_EVERY = 5.0  # seconds: stall detection while stall exclusion is on
UNLIMITED = -1
MOVES = ("top", "up", "down", "bottom")


class Order:
    """Info hashes sorted by a float key (ties by hash): insert, remove and rank in O(log n)
    (plus a memmove), iteration in order."""

    __slots__ = ("_items", "_key")

    def __init__(self) -> None:
        self._items: list[tuple[float, bytes]] = []
        self._key: dict[bytes, float] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, info_hash: bytes) -> bool:
        return info_hash in self._key

    def __iter__(self) -> Iterator[bytes]:
        return (h for _, h in self._items)

    def add(self, info_hash: bytes, key: float) -> None:
        if info_hash in self._key:
            self.discard(info_hash)
        self._key[info_hash] = key
        insort(self._items, (key, info_hash))

    def discard(self, info_hash: bytes) -> None:
        key = self._key.pop(info_hash, None)
        if key is not None:
            i = bisect_left(self._items, (key, info_hash))
            del self._items[i]

    def rank(self, info_hash: bytes) -> int:
        return bisect_left(self._items, (self._key[info_hash], info_hash))

    def key(self, info_hash: bytes) -> float:
        return self._key[info_hash]

    def at(self, rank: int) -> tuple[float, bytes]:
        return self._items[rank]


class TorrentQueue:
    """Decides which wanting torrents run; ``cfg()`` is the live ``session`` config section,
    ``save(torrent)`` stores a torrent's options (its order key changed)."""

    def __init__(
        self,
        scheduler: Any,
        cfg: Callable[[], Any],
        save: Callable[[Any], None] = lambda torrent: None,
    ) -> None:
        self._scheduler = scheduler
        self._cfg = cfg
        self._save = save
        self._torrents: dict[bytes, Any] = {}
        self._order = Order()  # every torrent
        self._want = {False: Order(), True: Order()}  # wanting to run, by complete (seeds)
        self._running: dict[bool, dict[bytes, None]] = {False: {}, True: {}}
        self._queued: dict[bool, dict[bytes, None]] = {False: {}, True: {}}
        self._kind: dict[bytes, bool] = {}  # the kind each wanting torrent is filed under
        self._activity: dict[bytes, tuple[int, float]] = {}  # running: (payload, since)
        self._stalled_seen: set[bytes] = set()  # stalled at the last check
        self._ranks: dict[bytes, int] | None = None
        self.order_changes = 0  # bumped when any position may have changed (list rows kept)
        self._last_key = 0.0  # the largest key handed out or seen
        self._soon = scheduler.timer(self.evaluate)
        self._check = scheduler.timer(self._periodic)
        self.evaluations = 0  # for tests and measurements
        self._stopped = False  # shutdown: torrents stop, none starts
        self._deciding = False
        self.holding = False  # start-up: stored torrents wait until all are loaded

    # -- positions -----------------------------------------------------------------------------
    def next_key(self) -> float:
        """The order key of a new torrent: after every other (the bottom)."""
        self._last_key = float(int(self._last_key) + 1)
        return self._last_key

    def join(self, torrent: Any) -> None:
        """A torrent of the session (its options carry its key, else it goes to the bottom)."""
        h = torrent.info_hash
        key = torrent.options.queue_position
        if key is None:
            key = self.next_key()
            torrent.options = replace(torrent.options, queue_position=key)
        self._last_key = max(self._last_key, key)
        self._torrents[h] = torrent
        new = h not in self._order
        self._order.add(h, key)
        last = len(self._order) - 1
        if new and self._ranks is not None and self._order.rank(h) == last:
            self._ranks[h] = last  # at the bottom: the others keep their places
        else:
            self._forget_ranks()
        if torrent.state in WANTS_TO_RUN:
            self._file(torrent)

    def leave(self, torrent: Any) -> None:
        h = torrent.info_hash
        if self._torrents.get(h) is not torrent:
            return
        self._unfile(torrent)
        del self._torrents[h]
        self._order.discard(h)
        self._forget_ranks()
        self._soon_evaluate()

    def _forget_ranks(self) -> None:
        self._ranks = None
        self.order_changes += 1

    def position(self, torrent: Any) -> int | None:
        """0-based place in the queue (None: not in this session)."""
        if torrent.info_hash not in self._order:
            return None
        if self._ranks is None:
            self._ranks = {h: i for i, h in enumerate(self._order)}
        return self._ranks.get(torrent.info_hash)

    def move(self, torrent: Any, where: str | int) -> int:
        """``top``, ``up``, ``down``, ``bottom`` or a 0-based position; the new position.
        ValueError: an unknown move or a position that is not an integer >= 0."""
        h = torrent.info_hash
        if h not in self._order:
            raise ValueError("the torrent is not in the queue")
        n = len(self._order)
        rank = self._order.rank(h)
        if where == "top":
            target = 0
        elif where == "bottom":
            target = n - 1
        elif where == "up":
            target = max(0, rank - 1)
        elif where == "down":
            target = min(n - 1, rank + 1)
        elif isinstance(where, int) and not isinstance(where, bool) and where >= 0:
            target = min(n - 1, where)
        else:
            raise ValueError(f"must be one of {list(MOVES)} or a position (an integer >= 0)")
        if target != rank:
            self._set_key(torrent, self._key_for(h, rank, target))
        return target

    def _key_for(self, h: bytes, rank: int, target: int) -> float:
        order = self._order
        if target == 0:
            return order.at(0)[0] - 1.0
        if target == len(order) - 1:
            return order.at(len(order) - 1)[0] + 1.0
        # between the torrents that will be its neighbours (rank excludes itself)
        before, after = (target - 1, target) if target < rank else (target, target + 1)
        low, high = order.at(before)[0], order.at(after)[0]
        key = (low + high) / 2
        if low < key < high:
            return key
        self._renumber()  # no float left between them: space every key out, once
        return self._key_for(h, rank, target)

    def _renumber(self) -> None:
        for i, h in enumerate(list(self._order)):
            self._set_key(self._torrents[h], float(i * 2), evaluate=False)

    def _set_key(self, torrent: Any, key: float, *, evaluate: bool = True) -> None:
        h = torrent.info_hash
        torrent.options = replace(torrent.options, queue_position=key)
        self._order.add(h, key)
        kind = self._kind.get(h)
        if kind is not None:
            self._want[kind].add(h, key)
        self._last_key = max(self._last_key, key)
        self._forget_ranks()
        self._save(torrent)
        if evaluate:
            self._soon_evaluate()

    # -- what torrents report ------------------------------------------------------------------
    def admit(self, torrent: Any) -> bool:
        """May ``torrent`` (checked, wanting to transfer) run now? No: it waits ``queued``
        and the next evaluation decides by position."""
        if torrent.options.force_start:
            return True
        kind = torrent.complete
        slots = self._slots(kind)
        if slots is None:
            return True
        if self._queued[kind] or self.holding:
            self._soon_evaluate()  # someone waits already: position decides
            return False
        now = self._scheduler.now()
        free = slots - self._counted(kind, now)
        total = self._limit("max_active_torrents")
        if total is not None:
            free = min(free, total - self._counted(False, now) - self._counted(True, now))
        return free > 0

    def state_changed(self, torrent: Any, old: str, new: str) -> None:
        h = torrent.info_hash
        if self._torrents.get(h) is not torrent:
            return
        self._unfile(torrent)
        if new in WANTS_TO_RUN:
            self._file(torrent)
        if self._queued[False] or self._queued[True] or self._limited():
            self._soon_evaluate()  # without limits and with nobody waiting: nothing to decide

    def _limited(self) -> bool:
        cfg = self._cfg()
        return max(cfg.max_active_downloads, cfg.max_active_seeds, cfg.max_active_torrents) >= 0

    def changed(self, torrent: Any = None) -> None:
        """A limit, a torrent's ``force_start`` or its completion changed: decide again."""
        if torrent is not None and torrent.info_hash in self._kind:
            self._unfile(torrent)
            self._file(torrent)
        if torrent is None and self._cfg().stalled_minutes > 0:  # stall exclusion turned on
            now = self._scheduler.now()
            for kind, running in self._running.items():
                for h in running:
                    if h not in self._activity:
                        self._activity[h] = (self._payload(self._torrents[h], kind), now)
        elif torrent is None:
            self._activity.clear()
            self._stalled_seen.clear()
            self._check.cancel()
        self._soon_evaluate()
        self._arm_check()

    def _file(self, torrent: Any) -> None:
        h, kind = torrent.info_hash, torrent.complete
        self._kind[h] = kind
        self._want[kind].add(h, self._order.key(h))
        if torrent.state is S.QUEUED:
            self._queued[kind][h] = None
        elif torrent.state in ACTIVE:
            self._running[kind][h] = None
            if self._cfg().stalled_minutes > 0:  # only then is its activity watched
                self._activity[h] = (self._payload(torrent, kind), self._scheduler.now())
                self._arm_check()

    def _unfile(self, torrent: Any) -> None:
        h = torrent.info_hash
        kind = self._kind.pop(h, None)
        if kind is None:
            return
        self._want[kind].discard(h)
        self._queued[kind].pop(h, None)
        self._running[kind].pop(h, None)
        self._activity.pop(h, None)
        self._stalled_seen.discard(h)

    # -- the decision ----------------------------------------------------------------------------
    def _limit(self, name: str) -> int | None:
        value = getattr(self._cfg(), name)
        return None if value < 0 else value

    def _slots(self, kind: bool) -> int | None:
        """How many of a kind may run (None: no limit applies)."""
        own = self._limit("max_active_seeds" if kind else "max_active_downloads")
        total = self._limit("max_active_torrents")
        if own is None:
            return total
        return own if total is None else min(own, total)

    @staticmethod
    def _payload(torrent: Any, kind: bool) -> int:
        return torrent.uploaded if kind else torrent.downloaded

    def _stalled(self, h: bytes, now: float) -> bool:
        minutes = self._cfg().stalled_minutes
        activity = self._activity.get(h)
        return minutes > 0 and activity is not None and now - activity[1] >= minutes * 60

    def _counts(self, h: bytes, now: float) -> bool:
        t = self._torrents[h]
        return not t.options.force_start and not self._stalled(h, now)

    def _counted(self, kind: bool, now: float) -> int:
        return sum(1 for h in self._running[kind] if self._counts(h, now))

    def release(self) -> None:
        """Every stored torrent is loaded: run the first ones in queue order (not the first
        loaded, which would start and stop again)."""
        self.holding = False
        self._soon_evaluate()

    def _soon_evaluate(self) -> None:
        if not (self._soon.active or self._stopped or self._deciding or self.holding):
            self._soon.delay(0.0)

    def evaluate(self) -> None:
        """Run the first torrents of each kind in queue order up to the limits; queue the
        running ones beyond them. Downloads are served first from the total."""
        self.evaluations += 1
        now = self._scheduler.now()
        total = self._limit("max_active_torrents")
        self._deciding = True  # the moves it makes are not news to decide on again
        try:
            used = self._fill(False, now, total)
            self._fill(True, now, None if total is None else max(0, total - used))
        finally:
            self._deciding = False

    def _fill(self, kind: bool, now: float, total_left: int | None) -> int:
        own = self._limit("max_active_seeds" if kind else "max_active_downloads")
        slots = own if total_left is None else (total_left if own is None else min(own, total_left))
        if slots is None:  # unlimited (the total too): every queued one runs
            for h in list(self._queued[kind]):
                self._run(h)
            return 0  # not needed: no total to share
        counted = 0
        running_left = len(self._running[kind])
        for h in list(self._want[kind]):
            t = self._torrents.get(h)
            if t is None or self._kind.get(h) is not kind:
                continue
            running = h in self._running[kind]
            running_left -= running
            if t.options.force_start:
                if not running:
                    self._run(h)
            elif counted < slots:
                if not running:
                    self._run(h)
                    counted += 1
                elif not self._stalled(h, now):
                    counted += 1
            elif running and not self._stalled(h, now):
                t.enqueue()
            elif running_left <= 0:
                break  # the rest waits already
        return counted

    def _run(self, h: bytes) -> None:
        t = self._torrents.get(h)
        if t is not None and t.state is S.QUEUED:
            t.dequeue()

    # -- stall detection ---------------------------------------------------------------------------
    def _arm_check(self) -> None:
        if self._stopped:
            return
        if self._cfg().stalled_minutes > 0 and self._activity and not self._check.active:
            self._check.delay(CHECK_EVERY)

    def _periodic(self) -> None:
        """Note which running torrents moved payload; decide again if one stalled or woke."""
        now = self._scheduler.now()
        flipped = False
        for h, (seen, _since) in list(self._activity.items()):
            payload = self._payload(self._torrents[h], self._kind[h])
            if payload != seen:
                self._activity[h] = (payload, now)
            stalled = self._stalled(h, now)
            if stalled != (h in self._stalled_seen):
                flipped = True
                if stalled:
                    self._stalled_seen.add(h)
                else:
                    self._stalled_seen.discard(h)
        if flipped:
            self._soon_evaluate()
        self._arm_check()

    def stop(self) -> None:
        self._stopped = True
        self._soon.cancel()
        self._check.cancel()
