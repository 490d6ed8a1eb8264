"""BEP 52 piece-layer proofs: what btd answers folds back to the file's root, what it
checks refuses anything else, and requests match libtorrent's shape."""

from __future__ import annotations

import hashlib
import os

import pytest

from btd.core.hash_layers import (
    LayerWant,
    PieceTree,
    layer_requests,
    piece_height,
    verify_layer_reply,
)
from btd.core.merkle import BLOCK, block_hashes, file_hashes, pad_root
from btd.core.wire.messages import Hashes, HashRequest

PIECE = 4 * BLOCK  # piece layer base 2


def layer_of(num_pieces: int, tail: int = 100) -> tuple[bytes, bytes]:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(4 * (num_pieces - 1))]
    leaves += block_hashes(os.urandom(tail))
    root, layer = file_hashes(leaves, PIECE)
    assert len(layer) == num_pieces
    return root, b"".join(layer)


def answer(tree: PieceTree, req: HashRequest) -> Hashes:
    data = tree.get_hashes(req)
    assert data is not None
    return Hashes(req.pieces_root, req.base_layer, req.index, req.length, req.proof_layers, data)


@pytest.mark.parametrize("num_pieces", [2, 3, 5, 511, 512, 513, 1024, 1500])
def test_whole_layer_round_trips(num_pieces: int) -> None:
    root, layer = layer_of(num_pieces)
    tree = PieceTree(layer, PIECE)
    assert tree.root == root
    got = []
    for req in layer_requests(LayerWant(root, num_pieces), PIECE):
        assert req.base_layer == piece_height(PIECE) == 2
        assert req.index % req.length == 0 and req.length >= 2
        hashes = verify_layer_reply(answer(tree, req), root, num_pieces, PIECE)
        assert hashes is not None
        got += hashes
    assert b"".join(got) == layer


def test_uncles_are_libtorrents() -> None:
    root, layer = layer_of(8)
    tree = PieceTree(layer, PIECE)
    lv = tree.layers
    # two hashes at index 2 with 2 proof layers: the run rebuilds its parent, so one
    # uncle (sibling of that parent), then the next layer's
    req = HashRequest(root, 2, 2, 2, 2)
    assert tree.get_hashes(req) == lv[0][2] + lv[0][3] + lv[1][0] + lv[2][1]
    # a run of 4 with 2 proof layers: only the top uncle
    assert tree.get_hashes(HashRequest(root, 2, 4, 4, 2)) == b"".join(lv[0][4:8]) + lv[2][0]


@pytest.mark.parametrize(
    "req",
    [
        HashRequest(b"r" * 32, 1, 0, 2, 0),  # below the piece layer: no block hashes kept
        HashRequest(b"r" * 32, 2, 8, 2, 0),  # past the layer
        HashRequest(b"r" * 32, 2, 6, 4, 0),  # runs past its end
        HashRequest(b"r" * 32, 2, 0, 2, 3),  # proof reaching the root (height 3)
        HashRequest(b"r" * 32, 5, 0, 1, 0),  # the root's own layer
        HashRequest(b"r" * 32, 2, 0, 0, 0),
        HashRequest(b"r" * 32, 2, 0, 10_000, 0),
    ],
)
def test_requests_out_of_range_are_refused(req: HashRequest) -> None:
    _, layer = layer_of(8)
    assert PieceTree(layer, PIECE).get_hashes(req) is None


def test_padding_is_answered_as_padding() -> None:
    root, layer = layer_of(5)
    tree = PieceTree(layer, PIECE)
    data = tree.get_hashes(HashRequest(root, 2, 4, 4, 1))
    assert data is not None and data[32:128] == pad_root(2) * 3


def test_wrong_replies_are_refused() -> None:
    root, layer = layer_of(600)
    tree = PieceTree(layer, PIECE)
    req = layer_requests(LayerWant(root, 600), PIECE)[1]
    good = answer(tree, req)
    assert verify_layer_reply(good, root, 600, PIECE) is not None
    flipped = bytearray(good.hashes)
    flipped[5] ^= 1
    for bad in [
        Hashes(root, 2, req.index, req.length, req.proof_layers, bytes(flipped)),
        Hashes(root, 2, req.index, req.length, req.proof_layers, good.hashes[:-32]),  # short proof
        Hashes(b"x" * 32, 2, req.index, req.length, req.proof_layers, good.hashes),
        Hashes(root, 3, req.index, req.length, req.proof_layers, good.hashes),
        Hashes(root, 2, req.index + 1, req.length, req.proof_layers, good.hashes),
    ]:
        assert verify_layer_reply(bad, root, 600, PIECE) is None
    # a real hash where padding belongs (the run is 128 wide, 88 real pieces)
    run = bytearray(good.hashes)
    run[88 * 32 : 89 * 32] = layer[:32]
    bad = Hashes(root, 2, req.index, req.length, req.proof_layers, bytes(run))
    assert verify_layer_reply(bad, root, 600, PIECE) is None
