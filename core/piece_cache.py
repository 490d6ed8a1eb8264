"""A small cache of whole pieces read for uploading.

Peers request 16 KiB blocks; reading each block in its own thread-pool job would cost
a thread hop per block. Reading the whole piece once and serving its blocks from here
costs one hop per piece. Bounded by bytes; concurrent requests for a piece share one read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from twisted.internet import defer
from twisted.python.failure import Failure

DEFAULT_BUDGET = 16 * 1024 * 1024
"""Per torrent. Room for a few pieces read ahead for each unchoked peer (4 slots x 3 pieces
of 1 MiB); 32 MiB only raised a seeder's peak memory (93 MiB against libtorrent's 36)."""


class PieceReadCache:
    """piece index -> bytes, least recently used dropped past ``budget`` bytes."""

    def __init__(
        self,
        read: Callable[[int], defer.Deferred[bytes]],
        budget: int = DEFAULT_BUDGET,
        read_many: Callable[[list[int]], defer.Deferred[list[bytes]]] | None = None,
    ) -> None:
        self._read = read
        self._read_many = read_many
        self._budget = budget
        self._pieces: OrderedDict[int, bytes] = OrderedDict()
        self._size = 0
        self._waiting: dict[int, list[defer.Deferred[bytes]]] = {}

    def peek(self, index: int) -> bytes | None:
        """The piece if it is cached (and now the most recent), else None: no Deferred, so
        the upload loop serves hits at the cost of a dict lookup."""
        data = self._pieces.get(index)
        if data is not None:
            self._pieces.move_to_end(index)
        return data

    def loading(self, index: int) -> bool:
        """A read of this piece is in flight."""
        return index in self._waiting

    def get(self, index: int) -> defer.Deferred[bytes]:
        data = self._pieces.get(index)
        if data is not None:
            self._pieces.move_to_end(index)
            return defer.succeed(data)
        d: defer.Deferred[bytes] = defer.Deferred()
        waiting = self._waiting.get(index)
        if waiting is not None:
            waiting.append(d)
            return d
        self._waiting[index] = [d]
        defer.maybeDeferred(self._read, index).addBoth(self._arrived, index)
        return d

    def get_many(self, indices: list[int]) -> list[defer.Deferred[bytes]]:
        """``get`` for each index, the pieces not cached read together (with ``read_many``:
        one pool job, so one thread handoff, for all of them)."""
        if self._read_many is None:
            return [self.get(i) for i in indices]
        out: list[defer.Deferred[bytes]] = []
        load: list[int] = []
        for index in indices:
            if index in self._pieces or index in self._waiting:
                out.append(self.get(index))
                continue
            d: defer.Deferred[bytes] = defer.Deferred()
            self._waiting[index] = [d]
            load.append(index)
            out.append(d)
        if load:
            defer.maybeDeferred(self._read_many, load).addBoth(self._arrived_many, load)
        return out

    def _arrived_many(self, result: list[bytes] | Failure, indices: list[int]) -> None:
        for n, index in enumerate(indices):
            self._arrived(result if isinstance(result, Failure) else result[n], index)

    def _arrived(self, result: bytes | Failure, index: int) -> None:
        waiters = self._waiting.pop(index, [])
        if not isinstance(result, Failure):
            self._store(index, result)
        for d in waiters:
            d.callback(result) if not isinstance(result, Failure) else d.errback(result)

    def _store(self, index: int, data: bytes) -> None:
        if len(data) > self._budget:
            return
        self._pieces[index] = data
        self._size += len(data)
        while self._size > self._budget:
            _, old = self._pieces.popitem(last=False)
            self._size -= len(old)

    def clear(self) -> None:
        self._pieces.clear()
        self._size = 0
