"""BEP 52 hash requests over piece layers: answering them and checking the answers.

Pure. A file's tree is seen from its piece layer up (``PieceTree``): the layer padded to a
power of two with the root of a piece-sized subtree of zero leaves, then each layer above.
``base`` is counted from the 16 KiB blocks, as on the wire, so the piece layer is
``log2(piece_length / 16 KiB)``. The answer to a request (:meth:`PieceTree.get_hashes`) is
libtorrent's (merkle_tree::get_hashes): the requested run, then for each proof layer above
the run's own subtree the sibling of the run's ancestor, bottom up. :func:`verify_layer_reply`
folds a reply back to the file's ``pieces root``; :func:`layer_requests` asks for a whole
piece layer the way libtorrent does (runs of 512, each proved up to the root).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from btd.core.limits import HASH_REQUEST_MAX_LENGTH
from btd.core.merkle import BLOCK, HASH_SIZE, pad_root
from btd.core.wire.messages import Hashes, HashRequest

LAYER_CHUNK = 512
"""Piece hashes per request when fetching a layer (libtorrent's bucket_piece_span; its
hash picker accepts piece-layer replies of 512, or of whatever ends the file)."""


def piece_height(piece_length: int) -> int:
    """The piece layer's ``base``: log2 of the blocks in a piece."""
    return (piece_length // BLOCK - 1).bit_length()


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _pair(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(left + right).digest()


class PieceTree:
    """A file's tree from its piece layer (``num_pieces`` > 1 hashes) to its root."""

    __slots__ = ("base", "layers", "num_pieces")

    def __init__(self, layer: bytes, piece_length: int) -> None:
        self.base = piece_height(piece_length)
        hashes = [layer[i : i + HASH_SIZE] for i in range(0, len(layer), HASH_SIZE)]
        self.num_pieces = len(hashes)
        hashes += [pad_root(self.base)] * (_pow2(len(hashes)) - len(hashes))
        self.layers = [hashes]
        while len(hashes) > 1:
            hashes = [_pair(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
            self.layers.append(hashes)

    @property
    def root(self) -> bytes:
        return self.layers[-1][0]

    @property
    def num_layers(self) -> int:
        """libtorrent's merkle_num_layers of the whole file tree: the root's height."""
        return self.base + len(self.layers) - 1

    def get_hashes(self, req: HashRequest) -> bytes | None:
        """The ``hashes`` payload answering ``req``, or None to reject it: a base below the
        piece layer (we keep no block hashes), a run outside its layer, a request longer
        than HASH_REQUEST_MAX_LENGTH or proof layers reaching the root (libtorrent's
        validate_hash_request)."""
        base, index, count, proof = req.base_layer, req.index, req.length, req.proof_layers
        num_layers = self.num_layers
        if not 0 < count <= HASH_REQUEST_MAX_LENGTH or index < 0 or proof < 0:
            return None
        if not self.base <= base < num_layers or proof >= num_layers - base:
            return None
        level = self.layers[base - self.base]
        if index >= len(level) or index + count > len(level):
            return None
        out = level[index : index + count]
        own = (_pow2(count) - 1).bit_length() - 1  # layers the run itself rebuilds, minus one
        position = index
        for i in range(proof):
            position >>= 1
            if i >= own:
                out.append(self.layers[base - self.base + i + 1][position ^ 1])
        return b"".join(out)


def verify_layer_reply(
    msg: Hashes, pieces_root: bytes, num_pieces: int, piece_length: int
) -> list[bytes] | None:
    """The piece hashes a ``hashes`` reply carries for the file of ``num_pieces`` pieces
    whose root is ``pieces_root`` (the run's real pieces, padding dropped), or None when it
    does not prove itself: a run not aligned to its power-of-two length, padding that is
    not padding, uncles that do not fold to the root."""
    base = piece_height(piece_length)
    count, index = msg.length, msg.index
    if msg.pieces_root != pieces_root or msg.base_layer != base:
        return None
    if count & (count - 1) or index % count or index >= num_pieces:
        return None
    width = _pow2(num_pieces)  # the padded piece layer
    if index + count > width:
        return None
    height = (width - 1).bit_length()
    run_height = (count - 1).bit_length()
    hashes = [msg.hashes[i : i + HASH_SIZE] for i in range(0, len(msg.hashes), HASH_SIZE)]
    if len(hashes) != count + height - run_height:
        return None  # it must prove the run all the way up to the root
    run, uncles = hashes[:count], hashes[count:]
    real = min(count, num_pieces - index)
    if any(h != pad_root(base) for h in run[real:]):
        return None
    nodes = run
    while len(nodes) > 1:
        nodes = [_pair(nodes[i], nodes[i + 1]) for i in range(0, len(nodes), 2)]
    node, position = nodes[0], index >> run_height
    for uncle in uncles:
        node = _pair(node, uncle) if position % 2 == 0 else _pair(uncle, node)
        position >>= 1
    return run[:real] if node == pieces_root else None


@dataclass(frozen=True, slots=True)
class LayerWant:
    """One file whose piece layer must be fetched."""

    pieces_root: bytes
    num_pieces: int


def layer_requests(want: LayerWant, piece_length: int) -> list[HashRequest]:
    """Requests for a whole piece layer: runs of up to LAYER_CHUNK, each with the uncle
    hashes that prove it up to the root (proof_layers = the tree's height - 1)."""
    base = piece_height(piece_length)
    height = (_pow2(want.num_pieces) - 1).bit_length()
    out = []
    for index in range(0, want.num_pieces, LAYER_CHUNK):
        # never a run of one: libtorrent's proof of a single hash starts a layer up
        count = min(LAYER_CHUNK, max(2, _pow2(want.num_pieces - index)))
        out.append(HashRequest(want.pieces_root, base, index, count, max(0, height - 1)))
    return out
