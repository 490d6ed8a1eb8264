"""BEP 52 merkle trees: hand-computed small trees, padding, and the piece layer agreeing
with the root it summarises."""

from __future__ import annotations

import hashlib
import random

import pytest

from btd.core.merkle import BLOCK, ZERO, block_hashes, file_hashes, pad_root, root


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_leaves_are_16_kib_blocks_the_last_short() -> None:
    data = bytes(range(256)) * 200  # 51,200 bytes: 3 blocks and a short one
    leaves = block_hashes(data)
    assert len(leaves) == 4
    assert leaves[3] == h(data[3 * BLOCK :]) and leaves[0] == h(data[:BLOCK])


def test_small_trees_by_hand() -> None:
    a, b, c = h(b"a"), h(b"b"), h(b"c")
    assert file_hashes([a], BLOCK * 4) == (a, [])  # one block: the leaf is the root
    assert file_hashes([a, b], BLOCK * 4) == (h(a + b), [])
    # three leaves: padded with a zero leaf to four
    assert file_hashes([a, b, c], BLOCK * 4) == (h(h(a + b) + h(c + ZERO)), [])


def test_pad_roots() -> None:
    assert pad_root(0) == ZERO
    assert pad_root(1) == h(ZERO + ZERO)
    assert pad_root(2) == h(pad_root(1) + pad_root(1))


def test_piece_layer_of_a_file_longer_than_a_piece() -> None:
    leaves = [h(bytes([i])) for i in range(5)]  # 5 blocks, pieces of 2 blocks: 3 pieces
    got_root, layer = file_hashes(leaves, 2 * BLOCK)
    p0, p1, p2 = h(leaves[0] + leaves[1]), h(leaves[2] + leaves[3]), h(leaves[4] + ZERO)
    assert layer == [p0, p1, p2]
    assert got_root == h(h(p0 + p1) + h(p2 + pad_root(1)))


@pytest.mark.parametrize("blocks", [1, 2, 3, 7, 8, 9, 33, 100])
@pytest.mark.parametrize("per_piece", [1, 2, 4, 16])
def test_the_root_is_the_same_from_leaves_or_from_the_piece_layer(blocks, per_piece) -> None:
    rng = random.Random(blocks * 100 + per_piece)
    leaves = [rng.randbytes(32) for _ in range(blocks)]
    from_leaves = root(leaves, max(0, (blocks - 1).bit_length()))
    got_root, layer = file_hashes(leaves, per_piece * BLOCK)
    assert got_root == from_leaves
    assert len(layer) == (0 if blocks <= per_piece else -(-blocks // per_piece))


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        file_hashes([], BLOCK)
    with pytest.raises(ValueError):
        root([ZERO] * 3, 1)
