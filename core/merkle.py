"""BitTorrent v2 (BEP 52) merkle trees over a file's 16 KiB blocks, SHA-256.

Pure: a file's ``pieces root`` and its piece layer from its block hashes. The leaves are
the SHA-256 of each 16 KiB block (the last may be short); the tree is padded with zero
leaves to a power of two, so a piece-sized subtree of padding is the root of a tree of
zero leaves, computed once per height (:func:`pad_root`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache

BLOCK = 16 * 1024
HASH_SIZE = 32
ZERO = bytes(HASH_SIZE)


def block_hashes(data: bytes | memoryview) -> list[bytes]:
    """The leaf hashes of ``data``, one per 16 KiB block (the last may be short)."""
    sha256 = hashlib.sha256
    return [sha256(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK)]


@cache
def pad_root(height: int) -> bytes:
    """The root of a subtree of ``2**height`` zero leaves."""
    node = ZERO
    for _ in range(height):
        node = hashlib.sha256(node + node).digest()
    return node


def _height(count: int) -> int:
    """log2 of the power of two at or above ``count`` (at least 1 leaf)."""
    return max(0, (count - 1).bit_length())


def root(nodes: Sequence[bytes], height: int, pad_height: int = 0) -> bytes:
    """The root of ``2**height`` nodes: ``nodes`` then padding (subtrees of
    ``2**pad_height`` zero leaves)."""
    if len(nodes) > 1 << height:
        raise ValueError("more nodes than the tree holds")
    layer = list(nodes)
    sha256 = hashlib.sha256
    for level in range(height):
        if len(layer) % 2:
            layer.append(pad_root(pad_height + level))
        layer = [sha256(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
    return layer[0] if layer else pad_root(pad_height + height)


def file_hashes(leaves: Sequence[bytes], piece_length: int) -> tuple[bytes, list[bytes]]:
    """A non-empty file's ``pieces root`` and its piece layer (empty when the file fits in
    one piece: BEP 52 stores no layer then) from its block hashes."""
    if not leaves:
        raise ValueError("an empty file has no pieces root")
    per_piece = piece_length // BLOCK
    piece_height = _height(per_piece)
    if len(leaves) <= per_piece:
        return root(leaves, _height(len(leaves))), []
    layer = [
        root(leaves[i : i + per_piece], piece_height) for i in range(0, len(leaves), per_piece)
    ]
    return root(layer, _height(len(layer)), piece_height), layer
