"""The piece layers of a v2 torrent from a magnet link, fetched by BEP 52 hash requests.

Pure bookkeeping for ``MetadataFetch``. Once the info dictionary is verified (its SHA-256 is
the btmh hash), every file longer than one piece still needs its piece layer: it is asked
for in runs of up to 512 hashes, each with the uncle hashes that prove it up to the file's
``pieces root`` (core/hash_layers.py), a few requests per peer at a time. A reply is
checked before anything is kept; one that does not prove itself is the peer's lie (the
caller bans it). A reject or a timeout frees the run for another peer.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from btd.core.bencode import BencodeError, decode
from btd.core.hash_layers import LayerWant, layer_requests, verify_layer_reply
from btd.core.limits import MAX_PATH_DEPTH
from btd.core.merkle import BLOCK
from btd.core.metainfo import MAX_PIECES
from btd.core.metainfo_v2 import walk_file_tree
from btd.core.wire.messages import Hashes, HashReject, HashRequest

REQUESTS_PER_PEER = 4


class BadHashes(Exception):
    """A reply whose hashes do not prove against the file's root."""


def layer_wants(info: bytes) -> tuple[int, list[LayerWant]] | None:
    """For a v2-only info dictionary, its piece length and the files whose piece layers
    are needed (longer than a piece); None for a v1 or hybrid one (it has ``pieces``).
    MetainfoError (from the walk) for a malformed tree: the parse would refuse it too."""
    try:
        top = decode(info)
    except BencodeError:
        return None  # the ordinary parse says why
    if not isinstance(top, dict) or top.get(b"meta version") != 2 or b"pieces" in top:
        return None
    piece_length = top.get(b"piece length")
    if type(piece_length) is not int or piece_length < BLOCK or piece_length & (piece_length - 1):
        return None
    wants: dict[bytes, LayerWant] = {}
    for f in walk_file_tree(top.get(b"file tree"), MAX_PATH_DEPTH, MAX_PIECES):
        count = -(-f.length // piece_length)
        if count > 1 and f.root is not None:
            wants[f.root] = LayerWant(f.root, count)
    return piece_length, list(wants.values())


class LayerFetch:
    """Which runs of which layers are asked of whom, and what came back verified."""

    def __init__(self, piece_length: int, wants: list[LayerWant]) -> None:
        self.piece_length = piece_length
        self.wants = {w.pieces_root: w for w in wants}
        self.todo: list[HashRequest] = [r for w in wants for r in layer_requests(w, piece_length)]
        self.asked: dict[HashRequest, tuple[Hashable, float]] = {}
        self.got: dict[bytes, dict[int, list[bytes]]] = {w.pieces_root: {} for w in wants}
        self.total = len(self.todo)
        self.done_count = 0

    @property
    def done(self) -> bool:
        return self.done_count == self.total

    def outstanding(self, peer: Hashable) -> int:
        return sum(1 for who, _ in self.asked.values() if who == peer)

    def next_for(self, peer: Hashable, now: float) -> list[HashRequest]:
        """Runs to ask ``peer`` for now (its share of what nobody is asked for)."""
        room = REQUESTS_PER_PEER - self.outstanding(peer)
        out = []
        while room > 0 and self.todo:
            req = self.todo.pop()
            self.asked[req] = (peer, now)
            out.append(req)
            room -= 1
        return out

    def reply(self, peer: Hashable, msg: Hashes) -> None:
        """Keep a verified reply; BadHashes if it does not prove itself. A reply to a run
        we did not ask this peer for (late, or never asked) is ignored."""
        req = msg.request()
        who = self.asked.get(req)
        if who is None or who[0] != peer:
            return
        want = self.wants[req.pieces_root]
        hashes = verify_layer_reply(msg, want.pieces_root, want.num_pieces, self.piece_length)
        if hashes is None:
            raise BadHashes(f"hashes for {req.pieces_root.hex()[:16]} do not prove its root")
        del self.asked[req]
        self.got[req.pieces_root][req.index] = hashes
        self.done_count += 1

    def reject(self, peer: Hashable, msg: HashReject) -> bool:
        """The run goes back to the list; True if it was ours to give back."""
        req = msg.request()
        who = self.asked.get(req)
        if who is None or who[0] != peer:
            return False
        del self.asked[req]
        self.todo.append(req)
        return True

    def forget(self, peer: Hashable) -> None:
        """The peer is gone: its runs go back to the list."""
        for req, (who, _) in list(self.asked.items()):
            if who == peer:
                del self.asked[req]
                self.todo.append(req)

    def expire(self, now: float, timeout: float) -> set[Any]:
        """Runs asked over ``timeout`` ago go back; the peers that let them lapse."""
        slow = set()
        for req, (who, when) in list(self.asked.items()):
            if now - when > timeout:
                del self.asked[req]
                self.todo.append(req)
                slow.add(who)
        return slow

    def layers(self) -> dict[bytes, bytes]:
        """Every file's piece layer (once ``done``), for the .torrent's ``piece layers``."""
        return {
            root: b"".join(h for _, run in sorted(runs.items()) for h in run)
            for root, runs in self.got.items()
        }
