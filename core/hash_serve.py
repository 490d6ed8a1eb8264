"""A v2 or hybrid torrent answering BEP 52 hash requests from its piece layers.

A peer that got a v2 torrent (or a hybrid, in its v2 swarm) from a magnet link has the info
dictionary but no ``piece layers``; it asks for them with ``hash request``. ``HashServer`` answers requests for the
piece layer (and the layers above it) of any file we hold the layer of, with the uncle
hashes asked for (core/hash_layers.py), and ``hash reject``s the rest: unknown roots,
block-layer requests (we keep no block hashes), runs out of range, more than
``HASH_REQUEST_MAX_LENGTH`` hashes, requests beyond ``HASH_REQUEST_RATE`` per peer after
a burst of ``HASH_REQUEST_BURST``, and requests from a peer whose send buffer is full. A file's tree is built on its first request and kept
(its size is twice the layer the torrent already holds).
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from btd.core.hash_layers import PieceTree
from btd.core.limits import HASH_REQUEST_BURST, HASH_REQUEST_RATE
from btd.core.metainfo_v2 import V2Pieces
from btd.core.wire import messages as m


class HashServer:
    """One v2 torrent's answers to hash requests (``pieces`` None: it has no v2 hashes)."""

    def __init__(self, pieces: V2Pieces | None, now: Any) -> None:
        self.now = now
        self._files: dict[bytes, tuple[int, int]] = {}
        self._pieces = pieces
        if pieces is not None:
            self._files = {root: (first, count) for root, first, count in pieces.layers}
        self._trees: dict[bytes, PieceTree] = {}
        self._tokens: WeakKeyDictionary[Any, tuple[float, float]] | None = None
        self.answered = 0
        self.rejected = 0

    def message(self, peer: Any, msg: Any) -> None:
        """A hash request is answered or rejected; replies and rejects are not ours to
        take (a torrent with all its layers asks for none) and are ignored."""
        if type(msg) is not m.HashRequest:
            return
        paused = getattr(getattr(peer, "link", None), "write_paused", False)
        # A peer that does not read what we send gets rejects (48 bytes), not hashes.
        data = self._answer(msg) if not paused and self._may_serve(peer) else None
        if data is None:
            self.rejected += 1
            peer.write(
                m.HashReject(
                    msg.pieces_root, msg.base_layer, msg.index, msg.length, msg.proof_layers
                )
            )
            return
        self.answered += 1
        peer.write(
            m.Hashes(msg.pieces_root, msg.base_layer, msg.index, msg.length, msg.proof_layers, data)
        )

    def _answer(self, msg: m.HashRequest) -> bytes | None:
        where = self._files.get(msg.pieces_root)
        if where is None or self._pieces is None:
            return None
        tree = self._trees.get(msg.pieces_root)
        if tree is None:
            layer = self._pieces.piece_layer(*where)
            tree = self._trees[msg.pieces_root] = PieceTree(layer, self._pieces.piece_length)
        return tree.get_hashes(msg)

    def _may_serve(self, peer: Any) -> bool:
        """A token bucket per peer, as for ut_metadata (core/torrent_extensions.py)."""
        now = self.now()
        buckets = self._tokens
        if buckets is None:
            buckets = self._tokens = WeakKeyDictionary()
        tokens, then = buckets.get(peer, (float(HASH_REQUEST_BURST), now))
        tokens = min(float(HASH_REQUEST_BURST), tokens + (now - then) * HASH_REQUEST_RATE)
        if tokens < 1.0:
            buckets[peer] = (tokens, now)
            return False
        buckets[peer] = (tokens - 1.0, now)
        return True
